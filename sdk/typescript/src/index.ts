/**
 * The NexusRAG REST API as a typed fetch client: the paths, operations and schemas are
 * generated from the gateway's OpenAPI document (schema.d.ts), the client is openapi-fetch.
 *
 *   const api = createClient({ apiKey: process.env.NEXUSRAG_API_KEY, basePath: "http://localhost:8000" });
 *   const { data, error } = await api.GET("/v1/auth/whoami");
 */
import createFetchClient, { type Client } from "openapi-fetch";

import { type RetryOptions, withRetry } from "./retry.js";
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };
export { VERSION } from "./version.js";
export * from "./retry.js";
export * from "./events.js";

/** Every named schema of the API ("v1Corpus", "ErrorEnvelope", ...). */
export type Schemas = components["schemas"];

/** The error envelope every /v1 error answers in (429 and 402 excepted: see RateLimitedError). */
export type ErrorEnvelope = Schemas["ErrorEnvelope"];

export interface ClientOptions {
  /** An API key: sent as Authorization: Bearer <key>. */
  apiKey?: string;
  /** Where the gateway listens (default http://localhost:8000). */
  basePath?: string;
  /** Retries of 429 and 503 (see withRetry); false turns them off. */
  retry?: RetryOptions | false;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

export type NexusRAGClient = Client<paths>;

/** A typed client of every route: api.GET("/v1/corpora"), api.POST("/v1/documents/text", { body }). */
export function createClient(opts: ClientOptions = {}): NexusRAGClient {
  const base = opts.fetch ?? globalThis.fetch;
  const fetchFn = opts.retry === false ? base : withRetry(base, opts.retry);
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.apiKey) headers.Authorization = `Bearer ${opts.apiKey}`;
  return createFetchClient<paths>({
    baseUrl: (opts.basePath ?? "http://localhost:8000").replace(/\/+$/, ""),
    fetch: (request: Request) => fetchFn(request),
    headers,
  });
}

/** An answer of the API that is not a success, with its stable code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly requestId?: string,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = "ApiError";
  }

  /** Reads either error shape: {"error": {...}} (the envelope) or {"detail": {...}} (429, 402). */
  static from(status: number, body: unknown, requestId?: string): ApiError {
    const b = (body ?? {}) as { error?: Record<string, unknown>; detail?: Record<string, unknown> };
    const e = b.error ?? b.detail;
    if (e && typeof e === "object") {
      const { code, message, details, ...rest } = e as { code?: string; message?: string; details?: Record<string, unknown> };
      return new ApiError(status, String(code ?? "UNKNOWN"), String(message ?? ""), details ?? rest, requestId);
    }
    return new ApiError(status, "UNKNOWN", typeof body === "string" ? body : JSON.stringify(body), {}, requestId);
  }
}
