// Package providers holds the cloud retrieval backends of the retrieval service, one
// file each, used through the real cloud SDKs: AWS Bedrock Knowledge Bases and Google
// Vertex AI Search (Discovery Engine).
package providers

import (
	"crypto/sha256"
	"encoding/hex"
)

// Passage is one result of a cloud provider, in the provider's order.
type Passage struct {
	ID, DocumentID, Text string
	Score                float64
	Metadata             map[string]any
}

// passageID derives a stable id for a passage its provider did not name.
func passageID(documentID, text string) string {
	sum := sha256.Sum256([]byte(documentID + "\x00" + text))
	return hex.EncodeToString(sum[:8])
}
