// Retry and error mapping against a loopback HTTP server with scripted
// answers (no StacyVM needed).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, beforeEach, describe, it } from "node:test";
import { Client, Forbidden, ProviderError, RateLimited, Timeout, Unauthorized } from "stacyvm";

type Answer = [number, Record<string, string>, unknown];

describe("transport", () => {
  let server: Server;
  let script: Answer[] = [];
  let seen: string[] = [];
  let client: Client;

  before(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on("end", () => {
        const [status, headers, body] = script.shift() ?? [200, {}, { status: "ok" }];
        if (status === 0) return; // never answer
        res.writeHead(status, { "Content-Type": "application/json", ...headers });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    client = new Client({ baseUrl: `http://127.0.0.1:${port}`, maxRetries: 2, timeout: 500 });
    client.transport.backoffMs = 5;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  beforeEach(() => {
    script = [];
    seen = [];
  });

  it("retries an idempotent GET on 503", async () => {
    const busy: Answer = [503, {}, { code: "UNAVAILABLE", message: "draining" }];
    script = [busy, busy, [200, {}, { status: "ok", version: "v", uptime: "1s" }]];
    assert.equal((await client.health()).status, "ok");
    assert.equal(seen.length, 3);
  });

  it("never retries a POST", async () => {
    script = [[503, {}, { code: "UNAVAILABLE", message: "no docker" }]];
    const e = await client.spawn().catch((x: unknown) => x);
    assert.ok(e instanceof ProviderError && e.status === 503 && e.code === "UNAVAILABLE");
    assert.deepEqual(seen, ["POST /api/v1/sandboxes"]);
  });

  it("429 carries retryAfter", async () => {
    const limited: Answer = [429, { "Retry-After": "0" }, { code: "RESOURCE_LIMIT", message: "slow down" }];
    script = [limited, limited, limited];
    const e = await client.list().catch((x: unknown) => x);
    assert.ok(e instanceof RateLimited && e.retryAfter === 0, String(e));
    assert.equal(seen.length, 3);
  });

  it("maps statuses without a JSON error body", async () => {
    script = [[401, {}, { detail: "nope" }]];
    await assert.rejects(client.health(), Unauthorized);
    script = [[403, {}, { code: "FORBIDDEN", message: "role" }]];
    await assert.rejects(client.get("sb-1"), Forbidden);
  });

  it("the request timeout throws Timeout", async () => {
    script = [[0, {}, null]];
    const e = await client.admission().catch((x: unknown) => x);
    assert.ok(e instanceof Timeout, String(e));
  });
});
