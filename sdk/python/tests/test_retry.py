"""Retry and error-mapping behaviour of the transport, against a local
loopback HTTP server that answers with scripted statuses (no StacyVM needed)."""

import http.server
import json
import threading
import unittest
from typing import List, Tuple

import stacyvm
from stacyvm import Client


class _Scripted(http.server.BaseHTTPRequestHandler):
    script: List[Tuple[int, dict, dict]] = []
    seen: List[str] = []

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        type(self).seen.append(self.command + " " + self.path)
        status, headers, body = type(self).script.pop(0) if type(self).script else (200, {}, {"status": "ok"})
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


class RetryTest(unittest.TestCase):
    def setUp(self) -> None:
        _Scripted.script, _Scripted.seen = [], []
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.client = Client(f"http://127.0.0.1:{self.srv.server_address[1]}", max_retries=2)
        self.client._transport.backoff = 0.01

    def tearDown(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()

    def test_idempotent_get_is_retried_on_503(self) -> None:
        busy = (503, {}, {"code": "UNAVAILABLE", "message": "draining"})
        _Scripted.script = [busy, busy, (200, {}, {"status": "ok", "version": "v", "uptime": "1s"})]
        self.assertEqual(self.client.health().status, "ok")
        self.assertEqual(len(_Scripted.seen), 3)

    def test_post_is_never_retried(self) -> None:
        _Scripted.script = [(503, {}, {"code": "UNAVAILABLE", "message": "no docker"})]
        with self.assertRaises(stacyvm.ProviderError) as cm:
            self.client.spawn()
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.message), (503, "UNAVAILABLE", "no docker"))
        self.assertEqual(_Scripted.seen, ["POST /api/v1/sandboxes"])

    def test_rate_limited_carries_retry_after(self) -> None:
        limited = (429, {"Retry-After": "0"}, {"code": "RESOURCE_LIMIT", "message": "slow down"})
        _Scripted.script = [limited, limited, limited]
        with self.assertRaises(stacyvm.RateLimited) as cm:
            self.client.list()
        self.assertEqual(cm.exception.retry_after, 0.0)
        self.assertIs(stacyvm.ResourceLimit, stacyvm.RateLimited)
        self.assertEqual(len(_Scripted.seen), 3)

    def test_status_without_json_body_gets_a_code(self) -> None:
        _Scripted.script = [(401, {}, {"detail": "nope"})]
        with self.assertRaises(stacyvm.Unauthorized) as cm:
            self.client.health()
        self.assertEqual(cm.exception.code, "UNAUTHORIZED")
        _Scripted.script = [(403, {}, {"code": "FORBIDDEN", "message": "role"})]
        with self.assertRaises(stacyvm.Forbidden):
            self.client.get("sb-1")

    def test_old_names_are_bases(self) -> None:
        for cls in (stacyvm.NotFound, stacyvm.Timeout, stacyvm.RateLimited, stacyvm.ProviderError, stacyvm.ConnectionError):
            self.assertTrue(issubclass(cls, stacyvm.StacyVMError), cls)
        self.assertIs(stacyvm.SandboxNotFound, stacyvm.NotFound)


if __name__ == "__main__":
    unittest.main()
