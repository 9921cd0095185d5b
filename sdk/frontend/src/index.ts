/**
 * Browser helpers for NexusRAG UIs, on the typed client of @nexusrag/sdk:
 * UiClient (the /v1/ui routes), buildQuery (their list parameters) and connectRunStream
 * (POST /v1/run, its Server-Sent Events as typed events).
 */
import {
  ApiError,
  type ClientOptions,
  createClient,
  type NexusRAGClient,
  type operations,
  type RetryOptions,
  type RunEventData,
  type Schemas,
  withRetry,
} from "@nexusrag/sdk";

import { parseSSE } from "./sse.js";

export { ApiError, parseSSE };
export type { SSEMessage } from "./sse.js";

type QueryValue = string | number | boolean | Date | null | undefined | readonly (string | number | boolean)[];

/** The parameters of a list: the common ones and any filters the route takes. */
export interface ListQuery {
  limit?: number;
  sort?: string;
  cursor?: string;
  q?: string;
  [filter: string]: QueryValue;
}

/**
 * A query string ("?limit=20&status=failed") from list parameters: empty values (undefined,
 * null, "") are left out, dates are sent as RFC 3339, arrays repeat their key, keys are
 * sorted so the same query gives the same string (and the same cache entry).
 */
export function buildQuery(query: ListQuery = {}): string {
  const params = new URLSearchParams();
  for (const key of Object.keys(query).sort()) {
    const value = query[key];
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === undefined || v === null || v === "") continue;
      params.append(key, v instanceof Date ? v.toISOString() : String(v));
    }
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

type Data<Op> = Op extends { responses: { 200: { content: { "application/json": { data?: infer D } } } } } ? D : never;
type Query<Op> = Op extends { parameters: { query?: infer Q } } ? Q : never;

/** The /v1/ui routes: what a UI needs on one call each. Errors throw ApiError. */
export class UiClient {
  readonly api: NexusRAGClient;

  constructor(opts: ClientOptions & { client?: NexusRAGClient } = {}) {
    this.api = opts.client ?? createClient(opts);
  }

  /** Who the key is, the tenant's plan, features and corpora. */
  bootstrap(): Promise<Data<operations["UIService_GetBootstrap"]>> {
    return this.unwrap(this.api.GET("/v1/ui/bootstrap"));
  }

  /** The dashboard's counters. */
  dashboardSummary(): Promise<Data<operations["UIService_GetDashboardSummary"]>> {
    return this.unwrap(this.api.GET("/v1/ui/dashboard/summary"));
  }

  /** A page of documents; pass the answer's next_cursor as cursor for the next one. */
  documents(query: Query<operations["UIService_ListDocuments"]> & ListQuery = {}): Promise<Data<operations["UIService_ListDocuments"]>> {
    return this.unwrap(this.api.GET("/v1/ui/documents", { params: { query } }));
  }

  /** A page of the tenant's activity (its audit events, redacted). */
  activity(query: Query<operations["UIService_ListActivity"]> & ListQuery = {}): Promise<Data<operations["UIService_ListActivity"]>> {
    return this.unwrap(this.api.GET("/v1/ui/activity", { params: { query } }));
  }

  /** Queues a reindex of a document. */
  reindexDocument(body: Schemas["nexusragUiV1ReindexDocumentRequest"]): Promise<Data<operations["UIService_ReindexDocument"]>> {
    return this.unwrap(this.api.POST("/v1/ui/actions/reindex-document", { body }));
  }

  private async unwrap<D>(call: Promise<{ data?: { data?: D }; error?: unknown; response: Response }>): Promise<D> {
    const { data, error, response } = await call;
    if (error !== undefined || !response.ok) {
      throw ApiError.from(response.status, error, response.headers.get("X-Request-Id") ?? undefined);
    }
    return data?.data as D;
  }
}

/** The framing's own events, beside the contract's kinds. */
export interface FramingEventData {
  heartbeat: Record<string, never>;
  "resume.unsupported": { last_event_id: string; message: string };
}

type Kinds = RunEventData & FramingEventData;

/** One event of a run, typed by its kind: switch on ev.type and ev.data follows. */
export type RunEvent = {
  [K in keyof Kinds]: { type: K; seq: number; requestId: string; id: string; data: Kinds[K]; ts?: string };
}[keyof Kinds];

export interface RunStreamOptions {
  /** Where the gateway listens, e.g. http://localhost:8000. */
  baseUrl: string;
  apiKey?: string;
  /** The run request (corpus_id, message, session_id, top_k, audio, ...). */
  body: Schemas["v1RunRequest"];
  /** Called for every event, in order. */
  onEvent: (event: RunEvent) => void;
  /** Aborts the stream, which cancels the run on the server. */
  signal?: AbortSignal;
  /** Sent as Last-Event-ID (the server answers resume.unsupported, then done). */
  lastEventId?: string;
  /** Retries of a 429 or 503 before the stream starts (see withRetry); false: none. */
  retry?: RetryOptions | false;
  /**
   * Reconnections after the connection drops mid-run (default 3; 0: none). They happen only
   * when the gateway keeps runs resumable (RUN_STREAM_RESUME): its SSE ids are then
   * `<stream id>.<seq>`, and a reconnect with Last-Event-ID continues where the stream broke,
   * with no event lost or repeated.
   */
  reconnects?: number;
  fetch?: typeof globalThis.fetch;
}

/** Whether an SSE id names a resumable stream: `<uuid>.<seq>`. */
export function isResumableId(id: string | undefined): boolean {
  return !!id && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.\d+$/i.test(id);
}

/**
 * POSTs /v1/run and calls onEvent for every Server-Sent Event until the stream ends.
 * Resolves with the last event (done, unless the stream was cut); rejects with ApiError
 * when the run is refused before it starts (401, 403, 404, 429 after the retries, ...),
 * and with the abort reason when signal aborts. When the connection drops and the stream
 * is resumable, it reconnects with Last-Event-ID (see RunStreamOptions.reconnects).
 */
export async function connectRunStream(opts: RunStreamOptions): Promise<RunEvent | undefined> {
  const base = opts.fetch ?? globalThis.fetch;
  const fetchFn = opts.retry === false ? base : withRetry(base, opts.retry);
  const url = `${opts.baseUrl.replace(/\/+$/, "")}/v1/run`;
  let lastId = opts.lastEventId;
  let last: RunEvent | undefined;
  for (let reconnects = opts.reconnects ?? 3; ; reconnects--) {
    const headers: Record<string, string> = { "Content-Type": "application/json", Accept: "text/event-stream" };
    if (opts.apiKey) headers.Authorization = `Bearer ${opts.apiKey}`;
    if (lastId !== undefined) headers["Last-Event-ID"] = lastId;
    const res = await fetchFn(url, { method: "POST", headers, body: JSON.stringify(opts.body), signal: opts.signal });
    if (!res.ok || !res.body) {
      throw ApiError.from(res.status, await bodyOf(res), res.headers.get("X-Request-Id") ?? undefined);
    }
    try {
      for await (const msg of parseSSE(res.body)) {
        const frame = JSON.parse(msg.data) as { seq: number; request_id: string; data?: unknown; ts?: string };
        const event = {
          type: msg.event,
          seq: frame.seq,
          requestId: frame.request_id,
          id: msg.id,
          data: frame.data ?? {},
          ...(frame.ts ? { ts: frame.ts } : {}),
        } as RunEvent;
        last = event;
        lastId = msg.id;
        opts.onEvent(event);
        if (event.type === "done") return event;
      }
    } catch (err) {
      if (opts.signal?.aborted || reconnects <= 0 || !isResumableId(lastId)) throw err;
      continue; // the connection dropped: resume after the last event
    }
    if (reconnects <= 0 || !isResumableId(lastId)) return last; // the server ended the stream without done
  }
}

async function bodyOf(res: Response): Promise<unknown> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    return text; // not JSON: keep the text
  }
}
