/** Server-Sent Events for /events and file watches. */
import { ConnectionError } from "./errors.js";

/** One server-sent event: `type` (the `event:` field), decoded `data`, and `id`. */
export interface ServerEvent<T = unknown> {
  type: string;
  data: T;
  id: string;
}

/**
 * A stream of server-sent events: `for await (const ev of stream)`. The
 * request starts on the first iteration; it is not cut by the request
 * timeout. Stop it with the call's AbortSignal or by leaving the loop.
 */
export class EventStream<T = unknown> implements AsyncIterable<ServerEvent<T>> {
  private started = false;

  constructor(
    private readonly open: () => Promise<Response>,
    private readonly signal?: AbortSignal,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<ServerEvent<T>> {
    if (this.started) throw new Error("an EventStream can be iterated once");
    this.started = true;
    const resp = await this.open();
    if (!resp.body) throw new ConnectionError("event stream has no body");
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let type = "";
    let id = "";
    let data: string[] = [];
    try {
      for (;;) {
        let r: ReadableStreamReadResult<string>;
        try {
          r = await reader.read();
        } catch (e) {
          if (this.signal?.aborted) throw this.signal.reason;
          throw new ConnectionError(`event stream broke: ${String(e)}`, { cause: e });
        }
        if (r.value) buf += r.value;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, "");
          buf = buf.slice(nl + 1);
          if (line === "") {
            if (data.length || type) yield decode<T>(type || "message", data.join("\n"), id);
            type = "";
            data = [];
            continue;
          }
          if (line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const name = i < 0 ? line : line.slice(0, i);
          let value = i < 0 ? "" : line.slice(i + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (name === "event") type = value;
          else if (name === "data") data.push(value);
          else if (name === "id") id = value;
        }
        if (r.done) {
          if (data.length || type) yield decode<T>(type || "message", data.join("\n"), id);
          return;
        }
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
  }
}

function decode<T>(type: string, raw: string, id: string): ServerEvent<T> {
  let data: unknown = raw;
  try {
    data = raw ? JSON.parse(raw) : null;
  } catch {
    // keep the text
  }
  return { type, data: data as T, id };
}
