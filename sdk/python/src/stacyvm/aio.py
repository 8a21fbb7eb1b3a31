"""The asyncio StacyVM client: ``AsyncClient`` and ``AsyncSandbox``.

They mirror ``Client`` and ``Sandbox`` method for method (a test keeps the
surfaces identical). Without a third-party async HTTP library in the standard
library, each call runs the synchronous transport in the default thread
executor, so the event loop never blocks; streams hand over one chunk at a
time.
"""

from __future__ import annotations

import os
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Union

from . import errors
from ._aio_extras import AsyncClientExtras, AsyncProcessExtras, AsyncSandboxExtras
from ._aio_run import run as _run
from .client import Client, Duration, ExecStream, Sandbox
from .models import (
    Admission,
    ExecChunk,
    ExecResult,
    FileInfo,
    Health,
    PoolStatus,
    ProviderInfo,
    QuotaSummary,
    SandboxInfo,
    Stats,
)

_DONE = object()


class AsyncExecStream:
    """A streamed exec for ``async for``; ``exit_code`` is set after the exit chunk."""

    def __init__(self, stream: ExecStream) -> None:
        self._s = stream

    @property
    def exit_code(self) -> Optional[int]:
        return self._s.exit_code

    def __aiter__(self) -> "AsyncExecStream":
        return self

    async def __anext__(self) -> ExecChunk:
        item = await _run(next, self._s, _DONE)
        if item is _DONE:
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    async def close(self) -> None:
        await _run(self._s.close)

    async def __aenter__(self) -> "AsyncExecStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncSandbox(AsyncSandboxExtras, AsyncProcessExtras):
    """The async twin of ``Sandbox``; ``async with`` destroys it on exit."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sb = sandbox

    @property
    def info(self) -> SandboxInfo:
        return self._sb.info

    @property
    def id(self) -> str:
        return self._sb.id

    @property
    def state(self) -> str:
        return self._sb.state

    @property
    def provider(self) -> str:
        return self._sb.provider

    @property
    def image(self) -> str:
        return self._sb.image

    @property
    def expires_at(self) -> Any:
        return self._sb.expires_at

    @property
    def metadata(self) -> Dict[str, str]:
        return self._sb.metadata

    def __repr__(self) -> str:
        return f"AsyncSandbox(id={self.id!r}, state={self.state!r}, image={self.image!r})"

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.destroy()
        except errors.NotFound:
            pass

    async def refresh(self) -> "AsyncSandbox":
        await _run(self._sb.refresh)
        return self

    async def extend_ttl(self, ttl: Duration) -> "AsyncSandbox":
        await _run(self._sb.extend_ttl, ttl)
        return self

    async def destroy(self) -> None:
        await _run(self._sb.destroy)

    async def logs(self, lines: Optional[int] = None) -> List[str]:
        return await _run(self._sb.logs, lines)

    async def stats(self) -> Stats:
        return await _run(self._sb.stats)

    def get_preview_url(self, port: int) -> str:
        return self._sb.get_preview_url(port)

    async def exec(
        self,
        command: str,
        args: Optional[Sequence[str]] = None,
        *,
        mode: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Duration = None,
    ) -> ExecResult:
        return await _run(self._sb.exec, command, args, mode=mode, env=env, workdir=workdir, timeout=timeout)

    async def exec_stream(
        self,
        command: str,
        args: Optional[Sequence[str]] = None,
        *,
        mode: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Duration = None,
    ) -> AsyncExecStream:
        s = await _run(self._sb.exec_stream, command, args, mode=mode, env=env, workdir=workdir, timeout=timeout)
        return AsyncExecStream(s)

    async def write_file(self, path: str, content: Union[str, bytes], mode: Optional[str] = None) -> None:
        await _run(self._sb.write_file, path, content, mode)

    async def read_file(self, path: str) -> str:
        return await _run(self._sb.read_file, path)

    async def read_bytes(self, path: str) -> bytes:
        return await _run(self._sb.read_bytes, path)

    async def upload(self, path: str, source: Union[bytes, str, "os.PathLike[str]", IO[bytes]]) -> int:
        return await _run(self._sb.upload, path, source)

    async def download(self, path: str, dest: Union[str, "os.PathLike[str]", IO[bytes]]) -> int:
        return await _run(self._sb.download, path, dest)

    async def list_files(self, path: str = "/") -> List[FileInfo]:
        return await _run(self._sb.list_files, path)

    async def stat_file(self, path: str) -> FileInfo:
        return await _run(self._sb.stat_file, path)

    async def glob_files(self, pattern: str) -> List[str]:
        return await _run(self._sb.glob_files, pattern)

    async def delete_file(self, path: str, recursive: bool = False) -> None:
        await _run(self._sb.delete_file, path, recursive)

    async def move_file(self, old_path: str, new_path: str) -> None:
        await _run(self._sb.move_file, old_path, new_path)

    async def chmod_file(self, path: str, mode: str) -> None:
        await _run(self._sb.chmod_file, path, mode)


class AsyncClient(AsyncClientExtras):
    """The async twin of ``Client``: same constructor, same methods, awaited."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        user_id: Optional[str] = None,
        timeout: float = 30.0,
        *,
        admin_api_key: Optional[str] = None,
        max_retries: int = 2,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        self._c = Client(base_url, api_key, user_id, timeout, admin_api_key=admin_api_key,
                         max_retries=max_retries, headers=headers)

    @property
    def base_url(self) -> str:
        return self._c.base_url

    async def close(self) -> None:
        self._c.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def spawn(
        self,
        image: Optional[str] = None,
        *,
        provider: Optional[str] = None,
        memory_mb: Optional[int] = None,
        vcpus: Optional[int] = None,
        ttl: Duration = None,
        template: Optional[str] = None,
        owner_id: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        env: Optional[Mapping[str, str]] = None,
        network: Optional[str] = None,
    ) -> AsyncSandbox:
        sb = await _run(self._c.spawn, image, provider=provider, memory_mb=memory_mb, vcpus=vcpus, ttl=ttl,
                        template=template, owner_id=owner_id, metadata=metadata, env=env, network=network)
        return AsyncSandbox(sb)

    async def admission(
        self,
        image: Optional[str] = None,
        *,
        provider: Optional[str] = None,
        memory_mb: Optional[int] = None,
        vcpus: Optional[int] = None,
        ttl: Duration = None,
        template: Optional[str] = None,
        owner_id: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        env: Optional[Mapping[str, str]] = None,
        network: Optional[str] = None,
    ) -> Admission:
        return await _run(self._c.admission, image, provider=provider, memory_mb=memory_mb, vcpus=vcpus, ttl=ttl,
                          template=template, owner_id=owner_id, metadata=metadata, env=env, network=network)

    async def get(self, sandbox_id: str) -> AsyncSandbox:
        return AsyncSandbox(await _run(self._c.get, sandbox_id))

    async def list(
        self,
        *,
        owner_id: Optional[str] = None,
        state: Optional[str] = None,
        label: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[AsyncSandbox]:
        sbs = await _run(self._c.list, owner_id=owner_id, state=state, label=label, limit=limit)
        return [AsyncSandbox(s) for s in sbs]

    async def prune(self) -> int:
        return await _run(self._c.prune)

    async def spawn_template(
        self,
        name: str,
        *,
        provider: Optional[str] = None,
        ttl: Duration = None,
        owner_id: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> AsyncSandbox:
        sb = await _run(self._c.spawn_template, name, provider=provider, ttl=ttl, owner_id=owner_id,
                        metadata=metadata, env=env)
        return AsyncSandbox(sb)

    async def health(self) -> Health:
        return await _run(self._c.health)

    async def live(self) -> Health:
        return await _run(self._c.live)

    async def ready(self) -> Health:
        return await _run(self._c.ready)

    async def openapi(self) -> Dict[str, Any]:
        return await _run(self._c.openapi)

    async def providers(self) -> List[ProviderInfo]:
        return await _run(self._c.providers)

    async def provider(self, name: str) -> ProviderInfo:
        return await _run(self._c.provider, name)

    async def test_providers(self) -> Dict[str, bool]:
        return await _run(self._c.test_providers)

    async def pool_status(self) -> PoolStatus:
        return await _run(self._c.pool_status)

    async def warm_pools(self) -> Dict[str, Any]:
        return await _run(self._c.warm_pools)

    async def quota_summary(self) -> QuotaSummary:
        return await _run(self._c.quota_summary)
