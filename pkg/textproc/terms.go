// Package textproc turns text into the terms NexusRAG indexes and matches: lower-cased,
// stop words dropped, Snowball-stemmed. Retrieval (BM25, hashed embeddings) and the run
// service (extractive answers) share it so that both sides see the same terms.
package textproc

import (
	"hash/maphash"
	"strings"
	"sync"
	"unicode"

	"github.com/kljensen/snowball/english"
)

// Terms turns text into the stemmed, lower-case, stop-word-free terms that both the
// lexical index (BM25) and the hashed embedder use, in order. One function for both
// sides keeps queries and documents comparable.
func Terms(text string) []string {
	var out []string
	for _, tok := range tokens(text) {
		if len(tok) < 2 && !isDigit(tok) || stopWords[tok] {
			continue
		}
		out = append(out, stem(tok))
	}
	return out
}

// tokens splits on anything that is not a letter or digit, lower-cased.
func tokens(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r)
	})
}

func stem(tok string) string {
	if len(tok) <= 3 || !isASCIIAlpha(tok) {
		return tok
	}
	return stems.stem(tok)
}

// stems remembers words' stems: Snowball is most of what indexing a chunk costs, and a
// corpus's vocabulary repeats (Zipf), so nearly every word is stemmed once.
var stems = newStemCache()

var stemSeed = maphash.MakeSeed()

const (
	stemShards     = 16
	stemShardWords = 8192 // a full shard starts over: the bound on memory
)

type stemCache struct {
	shards [stemShards]struct {
		mu    sync.RWMutex
		words map[string]string
	}
}

func newStemCache() *stemCache {
	c := &stemCache{}
	for i := range c.shards {
		c.shards[i].words = make(map[string]string, stemShardWords)
	}
	return c
}

func (c *stemCache) stem(word string) string {
	sh := &c.shards[maphash.String(stemSeed, word)%stemShards]
	sh.mu.RLock()
	s, ok := sh.words[word]
	sh.mu.RUnlock()
	if ok {
		return s
	}
	s = english.Stem(word, false)
	word = strings.Clone(word) // word may share the memory of a whole document
	if s == word {
		s = word
	} else {
		s = strings.Clone(s)
	}
	sh.mu.Lock()
	if len(sh.words) >= stemShardWords {
		clear(sh.words)
	}
	sh.words[word] = s
	sh.mu.Unlock()
	return s
}

func isASCIIAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

func isDigit(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// stopWords are dropped before stemming: function words carry no topic.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all am an and any are as at be because been
		before being below between both but by can could did do does doing down during each few for from further had
		has have having he her here hers herself him himself his how i if in into is it its itself just me more most
		my myself no nor not now of off on once only or other our ours ourselves out over own same she should so some
		such than that the their theirs them themselves then there these they this those through to too under until
		up very was we were what when where which while who whom why will with would you your yours yourself
		yourselves also may might must shall upon via within without`) {
		m[w] = true
	}
	return m
}()
