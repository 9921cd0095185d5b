package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// Authentication failure codes.
const (
	CodeAuthMissing     = apierr.CodeAuthMissing
	CodeAuthInvalid     = apierr.CodeAuthInvalid
	CodeAuthRevoked     = apierr.CodeAuthRevoked
	CodeAuthUnavailable = apierr.CodeAuthUnavailable
)

// KeyCache authenticates API keys without touching Postgres on the hot path. It mirrors
// the api_keys table in memory: loaded at start, then synced incrementally every
// interval by updated_at, so a revocation reaches every replica within one interval
// (the product promises 5 s; the default interval is 1 s). A key created after the last
// sync is looked up once (singleflight) and an unknown key id is remembered as unknown
// for negativeTTL, so garbage keys cannot turn into one query per request.
type KeyCache struct {
	store       *Store
	log         *slog.Logger
	interval    time.Duration
	negativeTTL time.Duration
	now         func() time.Time

	mu       sync.RWMutex
	keys     map[string]KeyRecord
	unknown  map[string]time.Time // key id -> until
	syncedTo time.Time            // highest updated_at seen
	lookups  singleflight.Group
}

// syncOverlap re-reads rows this far behind the high-water mark, so a row whose
// updated_at was taken before a concurrent sync but committed after it is not missed.
const (
	syncOverlap    = 5 * time.Second
	maxUnknownKeys = 10_000
)

// NewKeyCache returns an empty cache; Run fills and syncs it.
func NewKeyCache(store *Store, log *slog.Logger, interval, negativeTTL time.Duration) *KeyCache {
	return &KeyCache{
		store: store, log: log, interval: interval, negativeTTL: negativeTTL, now: time.Now,
		keys: map[string]KeyRecord{}, unknown: map[string]time.Time{},
	}
}

// Run syncs the cache until ctx ends. A failed sync is logged and retried next tick;
// keys already known keep working while Postgres is away.
func (c *KeyCache) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		if err := c.Sync(ctx); err != nil && ctx.Err() == nil {
			c.log.WarnContext(ctx, "api key cache sync failed; serving from cache", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync applies every key row changed since the last sync.
func (c *KeyCache) Sync(ctx context.Context) error {
	c.mu.RLock()
	since := c.syncedTo
	c.mu.RUnlock()
	if !since.IsZero() {
		since = since.Add(-syncOverlap)
	}
	changed, err := c.store.KeysChangedSince(ctx, since)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range changed {
		c.keys[k.ID] = k
		delete(c.unknown, k.ID)
		if k.UpdatedAt.After(c.syncedTo) {
			c.syncedTo = k.UpdatedAt
		}
	}
	if since.IsZero() && c.syncedTo.IsZero() {
		// An empty table: remember that the full load happened.
		c.syncedTo = time.Unix(0, 0)
	}
	return nil
}

// Authenticate verifies a plaintext key and returns its principal, or an apierr with
// code AUTH_INVALID, AUTH_REVOKED or AUTH_UNAVAILABLE. With AUTH_REVOKED the revoked
// key's principal is returned too, for auditing only.
func (c *KeyCache) Authenticate(ctx context.Context, plaintext string) (principal.Principal, error) {
	id, hash, err := parseKey(plaintext)
	if err != nil {
		return principal.Principal{}, invalidKey()
	}
	return c.AuthenticateHash(ctx, id, hash)
}

// AuthenticateHash is Authenticate for a key already split into its id and the SHA-256
// of its secret (what another process sends through AuthenticateApiKey).
func (c *KeyCache) AuthenticateHash(ctx context.Context, id string, hash []byte) (principal.Principal, error) {
	k, err := c.lookup(ctx, id)
	if err != nil {
		return principal.Principal{}, err
	}
	if subtle.ConstantTimeCompare(k.SecretHash, hash) != 1 {
		return principal.Principal{}, invalidKey()
	}
	role, err := principal.ParseRole(k.Role)
	if err != nil {
		return principal.Principal{}, invalidKey()
	}
	p := principal.Principal{TenantID: k.TenantID, KeyID: k.ID, Role: role, CorpusIDs: k.CorpusIDs}
	if k.RevokedAt != nil {
		// The caller proved it holds the key: p is returned so the failure is audited
		// under the key's tenant, but it must not be used to authorize anything.
		return p, apierr.New(codes.Unauthenticated, CodeAuthRevoked, "the API key was revoked", "key_id", k.ID)
	}
	return p, nil
}

func invalidKey() error {
	return apierr.New(codes.Unauthenticated, CodeAuthInvalid, "the API key is not valid")
}

func (c *KeyCache) lookup(ctx context.Context, id string) (KeyRecord, error) {
	now := c.now()
	c.mu.RLock()
	k, known := c.keys[id]
	until, isUnknown := c.unknown[id]
	c.mu.RUnlock()
	if known {
		return k, nil
	}
	if isUnknown && now.Before(until) {
		return KeyRecord{}, invalidKey()
	}
	v, err, _ := c.lookups.Do(id, func() (any, error) {
		// Detached from the caller so one canceled request does not fail the others.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		return c.store.GetKey(lctx, id)
	})
	switch {
	case errors.Is(err, errKeyNotFound):
		c.rememberUnknown(id, now)
		return KeyRecord{}, invalidKey()
	case err != nil:
		c.log.WarnContext(ctx, "api key lookup failed", "key_id", id, "error", err)
		return KeyRecord{}, apierr.New(codes.Unavailable, CodeAuthUnavailable, "authentication is temporarily unavailable; retry shortly")
	}
	k = v.(KeyRecord)
	c.mu.Lock()
	c.keys[id] = k
	c.mu.Unlock()
	return k, nil
}

func (c *KeyCache) rememberUnknown(id string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.unknown) >= maxUnknownKeys {
		for k, until := range c.unknown {
			if now.After(until) {
				delete(c.unknown, k)
			}
		}
		if len(c.unknown) >= maxUnknownKeys {
			return // under a flood of garbage ids, stop remembering rather than grow
		}
	}
	c.unknown[id] = now.Add(c.negativeTTL)
}

// Apply records a key change made by this replica, so it takes effect here at once.
func (c *KeyCache) Apply(k KeyRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys[k.ID] = k
	delete(c.unknown, k.ID)
}
