package textproc

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kljensen/snowball/english"
)

// TestStemCacheAgreesWithSnowball: cached stems are Snowball's, from many goroutines at
// once, and a shard never holds more than its bound.
func TestStemCacheAgreesWithSnowball(t *testing.T) {
	c := newStemCache()
	words := []string{"running", "gates", "released", "generously", "happiness", "relational", "conditional", "hopefully"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 3 * stemShardWords {
				w := words[(i+g)%len(words)]
				if i%2 == 0 {
					w = fmt.Sprintf("%s%c%c", w, 'a'+i%26, 'a'+(i/26)%26) // many distinct words: shards fill and start over
				}
				if got, want := c.stem(w), english.Stem(w, false); got != want {
					t.Errorf("stem(%q) = %q, Snowball says %q", w, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range c.shards {
		if n := len(c.shards[i].words); n > stemShardWords {
			t.Fatalf("shard %d holds %d words, bound %d", i, n, stemShardWords)
		}
	}
}
