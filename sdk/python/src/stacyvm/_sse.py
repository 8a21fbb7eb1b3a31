"""Server-Sent Events parsing for /events and file watches."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator

from ._http import Response


@dataclass
class Event:
    """One server-sent event: ``type`` (the ``event:`` field), decoded ``data`` and ``id``."""

    type: str
    data: Any
    id: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class EventStream:
    """An iterator of ``Event`` values from a text/event-stream answer.

    Not cut by the request timeout; ``close()`` (or a ``with`` block) ends it.
    """

    def __init__(self, resp: Response) -> None:
        self._resp = resp
        self._lines = resp.lines()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        etype, eid, data = "", "", []
        for raw in self._lines:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line == "":
                if data or etype:
                    return _event(etype or "message", "\n".join(data), eid)
                continue
            if line.startswith(":"):
                continue  # a comment (keep-alive ping)
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                etype = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                eid = value
        if data or etype:
            return _event(etype or "message", "\n".join(data), eid)
        raise StopIteration

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _event(etype: str, data: str, eid: str) -> Event:
    try:
        value: Any = json.loads(data) if data else None
    except ValueError:
        value = data
    return Event(type=etype, data=value, id=eid, raw={"event": etype, "data": data, "id": eid})

