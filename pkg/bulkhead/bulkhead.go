// Package bulkhead bounds the work a service takes on at once. A full bulkhead refuses at
// once with SERVICE_BUSY (and a retry hint) instead of queueing without bound.
package bulkhead

import (
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// CodeServiceBusy is answered when a bulkhead is full; the gateway answers 503 with Retry-After.
const CodeServiceBusy = "SERVICE_BUSY"

// Bulkhead admits at most its capacity of concurrent holders. The zero value is unusable;
// a nil *Bulkhead admits everything.
type Bulkhead struct {
	name     string
	slots    chan struct{}
	rejected atomic.Int64
}

// New returns a bulkhead of capacity for the work named name (for the error message).
func New(name string, capacity int) *Bulkhead {
	return &Bulkhead{name: name, slots: make(chan struct{}, capacity)}
}

// Acquire takes a slot without waiting; release gives it back. When every slot is taken it
// returns SERVICE_BUSY.
func (b *Bulkhead) Acquire() (release func(), err error) {
	if b == nil {
		return func() {}, nil
	}
	select {
	case b.slots <- struct{}{}:
		return func() { <-b.slots }, nil
	default:
		b.rejected.Add(1)
		return nil, apierr.New(codes.Unavailable, CodeServiceBusy,
			fmt.Sprintf("%s is at capacity (%d at once); retry shortly", b.name, cap(b.slots)), "retry_after_s", "1")
	}
}

// InUse is the number of slots taken.
func (b *Bulkhead) InUse() int { return len(b.slots) }

// Capacity is the number of slots.
func (b *Bulkhead) Capacity() int { return cap(b.slots) }

// Rejected counts the refusals since the bulkhead was made.
func (b *Bulkhead) Rejected() int64 { return b.rejected.Load() }
