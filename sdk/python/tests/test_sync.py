"""Live tests of the synchronous client against a real server on real Docker."""

import hashlib
import io
import os
import tempfile
import time
import unittest

import stacyvm
from stacyvm import Client

from .live import IMAGE, LABEL, require_server


class SyncTest(unittest.TestCase):
    sb: stacyvm.Sandbox

    @classmethod
    def setUpClass(cls) -> None:
        cls.client = Client(require_server(), timeout=10)
        cls.sb = cls.client.spawn(IMAGE, ttl="10m", metadata=LABEL)

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            cls.sb.destroy()
        except stacyvm.NotFound:
            pass

    def test_lifecycle_context_manager_destroys(self) -> None:
        with self.client.spawn(IMAGE, ttl=120, metadata={**LABEL, "case": "ctx"}) as sb:
            self.assertTrue(sb.id.startswith("sb-"), sb.id)
            self.assertEqual(sb.state, "running")
            self.assertEqual(sb.metadata.get("case"), "ctx")
            got = self.client.get(sb.id)
            self.assertEqual(got.id, sb.id)
            self.assertIn(sb.id, [s.id for s in self.client.list()])
            before = sb.expires_at
            sb.extend_ttl("1h")
            self.assertGreater(sb.expires_at, before)
            self.assertEqual(sb.refresh().state, "running")
        with self.assertRaises(stacyvm.SandboxNotFound):
            self.client.get(sb.id)
        with self.assertRaises(stacyvm.NotFound) as cm:
            sb.destroy()
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "NOT_FOUND"))

    def test_admission_and_prune(self) -> None:
        a = self.client.admission(IMAGE, ttl="5m")
        self.assertTrue(a.allowed, a)
        self.assertGreaterEqual(a.active_sandboxes, 1)
        self.assertIsInstance(self.client.prune(), int)

    def test_exec_shell_argv_env_workdir(self) -> None:
        r = self.sb.exec("echo $GREETING from $(pwd); echo oops >&2; exit 3", env={"GREETING": "hi"}, workdir="/tmp")
        self.assertEqual((r.exit_code, r.stdout, r.stderr), (3, "hi from /tmp\n", "oops\n"))
        self.assertFalse(r.ok)
        r = self.sb.exec("echo", ["$HOME", "a b"], mode="argv")
        self.assertEqual(r.stdout, "$HOME a b\n")
        self.assertTrue(r.ok)

    def test_exec_timeout_raises_timeout(self) -> None:
        with self.assertRaises(stacyvm.Timeout) as cm:
            self.sb.exec("sleep 30", timeout="1s")
        self.assertEqual(cm.exception.status, 408)
        self.assertIsInstance(cm.exception, TimeoutError)

    def test_sync_exec_outlives_request_timeout(self) -> None:
        c = Client(self.client.base_url, timeout=1)
        r = c.get(self.sb.id).exec("sleep 2; echo done", timeout="20s")
        self.assertEqual(r.stdout, "done\n")

    def test_exec_stream_order_and_not_cut_by_timeout(self) -> None:
        c = Client(self.client.base_url, timeout=1)
        sb = c.get(self.sb.id)
        start = time.monotonic()
        chunks = []
        with sb.exec_stream("echo one; sleep 2.5; echo two >&2; sleep 0.2; echo three; exit 4") as s:
            for ch in s:
                chunks.append((ch.stream, ch.data, round(time.monotonic() - start)))
        self.assertEqual(s.exit_code, 4)
        self.assertEqual([c[:2] for c in chunks], [("stdout", "one\n"), ("stderr", "two\n"), ("stdout", "three\n"), ("exit", "")])
        self.assertLess(chunks[0][2], 2, "first chunk must arrive before the command ends")

    def test_files_every_operation(self) -> None:
        sb = self.sb
        sb.write_file("/tmp/py/a/hello.txt", "héllo\n", mode="0600")
        self.assertEqual(sb.read_file("/tmp/py/a/hello.txt"), "héllo\n")
        fi = sb.stat_file("/tmp/py/a/hello.txt")
        self.assertEqual((fi.path, fi.size, fi.mode, fi.is_dir), ("/tmp/py/a/hello.txt", 7, "600", False))
        binary = bytes(range(256)) * 4
        sb.write_file("/tmp/py/a/bin", binary)
        self.assertEqual(sb.read_bytes("/tmp/py/a/bin"), binary)
        names = sorted(f.path for f in sb.list_files("/tmp/py/a"))
        self.assertEqual(names, ["/tmp/py/a/bin", "/tmp/py/a/hello.txt"])
        self.assertIn("/tmp/py/a/hello.txt", sb.glob_files("/tmp/py/**"))
        self.assertEqual(sb.glob_files("/tmp/py/*.none"), [])
        sb.move_file("/tmp/py/a/hello.txt", "/tmp/py/b.txt")
        sb.chmod_file("/tmp/py/b.txt", "0755")
        self.assertEqual(sb.stat_file("/tmp/py/b.txt").mode, "755")
        with self.assertRaises(stacyvm.NotFound):
            sb.read_file("/tmp/py/a/hello.txt")
        sb.delete_file("/tmp/py", recursive=True)
        with self.assertRaises(stacyvm.NotFound):
            sb.stat_file("/tmp/py/b.txt")

    def test_bad_file_input_is_bad_request(self) -> None:
        with self.assertRaises(stacyvm.BadRequest):
            self.sb.chmod_file("/tmp", "rwx")
        with self.assertRaises(stacyvm.BadRequest):
            self.sb.write_file("", "x")

    def test_upload_download_large(self) -> None:
        data = os.urandom(8 << 20)
        n = self.sb.upload("/tmp/large.bin", io.BytesIO(data))
        self.assertEqual(n, len(data))
        with tempfile.TemporaryDirectory() as d:
            dest = os.path.join(d, "out.bin")
            self.assertEqual(self.sb.download("/tmp/large.bin", dest), len(data))
            with open(dest, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest())
            src = os.path.join(d, "src.bin")
            with open(src, "wb") as f:
                f.write(data[:1000])
            self.assertEqual(self.sb.upload("/tmp/small.bin", src), 1000)
        self.assertEqual(self.sb.exec("wc -c < /tmp/large.bin").stdout.strip(), str(len(data)))

    def test_logs_and_stats(self) -> None:
        self.assertIsInstance(self.sb.logs(lines=5), list)
        st = self.sb.stats()
        self.assertTrue(st.supported)
        self.assertGreater(st.mem_limit_bytes, 0)

    def test_preview_url_needs_a_preview_domain(self) -> None:
        if self.sb.info.preview_domain:
            self.assertEqual(self.sb.get_preview_url(8080), f"http://8080-{self.sb.id}.{self.sb.info.preview_domain}")
        else:
            with self.assertRaises(stacyvm.StacyVMError) as cm:
                self.sb.get_preview_url(8080)
            self.assertEqual(cm.exception.code, "NOT_SUPPORTED")
        with self.assertRaises(ValueError):
            self.sb.get_preview_url(0)

    def test_system_endpoints(self) -> None:
        c = self.client
        self.assertEqual(c.health().status, "ok")
        self.assertEqual(c.live().status, "alive")
        self.assertEqual(c.ready().status, "ready")
        provs = c.providers()
        self.assertIn("docker", [p.name for p in provs])
        self.assertTrue(c.provider("docker").healthy)
        with self.assertRaises(stacyvm.NotFound):
            c.provider("no-such-provider")
        self.assertTrue(c.test_providers().get("docker"))
        self.assertFalse(c.pool_status().enabled)
        self.assertIn("enabled", c.warm_pools())
        self.assertEqual(c.openapi()["openapi"][:3], "3.1")

    def test_bad_input_is_bad_request(self) -> None:
        with self.assertRaises(stacyvm.BadRequest) as cm:
            self.client.spawn(IMAGE, ttl="soon")
        self.assertEqual(cm.exception.code, "BAD_REQUEST")
        self.assertTrue(cm.exception.message)
        with self.assertRaises(ValueError):
            self.sb.exec("true", timeout=-1)

    def test_connection_error(self) -> None:
        c = Client("http://127.0.0.1:1", timeout=2, max_retries=1)
        with self.assertRaises(stacyvm.ConnectionError) as cm:
            c.health()
        self.assertIsInstance(cm.exception, ConnectionError)  # the builtin, too
        with self.assertRaises(ValueError):
            Client("ftp://example")


if __name__ == "__main__":
    unittest.main()
