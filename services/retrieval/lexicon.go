package retrieval

import (
	"cmp"
	"container/heap"
	"context"
	"math"
	mathbits "math/bits"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// The lexical index of each local corpus lives in the memory of every retrieval replica
// that searches it (ADR 0007): Postgres keeps each chunk's terms and frequencies (the
// source of truth, written with the chunk), and a replica builds postings from them on a
// corpus's first query and keeps them current from the index log. A query scores every
// posting of its terms exactly, in memory, and reads Postgres once: the hits' rows and
// the corpus's generation in one statement, so it can tell whether its copy was current.

// corpusKey names one corpus.
type corpusKey struct{ tenant, corpus string }

// lexicon holds the in-memory lexical index of every local corpus this process searched.
type lexicon struct {
	mu    sync.Mutex
	byKey map[corpusKey]*corpusIndex
	// compactAfter: an index compacts once it holds more dead slots than this and than live ones.
	compactAfter int
}

func newLexicon() *lexicon { return &lexicon{byKey: map[corpusKey]*corpusIndex{}, compactAfter: 4096} }

// index is the corpus's index, empty and unloaded the first time (or after it sat idle).
func (l *lexicon) index(tenant, corpus string) *corpusIndex {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := corpusKey{tenant, corpus}
	ci := l.byKey[k]
	if ci == nil {
		ci = &corpusIndex{compactAfter: l.compactAfter}
		l.byKey[k] = ci
	}
	ci.used.Store(time.Now().UnixNano())
	return ci
}

// indexIdle is how long a corpus's index stays in memory without a search.
const indexIdle = 30 * time.Minute

// evictIdle forgets the indexes not searched since before idle ago (a search still using
// one finishes with it); it returns how many it forgot.
func (l *lexicon) evictIdle(now time.Time, idle time.Duration) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k, ci := range l.byKey {
		if now.Sub(time.Unix(0, ci.used.Load())) > idle {
			delete(l.byKey, k)
			n++
		}
	}
	return n
}

// indexVersion is the state of a corpus's chunks an index reflects: the corpus's
// incarnation and the generation of its last write.
type indexVersion struct{ epoch, generation int64 }

// corpusIndex is one corpus's postings. Slots number chunks in the order they were
// added; a removed chunk's slot stays, dead, until compaction renumbers.
type corpusIndex struct {
	refresh      sync.Mutex // one catch-up at a time
	compactAfter int
	used         atomic.Int64 // when it was last searched, Unix nanoseconds

	mu       sync.RWMutex
	loaded   bool
	version  indexVersion
	embedder string
	dim      int
	termIDs  map[string]uint32
	lists    []postingList // by term id
	slots    []chunkSlot
	lengths  []int32 // by slot; -1: dead
	byDoc    map[string][]uint32
	live     int
	dead     int
	total    int64 // terms in live chunks
	// loads, catchUps and compactions count how the index changed (tests read them).
	loads, catchUps, compactions int
}

// chunkSlot is one chunk: its ids and its distinct terms (nil once dead).
type chunkSlot struct {
	id, document string
	terms        []uint32
}

// postingList is one term's postings, in slot order, dead slots included; df counts the live.
type postingList struct {
	slots []uint32
	tfs   []uint32
	df    int
	// maxTF and minLen bound the term's score in any chunk: the highest frequency and the
	// shortest chunk among its postings (dead ones included until compaction).
	maxTF  uint32
	minLen int32
}

// indexedChunk is what the index needs of one chunk row.
type indexedChunk struct {
	id, document string
	length       int
	terms        []string
	freqs        []int32
}

// indexChanges bring an index to version: all of the corpus's chunks (full), or the
// current chunks of the documents written since the index's version.
type indexChanges struct {
	version   indexVersion
	embedder  string
	dim       int
	full      bool
	documents []string
	chunks    []indexedChunk
}

func (ci *corpusIndex) current() (indexVersion, bool) {
	ci.mu.RLock()
	defer ci.mu.RUnlock()
	return ci.version, ci.loaded
}

// catchUp brings the index to at least want (the zero version: to whatever is current),
// reading what changed from read; concurrent callers share one catch-up.
func (ci *corpusIndex) catchUp(ctx context.Context, want indexVersion, read func(ctx context.Context, have *indexVersion) (indexChanges, error)) error {
	ci.refresh.Lock()
	defer ci.refresh.Unlock()
	have, loaded := ci.current()
	if loaded && want != (indexVersion{}) && have.epoch == want.epoch && have.generation >= want.generation {
		return nil // another caller caught up meanwhile
	}
	var since *indexVersion
	if loaded {
		since = &have
	}
	ch, err := read(ctx, since)
	if err != nil {
		return err
	}
	ci.apply(ch)
	return nil
}

func (ci *corpusIndex) apply(ch indexChanges) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if ch.full {
		ci.loads++
		ci.termIDs, ci.lists, ci.slots, ci.lengths, ci.byDoc = map[string]uint32{}, nil, nil, nil, map[string][]uint32{}
		ci.live, ci.dead, ci.total = 0, 0, 0
	}
	if !ch.full && len(ch.documents) > 0 {
		ci.catchUps++
	}
	for _, d := range ch.documents {
		ci.removeDocument(d)
	}
	for _, c := range ch.chunks {
		ci.add(c)
	}
	ci.loaded, ci.version, ci.embedder, ci.dim = true, ch.version, ch.embedder, ch.dim
	if ci.dead > ci.compactAfter && ci.dead > ci.live {
		ci.compact()
	}
}

func (ci *corpusIndex) removeDocument(doc string) {
	for _, s := range ci.byDoc[doc] {
		for _, t := range ci.slots[s].terms {
			ci.lists[t].df--
		}
		ci.slots[s].terms = nil
		ci.total -= int64(ci.lengths[s])
		ci.lengths[s] = -1
		ci.live--
		ci.dead++
	}
	delete(ci.byDoc, doc)
}

func (ci *corpusIndex) add(c indexedChunk) {
	s := uint32(len(ci.slots))
	ids := make([]uint32, len(c.terms))
	for i, term := range c.terms {
		id, ok := ci.termIDs[term]
		if !ok {
			id = uint32(len(ci.lists))
			ci.termIDs[term] = id
			ci.lists = append(ci.lists, postingList{})
		}
		l := &ci.lists[id]
		tf := uint32(c.freqs[i])
		if len(l.slots) == 0 || int32(c.length) < l.minLen {
			l.minLen = int32(c.length)
		}
		l.slots, l.tfs, l.maxTF = append(l.slots, s), append(l.tfs, tf), max(l.maxTF, tf)
		l.df++
		ids[i] = id
	}
	ci.slots = append(ci.slots, chunkSlot{id: c.id, document: c.document, terms: ids})
	ci.lengths = append(ci.lengths, int32(c.length))
	ci.byDoc[c.document] = append(ci.byDoc[c.document], s)
	ci.live++
	ci.total += int64(c.length)
}

// compact drops dead slots and terms no live chunk has, renumbering both.
func (ci *corpusIndex) compact() {
	slotMap := make([]uint32, len(ci.slots))
	var slots []chunkSlot
	var lengths []int32
	for s, sl := range ci.slots {
		if ci.lengths[s] < 0 {
			continue
		}
		slotMap[s] = uint32(len(slots))
		slots, lengths = append(slots, sl), append(lengths, ci.lengths[s])
	}
	termMap := make([]uint32, len(ci.lists))
	var lists []postingList
	termIDs := make(map[string]uint32, len(ci.termIDs))
	for term, id := range ci.termIDs {
		old := ci.lists[id]
		if old.df == 0 {
			continue
		}
		l := postingList{slots: make([]uint32, 0, old.df), tfs: make([]uint32, 0, old.df), df: old.df, minLen: math.MaxInt32}
		for i, s := range old.slots {
			if length := ci.lengths[s]; length >= 0 {
				l.slots, l.tfs = append(l.slots, slotMap[s]), append(l.tfs, old.tfs[i])
				l.maxTF, l.minLen = max(l.maxTF, old.tfs[i]), min(l.minLen, length)
			}
		}
		termMap[id] = uint32(len(lists))
		termIDs[term] = uint32(len(lists))
		lists = append(lists, l)
	}
	for i := range slots {
		for j, t := range slots[i].terms {
			slots[i].terms[j] = termMap[t]
		}
	}
	byDoc := make(map[string][]uint32, len(ci.byDoc))
	for i, sl := range slots {
		byDoc[sl.document] = append(byDoc[sl.document], uint32(i))
	}
	ci.slots, ci.lengths, ci.lists, ci.termIDs, ci.byDoc, ci.dead = slots, lengths, lists, termIDs, byDoc, 0
	ci.compactions++
}

// stats are the corpus statistics BM25 needs for terms, at the index's version.
func (ci *corpusIndex) stats(terms []string) (corpusStats, indexVersion) {
	ci.mu.RLock()
	defer ci.mu.RUnlock()
	return ci.statsLocked(terms), ci.version
}

func (ci *corpusIndex) statsLocked(terms []string) corpusStats {
	st := corpusStats{chunks: int64(ci.live), embedder: ci.embedder, dim: ci.dim, df: make(map[string]int64, len(terms))}
	if ci.live > 0 {
		st.avgLen = float64(ci.total) / float64(ci.live)
	}
	for _, t := range terms {
		if id, ok := ci.termIDs[t]; ok && ci.lists[id].df > 0 {
			st.df[t] = int64(ci.lists[id].df)
		}
	}
	return st
}

// rank is the lexical arm: the best depth chunks by BM25 for the weighted query terms
// (lexicalTerms's), at the version it searched.
func (ci *corpusIndex) rank(weights map[string]float64, k1, b float64, depth int) ([]lexHit, indexVersion) {
	ci.mu.RLock()
	defer ci.mu.RUnlock()
	terms := make([]string, 0, len(weights))
	for t := range weights {
		terms = append(terms, t)
	}
	st := ci.statsLocked(terms)
	lexTerms, lexW := lexicalTerms(weights, st)
	return ci.bm25(lexTerms, lexW, st.avgLen, k1, b, depth), ci.version
}

// lexHit is one chunk the lexical arm ranks.
type lexHit struct {
	chunkID string
	score   float64
}

// bm25 scores the live chunks holding any of terms by Okapi BM25 (the corpus's average
// length; each term's weight its query weight times its idf) and returns the best depth,
// best first, ties by chunk id. It is exact, and reads little of the lists of terms that
// cannot lift a chunk into the best depth alone: MaxScore (Turtle and Flood, 1995) over
// the slot-ordered postings, scored a window of slots at a time (as Lucene's disjunctions
// are) so that the lists that can add chunks are summed term at a time into a small
// array, and the rest are only looked up for chunks that can still make it. The caller
// holds mu.
func (ci *corpusIndex) bm25(terms []string, weights []float64, avgLen, k1, b float64, depth int) []lexHit {
	norm0, normL := k1*(1-b), k1*b/max(avgLen, 1)
	cs := make([]cursor, 0, len(terms))
	for i, term := range terms {
		id, ok := ci.termIDs[term]
		if !ok || ci.lists[id].df == 0 {
			continue
		}
		l := &ci.lists[id]
		tf := float64(l.maxTF)
		cs = append(cs, cursor{slots: l.slots, tfs: l.tfs, w: weights[i], ub: weights[i] * tf * (k1 + 1) / (tf + norm0 + normL*float64(l.minLen))})
	}
	// Lists by upper bound, lowest first; bound[j] bounds what lists 0..j add together.
	slices.SortFunc(cs, func(a, b cursor) int { return cmp.Compare(a.ub, b.ub) })
	bound := make([]float64, len(cs))
	var sum float64
	for j := range cs {
		sum += cs[j].ub
		bound[j] = sum
	}
	w := windows.Get().(*window)
	defer windows.Put(w)
	best := &lexHeap{}
	theta := math.Inf(-1) // the worst kept score once depth are kept: what a chunk must beat
	essential := 0        // lists before it cannot bring a chunk in alone: only looked up
	for {
		// The next window starts at the first slot an essential list has left.
		next := uint32(math.MaxUint32)
		for j := essential; j < len(cs); j++ {
			if c := &cs[j]; c.pos < len(c.slots) {
				next = min(next, c.slots[c.pos])
			}
		}
		if next == math.MaxUint32 {
			break
		}
		base := next &^ (windowSize - 1)
		end := base + windowSize
		for j := essential; j < len(cs); j++ {
			c := &cs[j]
			for ; c.pos < len(c.slots) && c.slots[c.pos] < end; c.pos++ {
				s := c.slots[c.pos]
				if length := ci.lengths[s]; length >= 0 {
					off := s - base
					w.scores[off] += c.score(k1, norm0, normL, length)
					w.seen[off>>6] |= 1 << (off & 63)
				}
			}
		}
		looked := essential // the lists summed in this window are not looked up again
		for word, bits := range w.seen {
			for bits != 0 {
				off := uint32(word<<6 + mathbits.TrailingZeros64(bits))
				bits &= bits - 1
				s := base + off
				score := w.scores[off]
				w.scores[off] = 0
				kept := true
				for j := looked - 1; j >= 0; j-- {
					if score+bound[j] < theta {
						kept = false
						break
					}
					if c := &cs[j]; c.seek(s) {
						score += c.score(k1, norm0, normL, ci.lengths[s])
					}
				}
				if !kept {
					continue
				}
				h := lexHit{chunkID: ci.slots[s].id, score: score}
				switch {
				case best.Len() < depth:
					heap.Push(best, h)
				case best.better(h, best.hits[0]):
					best.hits[0] = h
					heap.Fix(best, 0)
				default:
					continue
				}
				if best.Len() == depth {
					theta = best.hits[0].score
					for essential < len(cs) && bound[essential] < theta {
						essential++
					}
				}
			}
			w.seen[word] = 0
		}
	}
	out := make([]lexHit, best.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(best).(lexHit)
	}
	return out
}

// windowSize slots are scored together; a power of two.
const windowSize = 2048

// window is the per-query scratch of bm25: a window's partial scores and which are set.
type window struct {
	scores [windowSize]float64
	seen   [windowSize / 64]uint64
}

var windows = sync.Pool{New: func() any { return new(window) }}

// cursor walks one term's postings.
type cursor struct {
	slots []uint32
	tfs   []uint32
	pos   int
	w, ub float64 // the term's weight, and the most it adds to a chunk's score
}

// score is the term's BM25 part in the chunk at pos, of length.
func (c *cursor) score(k1, norm0, normL float64, length int32) float64 {
	tf := float64(c.tfs[c.pos])
	return c.w * tf * (k1 + 1) / (tf + norm0 + normL*float64(length))
}

// seek moves to the first posting at or after slot (galloping, then binary search) and
// reports whether it is slot's.
func (c *cursor) seek(slot uint32) bool {
	step := 1
	hi := c.pos
	for hi < len(c.slots) && c.slots[hi] < slot {
		c.pos = hi + 1
		hi += step
		step *= 2
	}
	hi = min(hi, len(c.slots))
	c.pos += sort.Search(hi-c.pos, func(i int) bool { return c.slots[c.pos+i] >= slot })
	return c.pos < len(c.slots) && c.slots[c.pos] == slot
}

// lexHeap is a min-heap of the best hits so far: its root is the worst kept.
type lexHeap struct{ hits []lexHit }

func (h *lexHeap) better(a, b lexHit) bool {
	return a.score > b.score || a.score == b.score && a.chunkID < b.chunkID
}
func (h *lexHeap) Len() int           { return len(h.hits) }
func (h *lexHeap) Less(i, j int) bool { return h.better(h.hits[j], h.hits[i]) }
func (h *lexHeap) Swap(i, j int)      { h.hits[i], h.hits[j] = h.hits[j], h.hits[i] }
func (h *lexHeap) Push(x any)         { h.hits = append(h.hits, x.(lexHit)) }
func (h *lexHeap) Pop() any {
	x := h.hits[len(h.hits)-1]
	h.hits = h.hits[:len(h.hits)-1]
	return x
}
