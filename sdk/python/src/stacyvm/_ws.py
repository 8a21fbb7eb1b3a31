"""A small RFC 6455 WebSocket client on the standard library, for the
interactive exec (GET /sandboxes/{id}/exec/ws).

Only what the exec protocol needs: the opening handshake with our auth
headers, masked text/binary frames out, text/binary/ping/pong/close in,
fragmented messages, and the close handshake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import threading
from typing import Any, Dict, Optional, Tuple

from . import errors

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 8 << 20


class WebSocket:
    """One client connection. ``recv`` from one thread; ``send_*`` from any."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self._wlock = threading.Lock()
        self.close_code: Optional[int] = None
        self.close_reason = ""

    @classmethod
    def connect(cls, scheme: str, host: str, port: int, path: str, headers: Dict[str, str], timeout: float) -> "WebSocket":
        try:
            return cls._connect(scheme, host, port, path, headers, timeout)
        except socket.timeout as e:
            raise errors.Timeout(f"WebSocket handshake: no answer within {timeout}s") from e
        except OSError as e:
            raise errors.ConnectionError(f"cannot open a WebSocket to {host}:{port}: {e}") from e

    @classmethod
    def _connect(cls, scheme: str, host: str, port: int, path: str, headers: Dict[str, str], timeout: float) -> "WebSocket":
        raw = socket.create_connection((host, port), timeout=timeout)
        sock: socket.socket = raw
        if scheme == "https":
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        ws = cls(sock)
        status, resp_headers, body = ws._read_http_response()
        if status != 101:
            sock.close()
            raise _http_error(status, resp_headers, body)
        want = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        if resp_headers.get("sec-websocket-accept") != want:
            sock.close()
            raise errors.ConnectionError("WebSocket handshake: bad Sec-WebSocket-Accept")
        sock.settimeout(None)  # the session has no deadline; the server pings
        return ws

    def _read_http_response(self) -> Tuple[int, Dict[str, str], bytes]:
        while b"\r\n\r\n" not in self._buf:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise errors.ConnectionError("WebSocket handshake: connection closed")
            self._buf += chunk
            if len(self._buf) > 64 << 10:
                raise errors.ConnectionError("WebSocket handshake: answer too large")
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if status == 101:
            self._buf = rest
            return status, hdrs, b""
        n = int(hdrs.get("content-length", "0") or 0)
        while len(rest) < n:
            chunk = self._sock.recv(4096)
            if not chunk:
                break
            rest += chunk
        return status, hdrs, rest[:n]

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                chunk = self._sock.recv(max(65536, n - len(self._buf)))
            except OSError as e:
                raise errors.ConnectionError(f"WebSocket read: {e}") from e
            if not chunk:
                raise errors.ConnectionError("WebSocket closed without a close frame")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = _mask(payload, mask)
        with self._wlock:
            self._sock.sendall(head + mask + masked)

    def send_text(self, text: str) -> None:
        self._send_frame(OP_TEXT, text.encode("utf-8"))

    def send_json(self, obj: Any) -> None:
        self.send_text(json.dumps(obj))

    def send_binary(self, data: bytes) -> None:
        self._send_frame(OP_BIN, data)

    def recv(self) -> Optional[Tuple[int, bytes]]:
        """The next data message (opcode, payload), or None after a close."""
        parts, first_op = [], None
        while True:
            b0, b1 = self._read(2)
            fin, op, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            if n > MAX_MESSAGE:
                raise errors.StacyVMError(f"WebSocket message of {n} bytes is too large")
            key = self._read(4) if b1 & 0x80 else b""
            payload = self._read(n)
            if key:
                payload = _mask(payload, key)
            if op == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode("utf-8", "replace")
                try:
                    self._send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                return None
            if op != OP_CONT:
                first_op = op
            parts.append(payload)
            if fin:
                return (first_op or OP_TEXT), b"".join(parts)

    def close(self, code: int = 1000) -> None:
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", code))
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass


def _mask(data: bytes, key: bytes) -> bytes:
    """XOR data with the repeated 4-byte key, as one big-integer operation."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def _http_error(status: int, headers: Dict[str, str], body: bytes) -> errors.StacyVMError:
    code, message = "", body.decode("utf-8", "replace").strip()[:200]
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            code, message = str(obj.get("code") or ""), str(obj.get("message") or message)
    except ValueError:
        pass
    return errors.error_for(code or errors.code_for_status(status), message, status=status,
                            request_id=headers.get("x-request-id", ""))
