"""Live tests of templates, quotas, identity, observability, archives,
watches and preview tokens."""

import io
import tarfile
import unittest
import uuid

import stacyvm
from stacyvm import Client

from .live import IMAGE, LABEL, require_server


class ExtrasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.client = Client(require_server(), timeout=10)

    def test_templates_crud_and_spawn(self) -> None:
        c = self.client
        name = "py-" + uuid.uuid4().hex[:8]
        t = c.create_template(name, IMAGE, ttl="10m", description="sdk test", env={"FROM": "template"})
        self.addCleanup(lambda: c.delete_template(name))
        self.assertEqual((t.name, t.image, t.ttl_seconds, t.version), (name, IMAGE, 600, 1))
        with self.assertRaises(stacyvm.Conflict):
            c.create_template(name, IMAGE)
        self.assertIn(name, [x.name for x in c.templates()])
        self.assertEqual(c.update_template(name, IMAGE, ttl=300, env={"FROM": "template"}).version, 2)
        self.assertEqual(c.template(name).ttl_seconds, 300)
        with c.spawn_template(name, ttl="2m", metadata=LABEL) as sb:
            self.assertEqual(sb.state, "running")
            self.assertEqual(sb.exec("echo $FROM").stdout, "template\n")
        with self.assertRaises(stacyvm.NotFound):
            c.spawn_template("no-such-template")
        with self.assertRaises(stacyvm.BadRequest):
            c.create_template("", "")

    def test_quotas(self) -> None:
        c = self.client
        owner = "py-" + uuid.uuid4().hex[:8]
        q = c.set_quota(owner, max_sandboxes=2, max_ttl="1h")
        self.addCleanup(lambda: c.delete_quota(owner))
        self.assertEqual((q.owner, q.max_sandboxes), (owner, 2))
        self.assertEqual(c.quota(owner).max_sandboxes, 2)
        self.assertIn(owner, [x.owner for x in c.quotas()])
        self.assertGreaterEqual(c.quota_summary().total, 1)
        u = c.quota_usage(owner)
        self.assertTrue(u.has_quota)
        self.assertEqual(u.active_sandboxes, 0)
        with self.assertRaises(stacyvm.RateLimited):
            c.spawn(IMAGE, ttl="2h", owner_id=owner)

    def test_identity_admin_and_observability(self) -> None:
        c = self.client
        me = c.whoami()
        self.assertTrue(me.role)
        self.assertIsInstance(c.tenants(), list)
        self.assertIsInstance(c.api_keys(), list)
        self.assertIsInstance(c.audit(limit=5), list)
        self.assertIn("version", c.diagnostics())
        self.assertTrue(c.metrics())
        self.assertIn("stacyvm_", c.metrics_prometheus())

    def test_events_stream(self) -> None:
        with self.client.events() as ev:
            with self.client.spawn(IMAGE, ttl="2m", metadata=LABEL) as sb:
                for e in ev:
                    if e.type.startswith("sandbox.") and e.data.get("sandbox_id") == sb.id:
                        break

    def test_archives_watch_preview(self) -> None:
        with self.client.spawn(IMAGE, ttl="5m", metadata=LABEL) as sb:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz") as tf:
                for name, data in (("proj/a.txt", b"A"), ("proj/sub/b.txt", b"BB")):
                    ti = tarfile.TarInfo(name)
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
            res = sb.upload_archive("/work", buf.getvalue(), gzip=True)
            self.assertEqual((res["status"], res["files"], res["bytes"]), ("extracted", 2, 3))
            self.assertEqual(sb.read_file("/work/proj/sub/b.txt"), "BB")
            out = io.BytesIO()
            self.assertGreater(sb.download_archive("/work/proj", out), 0)
            names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
            self.assertTrue(any(n.endswith("sub/b.txt") for n in names), names)

            with sb.watch_files("/work") as w:
                self.assertEqual(next(w).type, "ready")
                sb.write_file("/work/new.txt", "x")
                kinds = set()
                for e in w:
                    kinds.add(e.type)
                    if e.type in ("create", "modify") and str(e.data.get("path", "")).startswith("/work"):
                        break
                self.assertTrue(kinds & {"create", "modify"}, kinds)

            tok = sb.preview_token(8080, ttl="10m")
            self.assertTrue(tok["token"] and tok["path_url"], tok)
            with self.assertRaises(stacyvm.NotFound):
                sb.watch_files("/no/such/dir")

    def test_background_processes(self) -> None:
        with self.client.spawn(IMAGE, ttl="5m", metadata=LABEL) as sb:
            p = sb.start_process("cat", mode="argv", stdin=True)
            sb.process_stdin(p["id"], "hello\n")
            sb.process_stdin(p["id"], b"bytes\n", eof=True)
            lines = list(sb.process_output(p["id"], follow=True))
            self.assertEqual("".join(x.get("data", "") for x in lines if x["stream"] == "stdout"), "hello\nbytes\n")
            self.assertEqual(lines[-1], {"stream": "exit", "data": "", "exit_code": 0})
            self.assertIn(p["id"], [x["id"] for x in sb.processes()])
            self.assertEqual(sb.process(p["id"])["exit_code"], 0)
            q = sb.start_process("sleep 30")
            sb.signal_process(q["id"], "SIGTERM")
            lines = list(sb.process_output(q["id"], follow=True))
            self.assertEqual(lines[-1]["exit_code"], 143)
            t = sb.start_process("sh", tty=True, cols=80, rows=24)
            sb.resize_process(t["id"], 100, 30)
            self.assertFalse(sb.kill_process(t["id"])["running"])
            with self.assertRaises(stacyvm.NotFound):
                sb.process("proc-999")

    def test_exec_websocket(self) -> None:
        with self.client.spawn(IMAGE, ttl="5m", metadata=LABEL) as sb:
            with sb.exec_ws("sh", ["-c", "read x; echo got $x; echo e >&2; exit 4"], mode="argv") as s:
                r = s.communicate("hello\n")
            self.assertEqual((r.exit_code, r.stdout, r.stderr), (4, "got hello\n", "e\n"))
            with sb.exec_ws(tty=True, cols=100, rows=30) as s:
                s.send_stdin("stty size; tty; exit 6\n")
                out = "".join(ch.data for ch in s)
            self.assertEqual(s.exit_code, 6)
            self.assertIn("30 100", out)
            self.assertIn("/dev/pts/", out)
            big = "x" * 200_000 + "\n"  # > 64 KiB: 64-bit frame lengths out; many frames back
            with sb.exec_ws("wc", ["-c"], mode="argv") as s:
                self.assertEqual(s.communicate(big).stdout.strip(), str(len(big)))
            with sb.exec_ws("head -c 300000 /dev/zero | tr '\\0' y") as s:
                self.assertEqual(len(s.communicate().stdout), 300000)
            with sb.exec_ws("sleep 30") as s:
                s.signal("SIGKILL")
                self.assertEqual(list(s)[-1].exit_code, 137)
        with self.assertRaises(stacyvm.NotFound):
            sb.exec_ws("true")


if __name__ == "__main__":
    unittest.main()
