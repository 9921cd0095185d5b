package main_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/internal/version"
)

// TestVersionIsStampedEverywhere: the one version is what the CLI, the health answer,
// the OpenAPI document and the SDKs' packages say.
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
	for _, f := range []string{"typescript/package.json", "frontend/package.json"} {
		b, err := os.ReadFile(filepath.Join("../../sdk", f))
		require.NoError(t, err)
		var pkg struct{ Version string }
		require.NoError(t, json.Unmarshal(b, &pkg))
		require.Equal(t, version.Version, pkg.Version, "sdk/%s: run make sdk-generate", f)
	}
	b, err := os.ReadFile("../../sdk/python/pyproject.toml")
	require.NoError(t, err)
	require.Contains(t, string(b), "\nversion = \""+version.Version+"\"\n", "sdk/python/pyproject.toml: run make sdk-generate")
}
