"""Async twins of ``_extras``: each method runs its sync counterpart in the
default thread executor (see aio.py). Generated from ``_extras`` and kept in
step with it by the surface test in tests/test_async.py.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ._aio_run import AsyncEventStream, AsyncExecSession, AsyncProcessOutput, run as _run
from ._extras import Dest, Duration, Source
from .models import Principal, Quota, QuotaUsage, Template


class AsyncClientExtras:
    """The async side of ``ClientExtras``."""

    _c: Any

    async def api_keys(self, tenant: Optional[str] = None) -> List[Dict[str, Any]]:
        """API keys (without their secrets)."""
        return await _run(self._c.api_keys, tenant)

    async def audit(
        self,
        *,
        tenant: Optional[str] = None,
        kind: Optional[str] = None,
        since: Optional[str] = None,
        after: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Audit events, oldest first (NDJSON export decoded)."""
        return await _run(self._c.audit, tenant=tenant, kind=kind, since=since, after=after, limit=limit)

    async def create_api_key(
        self,
        role: str,
        *,
        name: Optional[str] = None,
        tenant_id: Optional[str] = None,
        act_for_users: Optional[bool] = None,
    ) -> Dict[str, Any]:
        """Mint an API key; the answer's ``key`` is shown only this once."""
        return await _run(self._c.create_api_key, role, name=name, tenant_id=tenant_id, act_for_users=act_for_users)

    async def create_template(
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
        return await _run(self._c.create_template, name, image, description=description, setup=setup, memory_mb=memory_mb, cpu_cores=cpu_cores, ttl=ttl, env=env, pool_size=pool_size, provider=provider, network=network)

    async def create_tenant(self, tenant_id: str, name: Optional[str] = None) -> Dict[str, Any]:
        """Create a tenant (admin)."""
        return await _run(self._c.create_tenant, tenant_id, name)

    async def create_tenant_policy(
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
        return await _run(self._c.create_tenant_policy, tenant_id, kind, effect, pattern, policy_id=policy_id, priority=priority)

    async def delete_api_key(self, key_id: str) -> None:
        """Revoke an API key."""
        await _run(self._c.delete_api_key, key_id)

    async def delete_quota(self, owner: str) -> None:
        """Remove an owner's quota (admin)."""
        await _run(self._c.delete_quota, owner)

    async def delete_template(self, name: str) -> None:
        """Delete a template."""
        await _run(self._c.delete_template, name)

    async def delete_tenant(self, tenant_id: str) -> None:
        """Delete a tenant (admin)."""
        await _run(self._c.delete_tenant, tenant_id)

    async def delete_tenant_member(self, tenant_id: str, user: str) -> None:
        """Remove a member from a tenant."""
        await _run(self._c.delete_tenant_member, tenant_id, user)

    async def delete_tenant_policy(self, tenant_id: str, policy_id: str) -> None:
        """Remove a policy."""
        await _run(self._c.delete_tenant_policy, tenant_id, policy_id)

    async def diagnostics(self) -> Dict[str, Any]:
        """The server's redacted diagnostics."""
        return await _run(self._c.diagnostics)

    async def events(self, last_event_id: Optional[str] = None) -> AsyncEventStream:
        """Live server events (SSE): iterate ``Event(type, data, id)``; resume after ``last_event_id``."""
        return AsyncEventStream(await _run(self._c.events, last_event_id))

    async def metrics(self) -> List[Dict[str, Any]]:
        """Metric families as JSON."""
        return await _run(self._c.metrics)

    async def metrics_prometheus(self) -> str:
        """Metrics in the Prometheus text format (families prefixed ``stacyvm_``)."""
        return await _run(self._c.metrics_prometheus)

    async def quota(self, owner: str) -> Quota:
        """One owner's quota; none set raises NotFound."""
        return await _run(self._c.quota, owner)

    async def quota_usage(self, owner: str) -> QuotaUsage:
        """An owner's active sandboxes against their quota."""
        return await _run(self._c.quota_usage, owner)

    async def quotas(self) -> List[Quota]:
        """Every owner's quota."""
        return await _run(self._c.quotas)

    async def set_quota(
        self,
        owner: str,
        *,
        max_sandboxes: Optional[int] = None,
        max_ttl: Duration = None,
        max_exec_timeout: Duration = None,
    ) -> Quota:
        """Set an owner's quota (admin)."""
        return await _run(self._c.set_quota, owner, max_sandboxes=max_sandboxes, max_ttl=max_ttl, max_exec_timeout=max_exec_timeout)

    async def set_tenant_member(self, tenant_id: str, user: str, role: str) -> Dict[str, Any]:
        """Add a member to a tenant or change their role."""
        return await _run(self._c.set_tenant_member, tenant_id, user, role)

    async def template(self, name: str) -> Template:
        """One template; an unknown name raises NotFound."""
        return await _run(self._c.template, name)

    async def templates(self) -> List[Template]:
        """Every template visible to the caller."""
        return await _run(self._c.templates)

    async def tenant(self, tenant_id: str) -> Dict[str, Any]:
        """One tenant."""
        return await _run(self._c.tenant, tenant_id)

    async def tenant_members(self, tenant_id: str) -> List[Dict[str, Any]]:
        """A tenant's members and their roles."""
        return await _run(self._c.tenant_members, tenant_id)

    async def tenant_policies(self, tenant_id: str) -> List[Dict[str, Any]]:
        """A tenant's allow/deny policies."""
        return await _run(self._c.tenant_policies, tenant_id)

    async def tenants(self) -> List[Dict[str, Any]]:
        """Every tenant (admin)."""
        return await _run(self._c.tenants)

    async def update_template(
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
        return await _run(self._c.update_template, name, image, description=description, setup=setup, memory_mb=memory_mb, cpu_cores=cpu_cores, ttl=ttl, env=env, pool_size=pool_size, provider=provider, network=network)

    async def whoami(self) -> Principal:
        """The principal the server authenticated this client as."""
        return await _run(self._c.whoami)

class AsyncSandboxExtras:
    """The async side of ``SandboxExtras``."""

    _sb: Any

    async def download_archive(self, path: str, dest: Dest, gzip: bool = False) -> int:
        """Stream the directory at path as a tar (gzip=True: .tar.gz) into dest; returns bytes written."""
        return await _run(self._sb.download_archive, path, dest, gzip)

    async def exec_ws(
        self,
        command: str = '/bin/sh',
        args: Optional[Sequence[str]] = None,
        *,
        mode: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Duration = None,
        tty: bool = False,
        cols: Optional[int] = None,
        rows: Optional[int] = None,
    ) -> AsyncExecSession:
        """Start an interactive process over a WebSocket (stdin, PTY, resize, signals)."""
        return AsyncExecSession(await _run(self._sb.exec_ws, command, args, mode=mode, env=env, workdir=workdir, timeout=timeout, tty=tty, cols=cols, rows=rows))

    async def preview_token(self, port: int, ttl: Duration = None) -> Dict[str, Any]:
        """Mint a token for the sandbox's port preview: ``{token, expires_at, url?, path_url}``."""
        return await _run(self._sb.preview_token, port, ttl)

    async def upload_archive(self, path: str, source: Source, gzip: bool = False) -> Dict[str, Any]:
        """Unpack a tar (gzip=True: .tar.gz) from source into the directory at path."""
        return await _run(self._sb.upload_archive, path, source, gzip)

    async def watch_files(self, path: str, recursive: bool = True) -> AsyncEventStream:
        """Watch path for changes (SSE): ``ready`` first, then create/modify/delete/overflow events."""
        return AsyncEventStream(await _run(self._sb.watch_files, path, recursive))

class AsyncProcessExtras:
    """The async side of ``ProcessExtras``."""

    _sb: Any

    async def kill_process(self, process_id: str) -> Dict[str, Any]:
        """Kill the process; returns its final state. Its output stays readable."""
        return await _run(self._sb.kill_process, process_id)

    async def process(self, process_id: str) -> Dict[str, Any]:
        """A background process's status and exit code."""
        return await _run(self._sb.process, process_id)

    async def process_output(
        self,
        process_id: str,
        offset: int = 0,
        follow: bool = False,
    ) -> AsyncProcessOutput:
        """Read output from byte offset; follow=True waits for more until the process exits."""
        return AsyncProcessOutput(await _run(self._sb.process_output, process_id, offset, follow))

    async def process_stdin(self, process_id: str, data: Union[str, bytes], eof: bool = False) -> None:
        """Send data to the process's stdin (it must have been started with stdin or tty); eof closes it."""
        await _run(self._sb.process_stdin, process_id, data, eof)

    async def processes(self) -> List[Dict[str, Any]]:
        """Background processes, oldest first (exited ones are kept for a while)."""
        return await _run(self._sb.processes)

    async def resize_process(self, process_id: str, cols: int, rows: int) -> None:
        """Resize a TTY process's terminal."""
        await _run(self._sb.resize_process, process_id, cols, rows)

    async def signal_process(self, process_id: str, signal: str) -> None:
        """Send a signal ("SIGINT", "SIGTERM", ...) to the process's group."""
        await _run(self._sb.signal_process, process_id, signal)

    async def start_process(
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
        return await _run(self._sb.start_process, command, args, mode=mode, env=env, workdir=workdir, timeout=timeout, tty=tty, cols=cols, rows=rows, stdin=stdin, output_limit=output_limit)
