package main_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// browser starts Debian's headless chromium (scripts/deps.sh installs it), kept to
// loopback: no background networking, every host name but 127.0.0.1 unresolvable.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is needed for the console's browser tests: scripts/deps.sh installs Debian's package")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-features", "OptimizationHints,MediaRouter,Translate,InterestFeedContentSuggestions"),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

const releaseGates = `# Agent 2.0 release gates

A release candidate of Agent 2.0 ships only when every release gate is green.

## Gate 1: quality

The evaluation suite must reach an nDCG@10 of at least 0.31 on the reference collection.

## Gate 2: reliability

The fault tests pass: Redis outages, Postgres connection loss and a hanging retrieval provider.
`

// TestConsoleInABrowser: in a real browser, sign in with a key, upload a document and
// see it succeed, ask the sanity question and see the streamed answer with a citation.
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, key := p.createKey("t-web", "admin")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", key, `{"allow_missing": true, "name": "Agent 2.0"}`).Status)
	file := filepath.Join(t.TempDir(), "release-gates.md")
	require.NoError(t, os.WriteFile(file, []byte(releaseGates), 0o600))
	ctx := browser(t)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(p.HTTP+"/console/"),
		chromedp.WaitVisible("#apikey"),
		chromedp.SendKeys("#apikey", "nrk_not_a_key"),
		chromedp.Click(`#signin-form button[type="submit"]`),
		chromedp.WaitNotPresent("#signin-error:empty"),
	))
	signinError, err := chromedp.Run(ctx, chromedp.Text("#signin-error"))
	require.NoError(t, err)
	require.Contains(t, signinError, "not valid")

	_, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#apikey").value = ""`))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys("#apikey", key),
		chromedp.Click(`#signin-form button[type="submit"]`),
		chromedp.WaitVisible("#upload-form"),
		chromedp.SetUploadFiles("#upload-file", []string{file}),
		chromedp.Click(`#upload-form button[type="submit"]`),
		chromedp.WaitVisible(`tr[data-document] td.status-succeeded`), // live: the page polls
	))
	who, err := chromedp.Run(ctx, chromedp.Text("#who"))
	require.NoError(t, err)
	require.Contains(t, who, "t-web")
	row, err := chromedp.Run(ctx, chromedp.Text(`tr[data-document]`))
	require.NoError(t, err)
	require.Contains(t, row, "release-gates.md")
	docID, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("tr[data-document]").dataset.document`))
	require.NoError(t, err)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(`nav [data-view="chat"]`),
		chromedp.WaitVisible("#chat-form"),
		chromedp.SendKeys("#chat-message", "What are the release gates for Agent 2.0?"),
		chromedp.Click(`#chat-form button[type="submit"]`),
		chromedp.WaitVisible("#citations li"),
	))
	answer, err := chromedp.Run(ctx, chromedp.Text("#answer"))
	require.NoError(t, err)
	require.Contains(t, strings.ToLower(answer), "gate")
	citation, err := chromedp.Run(ctx, chromedp.Text("#citations li"))
	require.NoError(t, err)
	require.Contains(t, citation, docID, "the answer cites the uploaded document")

	// The key lives in the tab's session storage only.
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(localStorage.length === 0 ? "" : "local") + "|" + (sessionStorage.getItem("nexusrag.apiKey") ? "session" : "")`))
	require.NoError(t, err)
	require.Equal(t, "|session", stored)
}

// TestConsoleScreenshots writes screenshots of the console's main pages into the folder
// NEXUSRAG_SCREENSHOTS names (`make screenshots`: docs/screenshots); without it, it has
// nothing to do.
func TestConsoleScreenshots(t *testing.T) {
	dir := os.Getenv("NEXUSRAG_SCREENSHOTS")
	if dir == "" {
		t.Skip("NEXUSRAG_SCREENSHOTS is not set (make screenshots sets it)")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	env, dbURL := newEnv(t)
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	_, err = run(t, env, "", "seed-demo")
	require.NoError(t, err)
	p := startWithEnv(t, env, dbURL)
	_, key := p.createKey("t1", "admin")
	ctx := browser(t)
	shot := func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100) /* 100: PNG */)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
	}
	shot("sign-in", chromedp.Navigate(p.HTTP+"/console/"), chromedp.WaitVisible("#apikey"))
	shot("documents", chromedp.SendKeys("#apikey", key), chromedp.Click(`#signin-form button[type="submit"]`),
		chromedp.WaitVisible(`tr[data-document] td.status-succeeded`))
	shot("chat", chromedp.Click(`nav [data-view="chat"]`), chromedp.WaitVisible("#chat-form"),
		chromedp.SendKeys("#chat-message", "What are the release gates for Agent 2.0?"),
		chromedp.Click(`#chat-form button[type="submit"]`), chromedp.WaitVisible("#citations li"))
	shot("activity", chromedp.Click(`nav [data-view="activity"]`), chromedp.WaitVisible("#view table tbody tr"))
	shot("ops", chromedp.Click(`nav [data-view="ops"]`), chromedp.WaitVisible("#view dl"))
}
