package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSDKs checks that the committed SDKs are what the served OpenAPI document generates,
// then runs each SDK's own suite against the built binary: node's test runner for
// TypeScript and the frontend helpers, python3 -m unittest for Python. Each suite gets a
// tenant of its own (the rate limits are on: the suites meet a 429 on purpose; runs are
// resumable: the frontend suite drops connections and resumes them).
func TestSDKs(t *testing.T) {
	t.Parallel()
	sdk, err := filepath.Abs("../../sdk")
	require.NoError(t, err)
	for _, tool := range []string{"node", "npm", "python3"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is needed by the SDK suites: make deps installs it", tool)
	}
	p := startPlatform(t, []string{"RL_ENABLED=true", "RUN_STREAM_RESUME=true"})
	npmInstall(t, sdk)

	t.Run("generated", func(t *testing.T) {
		doc, err := run(t, p.env, "", "openapi")
		require.NoError(t, err)
		served := p.send(http.MethodGet, "/v1/openapi.json", "", "")
		defer served.Body.Close()
		var body bytes.Buffer
		_, err = body.ReadFrom(served.Body)
		require.NoError(t, err)
		require.Equal(t, strings.TrimSpace(body.String()), strings.TrimSpace(doc), "`nexusrag openapi` prints what the gateway serves")
		committed, err := os.ReadFile(filepath.Join(sdk, "openapi.json"))
		require.NoError(t, err)
		require.Equal(t, doc, string(committed), "sdk/openapi.json is stale: run make sdk-generate")

		out := t.TempDir()
		shIn(t, sdk, nil, "node", "scripts/generate.mjs", "--out", out)
		shIn(t, sdk, nil, "python3", "python/generate.py", "--out", filepath.Join(out, "python"))
		for _, f := range []string{
			"typescript/src/schema.ts", "typescript/src/events.ts", "typescript/src/version.ts", "typescript/package.json",
			"frontend/package.json", "python/nexusrag/_generated.py", "python/pyproject.toml",
		} {
			want, err := os.ReadFile(filepath.Join(out, f))
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(sdk, f))
			require.NoError(t, err)
			require.True(t, bytes.Equal(want, got), "sdk/%s differs from a fresh generation (%s): run make sdk-generate", f, firstDiff(want, got))
		}
	})
	if t.Failed() {
		return
	}
	shIn(t, sdk, nil, "npm", "run", "--silent", "build")
	t.Run("readme", func(t *testing.T) { typecheckReadme(t, sdk) })

	suites := []struct {
		name, tenant string
		cmd          []string
	}{
		{"typescript", "sdk-ts", []string{"node", "--test", "typescript/test/live.test.mjs"}},
		{"frontend", "sdk-frontend", []string{"node", "--test", "frontend/test/live.test.mjs"}},
		{"python", "sdk-py", []string{"python3", "-m", "unittest", "discover", "-v", "-s", "python/tests", "-t", "python"}},
	}
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			_, reader := p.createKey(s.tenant, "reader")
			_, editor := p.createKey(s.tenant, "editor")
			_, burst := p.createKey(s.tenant, "reader")
			start := time.Now()
			out := shIn(t, sdk, []string{
				"NEXUSRAG_BASE_URL=" + p.HTTP, "NEXUSRAG_TENANT=" + s.tenant,
				"NEXUSRAG_READER_KEY=" + reader, "NEXUSRAG_EDITOR_KEY=" + editor, "NEXUSRAG_BURST_KEY=" + burst,
				"PYTHONDONTWRITEBYTECODE=1",
			}, s.cmd[0], s.cmd[1:]...)
			t.Logf("%s suite: %.1f s\n%s", s.name, time.Since(start).Seconds(), summary(out))
		})
	}
}

// npmInstall installs the SDKs' pinned packages (package-lock.json) unless the last
// install was of the same lock.
func npmInstall(t *testing.T, sdk string) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(sdk, "package-lock.json"))
	require.NoError(t, err)
	sum := sha256.Sum256(lock)
	stamp := filepath.Join(sdk, "node_modules", ".nexusrag-lock-sha256")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == hex.EncodeToString(sum[:]) {
		return
	}
	shIn(t, sdk, nil, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	require.NoError(t, os.WriteFile(stamp, []byte(hex.EncodeToString(sum[:])), 0o644))
}

// shIn runs a command in dir with env added and returns its output, failing the test
// with it.
func shIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// firstDiff names the first line where generated and committed differ.
func firstDiff(generated, committed []byte) string {
	g, c := strings.Split(string(generated), "\n"), strings.Split(string(committed), "\n")
	for i := range max(len(g), len(c)) {
		var gl, cl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(c) {
			cl = c[i]
		}
		if gl != cl {
			return fmt.Sprintf("line %d: generated %q, committed %q", i+1, gl, cl)
		}
	}
	return "same lines"
}

// summary is the tail of a test runner's output: its counts.
func summary(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}

// typecheckReadme compiles the README's TypeScript examples against the built SDKs
// (strict), with the names a snippet takes from its surroundings declared.
func typecheckReadme(t *testing.T, sdk string) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```ts\n(.*?)```").FindAllSubmatch(readme, -1)
	require.NotEmpty(t, blocks, "README has no TypeScript example")
	dir, err := os.MkdirTemp(sdk, ".readme-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	const prelude = "declare const process: { env: Record<string, string | undefined> };\n" +
		"declare const apiKey: string;\ndeclare const controller: AbortController;\ndeclare function render(text: string): void;\n"
	args := []string{"tsc", "--noEmit", "--strict", "--target", "es2022", "--module", "nodenext",
		"--moduleResolution", "nodenext", "--lib", "es2022,dom"}
	for i, b := range blocks {
		f := filepath.Join(dir, fmt.Sprintf("example%d.mts", i+1))
		require.NoError(t, os.WriteFile(f, append([]byte(prelude+"export {};\n"), b[1]...), 0o644))
		args = append(args, f)
	}
	shIn(t, sdk, nil, "npx", args...)
}
