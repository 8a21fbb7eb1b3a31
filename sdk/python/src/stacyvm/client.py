"""The synchronous StacyVM client: ``Client`` and the ``Sandbox`` handle it returns."""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Union

from . import errors
from ._extras import ClientExtras, ProcessExtras, SandboxExtras
from ._http import Response, Transport
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

Duration = Union[str, int, float, None]

DEFAULT_URL = "http://127.0.0.1:7423"

# The server's default exec timeout is 5 minutes; a sync exec without an
# explicit timeout waits this long for its answer.
_SYNC_EXEC_WAIT = 330.0


def duration(value: Duration) -> Optional[str]:
    """Turn seconds (int/float) or a Go duration string ("30s", "1h") into the wire form."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a duration must be seconds or a string like '30s'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return f"{value:g}s"
    return str(value)


def _seconds(value: Duration) -> Optional[float]:
    """Best-effort seconds of a duration, for sizing the HTTP wait."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    total, num = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    s = str(value)
    i = 0
    while i < len(s):
        c = s[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        unit = "ms" if s.startswith("ms", i) else c
        if unit not in units or not num:
            return None
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    return total if not num else None


def _spawn_body(**kw: Any) -> Dict[str, Any]:
    body: Dict[str, Any] = {}
    for k, v in kw.items():
        if v is None:
            continue
        body[k] = duration(v) if k == "ttl" else v
    return body


def _exec_body(
    command: str,
    args: Optional[Sequence[str]],
    mode: Optional[str],
    env: Optional[Mapping[str, str]],
    workdir: Optional[str],
    timeout: Duration,
    stream: bool,
) -> Dict[str, Any]:
    body: Dict[str, Any] = {"command": command}
    if args:
        body["args"] = list(args)
    if mode:
        body["mode"] = mode
    if env:
        body["env"] = dict(env)
    if workdir:
        body["workdir"] = workdir
    if timeout is not None:
        body["timeout"] = duration(timeout)
    if stream:
        body["stream"] = True
    return body


def _exec_wait(timeout: Duration, base: float) -> float:
    secs = _seconds(timeout)
    return max(base, (secs if secs is not None else _SYNC_EXEC_WAIT - 30) + 30)


def _quote(id: str) -> str:
    return urllib.parse.quote(id, safe="")


class ExecStream:
    """A running streamed exec: iterate it for ``ExecChunk`` values in order.

    The last chunk is ``stream == "exit"``; afterwards ``exit_code`` holds the
    command's exit code. ``close()`` (or leaving a ``with`` block) drops the
    connection early. The stream is not cut by the client's request timeout.
    """

    def __init__(self, resp: Response) -> None:
        self._resp = resp
        self._lines = resp.lines()
        self.exit_code: Optional[int] = None

    def __iter__(self) -> "ExecStream":
        return self

    def __next__(self) -> ExecChunk:
        if self.exit_code is not None:
            raise StopIteration
        for raw in self._lines:
            line = raw.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise errors.StacyVMError(f"bad exec stream line: {line[:120]!r}") from e
            stream = str(obj.get("stream") or "stdout")
            if stream == "error":
                raise errors.error_for(str(obj.get("code") or "INTERNAL_ERROR"), str(obj.get("data") or ""))
            if stream == "exit":
                self.exit_code = int(obj.get("exit_code", -1))
                return ExecChunk("exit", "", self.exit_code)
            return ExecChunk(stream, str(obj.get("data") or ""))
        raise errors.ConnectionError("exec stream ended without an exit status")

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> "ExecStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sandbox(SandboxExtras, ProcessExtras):
    """A handle on one sandbox. Use it as a context manager to destroy it on exit."""

    def __init__(self, client: "Client", info: SandboxInfo) -> None:
        self._client = client
        self._t = client._transport
        self.info = info

    # -- the sandbox object's fields --------------------------------------
    @property
    def id(self) -> str:
        return self.info.id

    @property
    def state(self) -> str:
        return self.info.state

    @property
    def provider(self) -> str:
        return self.info.provider

    @property
    def image(self) -> str:
        return self.info.image

    @property
    def expires_at(self) -> Any:
        return self.info.expires_at

    @property
    def metadata(self) -> Dict[str, str]:
        return self.info.metadata

    def __repr__(self) -> str:
        return f"Sandbox(id={self.id!r}, state={self.state!r}, image={self.image!r})"

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.destroy()
        except errors.NotFound:
            pass

    def _path(self, suffix: str = "") -> str:
        return f"/sandboxes/{_quote(self.id)}{suffix}"

    # -- lifecycle ----------------------------------------------------------
    def refresh(self) -> "Sandbox":
        """Reload the sandbox's fields from the server."""
        self.info = SandboxInfo.from_dict(self._t.request("GET", self._path()).json())
        return self

    def extend_ttl(self, ttl: Duration) -> "Sandbox":
        """Set the expiry to now + ttl ("1h" or seconds); capped by the server's max TTL."""
        data = self._t.request("POST", self._path("/extend"), json={"ttl": duration(ttl)}).json()
        self.info = SandboxInfo.from_dict(data)
        return self

    def destroy(self) -> None:
        """Destroy the sandbox. A second call raises NotFound."""
        self._t.request("DELETE", self._path()).read()
        self.info.state = "destroyed"

    def logs(self, lines: Optional[int] = None) -> List[str]:
        """The sandbox's last log lines."""
        return list(self._t.request("GET", self._path("/logs"), query={"lines": lines}).json() or [])

    def stats(self) -> Stats:
        """Current CPU and memory use."""
        return Stats.from_dict(self._t.request("GET", self._path("/stats")).json())

    def get_preview_url(self, port: int) -> str:
        """The URL at which the sandbox's port is served: ``http://PORT-ID.DOMAIN``.

        Raises StacyVMError (code NOT_SUPPORTED) when the server gave the
        sandbox no preview domain (previews are not configured).
        """
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be 1..65535, got {port}")
        if not self.info.preview_domain:
            raise errors.StacyVMError(
                "the server reports no preview domain for this sandbox (previews not configured)",
                code="NOT_SUPPORTED",
            )
        return f"http://{int(port)}-{self.id}.{self.info.preview_domain}"

    # -- exec -----------------------------------------------------------------
    def exec(
        self,
        command: str,
        args: Optional[Sequence[str]] = None,
        *,
        mode: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Duration = None,
    ) -> ExecResult:
        """Run a command and wait for it. ``mode`` is "shell" (default) or "argv".

        A non-zero exit code is a result; a command past its timeout raises Timeout.
        """
        body = _exec_body(command, args, mode, env, workdir, timeout, False)
        resp = self._t.request("POST", self._path("/exec"), json=body, timeout=_exec_wait(timeout, self._t.timeout))
        return ExecResult.from_dict(resp.json())

    def exec_stream(
        self,
        command: str,
        args: Optional[Sequence[str]] = None,
        *,
        mode: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Duration = None,
    ) -> ExecStream:
        """Run a command and stream its output as it is produced (NDJSON)."""
        body = _exec_body(command, args, mode, env, workdir, timeout, True)
        resp = self._t.request("POST", self._path("/exec"), json=body, accept="application/x-ndjson", stream=True)
        return ExecStream(resp)

    # -- files ----------------------------------------------------------------
    def write_file(self, path: str, content: Union[str, bytes], mode: Optional[str] = None) -> None:
        """Write content to path (parents created). Bytes that are not UTF-8 go base64."""
        body: Dict[str, Any] = {"path": path}
        if isinstance(content, str):
            body["content"] = content
        else:
            try:
                body["content"] = bytes(content).decode("utf-8")
            except UnicodeDecodeError:
                body["content"] = base64.b64encode(bytes(content)).decode("ascii")
                body["encoding"] = "base64"
        if mode is not None:
            body["mode"] = mode
        self._t.request("POST", self._path("/files"), json=body).read()

    def read_file(self, path: str) -> str:
        """The file's content as text (UTF-8; undecodable bytes become U+FFFD)."""
        return self.read_bytes(path).decode("utf-8", "replace")

    def read_bytes(self, path: str) -> bytes:
        """The file's content as bytes."""
        return self._t.request("GET", self._path("/files"), query={"path": path}, accept="application/octet-stream").read()

    def upload(self, path: str, source: Union[bytes, str, "os.PathLike[str]", IO[bytes]]) -> int:
        """Stream a local file (a path or a binary file object) or bytes to path; any size.

        Returns the number of bytes the server wrote.
        """
        if isinstance(source, (bytes, bytearray)):
            return self._upload(path, bytes(source))
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                return self._upload(path, f)
        return self._upload(path, source)

    def _upload(self, path: str, body: Any) -> int:
        resp = self._t.request(
            "PUT", self._path("/files/raw"), query={"path": path}, body=body, stream=True, timeout=max(self._t.timeout, 300)
        )
        data = resp.json() or {}
        return int(data.get("size") or 0)

    def download(self, path: str, dest: Union[str, "os.PathLike[str]", IO[bytes]]) -> int:
        """Stream the file at path into dest (a local path or a binary file object); any size.

        Returns the number of bytes written.
        """
        resp = self._t.request(
            "GET", self._path("/files"), query={"path": path}, accept="application/octet-stream", stream=True
        )
        n = 0
        if isinstance(dest, (str, os.PathLike)):
            with open(dest, "wb") as f:
                for b in resp.chunks():
                    f.write(b)
                    n += len(b)
            return n
        for b in resp.chunks():
            dest.write(b)
            n += len(b)
        return n

    def list_files(self, path: str = "/") -> List[FileInfo]:
        """The entries of the directory at path."""
        data = self._t.request("GET", self._path("/files/list"), query={"path": path}).json() or []
        return [FileInfo.from_dict(d) for d in data]

    def stat_file(self, path: str) -> FileInfo:
        """Describe the file at path."""
        return FileInfo.from_dict(self._t.request("GET", self._path("/files/stat"), query={"path": path}).json())

    def glob_files(self, pattern: str) -> List[str]:
        """Absolute paths matching pattern (``**`` recurses)."""
        return list(self._t.request("GET", self._path("/files/glob"), query={"pattern": pattern}).json() or [])

    def delete_file(self, path: str, recursive: bool = False) -> None:
        """Delete path; recursive removes a directory tree."""
        q: Dict[str, Any] = {"path": path}
        if recursive:
            q["recursive"] = True
        self._t.request("DELETE", self._path("/files"), query=q).read()

    def move_file(self, old_path: str, new_path: str) -> None:
        """Rename old_path to new_path."""
        self._t.request("POST", self._path("/files/move"), json={"old_path": old_path, "new_path": new_path}).read()

    def chmod_file(self, path: str, mode: str) -> None:
        """Set path's permission bits (octal digits, e.g. "0755")."""
        self._t.request("POST", self._path("/files/chmod"), json={"path": path, "mode": mode}).read()


class Client(ClientExtras):
    """A client for one StacyVM server.

    ``Client(base_url, api_key, user_id, timeout)``; ``timeout`` is seconds per
    request (streams are not cut by it). Use it as a context manager or call
    ``close()``; both are cheap: every request has its own connection.
    """

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
        self._transport = Transport(
            base_url or os.environ.get("STACYVM_URL") or DEFAULT_URL,
            api_key=api_key if api_key is not None else os.environ.get("STACYVM_API_KEY"),
            admin_api_key=admin_api_key,
            user_id=user_id,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )

    @property
    def base_url(self) -> str:
        """The API root, ending in /api/v1."""
        return self._transport.base_url

    def close(self) -> None:
        """Release the client (nothing is pooled; kept for symmetry with AsyncClient)."""

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sandbox(self, data: Dict[str, Any]) -> Sandbox:
        return Sandbox(self, SandboxInfo.from_dict(data))

    # -- sandboxes --------------------------------------------------------------
    def spawn(
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
    ) -> Sandbox:
        """Create a sandbox and return it once it runs. Not retried (not idempotent)."""
        body = _spawn_body(image=image, provider=provider, memory_mb=memory_mb, vcpus=vcpus, ttl=ttl,
                           template=template, owner_id=owner_id, metadata=metadata, env=env, network=network)
        return self._sandbox(self._transport.request("POST", "/sandboxes", json=body, timeout=max(self._transport.timeout, 120)).json())

    def admission(
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
        """Would a spawn with these arguments be admitted now? Creates nothing."""
        body = _spawn_body(image=image, provider=provider, memory_mb=memory_mb, vcpus=vcpus, ttl=ttl,
                           template=template, owner_id=owner_id, metadata=metadata, env=env, network=network)
        return Admission.from_dict(self._transport.request("POST", "/sandboxes/admission", json=body, idempotent=True).json())

    def get(self, sandbox_id: str) -> Sandbox:
        """One sandbox; an unknown id raises NotFound (SandboxNotFound)."""
        return self._sandbox(self._transport.request("GET", f"/sandboxes/{_quote(sandbox_id)}").json())

    def list(
        self,
        *,
        owner_id: Optional[str] = None,
        state: Optional[str] = None,
        label: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Sandbox]:
        """Visible sandboxes, newest first."""
        q = {"owner_id": owner_id, "state": state, "label": label, "limit": limit}
        return [self._sandbox(d) for d in self._transport.request("GET", "/sandboxes", query=q).json() or []]

    def prune(self) -> int:
        """Destroy expired sandboxes; returns how many."""
        return int((self._transport.request("DELETE", "/sandboxes").json() or {}).get("pruned", 0))

    def spawn_template(
        self,
        name: str,
        *,
        provider: Optional[str] = None,
        ttl: Duration = None,
        owner_id: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> Sandbox:
        """Create a sandbox from a template (its setup steps run first); unknown names raise NotFound."""
        body = _spawn_body(provider=provider, ttl=ttl, owner_id=owner_id, metadata=metadata, env=env)
        path = f"/templates/{_quote(name)}/spawn"
        return self._sandbox(self._transport.request("POST", path, json=body, timeout=max(self._transport.timeout, 120)).json())

    # -- system -------------------------------------------------------------------
    def health(self) -> Health:
        """GET /health."""
        return Health.from_dict(self._transport.request("GET", "/health").json())

    def live(self) -> Health:
        """GET /live: the process answers."""
        return Health.from_dict(self._transport.request("GET", "/live").json())

    def ready(self) -> Health:
        """GET /ready: raises ProviderError (503) while the server is not ready."""
        return Health.from_dict(self._transport.request("GET", "/ready", idempotent=False).json())

    def openapi(self) -> Dict[str, Any]:
        """The server's OpenAPI 3.1 document."""
        return dict(self._transport.request("GET", "/openapi.json").json())

    def providers(self) -> List[ProviderInfo]:
        """Every configured provider with its health and capabilities."""
        return [ProviderInfo.from_dict(d) for d in self._transport.request("GET", "/providers").json() or []]

    def provider(self, name: str) -> ProviderInfo:
        """One provider; an unknown name raises NotFound."""
        return ProviderInfo.from_dict(self._transport.request("GET", f"/providers/{_quote(name)}").json())

    def test_providers(self) -> Dict[str, bool]:
        """Health-check every provider now: {name: healthy}."""
        return dict(self._transport.request("POST", "/providers/test", idempotent=True).json() or {})

    def pool_status(self) -> PoolStatus:
        """The shared-VM pool's status."""
        return PoolStatus.from_dict(self._transport.request("GET", "/pool/status").json())

    def warm_pools(self) -> Dict[str, Any]:
        """The warm pools of pre-started sandboxes."""
        return dict(self._transport.request("GET", "/pool/warm").json() or {})

    def quota_summary(self) -> QuotaSummary:
        """Counts of owners with quotas."""
        return QuotaSummary.from_dict(self._transport.request("GET", "/quotas/summary").json())
