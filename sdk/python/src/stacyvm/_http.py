"""The SDK's HTTP transport on the standard library's http.client.

One connection per request keeps the transport thread-safe without locks.
Only idempotent requests are retried (connection failures, 429 with
Retry-After, 502/503/504), with exponential backoff. A streamed response has
its socket timeout lifted after the headers arrive, so a quiet command is not
cut off by the request timeout.
"""

from __future__ import annotations

import http.client
import json as _json
import random
import socket
import ssl
import time
import urllib.parse
from typing import Any, BinaryIO, Dict, Iterator, Mapping, Optional, Union

from . import errors

__version__ = "0.1.0"

Body = Union[bytes, BinaryIO, None]

_RETRY_STATUSES = (429, 502, 503, 504)


class Response:
    """A 2xx answer. Call ``read()`` once, or iterate ``lines()``/``chunks()``; then ``close()``."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        self._conn = conn
        self._resp = resp
        self.status = resp.status
        self.headers = resp.headers

    def read(self) -> bytes:
        try:
            return self._resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise _wrap_net(e) from e
        finally:
            self.close()

    def json(self) -> Any:
        data = self.read()
        if not data:
            return None
        try:
            return _json.loads(data)
        except ValueError as e:
            raise errors.StacyVMError(f"bad JSON in response: {data[:120]!r}") from e

    def lines(self) -> Iterator[bytes]:
        """Yield the body's lines as they arrive (NDJSON)."""
        try:
            while True:
                line = self._resp.readline()
                if not line:
                    return
                yield line
        except (OSError, http.client.HTTPException) as e:
            raise _wrap_net(e) from e
        finally:
            self.close()

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """Yield the body in blocks of at most size bytes."""
        try:
            while True:
                b = self._resp.read(size)
                if not b:
                    return
                yield b
        except (OSError, http.client.HTTPException) as e:
            raise _wrap_net(e) from e
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._resp.close()
        finally:
            self._conn.close()


def _wrap_net(e: BaseException) -> errors.StacyVMError:
    if isinstance(e, socket.timeout):
        return errors.Timeout(f"request timed out: {e}")
    return errors.ConnectionError(f"connection to the server failed: {e}")


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Transport:
    """Sends requests to one server's /api/v1 root."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Optional[str] = None,
        admin_api_key: Optional[str] = None,
        user_id: Optional[str] = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        backoff: float = 0.25,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        u = urllib.parse.urlsplit(base_url.strip())
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        prefix = u.path.rstrip("/")
        if not prefix.endswith("/api/v1"):
            prefix += "/api/v1"
        self.prefix = prefix
        self.base_url = f"{u.scheme}://{u.netloc}{prefix}"
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.headers: Dict[str, str] = {"User-Agent": f"stacyvm-python/{__version__}"}
        if api_key:
            self.headers["X-API-Key"] = api_key
        if admin_api_key:
            self.headers["X-Admin-API-Key"] = admin_api_key
        if user_id:
            self.headers["X-User-ID"] = user_id
        if headers:
            self.headers.update(headers)

    def _connect(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def url(self, path: str, query: Optional[Mapping[str, Any]] = None) -> str:
        u = self.prefix + path
        if query:
            q = {k: _qv(v) for k, v in query.items() if v is not None}
            if q:
                u += "?" + urllib.parse.urlencode(q)
        return u

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        body: Body = None,
        accept: str = "application/json",
        stream: bool = False,
        timeout: Optional[float] = None,
        idempotent: Optional[bool] = None,
        content_type: Optional[str] = None,
    ) -> Response:
        """Send one request and return its 2xx response, or raise the typed error."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        if body is not None and not isinstance(body, (bytes, bytearray)):
            idempotent = False  # a stream cannot be replayed
        headers = dict(self.headers)
        headers["Accept"] = accept
        payload: Body = body
        if json is not None:
            payload = _json.dumps(json).encode()
            headers["Content-Type"] = "application/json"
        elif body is not None:
            headers["Content-Type"] = content_type or "application/octet-stream"
        url = self.url(path, query)
        tmo = self.timeout if timeout is None else timeout
        attempts = 1 + (self.max_retries if idempotent else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            conn = self._connect(tmo)
            try:
                conn.request(method, url, body=payload, headers=headers)
                resp = conn.getresponse()
            except socket.timeout as e:
                conn.close()
                raise errors.Timeout(f"{method} {path}: no answer within {tmo}s") from e
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if last:
                    raise errors.ConnectionError(f"cannot reach the server at {self.base_url}: {e}") from e
                self._sleep(attempt, None)
                continue
            if 200 <= resp.status < 300:
                if stream and conn.sock is not None:
                    conn.sock.settimeout(None)
                return Response(conn, resp)
            try:
                data = resp.read(64 << 10)
            except (OSError, http.client.HTTPException):
                data = b""
            finally:
                conn.close()
            err = self._error(resp, data)
            if resp.status in _RETRY_STATUSES and not last:
                self._sleep(attempt, getattr(err, "retry_after", None))
                continue
            raise err
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, attempt: int, retry_after: Optional[float]) -> None:
        if retry_after is not None:
            time.sleep(min(retry_after, 30.0))
            return
        time.sleep(self.backoff * (2**attempt) * (0.5 + random.random() / 2))

    @staticmethod
    def _error(resp: http.client.HTTPResponse, data: bytes) -> errors.StacyVMError:
        code, message, rid = "", "", resp.headers.get("X-Request-ID", "") or ""
        try:
            obj = _json.loads(data) if data else None
        except ValueError:
            obj = None
        if isinstance(obj, dict) and (obj.get("code") or obj.get("message")):
            code = str(obj.get("code") or "")
            message = str(obj.get("message") or "")
            rid = str(obj.get("request_id") or rid)
        else:
            message = data.decode("utf-8", "replace").strip()[:200] or (resp.reason or "")
        if not code:
            code = errors.code_for_status(resp.status)
        return errors.error_for(
            code, message, status=resp.status, request_id=rid, retry_after=_retry_after(resp.headers.get("Retry-After"))
        )


def _qv(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
