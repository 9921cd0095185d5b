package main

import (
	"math/rand/v2"
	"strings"
)

// prose writes deterministic English-like documents: real function words and real
// content words with inflections, plus a tail of invented terms, each drawn with a
// Zipf-like distribution, in sentences and paragraphs; each document also leans on a
// few topic words of its own, as real documents do.
type prose struct {
	function []string // by rank: the most frequent first
	content  []string // by rank
}

const functionWords = `the of and to a in is that for it as with was on be by this are from at or an which
	have not but has were their its they can been more one also these such than other into we our when
	there some would all may only two most between both each through over under after before while about
	during without within because however where those many first new used should could often any very well`

const contentRoots = `system data model process method result value study analysis report policy
	market price cost growth rate level change effect factor group member team project plan design
	network service user customer product order account payment contract record document file index
	search query answer question problem solution approach strategy decision review audit control
	risk security access key token request response error failure event log metric signal trace
	memory storage disk cache queue stream batch job task worker thread node cluster region zone
	server client browser device sensor engine motor vehicle road bridge river water energy power
	fuel carbon climate weather season harvest crop soil forest animal species cell protein gene
	patient doctor hospital treatment drug dose trial symptom disease health school student teacher
	course lesson history culture language music film book author reader story novel poem letter
	city village house street building office factory farm shop bank loan tax budget fund share
	court judge law right rule claim evidence witness police crime prison vote election party leader
	country nation state border trade export import industry company firm office manager staff
	light sound color shape surface edge line point angle distance speed weight pressure heat
	build measure compare improve reduce increase support require provide develop consider include
	describe explain suggest indicate remain follow create produce maintain establish identify
	observe record transfer connect deliver accept reject approve assign collect convert deploy
	simple complex large small early late strong weak public private local global formal direct
	careful rapid steady modern ancient central regional annual monthly weekly daily total partial`

// suffixes inflect content roots into the forms real text has.
var suffixes = []string{"", "s", "ed", "ing", "er", "ly", "al"}

// inflect spells root+suffix with English's two commonest rules: a final e drops before
// a vowel (deploying), a final consonant+y turns to i (policies).
func inflect(root, suffix string) string {
	switch n := len(root); {
	case suffix == "":
		return root
	case root[n-1] == 'e' && strings.ContainsRune("aeiou", rune(suffix[0])):
		return root[:n-1] + suffix
	case root[n-1] == 'y' && !strings.ContainsRune("aeiou", rune(root[n-2])) && suffix != "ing":
		if suffix == "s" {
			return root[:n-1] + "ies"
		}
		return root[:n-1] + "i" + suffix
	}
	return root + suffix
}

func newProse(seed uint64) prose {
	rng := rand.New(rand.NewPCG(seed, 1))
	p := prose{function: strings.Fields(functionWords)}
	roots := strings.Fields(contentRoots)
	for _, suf := range suffixes {
		for _, r := range roots {
			p.content = append(p.content, inflect(r, suf))
		}
	}
	// A tail of invented words: names, jargon, typos; rare by construction (appended last).
	syll := []string{"bra", "cel", "dor", "fin", "gal", "hem", "jor", "kil", "lum", "mar", "nev", "por", "quin", "ros", "tav", "vex"}
	for range 1500 {
		var b strings.Builder
		for range 2 + rng.IntN(2) {
			b.WriteString(syll[rng.IntN(len(syll))])
		}
		p.content = append(p.content, b.String())
	}
	// Shuffle the inflected words so that rank does not follow the suffix order, keeping
	// the invented tail at the end.
	head := p.content[:len(p.content)-1500]
	rng.Shuffle(len(head), func(i, j int) { head[i], head[j] = head[j], head[i] })
	return p
}

// document is the i-th document: about size characters (it stops at the first sentence
// end past size), paragraphs of 1 to 4 sentences.
func (p prose) document(i, size int) string {
	rng := rand.New(rand.NewPCG(uint64(i), 2))
	fz := rand.NewZipf(rng, 1.1, 2, uint64(len(p.function)-1))
	cz := rand.NewZipf(rng, 1.05, 8, uint64(len(p.content)-1))
	topic := make([]string, 12)
	for k := range topic {
		topic[k] = p.content[rng.IntN(len(p.content)/2)]
	}
	word := func() string {
		switch x := rng.Float64(); {
		case x < 0.42:
			return p.function[fz.Uint64()]
		case x < 0.52:
			return topic[rng.IntN(len(topic))]
		case x < 0.53:
			return []string{"12", "42", "2024", "3.5", "100", "17"}[rng.IntN(6)]
		default:
			return p.content[cz.Uint64()]
		}
	}
	var b strings.Builder
	for b.Len() < size {
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		for s := range 1 + rng.IntN(4) {
			if s > 0 {
				b.WriteString(" ")
			}
			n := 6 + rng.IntN(18)
			for w := range n {
				t := word()
				if w == 0 {
					t = strings.ToUpper(t[:1]) + t[1:]
				} else {
					b.WriteString(" ")
				}
				b.WriteString(t)
				if w > 0 && w < n-1 && rng.Float64() < 0.08 {
					b.WriteString(",")
				}
			}
			switch x := rng.Float64(); {
			case x < 0.05:
				b.WriteString("?")
			case x < 0.08:
				b.WriteString("!")
			default:
				b.WriteString(".")
			}
			if b.Len() >= size {
				break
			}
		}
	}
	return b.String()
}

// corpus is n documents of about 2,400 to 3,400 characters.
func (p prose) corpus(n int) []string {
	rng := rand.New(rand.NewPCG(99, 3))
	out := make([]string, n)
	for i := range out {
		out[i] = p.document(i, 2350+rng.IntN(951))
	}
	return out
}
