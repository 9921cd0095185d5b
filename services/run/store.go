package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexusrag/nexusrag/services/run/generators"
)

// Store holds the run schema's tables.
type Store struct{ pool *pgxpool.Pool }

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// How a turn (a question and its answer) ended, when it did not end answered.
const (
	TurnComplete  = "complete"
	TurnCancelled = "cancelled" // the client went away mid-run
	TurnFailed    = "failed"    // a provider failed, or the run did
)

// History returns the latest answered turns of a session whose contents fit in budget
// characters, oldest first. Cancelled and failed turns are left out: the model is not
// shown questions that got no answer, nor answers cut short.
func (s *Store) History(ctx context.Context, tenant, session string, budget int) ([]generators.Turn, error) {
	rows, err := s.pool.Query(ctx, `SELECT role, content FROM run.messages
		WHERE tenant_id = $1 AND session_id = $2 AND status = 'complete' ORDER BY seq DESC LIMIT 200`, tenant, session)
	if err != nil {
		return nil, fmt.Errorf("load session %s: %w", session, err)
	}
	turns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[generators.Turn])
	if err != nil {
		return nil, fmt.Errorf("load session %s: %w", session, err)
	}
	used, keep := 0, 0
	for _, t := range turns {
		if used+len([]rune(t.Content)) > budget {
			break
		}
		used += len([]rune(t.Content))
		keep++
	}
	turns = turns[:keep]
	for i, j := 0, len(turns)-1; i < j; i, j = i+1, j-1 {
		turns[i], turns[j] = turns[j], turns[i]
	}
	return turns, nil
}

// AppendMessage adds a message to a session, creating the session on its first one.
func (s *Store) AppendMessage(ctx context.Context, tenant, session string, runID uuid.UUID, t generators.Turn, citations []Citation) error {
	if citations == nil {
		citations = []Citation{}
	}
	cites, err := json.Marshal(citations)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO run.sessions (tenant_id, session_id) VALUES ($1, $2)
			ON CONFLICT (tenant_id, session_id) DO UPDATE SET updated_at = now()`, tenant, session); err != nil {
			return fmt.Errorf("save session %s: %w", session, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO run.messages (tenant_id, session_id, run_id, role, content, citations)
			VALUES ($1, $2, $3, $4, $5, $6)`, tenant, session, runID, t.Role, t.Content, cites); err != nil {
			return fmt.Errorf("save %s message of session %s: %w", t.Role, session, err)
		}
		return nil
	})
}

// EndTurn closes the turn of a run that got no saved answer: its question is marked
// status (cancelled or failed) and the part of the answer already streamed, possibly
// none, is kept as an assistant message with the same status. A run whose question was
// never saved leaves nothing.
func (s *Store) EndTurn(ctx context.Context, tenant, session string, runID uuid.UUID, status, partial string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE run.messages SET status = $4
			WHERE tenant_id = $1 AND session_id = $2 AND run_id = $3 AND role = 'user'`, tenant, session, runID, status)
		if err != nil {
			return fmt.Errorf("end turn of run %s: %w", runID, err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO run.messages (tenant_id, session_id, run_id, role, content, status)
			VALUES ($1, $2, $3, 'assistant', $4, $5)`, tenant, session, runID, partial, status); err != nil {
			return fmt.Errorf("end turn of run %s: %w", runID, err)
		}
		return nil
	})
}

// SaveCheckpoint stores the state of a run after one of its nodes.
func (s *Store) SaveCheckpoint(ctx context.Context, runID uuid.UUID, step int, tenant, session, node string, state any) error {
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO run.checkpoints (run_id, step, tenant_id, session_id, node, state) VALUES ($1, $2, $3, $4, $5, $6)`,
		runID, step, tenant, session, node, b)
	return err
}

// SaveAudio records a spoken answer's id.
func (s *Store) SaveAudio(ctx context.Context, id, tenant string, runID uuid.UUID, size int) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO run.audio (audio_id, tenant_id, run_id, bytes) VALUES ($1, $2, $3, $4)`, id, tenant, runID, size)
	return err
}

var errAudioNotFound = errors.New("audio not found")

// AudioExists reports whether id names a spoken answer.
func (s *Store) AudioExists(ctx context.Context, id string) error {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM run.audio WHERE audio_id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return errAudioNotFound
	}
	return err
}
