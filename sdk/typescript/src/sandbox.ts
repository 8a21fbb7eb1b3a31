/** The Sandbox handle: exec, files, lifecycle of one sandbox. */
import { asyncDispose } from "./dispose.js";
import { ConnectionError, NotFound, StacyVMError, errorFor } from "./errors.js";
import { Transport, duration } from "./http.js";
import type {
  ArchiveResult,
  CallOptions,
  ExecChunk,
  ExecOptions,
  ExecResult,
  FileInfo,
  PreviewToken,
  Process,
  ProcessOptions,
  ProcessOutputLine,
  SandboxInfo,
  Stats,
} from "./models.js";
import { ExecSession } from "./session.js";
import { EventStream } from "./sse.js";

// The server's default exec timeout is 5 minutes: a sync exec without an
// explicit timeout waits this long (plus slack) for its answer.
const SYNC_EXEC_WAIT_MS = 330_000;

export function seconds(v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "number") return v;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001 };
  let total = 0;
  let matched = "";
  for (const m of v.matchAll(re)) {
    total += Number(m[1]) * units[m[2]!]!;
    matched += m[0];
  }
  return matched === v && v !== "" ? total : undefined;
}

export function execBody(command: string, o: ExecOptions, stream: boolean): Record<string, unknown> {
  const b: Record<string, unknown> = { command };
  if (o.args?.length) b.args = o.args;
  if (o.mode) b.mode = o.mode;
  if (o.env && Object.keys(o.env).length) b.env = o.env;
  if (o.workdir) b.workdir = o.workdir;
  if (o.timeout !== undefined) b.timeout = duration(o.timeout);
  if (stream) b.stream = true;
  return b;
}

/**
 * A streamed exec: `for await (const ch of sb.execStream("cmd"))`. The
 * request starts on the first iteration; chunks arrive in order as the
 * command produces them, the last one with stream "exit". `exitCode` is set
 * after it. Not cut by the client's request timeout; pass `signal` to stop.
 */
export class ExecStream implements AsyncIterable<ExecChunk> {
  exitCode: number | undefined;
  private started = false;

  constructor(
    private readonly open: () => Promise<Response>,
    private readonly signal?: AbortSignal,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<ExecChunk> {
    if (this.started) throw new StacyVMError("an ExecStream can be iterated once");
    this.started = true;
    const resp = await this.open();
    if (!resp.body) throw new ConnectionError("exec stream has no body");
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      for (;;) {
        let r: ReadableStreamReadResult<string>;
        try {
          r = await reader.read();
        } catch (e) {
          if (this.signal?.aborted) throw this.signal.reason;
          throw new ConnectionError(`exec stream broke: ${String(e)}`, { cause: e });
        }
        if (r.value) buf += r.value;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const ch = this.parse(line);
          yield ch;
          if (ch.stream === "exit") return;
        }
        if (r.done) {
          if (buf.trim()) {
            const ch = this.parse(buf.trim());
            buf = "";
            yield ch;
            if (ch.stream === "exit") return;
          }
          throw new ConnectionError("exec stream ended without an exit status");
        }
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
  }

  private parse(line: string): ExecChunk {
    let obj: { stream?: string; data?: string; exit_code?: number; code?: string };
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new StacyVMError(`bad exec stream line: ${line.slice(0, 120)}`, { cause: e });
    }
    const stream = obj.stream || "stdout";
    if (stream === "error") throw errorFor(obj.code || "INTERNAL_ERROR", obj.data ?? "");
    if (stream === "exit") {
      this.exitCode = obj.exit_code ?? -1;
      return { stream: "exit", data: "", exit_code: this.exitCode };
    }
    return { stream: stream as "stdout" | "stderr", data: obj.data ?? "" };
  }

  /** Consume the stream and collect it: stdout, stderr and the exit code. */
  async collect(): Promise<ExecResult> {
    let stdout = "";
    let stderr = "";
    for await (const ch of this) {
      if (ch.stream === "stdout") stdout += ch.data;
      else if (ch.stream === "stderr") stderr += ch.data;
    }
    return { exit_code: this.exitCode ?? -1, stdout, stderr, duration: "" };
  }
}

/** A handle on one sandbox. `await using sb = ...` destroys it at scope end. */
export class Sandbox implements AsyncDisposable {
  info: SandboxInfo;

  constructor(
    private readonly t: Transport,
    info: SandboxInfo,
  ) {
    this.info = info;
  }

  get id(): string {
    return this.info.id;
  }
  get state(): string {
    return this.info.state;
  }
  get image(): string {
    return this.info.image;
  }
  get provider(): string {
    return this.info.provider;
  }
  get expiresAt(): Date {
    return new Date(this.info.expires_at);
  }
  get metadata(): Record<string, string> {
    return this.info.metadata ?? {};
  }

  private path(suffix = ""): string {
    return `/sandboxes/${encodeURIComponent(this.id)}${suffix}`;
  }

  /** Destroy the sandbox, ignoring NotFound (for `await using`). */
  async [asyncDispose](): Promise<void> {
    try {
      await this.destroy();
    } catch (e) {
      if (!(e instanceof NotFound)) throw e;
    }
  }

  /** Reload the sandbox's fields. */
  async refresh(o: CallOptions = {}): Promise<Sandbox> {
    this.info = await this.t.json<SandboxInfo>({ method: "GET", path: this.path(), ...o });
    return this;
  }

  /** Set the expiry to now + ttl ("1h" or seconds); capped by the server's max TTL. */
  async extendTtl(ttl: string | number, o: CallOptions = {}): Promise<Sandbox> {
    this.info = await this.t.json<SandboxInfo>({ method: "POST", path: this.path("/extend"), json: { ttl: duration(ttl) }, ...o });
    return this;
  }

  /** Destroy the sandbox; a second call throws NotFound. */
  async destroy(o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "DELETE", path: this.path(), ...o });
    this.info = { ...this.info, state: "destroyed" };
  }

  /** The sandbox's last log lines. */
  async logs(lines?: number, o: CallOptions = {}): Promise<string[]> {
    return (await this.t.json<string[]>({ method: "GET", path: this.path("/logs"), query: { lines }, ...o })) ?? [];
  }

  /** Current CPU and memory use. */
  async stats(o: CallOptions = {}): Promise<Stats> {
    return this.t.json<Stats>({ method: "GET", path: this.path("/stats"), ...o });
  }

  /**
   * The URL at which the sandbox's port is served: http://PORT-ID.DOMAIN.
   * Throws StacyVMError code NOT_SUPPORTED when the server gave the sandbox no
   * preview domain (previews not configured).
   */
  getPreviewUrl(port: number): string {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port must be 1..65535, got ${port}`);
    if (!this.info.preview_domain) {
      throw new StacyVMError("the server reports no preview domain for this sandbox (previews not configured)", {
        code: "NOT_SUPPORTED",
      });
    }
    return `http://${port}-${this.id}.${this.info.preview_domain}`;
  }

  /**
   * Run a command and wait for it; a non-zero exit code is a result, a timeout throws Timeout.
   * `timeout` is the command's (the server kills it); the HTTP wait is sized from it.
   */
  async exec(command: string, o: ExecOptions & { signal?: AbortSignal } = {}): Promise<ExecResult> {
    const secs = seconds(o.timeout);
    const wait = Math.max(this.t.timeout, secs !== undefined ? secs * 1000 + 30_000 : SYNC_EXEC_WAIT_MS);
    return this.t.json<ExecResult>({
      method: "POST",
      path: this.path("/exec"),
      json: execBody(command, o, false),
      signal: o.signal,
      timeout: wait,
    });
  }

  /** Run a command and stream its output: `for await (const ch of sb.execStream("cmd"))`. */
  execStream(command: string, o: ExecOptions & { signal?: AbortSignal } = {}): ExecStream {
    const body = execBody(command, o, true);
    return new ExecStream(
      () =>
        this.t.request({
          method: "POST",
          path: this.path("/exec"),
          json: body,
          accept: "application/x-ndjson",
          stream: true,
          signal: o.signal,
        }),
      o.signal,
    );
  }

  /** Write content to path (parents created); bytes that are not UTF-8 go base64. */
  async writeFile(path: string, content: string | Uint8Array, opts: { mode?: string } & CallOptions = {}): Promise<void> {
    const body: Record<string, unknown> = { path };
    if (typeof content === "string") body.content = content;
    else {
      try {
        body.content = new TextDecoder("utf-8", { fatal: true }).decode(content);
      } catch {
        body.content = toBase64(content);
        body.encoding = "base64";
      }
    }
    if (opts.mode !== undefined) body.mode = opts.mode;
    await this.t.json({ method: "POST", path: this.path("/files"), json: body, signal: opts.signal, timeout: opts.timeout });
  }

  /** The file's content as text (UTF-8). */
  async readFile(path: string, o: CallOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.readBytes(path, o));
  }

  /** The file's content as bytes. */
  async readBytes(path: string, o: CallOptions = {}): Promise<Uint8Array> {
    const resp = await this.t.request({ method: "GET", path: this.path("/files"), query: { path }, accept: "application/octet-stream", ...o });
    return new Uint8Array(await resp.arrayBuffer());
  }

  /** Stream data of any size to path (PUT files/raw); returns the bytes written. */
  async upload(path: string, data: Uint8Array | Blob | ReadableStream<Uint8Array> | string, o: CallOptions = {}): Promise<number> {
    const body: BodyInit = typeof data === "string" ? new TextEncoder().encode(data) : (data as BodyInit);
    const res = await this.t.json<{ size?: number }>({
      method: "PUT",
      path: this.path("/files/raw"),
      query: { path },
      body,
      timeout: o.timeout ?? Math.max(this.t.timeout, 300_000),
      signal: o.signal,
    });
    return res?.size ?? 0;
  }

  /** The file at path as a byte stream of any size (not cut by the request timeout). */
  async download(path: string, o: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const resp = await this.t.request({
      method: "GET",
      path: this.path("/files"),
      query: { path },
      accept: "application/octet-stream",
      stream: true,
      ...o,
    });
    if (!resp.body) throw new ConnectionError("download has no body");
    return resp.body;
  }

  /** The entries of the directory at path. */
  async listFiles(path = "/", o: CallOptions = {}): Promise<FileInfo[]> {
    return (await this.t.json<FileInfo[]>({ method: "GET", path: this.path("/files/list"), query: { path }, ...o })) ?? [];
  }

  /** Describe the file at path. */
  async statFile(path: string, o: CallOptions = {}): Promise<FileInfo> {
    return this.t.json<FileInfo>({ method: "GET", path: this.path("/files/stat"), query: { path }, ...o });
  }

  /** Absolute paths matching pattern (`**` recurses). */
  async globFiles(pattern: string, o: CallOptions = {}): Promise<string[]> {
    return (await this.t.json<string[]>({ method: "GET", path: this.path("/files/glob"), query: { pattern }, ...o })) ?? [];
  }

  /** Delete path; recursive removes a directory tree. */
  async deleteFile(path: string, opts: { recursive?: boolean } & CallOptions = {}): Promise<void> {
    const query = { path, recursive: opts.recursive ? true : undefined };
    await this.t.json({ method: "DELETE", path: this.path("/files"), query, signal: opts.signal, timeout: opts.timeout });
  }

  /** Rename oldPath to newPath. */
  async moveFile(oldPath: string, newPath: string, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "POST", path: this.path("/files/move"), json: { old_path: oldPath, new_path: newPath }, ...o });
  }

  /** The directory at path as a tar stream (gzip: .tar.gz); not cut by the request timeout. */
  async downloadArchive(path: string, opts: { gzip?: boolean } & CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const resp = await this.t.request({
      method: "GET",
      path: this.path("/files/archive"),
      query: { path, gzip: opts.gzip ? true : undefined },
      accept: opts.gzip ? "application/gzip" : "application/x-tar",
      stream: true,
      signal: opts.signal,
      timeout: opts.timeout,
    });
    if (!resp.body) throw new ConnectionError("archive download has no body");
    return resp.body;
  }

  /** Unpack a tar (gzip: .tar.gz) into the directory at path; resolves with the server's summary. */
  async uploadArchive(
    path: string,
    data: Uint8Array | Blob | ReadableStream<Uint8Array>,
    opts: { gzip?: boolean } & CallOptions = {},
  ): Promise<ArchiveResult> {
    return this.t.json<ArchiveResult>({
      method: "PUT",
      path: this.path("/files/archive"),
      query: { path, gzip: opts.gzip ? true : undefined },
      body: data as BodyInit,
      contentType: opts.gzip ? "application/gzip" : "application/x-tar",
      timeout: opts.timeout ?? Math.max(this.t.timeout, 300_000),
      signal: opts.signal,
    });
  }

  /** Watch path for changes (SSE): "ready" first, then create/modify/delete/overflow events. */
  watchFiles(path: string, opts: { recursive?: boolean; signal?: AbortSignal } = {}): EventStream<Record<string, unknown>> {
    return new EventStream(
      () =>
        this.t.request({
          method: "GET",
          path: this.path("/files/watch"),
          query: { path, recursive: opts.recursive === false ? false : undefined },
          accept: "text/event-stream",
          stream: true,
          signal: opts.signal,
        }),
      opts.signal,
    );
  }

  /**
   * Start an interactive process over a WebSocket (stdin, PTY, resize,
   * signals). Needs a WebSocket implementation: globalThis.WebSocket
   * (browsers, Node 22+) or ClientOptions.WebSocket; without one it throws
   * StacyVMError code NOT_SUPPORTED.
   */
  async execWs(
    command = "/bin/sh",
    opts: ExecOptions & { tty?: boolean; cols?: number; rows?: number; signal?: AbortSignal } = {},
  ): Promise<ExecSession> {
    const WS = this.t.webSocket;
    if (!WS) {
      throw new StacyVMError("no WebSocket implementation: use Node 22+ or a browser, or pass ClientOptions.WebSocket", {
        code: "NOT_SUPPORTED",
      });
    }
    await this.refresh({ signal: opts.signal }); // typed errors (NotFound, ...) before the upgrade
    const start: Record<string, unknown> = execBody(command, opts, false);
    if (opts.tty) start.tty = true;
    if (opts.cols !== undefined) start.cols = opts.cols;
    if (opts.rows !== undefined) start.rows = opts.rows;
    const url = this.t.url(this.path("/exec/ws")).replace(/^http/, "ws");
    const headers = this.t.authHeaders();
    // Browsers cannot set headers; Node's (undici) and the ws package take them as options.
    const ws = Object.keys(headers).length ? new (WS as unknown as new (u: string, o: unknown) => WebSocket)(url, { headers }) : new WS(url);
    return ExecSession.open(ws, start, opts.signal);
  }

  /** Mint a token for the preview of a sandbox port: {token, expires_at, url?, path_url}. */
  async previewToken(port: number, opts: { ttl?: string | number } & CallOptions = {}): Promise<PreviewToken> {
    const json = opts.ttl === undefined ? {} : { ttl: duration(opts.ttl) };
    return this.t.json<PreviewToken>({ method: "POST", path: this.path(`/preview/${port}/token`), json, signal: opts.signal, timeout: opts.timeout });
  }

  /** Start a background process that outlives this call; resolves with its Process (`id`). */
  async startProcess(command: string, opts: ProcessOptions & CallOptions = {}): Promise<Process> {
    const json: Record<string, unknown> = execBody(command, opts, false);
    if (opts.tty) json.tty = true;
    if (opts.cols !== undefined) json.cols = opts.cols;
    if (opts.rows !== undefined) json.rows = opts.rows;
    if (opts.stdin) json.stdin = true;
    if (opts.outputLimit !== undefined) json.output_limit = opts.outputLimit;
    return this.t.json<Process>({ method: "POST", path: this.path("/processes"), json, signal: opts.signal });
  }

  /** Background processes, oldest first. */
  async processes(o: CallOptions = {}): Promise<Process[]> {
    return (await this.t.json<Process[]>({ method: "GET", path: this.path("/processes"), ...o })) ?? [];
  }

  /** A background process's status and exit code. */
  async process(processId: string, o: CallOptions = {}): Promise<Process> {
    return this.t.json<Process>({ method: "GET", path: this.path(`/processes/${encodeURIComponent(processId)}`), ...o });
  }

  /**
   * A background process's output from a byte offset, as NDJSON lines:
   * `for await (const line of sb.processOutput(id, { follow: true }))`.
   */
  async *processOutput(
    processId: string,
    opts: { offset?: number; follow?: boolean; signal?: AbortSignal } = {},
  ): AsyncGenerator<ProcessOutputLine> {
    const resp = await this.t.request({
      method: "GET",
      path: this.path(`/processes/${encodeURIComponent(processId)}/output`),
      query: { offset: opts.offset || undefined, follow: opts.follow ? true : undefined },
      accept: "application/x-ndjson",
      stream: true,
      signal: opts.signal,
    });
    if (!resp.body) throw new ConnectionError("process output has no body");
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      for (;;) {
        const r = await reader.read();
        if (r.value) buf += r.value;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const obj = JSON.parse(line) as ProcessOutputLine & { code?: string };
          if (obj.stream === "error") throw errorFor(obj.code || "INTERNAL_ERROR", obj.data ?? "");
          yield obj;
        }
        if (r.done) return;
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
  }

  /** Send text or bytes to the process's stdin (started with stdin or tty); eof closes it. */
  async processStdin(processId: string, data: string | Uint8Array, opts: { eof?: boolean } & CallOptions = {}): Promise<void> {
    const path = this.path(`/processes/${encodeURIComponent(processId)}/stdin`);
    if (typeof data === "string") {
      await this.t.json({ method: "POST", path, json: opts.eof ? { data, eof: true } : { data }, signal: opts.signal, timeout: opts.timeout });
    } else {
      await this.t.json({ method: "POST", path, query: { eof: opts.eof ? true : undefined }, body: data as BodyInit, signal: opts.signal, timeout: opts.timeout });
    }
  }

  /** Send a signal ("SIGINT", "SIGTERM", ...) to the process's group. */
  async signalProcess(processId: string, signal: string, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "POST", path: this.path(`/processes/${encodeURIComponent(processId)}/signal`), json: { signal }, ...o });
  }

  /** Resize a TTY process's terminal. */
  async resizeProcess(processId: string, cols: number, rows: number, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "POST", path: this.path(`/processes/${encodeURIComponent(processId)}/resize`), json: { cols, rows }, ...o });
  }

  /** Kill the process; resolves with its final state. Its output stays readable. */
  async killProcess(processId: string, o: CallOptions = {}): Promise<Process> {
    return this.t.json<Process>({ method: "DELETE", path: this.path(`/processes/${encodeURIComponent(processId)}`), ...o });
  }

  /** Set path's permission bits (octal digits, e.g. "0755"). */
  async chmodFile(path: string, mode: string, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "POST", path: this.path("/files/chmod"), json: { path, mode }, ...o });
  }
}

function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}
