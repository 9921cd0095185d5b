package run

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/dataowner"
)

// The run service's side of the data-owner contract (nexusrag.governance.v1 data.proto).
//
// Categories and what anonymizing does to each:
//   - sessions (id: session id): every row of the session. Delete removes the session, its
//     messages, checkpoints and audio (rows and files); anonymize anonymizes its messages and
//     checkpoints as below and deletes its audio.
//   - messages (id: seq): anonymize blanks content and empties citations; role, status,
//     run_id, session_id, seq and created_at stay.
//   - checkpoints (id: "<run_id>:<step>"): anonymize empties state (which holds the question,
//     the retrieved passages and the answer); node, run_id, step and created_at stay.
//   - audio (id: audio id): a spoken answer is content, so anonymize deletes it as delete does.
//
// Session ids stay when anonymizing: they are the rows' keys, chosen by the client. A
// session id that itself identifies a person calls for delete.
const (
	catSessions    = "sessions"
	catMessages    = "messages"
	catCheckpoints = "checkpoints"
	catAudio       = "audio"
)

var dataCategories = []string{catSessions, catMessages, catCheckpoints, catAudio}

// Each selection takes $1 tenant, $2 cutoff (NULL: any age), $3 session (NULL: the whole
// tenant), $4 after id (” from the start), $5 limit, $6 whether to return rows; it returns
// id, session id, row JSON (” unless asked).
var selectData = map[string]string{
	catSessions: `SELECT s.session_id, s.session_id, CASE WHEN $6 THEN to_jsonb(s.*)::text ELSE '' END FROM run.sessions s
		WHERE s.tenant_id = $1 AND ($2::timestamptz IS NULL OR s.updated_at < $2) AND ($3::text IS NULL OR s.session_id = $3)
		AND s.session_id > $4 ORDER BY s.session_id LIMIT $5`,
	catMessages: `SELECT m.seq::text, m.session_id, CASE WHEN $6 THEN to_jsonb(m.*)::text ELSE '' END FROM run.messages m
		WHERE m.tenant_id = $1 AND ($2::timestamptz IS NULL OR m.created_at < $2) AND ($3::text IS NULL OR m.session_id = $3)
		AND m.seq > coalesce(nullif($4, '')::bigint, 0) ORDER BY m.seq LIMIT $5`,
	catCheckpoints: `SELECT c.run_id::text || ':' || c.step, c.session_id, CASE WHEN $6 THEN to_jsonb(c.*)::text ELSE '' END FROM run.checkpoints c
		WHERE c.tenant_id = $1 AND ($2::timestamptz IS NULL OR c.created_at < $2) AND ($3::text IS NULL OR c.session_id = $3)
		AND (c.run_id, c.step) > (coalesce(nullif(split_part($4, ':', 1), '')::uuid, '00000000-0000-0000-0000-000000000000'),
			coalesce(nullif(split_part($4, ':', 2), '')::int, -1))
		ORDER BY c.run_id, c.step LIMIT $5`,
	catAudio: `SELECT a.audio_id, coalesce(m.session_id, ''), CASE WHEN $6 THEN to_jsonb(a.*)::text ELSE '' END FROM run.audio a
		LEFT JOIN LATERAL (SELECT session_id FROM run.messages m WHERE m.tenant_id = a.tenant_id AND m.run_id = a.run_id LIMIT 1) m ON true
		WHERE a.tenant_id = $1 AND ($2::timestamptz IS NULL OR a.created_at < $2) AND ($3::text IS NULL OR m.session_id = $3)
		AND a.audio_id > $4 ORDER BY a.audio_id LIMIT $5`,
}

// SelectSessionData lists the rows of a category a retention run or a DSAR touches.
func (s *Server) SelectSessionData(ctx context.Context, req *runv1.SelectSessionDataRequest) (*runv1.SelectSessionDataResponse, error) {
	q, err := dataowner.CheckQuery(req.GetQuery(), dataCategories)
	if err != nil {
		return nil, err
	}
	if err := checkDataIDs(q.Category, []string{q.AfterID}); err != nil {
		return nil, err
	}
	var session *string
	switch q.SubjectType {
	case dataowner.SubjectSession:
		session = &q.SubjectID
	case dataowner.SubjectUserKey, dataowner.SubjectDocument: // sessions are not attributed to keys or documents
		return &runv1.SelectSessionDataResponse{Selection: &governancev1.DataSelection{}}, nil
	}
	rows, err := s.agent.store.pool.Query(ctx, selectData[q.Category], q.Tenant, q.OlderThan, session, q.AfterID, q.Limit, q.WithRows)
	if err != nil {
		return nil, fmt.Errorf("select %s: %w", q.Category, err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*governancev1.DataItem, error) {
		var it governancev1.DataItem
		var sess string
		if err := r.Scan(&it.Id, &sess, &it.RowJson); err != nil {
			return nil, err
		}
		if sess != "" {
			it.Scopes = dataowner.Scope(dataowner.SubjectSession, sess)
		}
		return &it, nil
	})
	if err != nil {
		return nil, fmt.Errorf("select %s: %w", q.Category, err)
	}
	return &runv1.SelectSessionDataResponse{Selection: dataowner.Selection(items, q.Limit)}, nil
}

// checkDataIDs refuses ids that are not of the category's form ("" is allowed: no id).
func checkDataIDs(category string, ids []string) error {
	for _, id := range ids {
		if id == "" {
			continue
		}
		var err error
		switch category {
		case catMessages:
			_, err = strconv.ParseInt(id, 10, 64)
		case catCheckpoints:
			_, _, err = checkpointID(id)
		}
		if err != nil {
			return apierr.InvalidArgument("ids", fmt.Sprintf("%q is not a %s id", id, category))
		}
	}
	return nil
}

func checkpointID(id string) (uuid.UUID, int32, error) {
	r, step, ok := strings.Cut(id, ":")
	if !ok {
		return uuid.UUID{}, 0, fmt.Errorf("no step")
	}
	u, err := uuid.Parse(r)
	if err != nil {
		return u, 0, err
	}
	n, err := strconv.ParseInt(step, 10, 32)
	return u, int32(n), err
}

// PurgeSessionData deletes or anonymizes rows by id; rows already gone or anonymized are
// not counted.
func (s *Server) PurgeSessionData(ctx context.Context, req *runv1.PurgeSessionDataRequest) (*runv1.PurgeSessionDataResponse, error) {
	p := req.GetPurge()
	if err := dataowner.CheckPurge(p, dataCategories); err != nil {
		return nil, err
	}
	if err := checkDataIDs(p.GetCategory(), p.GetIds()); err != nil {
		return nil, err
	}
	anonymize := p.GetMode() == governancev1.PurgeMode_PURGE_MODE_ANONYMIZE
	tenant, ids := p.GetTenantId(), p.GetIds()
	var n int64
	var err error
	switch p.GetCategory() {
	case catSessions:
		n, err = s.purgeSessions(ctx, tenant, ids, anonymize)
	case catMessages:
		seqs := make([]int64, len(ids))
		for i, id := range ids {
			seqs[i], _ = strconv.ParseInt(id, 10, 64)
		}
		sql := `DELETE FROM run.messages WHERE tenant_id = $1 AND seq = ANY($2)`
		if anonymize {
			sql = `UPDATE run.messages SET content = '', citations = '[]' WHERE tenant_id = $1 AND seq = ANY($2) AND (content <> '' OR citations <> '[]')`
		}
		n, err = s.exec(ctx, sql, tenant, seqs)
	case catCheckpoints:
		runs, steps := make([]uuid.UUID, len(ids)), make([]int32, len(ids))
		for i, id := range ids {
			runs[i], steps[i], _ = checkpointID(id)
		}
		sql := `DELETE FROM run.checkpoints c USING unnest($2::uuid[], $3::int[]) AS k(r, s) WHERE c.tenant_id = $1 AND c.run_id = k.r AND c.step = k.s`
		if anonymize {
			sql = `UPDATE run.checkpoints c SET state = '{}' FROM unnest($2::uuid[], $3::int[]) AS k(r, s)
				WHERE c.tenant_id = $1 AND c.run_id = k.r AND c.step = k.s AND c.state <> '{}'`
		}
		n, err = s.exec(ctx, sql, tenant, runs, steps)
	case catAudio:
		n, err = s.deleteAudio(ctx, s.agent.store.pool, tenant, ids)
	}
	if err != nil {
		return nil, fmt.Errorf("purge %s: %w", p.GetCategory(), err)
	}
	return &runv1.PurgeSessionDataResponse{Result: &governancev1.DataPurgeResult{Affected: n}}, nil
}

func (s *Server) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := s.agent.store.pool.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

type dbExec interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// deleteAudio removes the files, then the rows: a crash in between leaves rows whose file
// is gone (answered as not found), which the next purge removes.
func (s *Server) deleteAudio(ctx context.Context, db dbExec, tenant string, ids []string) (int64, error) {
	for _, id := range ids {
		if err := s.agent.audio.Remove(id); err != nil {
			return 0, err
		}
	}
	tag, err := db.Exec(ctx, `DELETE FROM run.audio WHERE tenant_id = $1 AND audio_id = ANY($2)`, tenant, ids)
	return tag.RowsAffected(), err
}

// purgeSessions deletes or anonymizes whole sessions in one transaction; it counts the
// sessions it changed.
func (s *Server) purgeSessions(ctx context.Context, tenant string, sessions []string, anonymize bool) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.agent.store.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT a.audio_id FROM run.audio a WHERE a.tenant_id = $1
			AND a.run_id IN (SELECT run_id FROM run.messages WHERE tenant_id = $1 AND session_id = ANY($2))`, tenant, sessions)
		if err != nil {
			return err
		}
		audio, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if _, err := s.deleteAudio(ctx, tx, tenant, audio); err != nil {
			return err
		}
		if anonymize {
			return tx.QueryRow(ctx, `WITH m AS (
					UPDATE run.messages SET content = '', citations = '[]'
					WHERE tenant_id = $1 AND session_id = ANY($2) AND (content <> '' OR citations <> '[]') RETURNING session_id),
				c AS (UPDATE run.checkpoints SET state = '{}' WHERE tenant_id = $1 AND session_id = ANY($2) AND state <> '{}' RETURNING session_id)
				SELECT count(DISTINCT session_id) FROM (SELECT session_id FROM m UNION ALL SELECT session_id FROM c) x`, tenant, sessions).Scan(&n)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM run.checkpoints WHERE tenant_id = $1 AND session_id = ANY($2)`, tenant, sessions); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM run.sessions WHERE tenant_id = $1 AND session_id = ANY($2)`, tenant, sessions)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}
