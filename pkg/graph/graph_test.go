package graph_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/graph"
)

type state struct {
	n     int
	trail []string
}

func step(name string) graph.Node[state] {
	return func(_ context.Context, s *state) error {
		s.n++
		s.trail = append(s.trail, name)
		return nil
	}
}

type checkpoints []string

func (c *checkpoints) Checkpoint(_ context.Context, step int, node string, s *state) error {
	*c = append(*c, node)
	if step != len(*c) || s.n != step {
		return errors.New("checkpoint out of order")
	}
	return nil
}

func TestRunFollowsPlainAndConditionalEdges(t *testing.T) {
	g := graph.New[state]().
		AddNode("a", step("a")).AddNode("b", step("b")).AddNode("c", step("c")).
		SetEntry("a").
		AddEdge("a", "b").
		AddConditionalEdge("b", func(s *state) string {
			if s.n < 4 {
				return "a"
			}
			return "c"
		}, "a", "c").
		AddEdge("c", graph.End)
	r, err := g.Compile()
	require.NoError(t, err)
	var s state
	var cp checkpoints
	require.NoError(t, r.Run(context.Background(), &s, &cp))
	require.Equal(t, []string{"a", "b", "a", "b", "c"}, s.trail)
	require.Equal(t, []string(cp), s.trail, "a checkpoint after every node")
}

func TestCompileRejectsBrokenGraphs(t *testing.T) {
	tests := []struct {
		name  string
		build func() *graph.Graph[state]
		want  string
	}{
		{"no entry", func() *graph.Graph[state] { return graph.New[state]().AddNode("a", step("a")).AddEdge("a", graph.End) }, "entry"},
		{"no exit", func() *graph.Graph[state] { return graph.New[state]().AddNode("a", step("a")).SetEntry("a") }, "no exit"},
		{"unknown target", func() *graph.Graph[state] {
			return graph.New[state]().AddNode("a", step("a")).SetEntry("a").AddEdge("a", "b")
		}, "unknown node"},
		{"unreachable", func() *graph.Graph[state] {
			return graph.New[state]().AddNode("a", step("a")).AddNode("b", step("b")).SetEntry("a").AddEdge("a", graph.End).AddEdge("b", graph.End)
		}, "cannot be reached"},
		{"duplicate", func() *graph.Graph[state] {
			return graph.New[state]().AddNode("a", step("a")).AddNode("a", step("a")).SetEntry("a").AddEdge("a", graph.End)
		}, "added twice"},
		{"two exits", func() *graph.Graph[state] {
			return graph.New[state]().AddNode("a", step("a")).SetEntry("a").AddEdge("a", graph.End).AddEdge("a", graph.End)
		}, "two exits"},
		{"reserved name", func() *graph.Graph[state] { return graph.New[state]().AddNode(graph.End, step("x")) }, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.build().Compile()
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestRunStops(t *testing.T) {
	boom := errors.New("boom")
	r, err := graph.New[state]().
		AddNode("a", step("a")).
		AddNode("fail", func(context.Context, *state) error { return boom }).
		SetEntry("a").AddEdge("a", "fail").AddEdge("fail", graph.End).Compile()
	require.NoError(t, err)
	var s state
	err = r.Run(context.Background(), &s, nil)
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "node fail")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, r.Run(ctx, &state{}, nil), context.Canceled)

	loop, err := graph.New[state]().AddNode("a", step("a")).SetEntry("a").
		AddConditionalEdge("a", func(*state) string { return "a" }, "a", graph.End).Compile()
	require.NoError(t, err)
	require.ErrorContains(t, loop.Run(context.Background(), &state{}, nil), "more than")

	bad, err := graph.New[state]().AddNode("a", step("a")).SetEntry("a").
		AddConditionalEdge("a", func(*state) string { return "elsewhere" }, graph.End).Compile()
	require.NoError(t, err)
	require.ErrorContains(t, bad.Run(context.Background(), &state{}, nil), "not one of")
}
