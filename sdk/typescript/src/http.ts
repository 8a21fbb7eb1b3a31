/**
 * The SDK's transport on the platform's fetch (Node 18+ and browsers).
 *
 * Every call takes an AbortSignal. The request timeout covers the wait for
 * the response headers and, for buffered calls, the body; a streamed body
 * (exec streams, downloads) is never cut by it. Only idempotent requests are
 * retried (network failures, 429 with Retry-After, 502/503/504), with
 * exponential backoff.
 */
import { ConnectionError, StacyVMError, Timeout, codeForStatus, errorFor } from "./errors.js";
import type { CallOptions } from "./models.js";

export const VERSION = "0.1.0";

/** Options of the Client constructor. */
export interface ClientOptions {
  /** Server URL, e.g. "http://127.0.0.1:7423" ("/api/v1" is optional). */
  baseUrl?: string;
  /** Sent as X-API-Key. */
  apiKey?: string;
  /** Sent as X-Admin-API-Key. */
  adminApiKey?: string;
  /** Sent as X-User-ID (pool mode and attribution). */
  userId?: string;
  /** Milliseconds to wait for an answer (default 30000); streams are not cut by it. */
  timeout?: number;
  /** Retries of idempotent calls (default 2). */
  maxRetries?: number;
  /** A fetch implementation (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /**
   * A WebSocket constructor for execWs (default: globalThis.WebSocket, in
   * browsers and Node 22+). On older Node pass one, e.g. the `ws` package's.
   */
  WebSocket?: typeof WebSocket;
}

/** One request. */
export interface Request extends CallOptions {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  body?: BodyInit;
  accept?: string;
  /** Content-Type of a raw body (default application/octet-stream). */
  contentType?: string;
  /** Keep the body open for streaming: the timeout stops at the headers. */
  stream?: boolean;
  idempotent?: boolean;
}

const RETRY_STATUSES = new Set([429, 502, 503, 504]);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Sends requests to one server's /api/v1 root. */
export class Transport {
  readonly baseUrl: string;
  readonly timeout: number;
  readonly maxRetries: number;
  backoffMs = 250;
  private readonly headers: Record<string, string>;
  private readonly fetchImpl: typeof fetch;
  readonly webSocket: typeof WebSocket | undefined;

  constructor(opts: ClientOptions) {
    const raw = (opts.baseUrl ?? "http://127.0.0.1:7423").trim();
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new TypeError(`baseUrl must be an http(s) URL, got ${JSON.stringify(raw)}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new TypeError(`baseUrl must be an http(s) URL, got ${JSON.stringify(raw)}`);
    }
    let path = u.pathname.replace(/\/+$/, "");
    if (!path.endsWith("/api/v1")) path += "/api/v1";
    this.baseUrl = `${u.protocol}//${u.host}${path}`;
    this.timeout = opts.timeout ?? 30_000;
    this.maxRetries = Math.max(0, opts.maxRetries ?? 2);
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("no fetch available: pass options.fetch");
    this.fetchImpl = f.bind(globalThis);
    this.webSocket = opts.WebSocket ?? (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
    this.headers = { ...(opts.headers ?? {}) };
    if (opts.apiKey) this.headers["X-API-Key"] = opts.apiKey;
    if (opts.adminApiKey) this.headers["X-Admin-API-Key"] = opts.adminApiKey;
    if (opts.userId) this.headers["X-User-ID"] = opts.userId;
  }

  /** The credentials and extra headers every request carries. */
  authHeaders(): Record<string, string> {
    return { ...this.headers };
  }

  url(path: string, query?: Request["query"]): string {
    let u = this.baseUrl + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
      const s = q.toString();
      if (s) u += "?" + s;
    }
    return u;
  }

  /** Send one request; resolve with its 2xx Response or reject with the typed error. */
  async request(r: Request): Promise<Response> {
    const idempotent =
      r.idempotent ?? (["GET", "HEAD", "PUT", "DELETE"].includes(r.method) && !(r.body instanceof ReadableStream));
    const headers: Record<string, string> = { ...this.headers, Accept: r.accept ?? "application/json" };
    let body: BodyInit | undefined = r.body;
    if (r.json !== undefined) {
      body = JSON.stringify(r.json);
      headers["Content-Type"] = "application/json";
    } else if (body !== undefined) {
      headers["Content-Type"] = r.contentType ?? "application/octet-stream";
    }
    const url = this.url(r.path, r.query);
    const timeout = r.timeout ?? this.timeout;
    const attempts = 1 + (idempotent ? this.maxRetries : 0);
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= attempts - 1;
      const ctl = new AbortController();
      const onAbort = () => ctl.abort(r.signal!.reason);
      if (r.signal?.aborted) throw r.signal.reason;
      r.signal?.addEventListener("abort", onAbort, { once: true });
      let timedOut = false;
      const timer =
        timeout > 0
          ? setTimeout(() => {
              timedOut = true;
              ctl.abort(new Timeout(`${r.method} ${r.path}: no answer within ${timeout} ms`));
            }, timeout)
          : undefined;
      const release = () => {
        clearTimeout(timer);
        r.signal?.removeEventListener("abort", onAbort);
      };
      let resp: Response;
      try {
        const init: RequestInit & { duplex?: string } = { method: r.method, headers, body, signal: ctl.signal };
        if (body instanceof ReadableStream) init.duplex = "half";
        resp = await this.fetchImpl(url, init);
      } catch (e) {
        release();
        if (timedOut) throw new Timeout(`${r.method} ${r.path}: no answer within ${timeout} ms`, { cause: e });
        if (r.signal?.aborted) throw r.signal.reason;
        if (last) throw new ConnectionError(`cannot reach the server at ${this.baseUrl}: ${String(e)}`, { cause: e });
        await sleep(this.backoff(attempt), r.signal);
        continue;
      }
      if (resp.ok) {
        if (r.stream) {
          release(); // streams are not cut by the request timeout; the caller's signal still applies
          if (r.signal && resp.body) r.signal.addEventListener("abort", () => ctl.abort(r.signal!.reason), { once: true });
          return resp;
        }
        // Buffer now, under the timeout, so a stalled body cannot hang the call.
        try {
          const buf = await resp.arrayBuffer();
          release();
          const nullBody = resp.status === 204 || resp.status === 205 || resp.status === 304;
          return new Response(nullBody ? null : buf, { status: resp.status, headers: resp.headers });
        } catch (e) {
          release();
          if (timedOut) throw new Timeout(`${r.method} ${r.path}: answer not complete within ${timeout} ms`, { cause: e });
          if (r.signal?.aborted) throw r.signal.reason;
          throw new ConnectionError(`reading the answer of ${r.method} ${r.path} failed: ${String(e)}`, { cause: e });
        }
      }
      let text = "";
      try {
        text = await resp.text();
      } catch {
        text = "";
      }
      release();
      const err = this.error(resp, text);
      if (RETRY_STATUSES.has(resp.status) && idempotent && !last) {
        const ra = (err as { retryAfter?: number }).retryAfter;
        await sleep(ra !== undefined ? Math.min(ra, 30) * 1000 : this.backoff(attempt), r.signal);
        continue;
      }
      throw err;
    }
  }

  /** Send a request and decode its JSON answer. */
  async json<T>(r: Request): Promise<T> {
    const resp = await this.request(r);
    const text = await resp.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new StacyVMError(`bad JSON in response: ${text.slice(0, 120)}`, { cause: e });
    }
  }

  private backoff(attempt: number): number {
    return this.backoffMs * 2 ** attempt * (0.5 + Math.random() / 2);
  }

  private error(resp: Response, text: string): StacyVMError {
    let code = "";
    let message = "";
    let requestId = resp.headers.get("X-Request-ID") ?? "";
    try {
      const obj = JSON.parse(text) as { code?: string; message?: string; request_id?: string };
      if (obj && typeof obj === "object" && (obj.code || obj.message)) {
        code = obj.code ?? "";
        message = obj.message ?? "";
        requestId = obj.request_id ?? requestId;
      }
    } catch {
      // not JSON: keep the text
    }
    if (!code && !message) message = text.trim().slice(0, 200) || resp.statusText;
    if (!code) code = codeForStatus(resp.status);
    const ra = resp.headers.get("Retry-After");
    const retryAfter = ra !== null && ra !== "" && !Number.isNaN(Number(ra)) ? Math.max(0, Number(ra)) : undefined;
    return errorFor(code, message, { status: resp.status, requestId, retryAfter });
  }
}

/** Go duration string for seconds or a string. */
export function duration(v: string | number | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "number") {
    if (!(v >= 0)) throw new RangeError("a duration cannot be negative");
    return `${v}s`;
  }
  return v;
}
