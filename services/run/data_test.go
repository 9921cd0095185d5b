package run_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/services/run"
	"github.com/nexusrag/nexusrag/services/run/generators"
	"github.com/nexusrag/nexusrag/services/run/speech"
)

func selectRun(t *testing.T, c runv1.RunServiceClient, q *governancev1.DataQuery) *governancev1.DataSelection {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 1000
	}
	q.TenantId = "t1"
	res, err := c.SelectSessionData(context.Background(), &runv1.SelectSessionDataRequest{Query: q})
	require.NoError(t, err)
	return res.GetSelection()
}

func itemIDs(sel *governancev1.DataSelection) []string {
	var out []string
	for _, it := range sel.GetItems() {
		out = append(out, it.GetId())
	}
	return out
}

func purgeRun(t *testing.T, c runv1.RunServiceClient, category string, ids []string, mode governancev1.PurgeMode) int64 {
	t.Helper()
	res, err := c.PurgeSessionData(context.Background(), &runv1.PurgeSessionDataRequest{Purge: &governancev1.DataPurge{TenantId: "t1",
		Category: category, Ids: ids, Mode: mode}})
	require.NoError(t, err)
	return res.GetResult().GetAffected()
}

func TestSessionDataSelectAndPurge(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	c := h.client(t, run.Config{AudioDir: dir}, generators.Extractive{}, speech.Fake{})
	for _, turn := range []struct {
		session string
		audio   bool
	}{{"s1", true}, {"s1", true}, {"s2", false}} {
		_, err := collect(t, c, &runv1.RunRequest{SessionId: turn.session, CorpusId: "c1", Message: "What are the release gates?", Audio: turn.audio})
		require.NoError(t, err)
	}
	const del, anon = governancev1.PurgeMode_PURGE_MODE_DELETE, governancev1.PurgeMode_PURGE_MODE_ANONYMIZE
	s1 := func(category string, rows bool) *governancev1.DataSelection {
		return selectRun(t, c, &governancev1.DataQuery{Category: category, SubjectType: "session", SubjectId: "s1", WithRows: rows})
	}

	msgs := s1("messages", true)
	require.Len(t, msgs.GetItems(), 4, "two turns: question and answer each")
	for _, it := range msgs.GetItems() {
		require.Equal(t, "session", it.GetScopes()[0].GetScopeType())
		require.Equal(t, "s1", it.GetScopes()[0].GetScopeId())
		require.Contains(t, it.GetRowJson(), `"session_id": "s1"`)
	}
	require.NotEmpty(t, s1("checkpoints", false).GetItems())
	audio := s1("audio", false)
	require.Len(t, audio.GetItems(), 2)
	for _, id := range itemIDs(audio) {
		require.FileExists(t, filepath.Join(dir, id+".mp3"))
	}
	require.Equal(t, []string{"s1"}, itemIDs(s1("sessions", false)))
	require.Empty(t, selectRun(t, c, &governancev1.DataQuery{Category: "messages", SubjectType: "user_key", SubjectId: "k"}).GetItems(),
		"sessions are not attributed to keys")

	// Retention's view: by age, the whole tenant, paged.
	future := timestamppb.New(time.Now().Add(time.Hour))
	require.Empty(t, selectRun(t, c, &governancev1.DataQuery{Category: "messages", OlderThan: timestamppb.New(time.Now().Add(-time.Hour))}).GetItems())
	page := selectRun(t, c, &governancev1.DataQuery{Category: "messages", OlderThan: future, Limit: 4})
	require.Len(t, page.GetItems(), 4)
	rest := selectRun(t, c, &governancev1.DataQuery{Category: "messages", OlderThan: future, AfterId: page.GetNextAfterId()})
	require.Len(t, rest.GetItems(), 2)
	require.Empty(t, rest.GetNextAfterId())
	cps := selectRun(t, c, &governancev1.DataQuery{Category: "checkpoints", OlderThan: future, Limit: 1})
	require.Len(t, selectRun(t, c, &governancev1.DataQuery{Category: "checkpoints", OlderThan: future, AfterId: cps.GetNextAfterId()}).GetItems(),
		len(selectRun(t, c, &governancev1.DataQuery{Category: "checkpoints", OlderThan: future}).GetItems())-1)

	// Anonymizing s2's messages blanks their content once.
	s2 := itemIDs(selectRun(t, c, &governancev1.DataQuery{Category: "messages", SubjectType: "session", SubjectId: "s2"}))
	require.EqualValues(t, 2, purgeRun(t, c, "messages", s2, anon))
	require.Zero(t, purgeRun(t, c, "messages", s2, anon), "already anonymized")
	var blank int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM run.messages WHERE session_id = 's2' AND content = '' AND citations = '[]'`).Scan(&blank))
	require.Equal(t, 2, blank)
	cp2 := itemIDs(selectRun(t, c, &governancev1.DataQuery{Category: "checkpoints", SubjectType: "session", SubjectId: "s2"}))
	require.EqualValues(t, len(cp2), purgeRun(t, c, "checkpoints", cp2, anon))

	// Deleting session s1 takes its messages, checkpoints and audio (files too), once.
	require.EqualValues(t, 1, purgeRun(t, c, "sessions", []string{"s1"}, del))
	require.Zero(t, purgeRun(t, c, "sessions", []string{"s1"}, del))
	for _, cat := range []string{"messages", "checkpoints", "audio", "sessions"} {
		require.Empty(t, s1(cat, false).GetItems(), cat)
	}
	for _, id := range itemIDs(audio) {
		_, err := os.Stat(filepath.Join(dir, id+".mp3"))
		require.True(t, os.IsNotExist(err))
	}
	require.Len(t, selectRun(t, c, &governancev1.DataQuery{Category: "messages", SubjectType: "tenant", SubjectId: "t1"}).GetItems(), 2, "s2 stays")

	for name, req := range map[string]*runv1.PurgeSessionDataRequest{
		"category": {Purge: &governancev1.DataPurge{TenantId: "t1", Category: "users", Mode: del}},
		"mode":     {Purge: &governancev1.DataPurge{TenantId: "t1", Category: "messages"}},
		"ids":      {Purge: &governancev1.DataPurge{TenantId: "t1", Category: "messages", Ids: []string{"x"}, Mode: del}},
		"tenant":   {Purge: &governancev1.DataPurge{Category: "messages", Mode: del}},
	} {
		_, err := c.PurgeSessionData(context.Background(), req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), name)
	}
	_, err := c.SelectSessionData(context.Background(), &runv1.SelectSessionDataRequest{Query: &governancev1.DataQuery{TenantId: "t1", Category: "messages", Limit: 1}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "neither an age nor a subject")
}
