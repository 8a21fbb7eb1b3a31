"""The asyncio bridge: run a sync SDK call in the default thread executor."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, TypeVar, Union

from ._session import ExecSession
from ._sse import Event, EventStream
from .models import ExecChunk, ExecResult

T = TypeVar("T")


async def run(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Await fn(*args, **kw) on the default executor."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kw))


_DONE = object()


class AsyncEventStream:
    """An ``EventStream`` for ``async for``."""

    def __init__(self, stream: EventStream) -> None:
        self._s = stream

    def __aiter__(self) -> "AsyncEventStream":
        return self

    async def __anext__(self) -> Event:
        item = await run(next, self._s, _DONE)
        if item is _DONE:
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    async def close(self) -> None:
        await run(self._s.close)

    async def __aenter__(self) -> "AsyncEventStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncProcessOutput(AsyncEventStream):
    """A ``ProcessOutput`` for ``async for`` (items are dicts)."""


class AsyncExecSession:
    """An ``ExecSession`` for asyncio: ``async for`` chunks, awaited controls."""

    def __init__(self, session: ExecSession) -> None:
        self._s = session

    @property
    def exit_code(self) -> Any:
        return self._s.exit_code

    def __aiter__(self) -> "AsyncExecSession":
        return self

    async def __anext__(self) -> ExecChunk:
        item = await run(next, self._s, _DONE)
        if item is _DONE:
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    async def send_stdin(self, data: Union[str, bytes]) -> None:
        await run(self._s.send_stdin, data)

    async def close_stdin(self) -> None:
        await run(self._s.close_stdin)

    async def resize(self, cols: int, rows: int) -> None:
        await run(self._s.resize, cols, rows)

    async def signal(self, name: str) -> None:
        await run(self._s.signal, name)

    async def communicate(self, stdin: Union[str, bytes, None] = None) -> ExecResult:
        return await run(self._s.communicate, stdin)

    async def close(self) -> None:
        await run(self._s.close)

    async def __aenter__(self) -> "AsyncExecSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
