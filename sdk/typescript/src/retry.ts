/**
 * Retries of the NexusRAG API's transient refusals, as a fetch wrapper.
 *
 * A 429 (rate limited) or 503 (a dependency down, or writes frozen during a failover) is
 * retried after the wait the server names (X-RateLimit-Retry-After-Ms, else Retry-After),
 * otherwise after an exponential backoff with jitter; a network error is retried after the
 * backoff. Attempts are bounded, and a wait longer than maxDelayMs is not taken: the
 * refusal is returned to the caller. Writes (POST, PUT, PATCH, DELETE) are retried only
 * with an Idempotency-Key, which the wrapper adds when the request has none, so that the
 * server runs a write once however often it is sent.
 */

export interface RetryOptions {
  /** Attempts in all, the first included (default 4). */
  maxAttempts?: number;
  /** The first backoff, doubled at each attempt (default 200 ms). */
  baseDelayMs?: number;
  /** The longest wait taken, from a header or the backoff (default 30 s). */
  maxDelayMs?: number;
  /** Waits ms or until signal aborts; replaceable in tests. */
  sleep?: (ms: number, signal?: AbortSignal | null) => Promise<void>;
  /** A number in [0, 1) for the jitter (default Math.random). */
  random?: () => number;
  /** Makes an Idempotency-Key (default crypto.randomUUID). */
  idempotencyKey?: () => string;
}

type Fetch = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

const retriedStatuses = new Set([429, 503]);
const writeMethods = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** Whether a method may change state, hence needs an Idempotency-Key to be retried. */
export function isWrite(method: string): boolean {
  return writeMethods.has(method.toUpperCase());
}

/**
 * The wait before attempt `attempt + 1` (attempt counts from 1): the server's, when the
 * response names one, else base * 2^(attempt-1) capped at maxDelayMs, with equal jitter
 * (between half and all of it).
 */
export function retryDelayMs(res: Response | undefined, attempt: number, opts: RetryOptions = {}): number {
  const server = res ? serverDelayMs(res.headers) : undefined;
  if (server !== undefined) return server;
  const base = opts.baseDelayMs ?? 200;
  const max = opts.maxDelayMs ?? 30_000;
  const backoff = Math.min(max, base * 2 ** (attempt - 1));
  return Math.round(backoff / 2 + (backoff / 2) * (opts.random ?? Math.random)());
}

/** The wait a response names: X-RateLimit-Retry-After-Ms, else Retry-After (seconds or a date). */
export function serverDelayMs(headers: Headers): number | undefined {
  const ms = headers.get("X-RateLimit-Retry-After-Ms");
  if (ms !== null && /^\d+$/.test(ms.trim())) return Number(ms);
  const after = headers.get("Retry-After")?.trim();
  if (!after) return undefined;
  if (/^\d+$/.test(after)) return Number(after) * 1000;
  const at = Date.parse(after);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function defaultSleep(ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Wraps fetchFn with the retries described above. */
export function withRetry(fetchFn: Fetch, opts: RetryOptions = {}): Fetch {
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 4);
  const maxDelay = opts.maxDelayMs ?? 30_000;
  const sleep = opts.sleep ?? defaultSleep;
  const newKey = opts.idempotencyKey ?? (() => crypto.randomUUID());
  return async (input, init) => {
    const request = new Request(input, init);
    if (isWrite(request.method) && !request.headers.has("Idempotency-Key")) {
      request.headers.set("Idempotency-Key", newKey());
    }
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await fetchFn(request.clone());
      } catch (err) {
        if (request.signal.aborted || attempt >= maxAttempts) throw err;
        await sleep(retryDelayMs(undefined, attempt, opts), request.signal);
        continue;
      }
      if (!retriedStatuses.has(res.status) || attempt >= maxAttempts) return res;
      const delay = retryDelayMs(res, attempt, opts);
      if (delay > maxDelay) return res;
      await res.body?.cancel();
      await sleep(delay, request.signal);
    }
  };
}
