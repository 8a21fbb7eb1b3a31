"""StacyVM Python SDK: sandboxes for AI agents, on the standard library only.

    from stacyvm import Client
    with Client("http://127.0.0.1:7423") as c, c.spawn() as sb:
        print(sb.exec("echo hi").stdout)
"""

from ._aio_run import AsyncEventStream, AsyncExecSession, AsyncProcessOutput
from ._extras import ProcessOutput
from ._session import ExecSession
from ._http import __version__
from ._sse import Event, EventStream
from .aio import AsyncClient, AsyncExecStream, AsyncSandbox
from .client import Client, ExecStream, Sandbox
from .errors import (
    BadRequest,
    Conflict,
    ConnectionError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    RateLimited,
    ResourceLimit,
    SandboxNotFound,
    ServerError,
    StacyVMError,
    Timeout,
    Unauthorized,
)
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
    Principal,
    Quota,
    QuotaUsage,
    Stats,
    Template,
)

__all__ = [
    "__version__",
    "Client", "Sandbox", "ExecStream",
    "AsyncClient", "AsyncSandbox", "AsyncExecStream",
    "StacyVMError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "SandboxNotFound",
    "Timeout", "Conflict", "PayloadTooLarge", "RateLimited", "ResourceLimit", "ProviderError",
    "ServerError", "ConnectionError",
    "Admission", "ExecChunk", "ExecResult", "FileInfo", "Health", "PoolStatus", "ProviderInfo",
    "QuotaSummary", "SandboxInfo", "Stats", "Template", "Quota", "QuotaUsage", "Principal",
    "Event", "EventStream", "AsyncEventStream", "ExecSession", "AsyncExecSession",
    "ProcessOutput", "AsyncProcessOutput",
]
