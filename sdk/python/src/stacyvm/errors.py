"""Typed exceptions raised by the StacyVM SDK.

Every API error carries the wire ``code`` (UPPERCASE, e.g. ``NOT_FOUND``),
the server's ``message``, the HTTP ``status`` and the ``request_id`` when the
server sent one. The class follows the code, so callers catch what they mean:
``except stacyvm.NotFound``. The names of the older StacyVM SDK
(``StacyVMError``, ``SandboxNotFound``, ``ProviderError``, ``ConnectionError``)
keep working.
"""

from __future__ import annotations

import builtins
from typing import Dict, Optional, Type


class StacyVMError(Exception):
    """Base class of every error the SDK raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int = 0,
        request_id: str = "",
    ) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id


class BadRequest(StacyVMError):
    """400 BAD_REQUEST: the request was malformed or a field was invalid."""


class Unauthorized(StacyVMError):
    """401 UNAUTHORIZED: missing or wrong credentials."""


class Forbidden(StacyVMError):
    """403 FORBIDDEN: authenticated but not allowed."""


class NotFound(StacyVMError):
    """404 NOT_FOUND: unknown sandbox, file, template or route."""


#: The older SDK's name for a 404 on a sandbox.
SandboxNotFound = NotFound


class Timeout(StacyVMError, builtins.TimeoutError):
    """408 TIMEOUT (the command was killed) or a client-side socket timeout."""


class Conflict(StacyVMError):
    """409 CONFLICT: duplicate name or a lease held by another holder."""


class PayloadTooLarge(StacyVMError):
    """413 PAYLOAD_TOO_LARGE: the body is over the server's limit."""


class RateLimited(StacyVMError):
    """429 RESOURCE_LIMIT: a quota, capacity or rate limit was hit.

    ``retry_after`` is the server's Retry-After in seconds, or None.
    """

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


#: The wire code's name for RateLimited.
ResourceLimit = RateLimited


class ProviderError(StacyVMError):
    """503 UNAVAILABLE: a provider or worker is unreachable, or the server drains."""


class ServerError(StacyVMError):
    """500 INTERNAL_ERROR (a server bug; the message carries an error id)."""


class ConnectionError(StacyVMError, builtins.ConnectionError):  # noqa: A001 - the older SDK's name
    """The server could not be reached, or the connection broke mid-answer."""


_BY_CODE: Dict[str, Type[StacyVMError]] = {
    "BAD_REQUEST": BadRequest,
    "UNAUTHORIZED": Unauthorized,
    "FORBIDDEN": Forbidden,
    "NOT_FOUND": NotFound,
    "TIMEOUT": Timeout,
    "CONFLICT": Conflict,
    "PAYLOAD_TOO_LARGE": PayloadTooLarge,
    "RESOURCE_LIMIT": RateLimited,
    "UNAVAILABLE": ProviderError,
    "INTERNAL_ERROR": ServerError,
}

_BY_STATUS: Dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    408: "TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    429: "RESOURCE_LIMIT",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}


def code_for_status(status: int) -> str:
    """The wire code for a status whose answer carried no JSON error body."""
    return _BY_STATUS.get(status, "INTERNAL_ERROR")


def error_for(
    code: str,
    message: str,
    *,
    status: int = 0,
    request_id: str = "",
    retry_after: Optional[float] = None,
) -> StacyVMError:
    """Build the typed exception for a wire error."""
    cls = _BY_CODE.get(code, StacyVMError)
    if cls is RateLimited:
        return RateLimited(message, code=code, status=status, request_id=request_id, retry_after=retry_after)
    return cls(message, code=code, status=status, request_id=request_id)
