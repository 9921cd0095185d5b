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

// Extractive is the offline generator: it answers with the retrieved sentences that share
// the most terms with the question, in the order of their passages, each followed by its
// passage's citation marker, and streams the answer word by word.
type Extractive struct {
	// MaxSentences bounds the answer (default 3).
	MaxSentences int
}

var sentenceEnd = regexp.MustCompile(`[.!?]["')\]]*(\s+|$)`)

type candidate struct {
	passage, pos int
	text         string
	score        float64
}

// Generate composes the answer.
func (e Extractive) Generate(ctx context.Context, p Prompt, delta func(string) error) (string, error) {
	limit := e.MaxSentences
	if limit <= 0 {
		limit = 3
	}
	question := map[string]bool{}
	for _, t := range textproc.Terms(p.Question) {
		question[t] = true
	}
	var cands []candidate
	for i, ps := range p.Passages {
		for j, s := range sentences(ps.Text) {
			terms := textproc.Terms(s)
			if len(terms) == 0 {
				continue
			}
			hit := map[string]bool{}
			for _, t := range terms {
				if question[t] {
					hit[t] = true
				}
			}
			if len(hit) == 0 {
				continue
			}
			// Distinct question terms matter most; earlier passages (better ranked) break ties.
			score := float64(len(hit)) + 0.5*float64(len(hit))/float64(len(terms)) - 0.01*float64(i)
			cands = append(cands, candidate{passage: i, pos: j, text: s, score: score})
		}
	}
	answer := noAnswer
	if len(cands) > 0 {
		sort.SliceStable(cands, func(a, b int) bool { return cands[a].score > cands[b].score })
		cands = cands[:min(limit, len(cands))]
		sort.SliceStable(cands, func(a, b int) bool {
			if cands[a].passage != cands[b].passage {
				return cands[a].passage < cands[b].passage
			}
			return cands[a].pos < cands[b].pos
		})
		parts := make([]string, len(cands))
		for i, c := range cands {
			parts[i] = fmt.Sprintf("%s [%d]", c.text, c.passage+1)
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
