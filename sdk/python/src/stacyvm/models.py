"""Typed models of the StacyVM API's JSON objects.

Each model is a dataclass built with ``from_dict``; keys the model does not
know are kept in ``raw`` (the whole object), so a newer server never breaks an
older SDK. Times are timezone-aware ``datetime`` values (or None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: Any) -> Optional[datetime]:
    """Parse an RFC 3339 time as the server writes it (nanoseconds allowed)."""
    if not value or not isinstance(value, str):
        return None
    s = value.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    # datetime.fromisoformat (3.9) takes at most 6 fractional digits.
    s = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], s, count=1)
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dataclass
class SandboxInfo:
    """The API's sandbox object."""

    id: str
    state: str
    provider: str = ""
    image: str = ""
    memory_mb: int = 0
    vcpus: int = 0
    owner_id: str = ""
    tenant_id: str = ""
    vm_id: str = ""
    worker_id: str = ""
    created_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    metadata: Dict[str, str] = field(default_factory=dict)
    preview_domain: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "SandboxInfo":
        return cls(
            id=str(d.get("id", "")),
            state=str(d.get("state", "")),
            provider=str(d.get("provider", "")),
            image=str(d.get("image", "")),
            memory_mb=int(d.get("memory_mb") or 0),
            vcpus=int(d.get("vcpus") or 0),
            owner_id=str(d.get("owner_id") or ""),
            tenant_id=str(d.get("tenant_id") or ""),
            vm_id=str(d.get("vm_id") or ""),
            worker_id=str(d.get("worker_id") or ""),
            created_at=parse_time(d.get("created_at")),
            expires_at=parse_time(d.get("expires_at")),
            metadata=dict(d.get("metadata") or {}),
            preview_domain=str(d.get("preview_domain") or ""),
            raw=dict(d),
        )


@dataclass
class ExecResult:
    """The outcome of a synchronous exec. A non-zero exit code is a result, not an error."""

    exit_code: int
    stdout: str
    stderr: str
    duration: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ExecResult":
        return cls(
            exit_code=int(d.get("exit_code", -1)),
            stdout=str(d.get("stdout") or ""),
            stderr=str(d.get("stderr") or ""),
            duration=str(d.get("duration") or ""),
            raw=dict(d),
        )


@dataclass
class ExecChunk:
    """One line of a streamed exec: ``stream`` is stdout, stderr or exit.

    The last chunk has ``stream == "exit"``, empty ``data`` and the ``exit_code``.
    """

    stream: str
    data: str
    exit_code: Optional[int] = None


@dataclass
class FileInfo:
    """A file inside a sandbox. ``mode`` is octal digits such as ``"644"``."""

    path: str
    size: int = 0
    mode: str = ""
    is_dir: bool = False
    mod_time: Optional[datetime] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "FileInfo":
        return cls(
            path=str(d.get("path", "")),
            size=int(d.get("size") or 0),
            mode=str(d.get("mode") or ""),
            is_dir=bool(d.get("is_dir")),
            mod_time=parse_time(d.get("mod_time")),
            raw=dict(d),
        )


@dataclass
class Admission:
    """The answer of an admission check (would a spawn be admitted now?)."""

    allowed: bool
    queueable: bool = False
    reason: str = ""
    active_sandboxes: int = 0
    max_sandboxes: int = 0
    active_owner_sandboxes: Optional[int] = None
    max_owner_sandboxes: Optional[int] = None
    max_ttl: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Admission":
        return cls(
            allowed=bool(d.get("allowed")),
            queueable=bool(d.get("queueable")),
            reason=str(d.get("reason") or ""),
            active_sandboxes=int(d.get("active_sandboxes") or 0),
            max_sandboxes=int(d.get("max_sandboxes") or 0),
            active_owner_sandboxes=d.get("active_owner_sandboxes"),
            max_owner_sandboxes=d.get("max_owner_sandboxes"),
            max_ttl=str(d.get("max_ttl") or ""),
            raw=dict(d),
        )


@dataclass
class Health:
    """GET /health, /live and /ready."""

    status: str
    version: str = ""
    uptime: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Health":
        return cls(
            status=str(d.get("status", "")),
            version=str(d.get("version") or ""),
            uptime=str(d.get("uptime") if d.get("uptime") is not None else ""),
            raw=dict(d),
        )


@dataclass
class ProviderInfo:
    """One provider of GET /providers."""

    name: str
    healthy: bool = False
    default: bool = False
    latency_ms: float = 0.0
    last_checked: Optional[datetime] = None
    error: str = ""
    capabilities: List[str] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ProviderInfo":
        return cls(
            name=str(d.get("name", "")),
            healthy=bool(d.get("healthy")),
            default=bool(d.get("default")),
            latency_ms=float(d.get("latency_ms") or 0),
            last_checked=parse_time(d.get("last_checked")),
            error=str(d.get("error") or ""),
            capabilities=list(d.get("capabilities") or []),
            raw=dict(d),
        )


@dataclass
class PoolStatus:
    """GET /pool/status: ``enabled`` False when the shared-VM pool is off."""

    enabled: bool
    vms: int = 0
    max_vms: int = 0
    total_users: int = 0
    max_users_per_vm: int = 0
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PoolStatus":
        return cls(
            enabled=bool(d.get("enabled")),
            vms=int(d.get("vms") or 0),
            max_vms=int(d.get("max_vms") or 0),
            total_users=int(d.get("total_users") or 0),
            max_users_per_vm=int(d.get("max_users_per_vm") or 0),
            raw=dict(d),
        )


@dataclass
class QuotaSummary:
    """GET /quotas/summary."""

    total: int
    with_max_sandboxes: int = 0
    with_max_ttl: int = 0
    with_max_exec_timeout: int = 0
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "QuotaSummary":
        return cls(
            total=int(d.get("total") or 0),
            with_max_sandboxes=int(d.get("with_max_sandboxes") or 0),
            with_max_ttl=int(d.get("with_max_ttl") or 0),
            with_max_exec_timeout=int(d.get("with_max_exec_timeout") or 0),
            raw=dict(d),
        )


@dataclass
class Stats:
    """GET /sandboxes/{id}/stats; ``supported`` False when the provider cannot tell."""

    supported: bool
    cpu_pct: float = 0.0
    mem_bytes: int = 0
    mem_limit_bytes: int = 0
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Stats":
        return cls(
            supported=bool(d.get("supported")),
            cpu_pct=float(d.get("cpu_pct") or 0),
            mem_bytes=int(d.get("mem_bytes") or 0),
            mem_limit_bytes=int(d.get("mem_limit_bytes") or 0),
            raw=dict(d),
        )


@dataclass
class Template:
    """A sandbox template (a named, versioned recipe)."""

    name: str
    image: str = ""
    version: int = 0
    description: str = ""
    setup: List[str] = field(default_factory=list)
    memory_mb: int = 0
    cpu_cores: float = 0.0
    ttl_seconds: int = 0
    env: Dict[str, str] = field(default_factory=dict)
    pool_size: int = 0
    provider: str = ""
    network: str = ""
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Template":
        return cls(
            name=str(d.get("name", "")),
            image=str(d.get("image") or ""),
            version=int(d.get("version") or 0),
            description=str(d.get("description") or ""),
            setup=list(d.get("setup") or []),
            memory_mb=int(d.get("memory_mb") or 0),
            cpu_cores=float(d.get("cpu_cores") or 0),
            ttl_seconds=int(d.get("ttl_seconds") or 0),
            env=dict(d.get("env") or {}),
            pool_size=int(d.get("pool_size") or 0),
            provider=str(d.get("provider") or ""),
            network=str(d.get("network") or ""),
            created_at=parse_time(d.get("created_at")),
            updated_at=parse_time(d.get("updated_at")),
            raw=dict(d),
        )


@dataclass
class Quota:
    """An owner's quota; empty strings and 0 mean "no limit"."""

    owner: str
    max_sandboxes: int = 0
    max_ttl: str = ""
    max_exec_timeout: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Quota":
        return cls(
            owner=str(d.get("owner", "")),
            max_sandboxes=int(d.get("max_sandboxes") or 0),
            max_ttl=str(d.get("max_ttl") or ""),
            max_exec_timeout=str(d.get("max_exec_timeout") or ""),
            raw=dict(d),
        )


@dataclass
class QuotaUsage:
    """An owner's active sandboxes against their quota."""

    owner: str
    active_sandboxes: int = 0
    has_quota: bool = False
    max_sandboxes: int = 0
    max_ttl: str = ""
    max_exec_timeout: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "QuotaUsage":
        return cls(
            owner=str(d.get("owner", "")),
            active_sandboxes=int(d.get("active_sandboxes") or 0),
            has_quota=bool(d.get("has_quota")),
            max_sandboxes=int(d.get("max_sandboxes") or 0),
            max_ttl=str(d.get("max_ttl") or ""),
            max_exec_timeout=str(d.get("max_exec_timeout") or ""),
            raw=dict(d),
        )


@dataclass
class Principal:
    """Who the server thinks the caller is (GET /auth/whoami)."""

    subject: str
    role: str
    tenant_id: str = ""
    method: str = ""
    act_for_users: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Principal":
        return cls(
            subject=str(d.get("subject", "")),
            role=str(d.get("role", "")),
            tenant_id=str(d.get("tenant_id") or ""),
            method=str(d.get("method") or ""),
            act_for_users=bool(d.get("act_for_users")),
            raw=dict(d),
        )
