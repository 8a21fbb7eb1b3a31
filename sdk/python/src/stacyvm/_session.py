"""Interactive exec over a WebSocket: stdin, PTY, resize and signals."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, Optional, Union

from . import errors
from ._ws import OP_TEXT, WebSocket
from .models import ExecChunk, ExecResult


class ExecSession:
    """A process attached to a WebSocket (``Sandbox.exec_ws``).

    Iterate it for ``ExecChunk`` values (on a TTY all output is stdout); the
    last is ``stream == "exit"`` and sets ``exit_code``. Send input with
    ``send_stdin``, end it with ``close_stdin``; ``resize`` and ``signal``
    act on the process. Closing the session kills the process. Not cut by
    the request timeout.
    """

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self.exit_code: Optional[int] = None
        self.timed_out = False

    def __iter__(self) -> Iterator[ExecChunk]:
        return self

    def __next__(self) -> ExecChunk:
        if self.exit_code is not None:
            raise StopIteration
        while True:
            msg = self._ws.recv()
            if msg is None:
                code = self._ws.close_code or 1005
                if 4000 <= code < 5000:
                    raise errors.error_for(self._ws.close_reason or "INTERNAL_ERROR", "exec session closed",
                                           status=code - 4000)
                raise errors.ConnectionError(f"exec session closed ({code}) without an exit status")
            op, payload = msg
            if op != OP_TEXT:
                continue
            obj: Dict[str, Any] = json.loads(payload)
            stream = str(obj.get("stream") or "stdout")
            if stream == "error":
                raise errors.error_for(str(obj.get("code") or "INTERNAL_ERROR"), str(obj.get("message") or ""))
            if stream == "exit":
                self.exit_code = int(obj.get("exit_code", -1))
                self.timed_out = bool(obj.get("timed_out"))
                return ExecChunk("exit", "", self.exit_code)
            if stream in ("stdout", "stderr"):
                return ExecChunk(stream, str(obj.get("data") or ""))

    def send_stdin(self, data: Union[str, bytes]) -> None:
        """Send input (keys on a TTY); bytes pass unchanged."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._ws.send_binary(bytes(data))

    def close_stdin(self) -> None:
        """End the input (Ctrl-D on a TTY)."""
        self._ws.send_json({"eof": True})

    def resize(self, cols: int, rows: int) -> None:
        """Set the terminal size (TTY sessions)."""
        self._ws.send_json({"resize": {"cols": int(cols), "rows": int(rows)}})

    def signal(self, name: str) -> None:
        """Send a signal by name, e.g. "SIGINT"."""
        self._ws.send_json({"signal": name})

    def communicate(self, stdin: Union[str, bytes, None] = None) -> ExecResult:
        """Send stdin (if any), close it, and collect output until the process exits."""
        if stdin:
            self.send_stdin(stdin)
        self.close_stdin()
        out, err = [], []
        for ch in self:
            (out if ch.stream == "stdout" else err).append(ch.data)
        return ExecResult(exit_code=self.exit_code if self.exit_code is not None else -1,
                          stdout="".join(out), stderr="".join(err))

    def close(self) -> None:
        """Close the socket; the server kills the process if it still runs."""
        self._ws.close()

    def __enter__(self) -> "ExecSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
