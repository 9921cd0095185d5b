// The frontend helpers against the live platform (see typescript/test/live.test.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createClient } from "@nexusrag/sdk";

import { ApiError, buildQuery, connectRunStream, isResumableId, parseSSE, UiClient } from "../dist/index.js";

const env = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} is not set: run this suite through make test (cmd/nexusrag TestSDKs)`);
  return v;
};
const baseUrl = env("NEXUSRAG_BASE_URL");
const readerKey = env("NEXUSRAG_READER_KEY");
const corpus = `fe-${process.pid}`;

test("buildQuery: sorted keys, empty values left out, dates as RFC 3339, arrays repeated", () => {
  assert.equal(buildQuery({}), "");
  assert.equal(
    buildQuery({ limit: 20, sort: "-created_at", cursor: undefined, q: "", status: "failed", created_from: new Date("2026-01-02T03:04:05Z"), tag: ["a", "b c"] }),
    "?created_from=2026-01-02T03%3A04%3A05.000Z&limit=20&sort=-created_at&status=failed&tag=a&tag=b+c",
  );
  assert.equal(buildQuery({ q: "a&b=c" }), "?q=a%26b%3Dc");
});

test("parseSSE follows the standard: CRLF, CR and LF, comments, multi-line data, ids that persist", async () => {
  const chunks = ["id: 1\r\nevent: a\r\ndata: x\r", "\ndata: y\r\n\r\n: comment\n\nevent: b\rdata:z\r\r", "data: no end"];
  const enc = new TextEncoder();
  const body = new ReadableStream({ start(c) { for (const ch of chunks) c.enqueue(enc.encode(ch)); c.close(); } });
  const got = [];
  for await (const m of parseSSE(body)) got.push(m);
  assert.deepEqual(got, [
    { event: "a", data: "x\ny", id: "1", retry: undefined },
    { event: "b", data: "z", id: "1", retry: undefined },
  ]);
});

test("UiClient: bootstrap, the dashboard, a page of documents and a reindex", async () => {
  const editor = createClient({ apiKey: env("NEXUSRAG_EDITOR_KEY"), basePath: baseUrl });
  const made = await editor.PATCH("/v1/corpora/{corpus_id}", { params: { path: { corpus_id: corpus } }, body: { allow_missing: true } });
  assert.equal(made.error, undefined, JSON.stringify(made.error));
  const up = await editor.POST("/v1/documents/text", { body: { corpus_id: corpus, document_id: "fe-doc", text: "Dusk is when the lamp of Port Nemo is lit." } });
  assert.equal(up.error, undefined, JSON.stringify(up.error));

  const ui = new UiClient({ apiKey: env("NEXUSRAG_EDITOR_KEY"), basePath: baseUrl });
  const boot = await ui.bootstrap();
  assert.equal(boot.tenant_id, env("NEXUSRAG_TENANT"));
  assert.equal(boot.role, "editor");
  const summary = await ui.dashboardSummary();
  assert.ok(summary !== undefined);
  const page = await ui.documents({ limit: 10, corpus_id: corpus });
  assert.ok(page.items.some((d) => d.document_id === "fe-doc"), JSON.stringify(page));
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    const p = await ui.documents({ corpus_id: corpus });
    if (p.items.find((d) => d.document_id === "fe-doc")?.status === "succeeded") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await ui.reindexDocument({ document_id: "fe-doc" });

  await assert.rejects(new UiClient({ apiKey: readerKey, basePath: baseUrl }).reindexDocument({ document_id: "fe-doc" }), (e) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 403);
    assert.equal(e.code, "FORBIDDEN");
    return true;
  });
});

test("health is public; a 429 of the UI routes is retried after the server's wait until it succeeds", async () => {
  const health = await createClient({ basePath: baseUrl }).GET("/v1/health");
  assert.equal(health.response.status, 200);

  const key = env("NEXUSRAG_BURST_KEY");
  const bare = new UiClient({ apiKey: key, basePath: baseUrl, retry: false });
  let refused;
  for (let i = 0; i < 200 && !refused; i++) {
    await bare.bootstrap().catch((e) => {
      if (!(e instanceof ApiError) || e.status !== 429) throw e;
      refused = e;
    });
  }
  assert.ok(refused, "the key's read bucket never ran dry");
  assert.equal(refused.code, "RATE_LIMITED");
  assert.ok(refused.details.retry_after_ms > 0);

  const waits = [];
  const retrying = new UiClient({
    apiKey: key,
    basePath: baseUrl,
    retry: { maxAttempts: 10, sleep: (ms) => { waits.push(ms); return new Promise((r) => setTimeout(r, ms)); } },
  });
  const boot = await retrying.bootstrap();
  assert.equal(boot.role, "reader");
  assert.ok(waits.length > 0 && waits[0] <= 1000, `waited the server's X-RateLimit-Retry-After-Ms: ${waits}`);
});

test("connectRunStream: typed events in order, seq from 1, to done", async () => {
  const events = [];
  const last = await connectRunStream({
    baseUrl,
    apiKey: readerKey,
    body: { session_id: "fe", corpus_id: corpus, message: "When is the lamp lit?", top_k: 3 },
    onEvent: (ev) => events.push(ev),
  });
  assert.equal(last.type, "done");
  assert.equal(events[0].type, "request.accepted");
  events.forEach((ev, i) => {
    assert.equal(ev.seq, i + 1);
    assert.ok(isResumableId(ev.id) && ev.id.endsWith(`.${i + 1}`), `the platform keeps runs resumable: id ${ev.id}`);
  });
  const final = events.find((ev) => ev.type === "message.final");
  assert.ok(final && typeof final.data.text === "string" && final.data.text.length > 0, JSON.stringify(final));
});

test("connectRunStream: a connection dropped at a random point is resumed with Last-Event-ID, no event lost or repeated", async () => {
  for (let round = 0; round < 5; round++) {
    let connections = 0;
    const dropping = async (input, init) => {
      const res = await fetch(input, init);
      connections++;
      if (connections > 3 || !res.body) return res;
      // Cut the connection after 1 to 4 chunks, as a network would.
      const reader = res.body.getReader();
      let chunks = 1 + Math.floor(Math.random() * 4);
      const body = new ReadableStream({
        async pull(c) {
          if (chunks-- <= 0) {
            await reader.cancel();
            c.error(new TypeError("network connection lost"));
            return;
          }
          const { value, done } = await reader.read();
          if (done) c.close();
          else c.enqueue(value);
        },
      });
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const events = [];
    const last = await connectRunStream({
      baseUrl, apiKey: readerKey, fetch: dropping, reconnects: 5,
      body: { session_id: `fe-drop-${round}`, corpus_id: corpus, message: "When is the lamp lit?" },
      onEvent: (ev) => events.push(ev),
    });
    assert.equal(last.type, "done", `round ${round}`);
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), `round ${round}: every seq once, in order, over ${connections} connections`);
    assert.ok(connections > 1, "the connection was dropped");
  }
});

test("connectRunStream: a reconnect gets resume.unsupported then done; a bad key rejects with ApiError", async () => {
  const events = [];
  await connectRunStream({ baseUrl, apiKey: readerKey, lastEventId: "7", body: { session_id: "fe", corpus_id: corpus, message: "again" }, onEvent: (ev) => events.push(ev) });
  assert.deepEqual(events.map((e) => e.type), ["resume.unsupported", "done"]);
  assert.equal(events[0].data.last_event_id, "7");

  await assert.rejects(
    connectRunStream({ baseUrl, apiKey: "nrg_not_a_key", body: { session_id: "fe", corpus_id: corpus, message: "hi" }, onEvent: () => assert.fail("no event") }),
    (e) => e instanceof ApiError && e.status === 401,
  );
});

test("connectRunStream: aborting the signal ends the stream", async () => {
  const ctl = new AbortController();
  ctl.abort(new Error("user left"));
  await assert.rejects(
    connectRunStream({ baseUrl, apiKey: readerKey, signal: ctl.signal, body: { session_id: "fe", corpus_id: corpus, message: "hi" }, onEvent: () => {} }),
    /user left/,
  );
});
