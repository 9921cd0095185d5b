// Package audittest is an in-memory audit recorder for tests of the services that audit.
package audittest

import (
	"context"
	"sync"

	"github.com/nexusrag/nexusrag/pkg/audit"
)

// Recorder keeps every event recorded. Safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

// Record keeps e.
func (r *Recorder) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns a copy of what was recorded, in order.
func (r *Recorder) Events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.events...)
}

// Types returns the recorded events' types, in order.
func (r *Recorder) Types() []string {
	var out []string
	for _, e := range r.Events() {
		out = append(out, e.Type)
	}
	return out
}

// Count is the number of events of type typ.
func (r *Recorder) Count(typ string) int {
	n := 0
	for _, e := range r.Events() {
		if e.Type == typ {
			n++
		}
	}
	return n
}
