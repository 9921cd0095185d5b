// The TypeScript SDK against the live platform: `make test` (cmd/nexusrag TestSDKs) starts
// the built binary and passes its address and this suite's keys in the environment.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, createClient, retryDelayMs, serverDelayMs, VERSION, withRetry } from "@nexusrag/sdk";

const env = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} is not set: run this suite through make test (cmd/nexusrag TestSDKs)`);
  return v;
};
const basePath = env("NEXUSRAG_BASE_URL");
const editor = createClient({ apiKey: env("NEXUSRAG_EDITOR_KEY"), basePath });
const reader = createClient({ apiKey: env("NEXUSRAG_READER_KEY"), basePath });
const corpus = `ts-${process.pid}`;

test("health answers without a key, with the release the SDK was generated from", async () => {
  const { data, error, response } = await createClient({ basePath }).GET("/v1/health");
  assert.equal(error, undefined);
  assert.equal(response.status, 200);
  assert.equal(data.data.version, VERSION);
});

test("whoami names the key's tenant and role", async () => {
  const { data, error } = await reader.GET("/v1/auth/whoami");
  assert.equal(error, undefined);
  assert.equal(data.data.tenant_id, env("NEXUSRAG_TENANT"));
  assert.equal(data.data.role, "reader");
});

test("a missing or unknown key is a 401 with a stable code", async () => {
  const { data, error, response } = await createClient({ basePath, apiKey: "nrg_not_a_key" }).GET("/v1/auth/whoami");
  assert.equal(data, undefined);
  assert.equal(response.status, 401);
  assert.match(error.error.code, /^AUTH_(INVALID|MISSING)$/);
  const e = ApiError.from(response.status, error);
  assert.equal(e.status, 401);
  assert.equal(e.code, error.error.code);
});

test("corpora: create one, list it, read it", async () => {
  const made = await editor.PATCH("/v1/corpora/{corpus_id}", { params: { path: { corpus_id: corpus } }, body: { allow_missing: true } });
  assert.equal(made.error, undefined, JSON.stringify(made.error));
  const list = await reader.GET("/v1/corpora");
  assert.ok(list.data.data.corpora.some((c) => c.corpus_id === corpus));
  const one = await reader.GET("/v1/corpora/{corpus_id}", { params: { path: { corpus_id: corpus } } });
  assert.equal(one.data.data.corpus.corpus_id, corpus);
});

test("a document uploaded as a multipart file reaches succeeded, then a streamed run cites it", async (t) => {
  const form = new FormData();
  form.set("corpus_id", corpus);
  form.set("document_id", "ts-doc");
  form.set("file", new Blob(["The lighthouse keeper of Port Nemo lights the lamp at dusk and logs every passing ship."], { type: "text/markdown" }), "lighthouse.md");
  const up = await editor.POST("/v1/documents", { body: form, bodySerializer: (b) => b });
  assert.equal(up.error, undefined, JSON.stringify(up.error));
  assert.equal(up.response.status, 202);
  assert.ok(up.response.headers.get("Idempotency-Replayed") === null);

  let status = "";
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    const doc = await reader.GET("/v1/documents/{document_id}", { params: { path: { document_id: "ts-doc" } } });
    status = doc.data.data.document.status;
    if (status === "succeeded" || status === "failed") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, "succeeded");

  await t.test("the run streams to done", async () => {
    const { data: text, error, response } = await reader.POST("/v1/run", {
      body: { session_id: "ts", corpus_id: corpus, message: "Who lights the lamp at dusk?", top_k: 3 },
      parseAs: "text",
    });
    assert.equal(error, undefined);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("Content-Type"), /^text\/event-stream/);
    const names = [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    assert.equal(names[0], "request.accepted");
    assert.equal(names.at(-1), "done");
    assert.ok(names.includes("message.final"), names.join(","));
  });
});

test("a 429 is retried after the wait the server names, until it succeeds", async () => {
  const key = env("NEXUSRAG_BURST_KEY");
  const bare = createClient({ apiKey: key, basePath, retry: false });
  let refused;
  for (let i = 0; i < 200 && !refused; i++) {
    const r = await bare.GET("/v1/auth/whoami");
    if (r.response.status === 429) refused = r;
  }
  assert.ok(refused, "the key's read bucket never ran dry");
  assert.equal(refused.error.detail.code, "RATE_LIMITED");
  assert.ok(Number(refused.response.headers.get("X-RateLimit-Retry-After-Ms")) > 0);
  assert.ok(Number(refused.response.headers.get("Retry-After")) >= 1);

  const seen = [];
  const counting = async (input, init) => {
    const res = await fetch(input, init);
    seen.push(res.status);
    return res;
  };
  const retrying = createClient({ apiKey: key, basePath, fetch: counting, retry: { maxAttempts: 10 } });
  const ok = await retrying.GET("/v1/auth/whoami");
  assert.equal(ok.response.status, 200);
  assert.equal(seen[0], 429, "the bucket was still dry: the first attempt was refused");
  assert.equal(seen.at(-1), 200);
});

test("retry: writes get one Idempotency-Key for all their attempts; the server's wait wins over the backoff", async () => {
  const keys = [];
  let calls = 0;
  const flaky = async (req) => {
    keys.push(req.headers.get("Idempotency-Key"));
    calls++;
    return calls < 3
      ? new Response("{}", { status: 503, headers: { "Retry-After": "0" } })
      : new Response("{}", { status: 200 });
  };
  const res = await withRetry(flaky, { sleep: async () => {} })("http://x/v1/documents/text", { method: "POST", body: "{}" });
  assert.equal(res.status, 200);
  assert.equal(keys.length, 3);
  assert.ok(keys[0] && keys.every((k) => k === keys[0]));

  assert.equal(serverDelayMs(new Headers({ "X-RateLimit-Retry-After-Ms": "250", "Retry-After": "1" })), 250);
  assert.equal(serverDelayMs(new Headers({ "Retry-After": "2" })), 2000);
  assert.equal(serverDelayMs(new Headers()), undefined);
  const d = retryDelayMs(undefined, 3, { baseDelayMs: 100, random: () => 0.5 });
  assert.ok(d >= 200 && d <= 400, `backoff with jitter of attempt 3 is within [200, 400]: ${d}`);

  let attempts = 0;
  const down = async () => {
    attempts++;
    return new Response("{}", { status: 503 });
  };
  const last = await withRetry(down, { maxAttempts: 3, sleep: async () => {} })("http://x/v1/corpora");
  assert.equal(last.status, 503, "the last refusal is returned once the attempts are spent");
  assert.equal(attempts, 3);
  const far = await withRetry(async () => new Response("{}", { status: 429, headers: { "Retry-After": "3600" } }), { sleep: async () => assert.fail("waited an hour") })("http://x/");
  assert.equal(far.status, 429, "a wait beyond maxDelayMs is not taken");
});
