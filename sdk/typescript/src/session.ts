/** Interactive exec over a WebSocket: stdin, PTY, resize and signals. */
import { asyncDispose } from "./dispose.js";
import { ConnectionError, StacyVMError, errorFor } from "./errors.js";
import type { ExecChunk, ExecResult } from "./models.js";

type Item = { chunk: ExecChunk } | { error: Error } | { end: true };

/**
 * A process attached to a WebSocket (`Sandbox.execWs`). `for await` over it
 * yields chunks (on a TTY all output is stdout); the last has stream
 * "exit" and sets `exitCode`. Closing the session kills the process. Not
 * cut by the request timeout.
 */
export class ExecSession implements AsyncIterable<ExecChunk>, AsyncDisposable {
  exitCode: number | undefined;
  timedOut = false;
  private readonly items: Item[] = [];
  private wake: (() => void) | undefined;
  private done = false;

  /** @internal use Sandbox.execWs. */
  constructor(private readonly ws: WebSocket) {
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (ev: MessageEvent) => {
      if (typeof ev.data !== "string") return;
      let obj: { stream?: string; data?: string; exit_code?: number; timed_out?: boolean; code?: string; message?: string };
      try {
        obj = JSON.parse(ev.data);
      } catch {
        return this.push({ error: new StacyVMError(`bad exec message: ${ev.data.slice(0, 120)}`) });
      }
      if (obj.stream === "error") return this.push({ error: errorFor(obj.code || "INTERNAL_ERROR", obj.message ?? "") });
      if (obj.stream === "exit") {
        this.exitCode = obj.exit_code ?? -1;
        this.timedOut = !!obj.timed_out;
        return this.push({ chunk: { stream: "exit", data: "", exit_code: this.exitCode } });
      }
      if (obj.stream === "stdout" || obj.stream === "stderr") this.push({ chunk: { stream: obj.stream, data: obj.data ?? "" } });
    });
    ws.addEventListener("close", (ev: CloseEvent) => {
      if (this.exitCode === undefined) {
        if (ev.code >= 4000 && ev.code < 5000) {
          this.push({ error: errorFor(ev.reason || "INTERNAL_ERROR", "exec session closed", { status: ev.code - 4000 }) });
        } else {
          this.push({ error: new ConnectionError(`exec session closed (${ev.code}) without an exit status`) });
        }
      }
      this.push({ end: true });
    });
  }

  /** Resolves once the socket is open; rejects if it cannot open. */
  static open(ws: WebSocket, start: Record<string, unknown>, signal?: AbortSignal): Promise<ExecSession> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        ws.close();
        reject(signal!.reason);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      const s = new ExecSession(ws);
      ws.addEventListener("open", () => {
        ws.send(JSON.stringify(start));
        resolve(s);
      }, { once: true });
      ws.addEventListener("error", () => reject(new ConnectionError("cannot open the exec WebSocket")), { once: true });
    });
  }

  private push(item: Item): void {
    if (this.done) return;
    if ("end" in item) this.done = true;
    this.items.push(item);
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ExecChunk> {
    for (;;) {
      const item = this.items.shift();
      if (!item) {
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      if ("end" in item) return;
      if ("error" in item) throw item.error;
      yield item.chunk;
      if (item.chunk.stream === "exit") return;
    }
  }

  /** Send input (keys on a TTY); bytes pass unchanged. */
  sendStdin(data: string | Uint8Array): void {
    this.ws.send(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /** End the input (Ctrl-D on a TTY). */
  closeStdin(): void {
    this.ws.send(JSON.stringify({ eof: true }));
  }

  /** Set the terminal size (TTY sessions). */
  resize(cols: number, rows: number): void {
    this.ws.send(JSON.stringify({ resize: { cols, rows } }));
  }

  /** Send a signal by name, e.g. "SIGINT". */
  signal(name: string): void {
    this.ws.send(JSON.stringify({ signal: name }));
  }

  /** Send stdin (if any), close it, and collect the output until the process exits. */
  async communicate(stdin?: string | Uint8Array): Promise<ExecResult> {
    if (stdin !== undefined && stdin.length > 0) this.sendStdin(stdin);
    this.closeStdin();
    let stdout = "";
    let stderr = "";
    for await (const ch of this) {
      if (ch.stream === "stdout") stdout += ch.data;
      else if (ch.stream === "stderr") stderr += ch.data;
    }
    return { exit_code: this.exitCode ?? -1, stdout, stderr, duration: "" };
  }

  /** Close the socket; the server kills the process if it still runs. */
  close(): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(1000);
  }

  async [asyncDispose](): Promise<void> {
    this.close();
  }
}
