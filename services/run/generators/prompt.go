// Package generators holds the run service's interchangeable answer generators: the
// offline extractive one and Gemini on Vertex AI. Each streams its answer piece by piece
// and cites passages as [n]; run.NewGenerator chooses one from LLM_PROVIDER.
package generators

// Passage is a retrieved chunk given to the generator; its marker is [index+1].
type Passage struct {
	DocumentID string  `json:"document_id"`
	ChunkID    string  `json:"chunk_id"`
	Score      float64 `json:"score"`
	Text       string  `json:"text"`
	// Section is the path of headings the chunk is under (markdown, HTML, DOCX and PDF documents).
	Section string `json:"section,omitempty"`
	// Page is the page of a PDF the chunk starts on (0: a document without pages).
	Page int `json:"page,omitempty"`
}

// Prompt is what a generator answers from.
type Prompt struct {
	Question string
	History  []Turn
	Passages []Passage
}

// Turn is an earlier message of the session.
type Turn struct {
	Role    string `json:"role"` // user | assistant
	Content string `json:"content"`
}
