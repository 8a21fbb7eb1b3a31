"""Live tests of AsyncClient, and the check that it mirrors Client exactly."""

import asyncio
import inspect
import unittest

import stacyvm
from stacyvm import AsyncClient, AsyncSandbox, Client, Sandbox

from .live import IMAGE, LABEL, require_server


def _public(cls: type) -> dict:
    return {n: m for n, m in inspect.getmembers(cls) if not n.startswith("_") and callable(m)}


class SurfaceTest(unittest.TestCase):
    def test_async_surfaces_match_sync(self) -> None:
        for sync, aio in ((Client, AsyncClient), (Sandbox, AsyncSandbox)):
            s, a = _public(sync), _public(aio)
            self.assertEqual(sorted(s), sorted(a), f"{aio.__name__} must mirror {sync.__name__}")
            for name in s:
                ps = list(inspect.signature(s[name]).parameters)
                pa = list(inspect.signature(a[name]).parameters)
                self.assertEqual(ps, pa, f"{aio.__name__}.{name} parameters")
                if name != "get_preview_url":
                    self.assertTrue(inspect.iscoroutinefunction(a[name]), f"{aio.__name__}.{name} must be async")


class AsyncLiveTest(unittest.TestCase):
    def test_async_round_trip(self) -> None:
        url = require_server()

        async def main() -> None:
            async with AsyncClient(url, timeout=1) as c:
                self.assertEqual((await c.health()).status, "ok")
                async with await c.spawn(IMAGE, ttl="5m", metadata=LABEL) as sb:
                    r = await sb.exec("echo async")
                    self.assertEqual(r.stdout, "async\n")
                    # Two commands at once: the loop is not blocked by either.
                    a, b = await asyncio.gather(sb.exec("sleep 1; echo a"), sb.exec("sleep 1; echo b"))
                    self.assertEqual((a.stdout, b.stdout), ("a\n", "b\n"))
                    got = []
                    stream = await sb.exec_stream("echo x; sleep 1.5; echo y")
                    async for ch in stream:
                        got.append((ch.stream, ch.data))
                    self.assertEqual(got, [("stdout", "x\n"), ("stdout", "y\n"), ("exit", "")])
                    self.assertEqual(stream.exit_code, 0)
                    await sb.write_file("/tmp/a.txt", "A")
                    self.assertEqual(await sb.read_file("/tmp/a.txt"), "A")
                    self.assertEqual([f.path for f in await sb.list_files("/tmp") if f.path == "/tmp/a.txt"], ["/tmp/a.txt"])
                    ids = [s.id for s in await c.list()]
                    self.assertIn(sb.id, ids)
                with self.assertRaises(stacyvm.NotFound):
                    await c.get(sb.id)

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
