// Package graph is a small state-machine engine in the spirit of LangGraph: a typed state,
// named nodes that read and change it, plain and conditional edges between them, and a
// checkpoint after every node. A graph is declared once, checked by Compile, and run many
// times; adding a node is one AddNode plus the edges that reach and leave it.
package graph

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// End is the pseudo-node a finished run moves to.
const End = "__end__"

// Node does one step of work on the state.
type Node[S any] func(ctx context.Context, s *S) error

// Route picks the next node from the state; it must return one of the targets declared
// with AddConditionalEdge.
type Route[S any] func(s *S) string

// Checkpointer persists the state after each node. step counts from 1.
type Checkpointer[S any] interface {
	Checkpoint(ctx context.Context, step int, node string, s *S) error
}

// Graph is a state machine under construction.
type Graph[S any] struct {
	nodes   map[string]Node[S]
	order   []string
	edges   map[string]string
	routes  map[string]Route[S]
	targets map[string][]string
	entry   string
	errs    []error
}

// New returns an empty graph.
func New[S any]() *Graph[S] {
	return &Graph[S]{nodes: map[string]Node[S]{}, edges: map[string]string{}, routes: map[string]Route[S]{}, targets: map[string][]string{}}
}

// AddNode adds a node; names are unique and End is reserved.
func (g *Graph[S]) AddNode(name string, n Node[S]) *Graph[S] {
	switch {
	case name == "" || name == End:
		g.errs = append(g.errs, fmt.Errorf("node name %q is reserved", name))
	case g.nodes[name] != nil:
		g.errs = append(g.errs, fmt.Errorf("node %q added twice", name))
	case n == nil:
		g.errs = append(g.errs, fmt.Errorf("node %q has no function", name))
	default:
		g.nodes[name] = n
		g.order = append(g.order, name)
	}
	return g
}

// SetEntry names the first node.
func (g *Graph[S]) SetEntry(name string) *Graph[S] { g.entry = name; return g }

// AddEdge makes to always follow from.
func (g *Graph[S]) AddEdge(from, to string) *Graph[S] {
	if g.hasExit(from) {
		g.errs = append(g.errs, fmt.Errorf("node %q has two exits", from))
		return g
	}
	g.edges[from] = to
	return g
}

// AddConditionalEdge lets route choose, after from, among targets.
func (g *Graph[S]) AddConditionalEdge(from string, route Route[S], targets ...string) *Graph[S] {
	if g.hasExit(from) {
		g.errs = append(g.errs, fmt.Errorf("node %q has two exits", from))
		return g
	}
	if route == nil || len(targets) == 0 {
		g.errs = append(g.errs, fmt.Errorf("conditional edge from %q needs a route and targets", from))
		return g
	}
	g.routes[from], g.targets[from] = route, targets
	return g
}

func (g *Graph[S]) hasExit(node string) bool {
	_, plain := g.edges[node]
	_, cond := g.routes[node]
	return plain || cond
}

// Compile checks the graph: an entry, every edge between known nodes, every node with an
// exit and reachable from the entry.
func (g *Graph[S]) Compile() (*Runnable[S], error) {
	errs := slices.Clone(g.errs)
	known := func(n string) bool { return n == End || g.nodes[n] != nil }
	if g.nodes[g.entry] == nil {
		errs = append(errs, fmt.Errorf("entry %q is not a node", g.entry))
	}
	for _, n := range g.order {
		if !g.hasExit(n) {
			errs = append(errs, fmt.Errorf("node %q has no exit (add an edge, to End if it is the last)", n))
		}
	}
	for from, to := range g.edges {
		if !known(from) || !known(to) {
			errs = append(errs, fmt.Errorf("edge %s -> %s names an unknown node", from, to))
		}
	}
	for from, ts := range g.targets {
		for _, to := range ts {
			if !known(from) || !known(to) {
				errs = append(errs, fmt.Errorf("edge %s -> %s names an unknown node", from, to))
			}
		}
	}
	if len(errs) == 0 {
		seen := map[string]bool{}
		var walk func(string)
		walk = func(n string) {
			if n == End || seen[n] {
				return
			}
			seen[n] = true
			if to, ok := g.edges[n]; ok {
				walk(to)
			}
			for _, to := range g.targets[n] {
				walk(to)
			}
		}
		walk(g.entry)
		for _, n := range g.order {
			if !seen[n] {
				errs = append(errs, fmt.Errorf("node %q cannot be reached from %q", n, g.entry))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	return &Runnable[S]{g: g, maxSteps: 10 * (len(g.order) + 1)}, nil
}

// Runnable is a compiled graph; it is safe for concurrent runs (each has its own state).
type Runnable[S any] struct {
	g        *Graph[S]
	maxSteps int
}

// Run executes the graph on s from the entry until End, checkpointing after every node
// when cp is not nil. It stops at the first node error (wrapped with the node's name), at
// a route that names an undeclared target, or when ctx ends.
func (r *Runnable[S]) Run(ctx context.Context, s *S, cp Checkpointer[S]) error {
	node := r.g.entry
	for step := 1; node != End; step++ {
		if step > r.maxSteps {
			return fmt.Errorf("graph: more than %d steps (a cycle without exit?)", r.maxSteps)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.g.nodes[node](ctx, s); err != nil {
			return fmt.Errorf("node %s: %w", node, err)
		}
		if cp != nil {
			if err := cp.Checkpoint(ctx, step, node, s); err != nil {
				return fmt.Errorf("checkpoint after %s: %w", node, err)
			}
		}
		next, err := r.next(node, s)
		if err != nil {
			return err
		}
		node = next
	}
	return nil
}

func (r *Runnable[S]) next(node string, s *S) (string, error) {
	if to, ok := r.g.edges[node]; ok {
		return to, nil
	}
	to := r.g.routes[node](s)
	if !slices.Contains(r.g.targets[node], to) {
		return "", fmt.Errorf("graph: route after %s chose %q, not one of %v", node, to, r.g.targets[node])
	}
	return to, nil
}
