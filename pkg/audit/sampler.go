package audit

import (
	"sync"
	"time"
)

// Sampler lets the first event per key through per interval and counts the rest, so a
// flood (failed logins, rate-limited requests) cannot flood the audit log while its size
// stays visible. Memory is bounded by maxKeys. Safe for concurrent use.
type Sampler struct {
	interval time.Duration
	maxKeys  int

	mu   sync.Mutex
	seen map[string]*window
}

type window struct {
	until      time.Time
	suppressed int
}

// overflowKey shares one window among keys that arrive while the sampler is full.
const overflowKey = "\x00overflow"

// NewSampler returns a sampler; interval 0 lets every event through.
func NewSampler(interval time.Duration, maxKeys int) *Sampler {
	return &Sampler{interval: interval, maxKeys: maxKeys, seen: map[string]*window{}}
}

// Allow reports whether the event keyed by key should be recorded now, and how many
// were suppressed for that key since the last one allowed.
func (s *Sampler) Allow(key string, now time.Time) (ok bool, suppressed int) {
	if s.interval <= 0 {
		return true, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w, found := s.seen[key]
	if !found && len(s.seen) >= s.maxKeys {
		s.evictExpired(now)
		if len(s.seen) >= s.maxKeys {
			key = overflowKey
			w, found = s.seen[key]
		}
	}
	if !found {
		s.seen[key] = &window{until: now.Add(s.interval)}
		return true, 0
	}
	if now.Before(w.until) {
		w.suppressed++
		return false, 0
	}
	suppressed = w.suppressed
	w.until, w.suppressed = now.Add(s.interval), 0
	return true, suppressed
}

func (s *Sampler) evictExpired(now time.Time) {
	for k, w := range s.seen {
		if !now.Before(w.until) && w.suppressed == 0 {
			delete(s.seen, k)
		}
	}
}
