import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  BadRequest,
  Client,
  ConnectionError,
  NotFound,
  Sandbox,
  SandboxNotFound,
  StacyVMError,
  Timeout,
  type ExecChunk,
} from "stacyvm";
import { IMAGE, LABEL, URL, skipReason } from "./live.js";

const skip = skipReason();

describe("live client", { skip }, () => {
  let client: Client;
  let sb: Sandbox;

  before(async () => {
    client = new Client({ baseUrl: URL, timeout: 10_000 });
    sb = await client.spawn({ image: IMAGE, ttl: "10m", metadata: LABEL });
  });
  after(async () => {
    await sb?.[Symbol.asyncDispose]();
  });

  it("spawns, gets, lists, extends and destroys; await using cleans up", async () => {
    let id = "";
    {
      await using s = await client.spawn({ image: IMAGE, ttl: 120, metadata: { ...LABEL, case: "using" } });
      id = s.id;
      assert.match(s.id, /^sb-[0-9a-f]{12,}$/);
      assert.equal(s.state, "running");
      assert.equal(s.metadata.case, "using");
      assert.equal((await client.get(s.id)).id, s.id);
      assert.ok((await client.list()).some((x) => x.id === s.id));
      const before = s.expiresAt.getTime();
      await s.extendTtl("1h");
      assert.ok(s.expiresAt.getTime() > before);
      assert.equal((await s.refresh()).state, "running");
    }
    await assert.rejects(client.get(id), SandboxNotFound);
    const gone = await client.get(id).catch((e: unknown) => e);
    assert.ok(gone instanceof NotFound && gone.status === 404 && gone.code === "NOT_FOUND");
  });

  it("withSandbox destroys the sandbox even when fn throws", async () => {
    let id = "";
    await assert.rejects(
      client.withSandbox({ image: IMAGE, ttl: "2m", metadata: LABEL }, async (s) => {
        id = s.id;
        assert.equal((await s.exec("echo ok")).stdout, "ok\n");
        throw new Error("boom");
      }),
      /boom/,
    );
    await assert.rejects(client.get(id), NotFound);
  });

  it("admission and prune", async () => {
    const a = await client.admission({ image: IMAGE, ttl: "5m" });
    assert.equal(a.allowed, true);
    assert.ok(a.active_sandboxes >= 1);
    assert.equal(typeof (await client.prune()), "number");
  });

  it("exec: shell, argv, env, workdir, exit codes", async () => {
    const r = await sb.exec("echo $G from $(pwd); echo oops >&2; exit 3", { env: { G: "hi" }, workdir: "/tmp" });
    assert.deepEqual([r.exit_code, r.stdout, r.stderr], [3, "hi from /tmp\n", "oops\n"]);
    const a = await sb.exec("echo", { args: ["$HOME", "a b"], mode: "argv" });
    assert.equal(a.stdout, "$HOME a b\n");
  });

  it("exec timeout throws Timeout (408)", async () => {
    const e = await sb.exec("sleep 30", { timeout: "1s" }).catch((x: unknown) => x);
    assert.ok(e instanceof Timeout, String(e));
    assert.equal(e.status, 408);
  });

  it("execStream yields chunks live and is not cut by the request timeout", async () => {
    const short = await new Client({ baseUrl: URL, timeout: 1000 }).get(sb.id);
    const start = Date.now();
    const got: [string, string, number][] = [];
    const stream = short.execStream("echo one; sleep 2.5; echo two >&2; sleep 0.2; echo three; exit 4");
    for await (const ch of stream) got.push([ch.stream, ch.data, Date.now() - start]);
    assert.equal(stream.exitCode, 4);
    assert.deepEqual(
      got.map((g) => [g[0], g[1]]),
      [["stdout", "one\n"], ["stderr", "two\n"], ["stdout", "three\n"], ["exit", ""]],
    );
    assert.ok(got[0]![2] < 2000, "first chunk must arrive before the command ends");
    assert.deepEqual(await short.execStream("printf a; exit 2").collect(), { exit_code: 2, stdout: "a", stderr: "", duration: "" });
  });

  it("AbortSignal stops a stream and a call", async () => {
    const ctl = new AbortController();
    const chunks: ExecChunk[] = [];
    const err = await (async () => {
      for await (const ch of sb.execStream("echo start; sleep 20", { signal: ctl.signal })) {
        chunks.push(ch);
        ctl.abort(new Error("stop"));
      }
    })().catch((e: unknown) => e);
    assert.equal((err as Error).message, "stop");
    assert.equal(chunks[0]?.data, "start\n");
    const pre = AbortSignal.abort(new Error("already"));
    await assert.rejects(client.health({ signal: pre }), /already/);
  });

  it("files: every operation", async () => {
    await sb.writeFile("/tmp/ts/a/hello.txt", "héllo\n", { mode: "0600" });
    assert.equal(await sb.readFile("/tmp/ts/a/hello.txt"), "héllo\n");
    const fi = await sb.statFile("/tmp/ts/a/hello.txt");
    assert.deepEqual([fi.path, fi.size, fi.mode, fi.is_dir], ["/tmp/ts/a/hello.txt", 7, "600", false]);
    const bin = new Uint8Array(1024).map((_, i) => i % 256);
    await sb.writeFile("/tmp/ts/a/bin", bin);
    assert.deepEqual(await sb.readBytes("/tmp/ts/a/bin"), bin);
    assert.deepEqual((await sb.listFiles("/tmp/ts/a")).map((f) => f.path).sort(), ["/tmp/ts/a/bin", "/tmp/ts/a/hello.txt"]);
    assert.ok((await sb.globFiles("/tmp/ts/**")).includes("/tmp/ts/a/hello.txt"));
    assert.deepEqual(await sb.globFiles("/tmp/ts/*.none"), []);
    await sb.moveFile("/tmp/ts/a/hello.txt", "/tmp/ts/b.txt");
    await sb.chmodFile("/tmp/ts/b.txt", "0755");
    assert.equal((await sb.statFile("/tmp/ts/b.txt")).mode, "755");
    await assert.rejects(sb.readFile("/tmp/ts/a/hello.txt"), NotFound);
    await sb.deleteFile("/tmp/ts", { recursive: true });
    await assert.rejects(sb.statFile("/tmp/ts/b.txt"), NotFound);
    await assert.rejects(sb.chmodFile("/tmp", "rwx"), BadRequest);
  });

  it("upload and download 8 MiB, streamed", async () => {
    const data = randomBytes(8 << 20);
    const n = await sb.upload("/tmp/large.bin", new Blob([data]).stream());
    assert.equal(n, data.length);
    const h = createHash("sha256");
    let size = 0;
    for await (const b of await sb.download("/tmp/large.bin")) {
      h.update(b);
      size += b.length;
    }
    assert.equal(size, data.length);
    assert.equal(h.digest("hex"), createHash("sha256").update(data).digest("hex"));
    assert.equal(await sb.upload("/tmp/s.txt", "small"), 5);
  });

  it("logs, stats, preview URL", async () => {
    assert.ok(Array.isArray(await sb.logs(5)));
    const st = await sb.stats();
    assert.equal(st.supported, true);
    if (sb.info.preview_domain) assert.equal(sb.getPreviewUrl(8080), `http://8080-${sb.id}.${sb.info.preview_domain}`);
    else assert.throws(() => sb.getPreviewUrl(8080), (e: unknown) => e instanceof StacyVMError && e.code === "NOT_SUPPORTED");
    assert.throws(() => sb.getPreviewUrl(0), RangeError);
  });

  it("system endpoints", async () => {
    assert.equal((await client.health()).status, "ok");
    assert.equal((await client.live()).status, "alive");
    assert.equal((await client.ready()).status, "ready");
    assert.ok((await client.providers()).some((p) => p.name === "docker"));
    assert.equal((await client.provider("docker")).healthy, true);
    await assert.rejects(client.provider("no-such-provider"), NotFound);
    assert.equal((await client.testProviders()).docker, true);
    assert.equal((await client.poolStatus()).enabled, false);
    assert.ok("enabled" in (await client.warmPools()));
    assert.match(String((await client.openapi()).openapi), /^3\.1/);
  });

  it("bad input and unreachable servers", async () => {
    const e = await client.spawn({ image: IMAGE, ttl: "soon" }).catch((x: unknown) => x);
    assert.ok(e instanceof BadRequest && e.code === "BAD_REQUEST" && e.message.length > 0);
    await assert.rejects(new Client({ baseUrl: "http://127.0.0.1:1", maxRetries: 0 }).health(), ConnectionError);
    assert.throws(() => new Client("ftp://x"), TypeError);
  });
});
