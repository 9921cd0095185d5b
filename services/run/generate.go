package run

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nexusrag/nexusrag/pkg/textproc"
)

// Passage is a retrieved chunk given to the generator; its marker is [index+1].
type Passage struct {
	DocumentID string  `json:"document_id"`
	ChunkID    string  `json:"chunk_id"`
	Score      float64 `json:"score"`
	Text       string  `json:"text"`
}

// Citation is a passage an answer cites, in the stable shape of message.final.
type Citation struct {
	Marker     int     `json:"marker"`
	DocumentID string  `json:"document_id"`
	ChunkID    string  `json:"chunk_id"`
	Score      float64 `json:"score"`
}

// Prompt is what a generator answers from.
type Prompt struct {
	Question string
	History  []Turn
	Passages []Passage
}

// Generator writes an answer, calling delta with each piece as it is produced.
type Generator interface {
	Generate(ctx context.Context, p Prompt, delta func(string) error) (string, error)
}

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

var marker = regexp.MustCompile(`\[(\d{1,2})\]`)

// citations lists the passages an answer's markers name, in marker order, each once.
func citations(answer string, passages []Passage) []Citation {
	var out []Citation
	var seen []int
	for _, m := range marker.FindAllStringSubmatch(answer, -1) {
		n, _ := strconv.Atoi(m[1])
		if n < 1 || n > len(passages) || slices.Contains(seen, n) {
			continue
		}
		seen = append(seen, n)
		p := passages[n-1]
		out = append(out, Citation{Marker: n, DocumentID: p.DocumentID, ChunkID: p.ChunkID, Score: p.Score})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Marker < out[b].Marker })
	return out
}
