"""Client and Sandbox methods beyond the older StacyVM surface: templates,
quotas, identity, tenants and keys, audit, diagnostics, metrics, events,
tar archives, file watches and preview tokens. Mixed into ``Client`` and
``Sandbox``; ``AsyncClient``/``AsyncSandbox`` mirror them.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Union

from . import errors
from ._http import Response, Transport
from ._session import ExecSession
from ._sse import EventStream
from ._ws import WebSocket
from .models import Principal, Quota, QuotaUsage, Template

Duration = Union[str, int, float, None]
Source = Union[bytes, str, "os.PathLike[str]", IO[bytes]]
Dest = Union[str, "os.PathLike[str]", IO[bytes]]


def _q(s: str) -> str:
    return urllib.parse.quote(str(s), safe="")


def _seconds_of(ttl: Duration) -> Optional[int]:
    from .client import _seconds  # late: client imports this module

    if ttl is None:
        return None
    secs = _seconds(ttl)
    if secs is None:
        raise ValueError(f"ttl must be seconds or a duration like '30m', got {ttl!r}")
    return int(secs)


def _template_body(name: str, image: str, fields: Mapping[str, Any]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"name": name, "image": image}
    for k, v in fields.items():
        if v is None:
            continue
        if k == "ttl":
            body["ttl_seconds"] = _seconds_of(v)
        else:
            body[k] = list(v) if k == "setup" else v
    return body


def _drop_none(d: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class ClientExtras:
    """Templates, quotas, identity, administration and observability."""

    _transport: Transport

    # -- templates --------------------------------------------------------------
    def templates(self) -> List[Template]:
        """Every template visible to the caller."""
        return [Template.from_dict(d) for d in self._transport.request("GET", "/templates").json() or []]

    def template(self, name: str) -> Template:
        """One template; an unknown name raises NotFound."""
        return Template.from_dict(self._transport.request("GET", f"/templates/{_q(name)}").json())

    def create_template(
        self,
        name: str,
        image: str,
        *,
        description: Optional[str] = None,
        setup: Optional[Sequence[str]] = None,
        memory_mb: Optional[int] = None,
        cpu_cores: Optional[float] = None,
        ttl: Duration = None,
        env: Optional[Mapping[str, str]] = None,
        pool_size: Optional[int] = None,
        provider: Optional[str] = None,
        network: Optional[str] = None,
    ) -> Template:
        """Create a template; a duplicate name raises Conflict."""
        body = _template_body(name, image, dict(description=description, setup=setup, memory_mb=memory_mb,
                                                cpu_cores=cpu_cores, ttl=ttl, env=env, pool_size=pool_size,
                                                provider=provider, network=network))
        return Template.from_dict(self._transport.request("POST", "/templates", json=body).json())

    def update_template(
        self,
        name: str,
        image: str,
        *,
        description: Optional[str] = None,
        setup: Optional[Sequence[str]] = None,
        memory_mb: Optional[int] = None,
        cpu_cores: Optional[float] = None,
        ttl: Duration = None,
        env: Optional[Mapping[str, str]] = None,
        pool_size: Optional[int] = None,
        provider: Optional[str] = None,
        network: Optional[str] = None,
    ) -> Template:
        """Replace a template (a new version); fields left out take their defaults."""
        body = _template_body(name, image, dict(description=description, setup=setup, memory_mb=memory_mb,
                                                cpu_cores=cpu_cores, ttl=ttl, env=env, pool_size=pool_size,
                                                provider=provider, network=network))
        return Template.from_dict(self._transport.request("PUT", f"/templates/{_q(name)}", json=body).json())

    def delete_template(self, name: str) -> None:
        """Delete a template."""
        self._transport.request("DELETE", f"/templates/{_q(name)}").read()

    # -- quotas -----------------------------------------------------------------
    def quotas(self) -> List[Quota]:
        """Every owner's quota."""
        return [Quota.from_dict(d) for d in self._transport.request("GET", "/quotas").json() or []]

    def quota(self, owner: str) -> Quota:
        """One owner's quota; none set raises NotFound."""
        return Quota.from_dict(self._transport.request("GET", f"/quotas/{_q(owner)}").json())

    def set_quota(
        self,
        owner: str,
        *,
        max_sandboxes: Optional[int] = None,
        max_ttl: Duration = None,
        max_exec_timeout: Duration = None,
    ) -> Quota:
        """Set an owner's quota (admin)."""
        from .client import duration

        body = _drop_none({"max_sandboxes": max_sandboxes, "max_ttl": duration(max_ttl),
                           "max_exec_timeout": duration(max_exec_timeout)})
        return Quota.from_dict(self._transport.request("PUT", f"/quotas/{_q(owner)}", json=body).json())

    def delete_quota(self, owner: str) -> None:
        """Remove an owner's quota (admin)."""
        self._transport.request("DELETE", f"/quotas/{_q(owner)}").read()

    def quota_usage(self, owner: str) -> QuotaUsage:
        """An owner's active sandboxes against their quota."""
        return QuotaUsage.from_dict(self._transport.request("GET", f"/quotas/{_q(owner)}/usage").json())

    # -- identity and administration ---------------------------------------------
    def whoami(self) -> Principal:
        """The principal the server authenticated this client as."""
        return Principal.from_dict(self._transport.request("GET", "/auth/whoami").json())

    def create_api_key(
        self,
        role: str,
        *,
        name: Optional[str] = None,
        tenant_id: Optional[str] = None,
        act_for_users: Optional[bool] = None,
    ) -> Dict[str, Any]:
        """Mint an API key; the answer's ``key`` is shown only this once."""
        body = _drop_none({"role": role, "name": name, "tenant_id": tenant_id, "act_for_users": act_for_users})
        return dict(self._transport.request("POST", "/admin/keys", json=body).json())

    def api_keys(self, tenant: Optional[str] = None) -> List[Dict[str, Any]]:
        """API keys (without their secrets)."""
        return list(self._transport.request("GET", "/admin/keys", query={"tenant": tenant}).json() or [])

    def delete_api_key(self, key_id: str) -> None:
        """Revoke an API key."""
        self._transport.request("DELETE", f"/admin/keys/{_q(key_id)}").read()

    def create_tenant(self, tenant_id: str, name: Optional[str] = None) -> Dict[str, Any]:
        """Create a tenant (admin)."""
        return dict(self._transport.request("POST", "/admin/tenants", json=_drop_none({"id": tenant_id, "name": name})).json())

    def tenants(self) -> List[Dict[str, Any]]:
        """Every tenant (admin)."""
        return list(self._transport.request("GET", "/admin/tenants").json() or [])

    def tenant(self, tenant_id: str) -> Dict[str, Any]:
        """One tenant."""
        return dict(self._transport.request("GET", f"/admin/tenants/{_q(tenant_id)}").json())

    def delete_tenant(self, tenant_id: str) -> None:
        """Delete a tenant (admin)."""
        self._transport.request("DELETE", f"/admin/tenants/{_q(tenant_id)}").read()

    def tenant_members(self, tenant_id: str) -> List[Dict[str, Any]]:
        """A tenant's members and their roles."""
        return list(self._transport.request("GET", f"/admin/tenants/{_q(tenant_id)}/members").json() or [])

    def set_tenant_member(self, tenant_id: str, user: str, role: str) -> Dict[str, Any]:
        """Add a member to a tenant or change their role."""
        path = f"/admin/tenants/{_q(tenant_id)}/members/{_q(user)}"
        return dict(self._transport.request("PUT", path, json={"role": role}).json())

    def delete_tenant_member(self, tenant_id: str, user: str) -> None:
        """Remove a member from a tenant."""
        self._transport.request("DELETE", f"/admin/tenants/{_q(tenant_id)}/members/{_q(user)}").read()

    def tenant_policies(self, tenant_id: str) -> List[Dict[str, Any]]:
        """A tenant's allow/deny policies."""
        return list(self._transport.request("GET", f"/admin/tenants/{_q(tenant_id)}/policies").json() or [])

    def create_tenant_policy(
        self,
        tenant_id: str,
        kind: str,
        effect: str,
        pattern: str,
        *,
        policy_id: Optional[str] = None,
        priority: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Add a policy (kind: image, provider or network; effect: allow or deny)."""
        body = _drop_none({"kind": kind, "effect": effect, "pattern": pattern, "id": policy_id, "priority": priority})
        return dict(self._transport.request("POST", f"/admin/tenants/{_q(tenant_id)}/policies", json=body).json())

    def delete_tenant_policy(self, tenant_id: str, policy_id: str) -> None:
        """Remove a policy."""
        self._transport.request("DELETE", f"/admin/tenants/{_q(tenant_id)}/policies/{_q(policy_id)}").read()

    def audit(
        self,
        *,
        tenant: Optional[str] = None,
        kind: Optional[str] = None,
        since: Optional[str] = None,
        after: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Audit events, oldest first (NDJSON export decoded)."""
        q = {"format": "jsonl", "tenant": tenant, "kind": kind, "since": since, "after": after, "limit": limit}
        data = self._transport.request("GET", "/admin/audit", query=q, accept="application/x-ndjson").read()
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    # -- observability ------------------------------------------------------------
    def diagnostics(self) -> Dict[str, Any]:
        """The server's redacted diagnostics."""
        return dict(self._transport.request("GET", "/diagnostics").json() or {})

    def metrics(self) -> List[Dict[str, Any]]:
        """Metric families as JSON."""
        return list(self._transport.request("GET", "/metrics").json() or [])

    def metrics_prometheus(self) -> str:
        """Metrics in the Prometheus text format (families prefixed ``stacyvm_``)."""
        return self._transport.request("GET", "/metrics/prometheus", accept="text/plain").read().decode("utf-8")

    def events(self, last_event_id: Optional[str] = None) -> EventStream:
        """Live server events (SSE): iterate ``Event(type, data, id)``; resume after ``last_event_id``."""
        resp = self._transport.request("GET", "/events", query={"last_event_id": last_event_id},
                                       accept="text/event-stream", stream=True)
        return EventStream(resp)


class SandboxExtras:
    """Archives, file watches and preview tokens of one sandbox."""

    _t: Transport

    def _path(self, suffix: str = "") -> str:  # provided by Sandbox
        raise NotImplementedError

    def download_archive(self, path: str, dest: Dest, gzip: bool = False) -> int:
        """Stream the directory at path as a tar (gzip=True: .tar.gz) into dest; returns bytes written."""
        resp = self._t.request("GET", self._path("/files/archive"), query={"path": path, "gzip": gzip or None},
                               accept="application/gzip" if gzip else "application/x-tar", stream=True)
        return _save(resp, dest)

    def upload_archive(self, path: str, source: Source, gzip: bool = False) -> Dict[str, Any]:
        """Unpack a tar (gzip=True: .tar.gz) from source into the directory at path.

        Returns the server's summary: files, dirs, symlinks, bytes, skipped.
        """
        ctype = "application/gzip" if gzip else "application/x-tar"
        q = {"path": path, "gzip": gzip or None}
        tmo = max(self._t.timeout, 300)
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                resp = self._t.request("PUT", self._path("/files/archive"), query=q, body=f, content_type=ctype, timeout=tmo)
                return dict(resp.json() or {})
        body = bytes(source) if isinstance(source, (bytes, bytearray)) else source
        resp = self._t.request("PUT", self._path("/files/archive"), query=q, body=body, content_type=ctype, timeout=tmo)
        return dict(resp.json() or {})

    def watch_files(self, path: str, recursive: bool = True) -> EventStream:
        """Watch path for changes (SSE): ``ready`` first, then create/modify/delete/overflow events."""
        q = {"path": path, "recursive": None if recursive else False}
        resp = self._t.request("GET", self._path("/files/watch"), query=q, accept="text/event-stream", stream=True)
        return EventStream(resp)

    def exec_ws(
        self,
        command: str = "/bin/sh",
        args: Optional[Sequence[str]] = None,
        *,
        mode: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Duration = None,
        tty: bool = False,
        cols: Optional[int] = None,
        rows: Optional[int] = None,
    ) -> ExecSession:
        """Start an interactive process over a WebSocket (stdin, PTY, resize, signals)."""
        from .client import duration

        t = self._t
        headers = {k: v for k, v in t.headers.items() if k != "Accept"}
        ws = WebSocket.connect(t.scheme, t.host, t.port, t.prefix + self._path("/exec/ws"), headers, t.timeout)
        start = _drop_none({"command": command, "args": list(args) if args else None, "mode": mode,
                            "env": dict(env) if env else None, "workdir": workdir, "timeout": duration(timeout),
                            "tty": tty or None, "cols": cols, "rows": rows})
        try:
            ws.send_json(start)
        except OSError as e:
            ws.close()
            raise errors.ConnectionError(f"exec session: {e}") from e
        return ExecSession(ws)

    def preview_token(self, port: int, ttl: Duration = None) -> Dict[str, Any]:
        """Mint a token for the sandbox's port preview: ``{token, expires_at, url?, path_url}``."""
        from .client import duration

        body = _drop_none({"ttl": duration(ttl)})
        return dict(self._t.request("POST", self._path(f"/preview/{int(port)}/token"), json=body).json())


def _save(resp: Response, dest: Dest) -> int:
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


class ProcessOutput:
    """A background process's output as NDJSON lines: iterate dicts
    ``{"stream", "data", "offset"}``; the last is ``{"stream": "exit", "exit_code"}``
    once the process has exited. ``close()`` ends it early."""

    def __init__(self, resp: Response) -> None:
        self._resp = resp
        self._lines = resp.lines()

    def __iter__(self) -> "ProcessOutput":
        return self

    def __next__(self) -> Dict[str, Any]:
        for raw in self._lines:
            line = raw.strip()
            if not line:
                continue
            obj = json.loads(line)
            if obj.get("stream") == "error":
                raise errors.error_for(str(obj.get("code") or "INTERNAL_ERROR"), str(obj.get("data") or ""))
            return dict(obj)
        raise StopIteration

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> "ProcessOutput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProcessExtras:
    """Background processes of one sandbox: start, list, read output, stdin, signal, resize, kill."""

    _t: Transport

    def _path(self, suffix: str = "") -> str:  # provided by Sandbox
        raise NotImplementedError

    def start_process(
        self,
        command: str,
        args: Optional[Sequence[str]] = None,
        *,
        mode: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Duration = None,
        tty: bool = False,
        cols: Optional[int] = None,
        rows: Optional[int] = None,
        stdin: bool = False,
        output_limit: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Start a background process that outlives this call; returns its Process object (``id``)."""
        from .client import duration

        body = _drop_none({"command": command, "args": list(args) if args else None, "mode": mode,
                           "env": dict(env) if env else None, "workdir": workdir, "timeout": duration(timeout),
                           "tty": tty or None, "cols": cols, "rows": rows, "stdin": stdin or None,
                           "output_limit": output_limit})
        return dict(self._t.request("POST", self._path("/processes"), json=body).json())

    def processes(self) -> List[Dict[str, Any]]:
        """Background processes, oldest first (exited ones are kept for a while)."""
        return list(self._t.request("GET", self._path("/processes")).json() or [])

    def process(self, process_id: str) -> Dict[str, Any]:
        """A background process's status and exit code."""
        return dict(self._t.request("GET", self._path(f"/processes/{_q(process_id)}")).json())

    def process_output(self, process_id: str, offset: int = 0, follow: bool = False) -> ProcessOutput:
        """Read output from byte offset; follow=True waits for more until the process exits."""
        q = {"offset": offset or None, "follow": follow or None}
        resp = self._t.request("GET", self._path(f"/processes/{_q(process_id)}/output"), query=q,
                               accept="application/x-ndjson", stream=True)
        return ProcessOutput(resp)

    def process_stdin(self, process_id: str, data: Union[str, bytes], eof: bool = False) -> None:
        """Send data to the process's stdin (it must have been started with stdin or tty); eof closes it."""
        path = self._path(f"/processes/{_q(process_id)}/stdin")
        if isinstance(data, str):
            self._t.request("POST", path, json=_drop_none({"data": data, "eof": eof or None}), idempotent=False).read()
        else:
            self._t.request("POST", path, query={"eof": eof or None}, body=bytes(data), idempotent=False).read()

    def signal_process(self, process_id: str, signal: str) -> None:
        """Send a signal ("SIGINT", "SIGTERM", ...) to the process's group."""
        self._t.request("POST", self._path(f"/processes/{_q(process_id)}/signal"), json={"signal": signal}).read()

    def resize_process(self, process_id: str, cols: int, rows: int) -> None:
        """Resize a TTY process's terminal."""
        self._t.request("POST", self._path(f"/processes/{_q(process_id)}/resize"), json={"cols": cols, "rows": rows}).read()

    def kill_process(self, process_id: str) -> Dict[str, Any]:
        """Kill the process; returns its final state. Its output stays readable."""
        return dict(self._t.request("DELETE", self._path(f"/processes/{_q(process_id)}")).json())
