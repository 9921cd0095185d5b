package generators

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cloud.google.com/go/auth"
	"google.golang.org/genai"
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Codes of the Vertex AI generator.
const (
	CodeVertexConfigMissing = "VERTEX_CONFIG_MISSING"
	CodeVertexAuth          = "VERTEX_AUTH_ERROR"
	CodeLLMError            = "LLM_ERROR"
)

// VertexConfig configures the Gemini generator.
type VertexConfig struct {
	Project, Location, Model string
	// BaseURL overrides the Vertex AI endpoint (tests point it at a local fake).
	BaseURL string
	// Credentials, when set, are used instead of application default credentials.
	Credentials *auth.Credentials
}

// Vertex generates with Gemini on Vertex AI, streaming, through google.golang.org/genai.
type Vertex struct {
	client *genai.Client
	model  string
	// unusable explains why the generator cannot run (missing project or credentials):
	// every Generate answers it, after retrieval and the user turn are saved.
	unusable error
}

// NewVertex builds the generator. Missing configuration or credentials do not stop the
// process: each run then fails with VERTEX_CONFIG_MISSING, which says what to set.
func NewVertex(ctx context.Context, c VertexConfig) *Vertex {
	if c.Project == "" || c.Location == "" || c.Model == "" {
		return &Vertex{unusable: apierr.New(codes.FailedPrecondition, CodeVertexConfigMissing,
			"LLM_PROVIDER=vertex needs GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_LOCATION and GEMINI_MODEL")}
	}
	cc := &genai.ClientConfig{Backend: genai.BackendVertexAI, Project: c.Project, Location: c.Location, Credentials: c.Credentials}
	if c.BaseURL != "" {
		cc.HTTPOptions.BaseURL = c.BaseURL
	}
	client, err := genai.NewClient(ctx, cc)
	if err != nil {
		return &Vertex{unusable: apierr.New(codes.FailedPrecondition, CodeVertexConfigMissing,
			"no Google credentials for Vertex AI: set GOOGLE_APPLICATION_CREDENTIALS or run with a service account")}
	}
	return &Vertex{client: client, model: c.Model}
}

// Err reports why the generator cannot run, or nil.
func (v *Vertex) Err() error { return v.unusable }

const systemPrompt = `You answer questions from the numbered passages of a document corpus.
Use only what the passages say. After each sentence that uses a passage, cite it as [n].
If the passages do not answer the question, say so plainly. Be brief.`

// Generate streams Gemini's answer.
func (v *Vertex) Generate(ctx context.Context, p Prompt, delta func(string) error) (string, error) {
	if v.unusable != nil {
		return "", v.unusable
	}
	var contents []*genai.Content
	for _, t := range p.History {
		role := genai.RoleUser
		if t.Role == "assistant" {
			role = genai.RoleModel
		}
		contents = append(contents, genai.NewContentFromText(t.Content, genai.Role(role)))
	}
	var b strings.Builder
	for i, ps := range p.Passages {
		fmt.Fprintf(&b, "[%d] (document %s)\n%s\n\n", i+1, ps.DocumentID, ps.Text)
	}
	if len(p.Passages) == 0 {
		b.WriteString("(no passages were found)\n\n")
	}
	b.WriteString("Question: " + p.Question)
	contents = append(contents, genai.NewContentFromText(b.String(), genai.RoleUser))
	cfg := &genai.GenerateContentConfig{SystemInstruction: genai.NewContentFromText(systemPrompt, genai.RoleUser)}

	var answer strings.Builder
	for res, err := range v.client.Models.GenerateContentStream(ctx, v.model, contents, cfg) {
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", generationError(err)
		}
		text := res.Text()
		if text == "" {
			continue
		}
		answer.WriteString(text)
		if err := delta(text); err != nil {
			return "", err
		}
	}
	return answer.String(), nil
}

func generationError(err error) error {
	var ae genai.APIError
	if errors.As(err, &ae) {
		if ae.Code == http.StatusUnauthorized || ae.Code == http.StatusForbidden {
			return apierr.New(codes.FailedPrecondition, CodeVertexAuth, "Vertex AI refused the credentials", "status", ae.Status)
		}
		return apierr.New(codes.Unavailable, CodeLLMError, fmt.Sprintf("Gemini failed (%d %s)", ae.Code, ae.Status), "status", ae.Status)
	}
	return apierr.New(codes.Unavailable, CodeLLMError, "Gemini stopped mid-answer: the stream failed")
}
