package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store holds the gateway schema's tables.
type Store struct{ pool *pgxpool.Pool }

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// KeyRecord is a stored API key (never the secret).
type KeyRecord struct {
	ID         string
	TenantID   string
	Name       string
	Role       string
	SecretHash []byte
	CreatedAt  time.Time
	RevokedAt  *time.Time
	UpdatedAt  time.Time
	// CorpusIDs scopes the key (sorted); empty: every corpus of the tenant.
	CorpusIDs []string
}

// errKeyNotFound is returned when a key does not exist in the tenant.
var errKeyNotFound = errors.New("api key not found")

const keyColumns = `id, tenant_id, name, role, secret_hash, created_at, revoked_at, updated_at, corpus_ids`

func scanKey(row pgx.Row) (KeyRecord, error) {
	var k KeyRecord
	err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Role, &k.SecretHash, &k.CreatedAt, &k.RevokedAt, &k.UpdatedAt, &k.CorpusIDs)
	return k, err
}

// CreateKey stores a new key scoped to corpora (nil: every corpus; already validated)
// and returns it with its plaintext, which is not kept.
func (s *Store) CreateKey(ctx context.Context, tenant, name, role string, corpora []string) (KeyRecord, string, error) {
	id, plaintext, hash := newKey()
	k, err := scanKey(s.pool.QueryRow(ctx, `
		INSERT INTO gateway.api_keys (id, tenant_id, name, role, secret_hash, corpus_ids)
		VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING `+keyColumns, id, tenant, name, role, hash, nonNil(corpora)))
	if err != nil {
		return KeyRecord{}, "", fmt.Errorf("insert api key for tenant %s: %w", tenant, err)
	}
	return k, plaintext, nil
}

// GetKey loads a key by id across tenants (authentication does not know the tenant yet).
func (s *Store) GetKey(ctx context.Context, id string) (KeyRecord, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM gateway.api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return KeyRecord{}, errKeyNotFound
	}
	if err != nil {
		return KeyRecord{}, fmt.Errorf("load api key %s: %w", id, err)
	}
	return k, nil
}

// RevokeKey revokes a key. tenant "" means any tenant (the operator CLI); a key already
// revoked keeps its first revocation time.
func (s *Store) RevokeKey(ctx context.Context, tenant, id string) (KeyRecord, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `
		UPDATE gateway.api_keys
		   SET revoked_at = COALESCE(revoked_at, now()), updated_at = clock_timestamp()
		 WHERE id = $1 AND ($2 = '' OR tenant_id = $2)
		RETURNING `+keyColumns, id, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return KeyRecord{}, errKeyNotFound
	}
	if err != nil {
		return KeyRecord{}, fmt.Errorf("revoke api key %s: %w", id, err)
	}
	return k, nil
}

// KeyChange is an update of a key: nil fields stay as they are.
type KeyChange struct {
	Name *string
	// CorpusIDs replaces the scope; a non-nil empty slice makes the key unrestricted.
	CorpusIDs []string
	SetScope  bool
}

// UpdateKey changes a key's name and/or corpus scope within its tenant.
func (s *Store) UpdateKey(ctx context.Context, tenant, id string, c KeyChange) (KeyRecord, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `
		UPDATE gateway.api_keys
		   SET name = COALESCE($3, name),
		       corpus_ids = CASE WHEN $4 THEN $5::text[] ELSE corpus_ids END,
		       updated_at = clock_timestamp()
		 WHERE id = $1 AND tenant_id = $2
		RETURNING `+keyColumns, id, tenant, c.Name, c.SetScope, nonNil(c.CorpusIDs)))
	if errors.Is(err, pgx.ErrNoRows) {
		return KeyRecord{}, errKeyNotFound
	}
	if err != nil {
		return KeyRecord{}, fmt.Errorf("update api key %s: %w", id, err)
	}
	return k, nil
}

// nonNil stores an unrestricted scope as '{}' rather than NULL.
func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// ListKeys lists a tenant's keys, oldest first.
func (s *Store) ListKeys(ctx context.Context, tenant string, includeRevoked bool) ([]KeyRecord, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+keyColumns+` FROM gateway.api_keys
		 WHERE tenant_id = $1 AND ($2 OR revoked_at IS NULL)
		 ORDER BY created_at, id`, tenant, includeRevoked)
	if err != nil {
		return nil, fmt.Errorf("list api keys of tenant %s: %w", tenant, err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyRecord, error) { return scanKey(r) })
	if err != nil {
		return nil, fmt.Errorf("list api keys of tenant %s: %w", tenant, err)
	}
	return keys, nil
}

// KeysChangedSince returns keys whose row changed after since, in change order: the
// replicas' cache sync. since zero returns every key.
func (s *Store) KeysChangedSince(ctx context.Context, since time.Time) ([]KeyRecord, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+keyColumns+` FROM gateway.api_keys WHERE updated_at > $1 ORDER BY updated_at`, since)
	if err != nil {
		return nil, fmt.Errorf("load changed api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyRecord, error) { return scanKey(r) })
	if err != nil {
		return nil, fmt.Errorf("load changed api keys: %w", err)
	}
	return keys, nil
}
