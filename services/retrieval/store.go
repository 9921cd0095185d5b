package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store holds the retrieval schema's tables.
type Store struct {
	pool    *pgxpool.Pool
	planner *statistics // freshness of the planner's statistics (statistics.go)
	logKeep int64       // generations the index log explains (defaultLogKeep)
	// local caches the records of local_pgvector corpora for Retrieve: the statement that
	// reads a search's hits also reads the corpus's updated_at, and a search that finds
	// it changed reloads the record and runs again (errStaleCorpus).
	local sync.Map // corpusKey → CorpusRecord
}

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, planner: &statistics{threshold: defaultAnalyzeThreshold}, logKeep: defaultLogKeep}
}

// CorpusRecord is a stored corpus.
type CorpusRecord struct {
	TenantID, CorpusID, Name string
	Config                   ProviderConfig
	CreatedAt, UpdatedAt     time.Time
}

// topK is the number of hits a query asking for requested (0: the corpus's default) gets.
func (c CorpusRecord) topK(requested int) int {
	if requested == 0 {
		return c.Config.TopKDefault
	}
	return requested
}

// errCorpusNotFound is returned when a corpus does not exist in the tenant.
var errCorpusNotFound = errors.New("corpus not found")

const corpusColumns = `tenant_id, corpus_id, name, provider_config, created_at, updated_at`

func scanCorpus(row pgx.Row) (CorpusRecord, error) {
	var c CorpusRecord
	var raw []byte
	if err := row.Scan(&c.TenantID, &c.CorpusID, &c.Name, &raw, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return c, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return c, fmt.Errorf("corpus %s: stored provider config: %w", c.CorpusID, err)
	}
	cfg, err := ParseProviderConfig(m)
	if err != nil {
		return c, fmt.Errorf("corpus %s: stored provider config: %w", c.CorpusID, err)
	}
	c.Config = cfg
	return c, nil
}

// GetCorpus loads a corpus of the tenant.
func (s *Store) GetCorpus(ctx context.Context, tenant, id string) (CorpusRecord, error) {
	c, err := scanCorpus(s.pool.QueryRow(ctx,
		`SELECT `+corpusColumns+` FROM retrieval.corpora WHERE tenant_id = $1 AND corpus_id = $2`, tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, errCorpusNotFound
	}
	if err != nil {
		return c, fmt.Errorf("load corpus %s: %w", id, err)
	}
	return c, nil
}

// errStaleCorpus: the corpus changed since its record was cached; search again with a fresh one.
var errStaleCorpus = errors.New("corpus record changed during the search")

// withFreshOnStale runs search with the cached corpus record, and once more with a fresh
// one when the record changed during it.
func withFreshOnStale(search func(fresh bool) error) error {
	err := search(false)
	if errors.Is(err, errStaleCorpus) {
		err = search(true)
	}
	return err
}

// searchCorpus loads a corpus for a search: a local_pgvector corpus's record from the
// cache unless fresh (which reloads it), any other from Postgres.
func (s *Store) searchCorpus(ctx context.Context, tenant, id string, fresh bool) (CorpusRecord, error) {
	k := corpusKey{tenant, id}
	if c, ok := s.local.Load(k); ok && !fresh {
		return c.(CorpusRecord), nil
	}
	c, err := s.GetCorpus(ctx, tenant, id)
	switch {
	case err != nil:
		s.local.Delete(k)
	case c.Config.Provider == ProviderLocal:
		s.local.Store(k, c)
	default:
		s.local.Delete(k)
	}
	return c, err
}

// ListCorpora returns up to limit+1 corpora of the tenant with ids after `after`; a
// non-empty only keeps those corpora (a scoped key's).
func (s *Store) ListCorpora(ctx context.Context, tenant string, only []string, after string, limit int) ([]CorpusRecord, error) {
	if only == nil {
		only = []string{}
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+corpusColumns+` FROM retrieval.corpora
		 WHERE tenant_id = $1 AND corpus_id > $2
		   AND (cardinality($4::text[]) = 0 OR corpus_id = ANY($4::text[]))
		 ORDER BY corpus_id LIMIT $3`, tenant, after, limit+1, only)
	if err != nil {
		return nil, fmt.Errorf("list corpora of tenant %s: %w", tenant, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CorpusRecord, error) { return scanCorpus(r) })
	if err != nil {
		return nil, fmt.Errorf("list corpora of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// corpusPatch holds the fields an update sets; nil leaves a field as it is.
type corpusPatch struct {
	Name   *string
	Config *ProviderConfig
}

// UpdateCorpus applies a patch; with create it inserts a missing corpus first (the
// name defaulting to the id, the configuration to local_pgvector).
func (s *Store) UpdateCorpus(ctx context.Context, tenant, id string, p corpusPatch, create bool) (c CorpusRecord, created bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if create {
			def, _ := ParseProviderConfig(nil)
			raw, _ := json.Marshal(def.JSON())
			tag, err := tx.Exec(ctx, `
				INSERT INTO retrieval.corpora (tenant_id, corpus_id, name, provider_config)
				VALUES ($1, $2, $2, $3) ON CONFLICT DO NOTHING`, tenant, id, raw)
			if err != nil {
				return err
			}
			created = tag.RowsAffected() == 1
		}
		var cfg []byte
		if p.Config != nil {
			cfg, _ = json.Marshal(p.Config.JSON())
		}
		c, err = scanCorpus(tx.QueryRow(ctx, `
			UPDATE retrieval.corpora
			   SET name = COALESCE($3, name), provider_config = COALESCE($4, provider_config), updated_at = now()
			 WHERE tenant_id = $1 AND corpus_id = $2
			RETURNING `+corpusColumns, tenant, id, p.Name, cfg))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, errCorpusNotFound
	}
	if err != nil {
		return c, false, fmt.Errorf("update corpus %s: %w", id, err)
	}
	return c, created, nil
}
