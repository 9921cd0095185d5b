package generators

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/nexusrag/nexusrag/pkg/textproc"
)

// noAnswer is what the extractive generator says when nothing retrieved is relevant.
const noAnswer = "I could not find anything about that in this corpus."

// Extractive is the offline generator: it answers with the retrieved sentence of each
// passage that shares the most terms with the question (a sentence under a heading shares
// the heading's terms too, and is introduced by it), in the order of their passages, each
// followed by its passage's citation marker, and streams the answer word by word. One
// sentence per passage first: passages that define the parts of what is asked (sections
// of one document, say) each get their say before any passage gets a second.
type Extractive struct {
	// MaxSentences bounds the answer (default 5, the default top_k).
	MaxSentences int
}

var sentenceEnd = regexp.MustCompile(`[.!?]["')\]]*(\s+|$)`)

type candidate struct {
	passage, pos int
	text         string
	heading      string // the section heading above the sentence, "" for none or a title
	score        float64
}

// Generate composes the answer.
func (e Extractive) Generate(ctx context.Context, p Prompt, delta func(string) error) (string, error) {
	limit := e.MaxSentences
	if limit <= 0 {
		limit = 5
	}
	question := map[string]bool{}
	for _, t := range textproc.Terms(p.Question) {
		question[t] = true
	}
	var cands []candidate
	for i, ps := range p.Passages {
		for j, s := range sections(ps.Text) {
			terms := textproc.Terms(s.text)
			if len(terms) == 0 {
				continue
			}
			hit := map[string]bool{}
			for _, t := range append(textproc.Terms(s.heading), terms...) {
				if question[t] {
					hit[t] = true
				}
			}
			if len(hit) == 0 {
				continue
			}
			// Distinct question terms matter most; earlier passages (better ranked) break ties.
			score := float64(len(hit)) + 0.5*float64(len(hit))/float64(len(terms)) - 0.01*float64(i)
			cands = append(cands, candidate{passage: i, pos: j, text: s.text, heading: s.subheading, score: score})
		}
	}
	answer := noAnswer
	if chosen := choose(cands, limit); len(chosen) > 0 {
		parts := make([]string, len(chosen))
		for i, c := range chosen {
			parts[i] = fmt.Sprintf("%s [%d]", c.text, c.passage+1)
			if c.heading != "" && (i == 0 || chosen[i-1].heading != c.heading) {
				parts[i] = c.heading + " — " + parts[i]
			}
		}
		answer = strings.Join(parts, " ")
	}
	for _, w := range strings.SplitAfter(answer, " ") {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if err := delta(w); err != nil {
			return "", err
		}
	}
	return answer, nil
}

// choose picks up to limit candidates, the best of each passage first (then the next
// best), and puts them in passage and sentence order.
func choose(cands []candidate, limit int) []candidate {
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].score > cands[b].score })
	var chosen, rest []candidate
	seen := map[int]bool{}
	for _, c := range cands {
		if seen[c.passage] {
			rest = append(rest, c)
			continue
		}
		seen[c.passage] = true
		chosen = append(chosen, c)
	}
	chosen = append(chosen, rest...)
	chosen = chosen[:min(limit, len(chosen))]
	sort.SliceStable(chosen, func(a, b int) bool {
		if chosen[a].passage != chosen[b].passage {
			return chosen[a].passage < chosen[b].passage
		}
		return chosen[a].pos < chosen[b].pos
	})
	return chosen
}

// sentence is one sentence of a passage with the markdown headings above it: heading is
// the nearest (its terms count as the sentence's), subheading the same unless it is a
// level-1 title (which names the document, not the part the sentence is about).
type sentence struct{ text, heading, subheading string }

var headingLine = regexp.MustCompile(`^(#{1,6})\s+(.*)$`)

// sections splits text into sentences, each with the heading it sits under.
func sections(text string) []sentence {
	var out []sentence
	heading, sub := "", ""
	for _, para := range strings.Split(text, "\n") {
		para = strings.TrimSpace(para)
		if m := headingLine.FindStringSubmatch(para); m != nil {
			heading, sub = strings.TrimSpace(m[2]), strings.TrimSpace(m[2])
			if len(m[1]) == 1 {
				sub = ""
			}
			continue
		}
		for _, s := range sentences(para) {
			out = append(out, sentence{text: s, heading: heading, subheading: sub})
		}
	}
	return out
}

// sentences splits text into sentences, dropping markdown heading lines.
func sentences(text string) []string {
	var out []string
	for _, para := range strings.Split(text, "\n") {
		para = strings.TrimSpace(para)
		if para == "" || strings.HasPrefix(para, "#") {
			continue
		}
		start := 0
		for _, loc := range sentenceEnd.FindAllStringIndex(para, -1) {
			if s := strings.TrimSpace(para[start:loc[1]]); s != "" {
				out = append(out, s)
			}
			start = loc[1]
		}
		if s := strings.TrimSpace(para[start:]); s != "" {
			out = append(out, s)
		}
	}
	return out
}
