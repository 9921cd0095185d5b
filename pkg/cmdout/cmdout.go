// Package cmdout bounds what the product keeps of an external command's output (pg_dump's
// errors, poppler's warnings on a damaged PDF): a tool that floods its output cannot fill
// memory, and is never stopped by a failed write.
package cmdout

import "io"

// Head writes the first N bytes written to it to W and drops the rest; Write never fails.
type Head struct {
	W io.Writer
	N int
}

func (h *Head) Write(p []byte) (int, error) {
	if h.N > 0 {
		k := min(h.N, len(p))
		_, _ = h.W.Write(p[:k])
		h.N -= k
	}
	return len(p), nil
}
