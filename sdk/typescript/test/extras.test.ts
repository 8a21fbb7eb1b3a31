import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";
import { describe, it } from "node:test";
import { BadRequest, Client, Conflict, NotFound, RateLimited, StacyVMError } from "stacyvm";
import { WebSocket as WsWebSocket } from "ws";
import { IMAGE, LABEL, URL, skipReason } from "./live.js";

// Node 18-21 have no global WebSocket (20 has it behind a flag): the SDK then
// takes one through ClientOptions.WebSocket, here the `ws` package (a dev
// dependency only), so the WebSocket test runs on every Node, never skips.
const WebSocketImpl = ((globalThis as { WebSocket?: unknown }).WebSocket ?? WsWebSocket) as unknown as typeof WebSocket;

/** A one-file ustar archive. */
function tar(name: string, content: string): Uint8Array {
  const data = new TextEncoder().encode(content);
  const h = new Uint8Array(512);
  const put = (off: number, s: string) => h.set(new TextEncoder().encode(s), off);
  put(0, name);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, data.length.toString(8).padStart(11, "0") + "\0");
  put(136, Math.floor(Date.now() / 1000).toString(8).padStart(11, "0") + "\0");
  put(148, "        ");
  put(156, "0");
  put(257, "ustar\x0000");
  let sum = 0;
  for (const b of h) sum += b;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  const body = new Uint8Array(Math.ceil(data.length / 512) * 512);
  body.set(data);
  const out = new Uint8Array(512 + body.length + 1024);
  out.set(h);
  out.set(body, 512);
  return out;
}

describe("live extras", { skip: skipReason() }, () => {
  const client = new Client({ baseUrl: URL, timeout: 10_000 });

  it("templates: CRUD and spawn", async () => {
    const name = "ts-" + randomUUID().slice(0, 8);
    const t = await client.createTemplate(name, IMAGE, { ttl: "10m", description: "sdk test", env: { FROM: "template" } });
    try {
      assert.deepEqual([t.name, t.image, t.ttl_seconds, t.version], [name, IMAGE, 600, 1]);
      await assert.rejects(client.createTemplate(name, IMAGE), Conflict);
      assert.ok((await client.templates()).some((x) => x.name === name));
      assert.equal((await client.updateTemplate(name, IMAGE, { ttl: 300, env: { FROM: "template" } })).version, 2);
      assert.equal((await client.template(name)).ttl_seconds, 300);
      {
        await using sb = await client.spawnTemplate(name, { ttl: "2m", metadata: LABEL });
        assert.equal((await sb.exec("echo $FROM")).stdout, "template\n");
      }
      await assert.rejects(client.spawnTemplate("no-such-template"), NotFound);
      await assert.rejects(client.createTemplate("", ""), BadRequest);
    } finally {
      await client.deleteTemplate(name);
    }
  });

  it("quotas", async () => {
    const owner = "ts-" + randomUUID().slice(0, 8);
    const qt = await client.setQuota(owner, { maxSandboxes: 2, maxTtl: "1h" });
    try {
      assert.deepEqual([qt.owner, qt.max_sandboxes], [owner, 2]);
      assert.equal((await client.quota(owner)).max_sandboxes, 2);
      assert.ok((await client.quotas()).some((x) => x.owner === owner));
      assert.ok((await client.quotaSummary()).total >= 1);
      const u = await client.quotaUsage(owner);
      assert.equal(u.has_quota, true);
      await assert.rejects(client.spawn({ image: IMAGE, ttl: "2h", ownerId: owner }), RateLimited);
    } finally {
      await client.deleteQuota(owner);
    }
  });

  it("identity, administration and observability", async () => {
    assert.ok((await client.whoami()).role);
    assert.ok(Array.isArray(await client.tenants()));
    assert.ok(Array.isArray(await client.apiKeys()));
    assert.ok(Array.isArray(await client.audit({ limit: 5 })));
    assert.ok("version" in (await client.diagnostics()));
    assert.ok((await client.metrics()).length > 0);
    assert.match(await client.metricsPrometheus(), /stacyvm_/);
  });

  it("events stream", async () => {
    const ctl = new AbortController();
    const events = client.events({ signal: ctl.signal });
    const it = events[Symbol.asyncIterator]();
    const first = it.next(); // opens the stream
    await new Promise((r) => setTimeout(r, 200));
    await using sb = await client.spawn({ image: IMAGE, ttl: "2m", metadata: LABEL });
    let ev = await first;
    while (!ev.done && !(ev.value.type.startsWith("sandbox.") && ev.value.data.sandbox_id === sb.id)) ev = await it.next();
    assert.equal(ev.done, false);
    ctl.abort(new Error("done"));
    await it.return?.();
  });

  it("archives, watch, preview token", async () => {
    await using sb = await client.spawn({ image: IMAGE, ttl: "5m", metadata: LABEL });
    const res = await sb.uploadArchive("/work", gzipSync(tar("proj/a.txt", "A")), { gzip: true });
    assert.deepEqual([res.status, res.files, res.bytes], ["extracted", 1, 1]);
    assert.equal(await sb.readFile("/work/proj/a.txt"), "A");
    let n = 0;
    for await (const b of await sb.downloadArchive("/work/proj")) n += b.length;
    assert.ok(n >= 1024);

    const ctl = new AbortController();
    const kinds: string[] = [];
    for await (const ev of sb.watchFiles("/work", { signal: ctl.signal })) {
      kinds.push(ev.type);
      if (ev.type === "ready") await sb.writeFile("/work/new.txt", "x");
      if (ev.type === "create" || ev.type === "modify") break;
    }
    assert.equal(kinds[0], "ready");
    const tok = await sb.previewToken(8080, { ttl: "10m" });
    assert.ok(tok.token && tok.path_url);
    await assert.rejects(
      (async () => {
        for await (const _ of sb.watchFiles("/no/such/dir")) break;
      })(),
      NotFound,
    );
  });

  it("background processes", async () => {
    await using sb = await client.spawn({ image: IMAGE, ttl: "5m", metadata: LABEL });
    const p = await sb.startProcess("cat", { mode: "argv", stdin: true });
    await sb.processStdin(p.id, "hello\n");
    await sb.processStdin(p.id, new TextEncoder().encode("bytes\n"), { eof: true });
    const lines = [];
    for await (const l of sb.processOutput(p.id, { follow: true })) lines.push(l);
    assert.equal(lines.filter((l) => l.stream === "stdout").map((l) => l.data).join(""), "hello\nbytes\n");
    assert.deepEqual(lines.at(-1), { stream: "exit", data: "", exit_code: 0 });
    assert.ok((await sb.processes()).some((x) => x.id === p.id));
    assert.equal((await sb.process(p.id)).exit_code, 0);
    const q = await sb.startProcess("sleep 30");
    await sb.signalProcess(q.id, "SIGTERM");
    let last;
    for await (const l of sb.processOutput(q.id, { follow: true })) last = l;
    assert.equal(last?.exit_code, 143);
    const t = await sb.startProcess("sh", { tty: true, cols: 80, rows: 24 });
    await sb.resizeProcess(t.id, 100, 30);
    assert.equal((await sb.killProcess(t.id)).running, false);
    await assert.rejects(sb.process("proc-999"), NotFound);
  });

  it("exec over a WebSocket", async () => {
    const wsClient = new Client({ baseUrl: URL, timeout: 10_000, WebSocket: WebSocketImpl });
    await using sb = await wsClient.spawn({ image: IMAGE, ttl: "5m", metadata: LABEL });
    {
      await using s = await sb.execWs("sh", { args: ["-c", "read x; echo got $x; echo e >&2; exit 4"], mode: "argv" });
      assert.deepEqual(await s.communicate("hello\n"), { exit_code: 4, stdout: "got hello\n", stderr: "e\n", duration: "" });
    }
    {
      await using s = await sb.execWs("/bin/sh", { tty: true, cols: 100, rows: 30 });
      s.sendStdin("stty size; tty; exit 6\n");
      let out = "";
      for await (const ch of s) out += ch.data;
      assert.equal(s.exitCode, 6);
      assert.match(out, /30 100/);
      assert.match(out, /\/dev\/pts\//);
    }
    {
      const big = "x".repeat(200_000) + "\n";
      await using s = await sb.execWs("wc", { args: ["-c"], mode: "argv" });
      assert.equal((await s.communicate(big)).stdout.trim(), String(big.length));
    }
    {
      await using s = await sb.execWs("head -c 300000 /dev/zero | tr '\\0' y");
      assert.equal((await s.communicate()).stdout.length, 300000);
    }
    {
      await using s = await sb.execWs("sleep 30");
      s.signal("SIGKILL");
      let last;
      for await (const ch of s) last = ch;
      assert.equal(last?.exit_code, 137);
    }
    await assert.rejects(wsClient.get("sb-000000000000").then((x) => x.execWs()), NotFound);
  });

  it("execWs without a WebSocket implementation is NOT_SUPPORTED", async () => {
    const g = globalThis as { WebSocket?: unknown };
    const saved = g.WebSocket;
    g.WebSocket = undefined;
    try {
      const sb = await new Client({ baseUrl: URL }).get("sb-000000000000").catch(() => undefined);
      assert.equal(sb, undefined);
      const c = new Client({ baseUrl: URL });
      await c.withSandbox({ image: IMAGE, ttl: "2m", metadata: LABEL }, async (s) => {
        await assert.rejects(s.execWs("true"), (e: unknown) => e instanceof StacyVMError && e.code === "NOT_SUPPORTED");
      });
    } finally {
      g.WebSocket = saved;
    }
  });
});
