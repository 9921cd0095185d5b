// Package ireval evaluates retrieval against test collections in the SMART format
// (CISI, CRAN, MED, ...): it reads documents, queries and relevance judgements, and
// computes nDCG@k, Recall@k and MRR over the judged queries.
package ireval

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Record is one document or query: its id and its fields by marker letter (T, A, W, ...).
type Record struct {
	ID     string
	Fields map[string]string
}

var marker = regexp.MustCompile(`^\.([A-Z])(?:\s+(.*))?$`)

// ReadRecords reads a SMART file: records start with ".I <id>", fields with ".<letter>".
func ReadRecords(r io.Reader) ([]Record, error) {
	var out []Record
	var cur *Record
	field := ""
	var buf strings.Builder
	flush := func() {
		if cur != nil && field != "" {
			cur.Fields[field] = strings.TrimSpace(cur.Fields[field] + "\n" + buf.String())
		}
		buf.Reset()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), " \t\r")
		m := marker.FindStringSubmatch(text)
		if m == nil {
			if cur == nil {
				if strings.TrimSpace(text) == "" {
					continue
				}
				return nil, fmt.Errorf("line %d: text before the first .I record", line)
			}
			buf.WriteString(text)
			buf.WriteByte('\n')
			continue
		}
		flush()
		if m[1] == "I" {
			id := strings.TrimSpace(m[2])
			if id == "" {
				return nil, fmt.Errorf("line %d: .I without an id", line)
			}
			out = append(out, Record{ID: id, Fields: map[string]string{}})
			cur, field = &out[len(out)-1], ""
			continue
		}
		field = m[1]
		if rest := strings.TrimSpace(m[2]); rest != "" {
			buf.WriteString(rest)
			buf.WriteByte('\n')
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// DocumentText is what is indexed of a document: title and abstract (.T, .W).
func DocumentText(r Record) string { return joinFields(r, "T", "W") }

// QueryText is the text of a query: .W, or .T when a query has no .W.
func QueryText(r Record) string {
	if w := r.Fields["W"]; w != "" {
		return w
	}
	return r.Fields["T"]
}

func joinFields(r Record, names ...string) string {
	var parts []string
	for _, n := range names {
		if v := strings.TrimSpace(r.Fields[n]); v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, "\n\n")
}

// Qrels are binary relevance judgements: query id -> relevant document ids.
type Qrels map[string]map[string]bool

// ReadQrels reads "<query id> <doc id> ..." lines; every listed pair is relevant.
func ReadQrels(r io.Reader) (Qrels, error) {
	out := Qrels{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: want \"<query id> <doc id> ...\"", line)
		}
		if out[f[0]] == nil {
			out[f[0]] = map[string]bool{}
		}
		out[f[0]][f[1]] = true
	}
	return out, sc.Err()
}
