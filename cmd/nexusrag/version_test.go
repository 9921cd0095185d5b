package main_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/internal/version"
)

// TestVersionIsStampedEverywhere: the one version is what the CLI, the health answer and
// the OpenAPI document say.
func TestVersionIsStampedEverywhere(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	out, err := run(t, p.env, "", "version")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "nexusrag "+version.Version), out)
	h := p.do(http.MethodGet, "/v1/health", "", "")
	require.Equal(t, http.StatusOK, h.Status, "%s", h.Body)
	require.Equal(t, version.Version, h.data()["version"])
	doc := p.do(http.MethodGet, "/v1/openapi.json", "", "")
	require.Equal(t, http.StatusOK, doc.Status)
	require.Equal(t, version.Version, doc.JSON["info"].(map[string]any)["version"])
}
