// The NexusRAG console: a small single-page app over the public API only. The API key is
// kept in sessionStorage (this tab, this session), never elsewhere.

const KEY = "nexusrag.apiKey";
const $ = (sel, root = document) => root.querySelector(sel);

// el builds an element: el("td", {class: "x"}, "text", child...).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== undefined) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

// api calls the platform; an error answer throws its message and code.
async function api(method, path, body, headers = {}) {
  const h = { Authorization: "Bearer " + sessionStorage.getItem(KEY), ...headers };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers: h, body: payload });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = json.error || (json.detail ?? {});
    const err = new Error(e.message || res.statusText);
    err.code = e.code;
    err.status = res.status;
    throw err;
  }
  return json.data;
}

let boot = null; // GET /v1/ui/bootstrap
let poller = null;

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    boot = await api("GET", "/v1/ui/bootstrap");
  } catch (e) {
    sessionStorage.removeItem(KEY);
    throw e;
  }
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  $("#who").textContent = `${boot.tenant_id} · ${boot.role} · ${boot.plan_id}`;
  const admin = boot.role === "admin";
  for (const b of document.querySelectorAll("nav [data-admin]")) b.hidden = !admin;
  show("documents");
}

function signOut() {
  sessionStorage.removeItem(KEY);
  location.reload();
}

const views = { documents, corpora, chat, activity, ops };

function show(name) {
  clearInterval(poller);
  for (const b of document.querySelectorAll("nav [data-view]")) {
    if (b.dataset.view === name) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  const view = $("#view");
  view.replaceChildren();
  views[name](view).catch((e) => view.append(el("p", { class: "error", role: "alert" }, e.message)));
}

function corpusSelect(id) {
  return el("select", { id, name: "corpus_id" }, (boot.corpora || []).map((c) => el("option", { value: c.corpus_id }, c.name || c.corpus_id)));
}

async function documents(view) {
  const error = el("p", { class: "error", role: "alert" });
  const table = el("table", {}, el("thead", {}, el("tr", {}, ["Document", "File", "Status", "Chunks", "Created", ""].map((h) => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  table.append(body);
  const facets = el("p", { class: "facets" });
  const form = el("form", { class: "inline", id: "upload-form" },
    el("div", {}, el("label", { for: "upload-corpus" }, "Corpus"), corpusSelect("upload-corpus")),
    el("div", {}, el("label", { for: "upload-file" }, "Text or Markdown file"), el("input", { id: "upload-file", type: "file", accept: ".txt,.md,text/plain,text/markdown", required: true })),
    el("button", { type: "submit" }, "Upload"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const fd = new FormData();
    fd.append("corpus_id", $("#upload-corpus").value);
    fd.append("file", $("#upload-file").files[0]);
    try {
      await api("POST", "/v1/documents", fd);
      form.reset();
      await refresh();
    } catch (e) {
      error.textContent = e.message;
    }
  });
  view.append(el("h2", {}, "Documents"), (boot.corpora || []).length ? form : el("p", { class: "hint" }, "Create a corpus first (Corpora)."), error, facets, table);

  async function refresh() {
    const data = await api("GET", "/v1/ui/documents?limit=100&sort=-created_at");
    facets.textContent = (data.facets.status || []).map((f) => `${f.value}: ${f.count}`).join(" · ");
    body.replaceChildren(...data.items.map((d) => el("tr", { "data-document": d.document_id },
      el("td", {}, d.document_id),
      el("td", {}, d.filename),
      el("td", { class: "status status-" + d.status }, d.status + (d.failure_reason ? ` (${d.failure_reason})` : "")),
      el("td", {}, d.chunk_count ?? 0),
      el("td", {}, new Date(d.created_at).toLocaleString()),
      el("td", {},
        el("button", { type: "button", onclick: () => act(() => api("POST", "/v1/ui/actions/reindex-document", { document_id: d.document_id })) }, "Reindex"), " ",
        el("button", { type: "button", onclick: () => confirm(`Delete ${d.document_id}?`) && act(() => api("DELETE", "/v1/documents/" + encodeURIComponent(d.document_id))) }, "Delete")))));
    return data.items.some((d) => d.status === "queued" || d.status === "processing");
  }
  async function act(fn) {
    error.textContent = "";
    try {
      await fn();
      await refresh();
    } catch (e) {
      error.textContent = e.message;
    }
  }
  await refresh();
  // Live status: poll while something is on its way.
  poller = setInterval(() => refresh().catch((e) => (error.textContent = e.message)), 1000);
}

async function corpora(view) {
  boot = await api("GET", "/v1/ui/bootstrap");
  const error = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "inline" },
    el("div", {}, el("label", { for: "corpus-id" }, "Corpus id"), el("input", { id: "corpus-id", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.-]*" })),
    el("div", {}, el("label", { for: "corpus-name" }, "Name"), el("input", { id: "corpus-name" })),
    el("button", { type: "submit" }, "Create"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("PATCH", "/v1/corpora/" + encodeURIComponent($("#corpus-id").value), { allow_missing: true, name: $("#corpus-name").value || undefined });
      show("corpora");
    } catch (e) {
      error.textContent = e.message;
    }
  });
  view.append(el("h2", {}, "Corpora"), form, error,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Corpus"), el("th", { scope: "col" }, "Name"), el("th", { scope: "col" }, "Provider"))),
      el("tbody", {}, (boot.corpora || []).map((c) => el("tr", {}, el("td", {}, c.corpus_id), el("td", {}, c.name), el("td", {}, c.provider))))));
}

// readEvents parses a Server-Sent Events body and calls on(type, data) per event.
async function readEvents(res, on) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) on(type, JSON.parse(data).data || {});
    }
  }
}

async function chat(view) {
  const answer = el("div", { class: "answer", id: "answer", "aria-live": "polite", "aria-label": "Answer" });
  const cites = el("ul", { class: "citations", id: "citations", "aria-label": "Citations" });
  const error = el("p", { class: "error", role: "alert" });
  const audio = el("div");
  const session = "console-" + Math.random().toString(36).slice(2);
  const form = el("form", { id: "chat-form" },
    el("label", { for: "chat-corpus" }, "Corpus"), corpusSelect("chat-corpus"),
    el("label", { for: "chat-message" }, "Question"), el("textarea", { id: "chat-message", rows: 3, cols: 60, required: true }),
    el("label", {}, el("input", { type: "checkbox", id: "chat-audio" }), " Speak the answer"),
    el("p", {}, el("button", { type: "submit" }, "Ask")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    answer.textContent = "";
    cites.replaceChildren();
    audio.replaceChildren();
    error.textContent = "";
    const res = await fetch("/v1/run", {
      method: "POST",
      headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY), "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ session_id: session, corpus_id: $("#chat-corpus").value, message: $("#chat-message").value, audio: $("#chat-audio").checked }),
    });
    if (!res.ok) {
      const j = await res.json().catch(() => ({}));
      error.textContent = (j.error && j.error.message) || res.statusText;
      return;
    }
    await readEvents(res, (type, data) => {
      if (type === "token.delta") answer.textContent += data.text;
      else if (type === "message.final") {
        answer.textContent = data.text;
        cites.replaceChildren(...(data.citations || []).map((c) => el("li", { class: "citation" }, `[${c.marker}] ${c.document_id}`)));
      } else if (type === "audio.ready") audio.replaceChildren(el("audio", { controls: true, src: data.audio_url }));
      else if (type === "audio.error") audio.replaceChildren(el("p", { class: "hint" }, "No audio: " + data.message));
      else if (type === "error") error.textContent = data.message;
    });
  });
  view.append(el("h2", {}, "Chat"), (boot.corpora || []).length ? form : el("p", { class: "hint" }, "Create a corpus first (Corpora)."), error, answer, cites, audio);
}

async function activity(view) {
  const body = el("tbody");
  const more = el("button", { type: "button", hidden: true }, "More");
  let cursor = "";
  async function load() {
    const data = await api("GET", "/v1/ui/activity?limit=25" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    body.append(...data.items.map((e) => el("tr", {}, el("td", {}, new Date(e.created_at).toLocaleString()), el("td", {}, e.event_type),
      el("td", {}, e.outcome), el("td", {}, `${e.actor_type} ${e.actor_id}`), el("td", {}, `${e.resource_type} ${e.resource_id}`))));
    cursor = data.page.next_cursor;
    more.hidden = !data.page.has_more;
  }
  more.addEventListener("click", () => load());
  view.append(el("h2", {}, "Activity"),
    el("table", {}, el("thead", {}, el("tr", {}, ["When", "Event", "Outcome", "Actor", "Resource"].map((h) => el("th", { scope: "col" }, h)))), body), more);
  await load();
}

async function ops(view) {
  const [health, slo] = await Promise.all([api("GET", "/v1/ops/health"), api("GET", "/v1/ops/slo")]);
  const kv = (pairs) => el("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const comps = { ...health.dependencies, ...health.services, worker: health.worker };
  view.append(el("h2", {}, "Ops"),
    el("h3", {}, "Health: " + health.status),
    kv(Object.entries(comps).map(([k, c]) => [k, c.status + (c.error ? " — " + c.error : "")])),
    kv([["queue depth", health.queue_depth ?? "unknown"], ["worker heartbeat age (s)", health.worker_heartbeat_age_s?.toFixed?.(1) ?? "none"]]),
    el("h3", {}, `SLO (${slo.window}): ${slo.status}`),
    kv([["availability", slo.availability + " %"], ["requests", slo.requests], ["error budget left", slo.error_budget.remaining_pct + " %"],
      ["burn rate (5 min)", slo.error_budget.burn_rate_5m], ...Object.entries(slo.p95).map(([g, v]) => ["p95 " + g + " (ms)", v])]),
    (slo.reasons || []).length ? el("ul", {}, slo.reasons.map((r) => el("li", {}, r))) : "");
}

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#signin-error").textContent = "";
    try {
      await signIn($("#apikey").value.trim());
    } catch (e) {
      $("#signin-error").textContent = e.status === 401 ? "That key is not valid (or revoked)." : e.message;
    }
  });
  for (const b of document.querySelectorAll("nav [data-view]")) b.addEventListener("click", () => show(b.dataset.view));
  $("#signout").addEventListener("click", signOut);
  const key = sessionStorage.getItem(KEY);
  if (key) signIn(key).catch(() => {});
});
