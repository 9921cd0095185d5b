"""The transport under the generated Client: requests, retries, errors, multipart and SSE.

Standard library only (urllib). A 429 or 503 is retried after the wait the server names
(X-RateLimit-Retry-After-Ms, else Retry-After), otherwise after an exponential backoff with
jitter; a connection error after the backoff. Attempts are bounded, and a wait longer than
max_delay is not taken: the refusal is raised. Writes are retried only with an
Idempotency-Key, which the client adds when the call has none, so the server runs a write
once however often it is sent.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import json
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypedDict, TypeVar

T = TypeVar("T")

RETRIED_STATUSES = frozenset({429, 503})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

FileField = bytes | tuple[str, bytes] | tuple[str, bytes, str]
"""A file part: its bytes, or (filename, bytes), or (filename, bytes, content type)."""


class Meta(TypedDict, total=False):
    request_id: str
    api_version: str


class Envelope(TypedDict, Generic[T]):
    """Every /v1 JSON success: {"data": <resource>, "meta": {...}}."""

    data: T
    meta: Meta


class ApiError(Exception):
    """An answer that is not a success. code is stable (FORBIDDEN, RATE_LIMITED, ...)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 request_id: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.request_id = request_id
        self.headers = headers or {}

    @classmethod
    def from_response(cls, status: int, body: bytes, headers: dict[str, str]) -> ApiError:
        """Reads either error shape: {"error": {...}} (the envelope) or {"detail": {...}} (429, 402)."""
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        err = (decoded.get("error") or decoded.get("detail")) if isinstance(decoded, dict) else None
        request_id = headers.get("x-request-id")
        if isinstance(err, dict):
            rest = {k: v for k, v in err.items() if k not in ("code", "message", "details")}
            return cls(status, str(err.get("code", "UNKNOWN")), str(err.get("message", "")), err.get("details") or rest, request_id, headers)
        return cls(status, "UNKNOWN", body.decode("utf-8", "replace")[:500], None, request_id, headers)


@dataclass
class RetryPolicy:
    """How 429, 503 and connection errors are retried."""

    max_attempts: int = 4
    """Attempts in all, the first included."""
    base_delay: float = 0.2
    """The first backoff in seconds, doubled at each attempt."""
    max_delay: float = 30.0
    """The longest wait taken, from a header or the backoff."""
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def delay(self, attempt: int, headers: dict[str, str] | None = None) -> float:
        """The wait before attempt + 1 (attempt counts from 1): the server's, else the backoff with equal jitter."""
        named = server_delay(headers or {})
        if named is not None:
            return named
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return backoff / 2 + backoff / 2 * self.random()


def server_delay(headers: dict[str, str]) -> float | None:
    """The wait in seconds a response names: X-RateLimit-Retry-After-Ms, else Retry-After (seconds or a date)."""
    ms = headers.get("x-ratelimit-retry-after-ms", "").strip()
    if ms.isdigit():
        return int(ms) / 1000
    after = headers.get("retry-after", "").strip()
    if after.isdigit():
        return float(after)
    if after:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(after).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    return None


@dataclass
class Event:
    """One Server-Sent Event of a stream: its kind, seq (its SSE id) and data."""

    type: str
    seq: int
    request_id: str
    id: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: str | None = None


_RESUMABLE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.\d+$", re.IGNORECASE)


def is_resumable_id(event_id: str | None) -> bool:
    """Whether an SSE id names a resumable stream: <uuid>.<seq> (RUN_STREAM_RESUME)."""
    return bool(event_id) and _RESUMABLE_ID.match(event_id) is not None


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str, str]]:
    """(event, data, id) of each message of an SSE stream given as lines (with or without endings)."""
    event, data, last_id = "", [], ""
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data:
                yield event or "message", "\n".join(data), last_id
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value


def encode_multipart(form: dict[str, Any]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type; None values are left out."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in form.items():
        if value is None:
            continue
        out.write(f"--{boundary}\r\n".encode())
        if isinstance(value, (bytes, tuple)):
            filename, content, ctype = (name, value, "application/octet-stream") if isinstance(value, bytes) else (
                value if len(value) == 3 else (value[0], value[1], "application/octet-stream"))
            quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
            out.write(f'Content-Disposition: form-data; name="{name}"; filename="{quoted}"\r\nContent-Type: {ctype}\r\n\r\n'.encode())
            out.write(content)
        else:
            text = json.dumps(value) if isinstance(value, bool) else str(value)
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n{text}'.encode())
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _query_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, bool) else str(v)


class BaseClient:
    """Sends requests to the gateway at base_url with api_key; see the module's doc for retries."""

    def __init__(self, api_key: str | None = None, base_url: str = "http://localhost:8000", *,
                 retry: RetryPolicy | None = None, timeout: float = 30.0, headers: dict[str, str] | None = None):
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = timeout
        self.headers = dict(headers or {})

    def _call(self, method: str, route: str, *, path: dict[str, str] | None = None, query: dict[str, Any] | None = None,
              body: Any = None, form: dict[str, Any] | None = None, idempotency_key: str | None = None,
              last_event_id: str | None = None, reconnects: int = 3, read: str = "json") -> Any:
        url = self.base_url + route
        for name, value in (path or {}).items():
            url = url.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
        pairs = []
        for name, value in (query or {}).items():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if v is not None:
                    pairs.append((name, _query_value(v)))
        if pairs:
            url += "?" + urllib.parse.urlencode(pairs)
        headers = {"Accept": "text/event-stream" if read == "stream" else "application/json", **self.headers}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None
        if form is not None:
            data, headers["Content-Type"] = encode_multipart(form)
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if method in WRITE_METHODS:
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        if read == "stream":
            first = dict(headers, **({"Last-Event-ID": last_event_id} if last_event_id is not None else {}))
            res = self._send(urllib.request.Request(url, data=data, headers=first, method=method))  # refusals raise here
            return self._stream(res, url, data, headers, method, last_event_id, reconnects)
        res = self._send(urllib.request.Request(url, data=data, headers=headers, method=method))
        with res:
            raw = res.read()
        if read == "bytes":
            return raw
        return json.loads(raw) if raw else None

    def _send(self, req: urllib.request.Request):
        for attempt in range(1, max(1, self.retry.max_attempts) + 1):
            last = attempt >= self.retry.max_attempts
            try:
                return urllib.request.urlopen(req, timeout=self.timeout)
            except urllib.error.HTTPError as e:
                with e:
                    headers = {k.lower(): v for k, v in e.headers.items()}
                    body = e.read()
                err = ApiError.from_response(e.code, body, headers)
                if e.code not in RETRIED_STATUSES or last:
                    raise err from None
                delay = self.retry.delay(attempt, headers)
                if delay > self.retry.max_delay:
                    raise err from None
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if last:
                    raise
                delay = self.retry.delay(attempt)
            self.retry.sleep(delay)
        raise AssertionError("unreachable")

    def _stream(self, res, url: str, data: bytes | None, headers: dict[str, str], method: str, last_id: str | None,
                reconnects: int) -> Iterator[Event]:
        """The events of the stream res answered. Where the gateway keeps runs resumable (ids
        <uuid>.<seq>), a connection that drops mid-stream is resumed with Last-Event-ID, up to
        reconnects times: no event is lost or repeated."""
        while True:
            try:
                for event in self._events(res):
                    last_id = event.id
                    yield event
                    if event.type == "done":
                        return
            except (OSError, http.client.HTTPException):
                if reconnects <= 0 or not is_resumable_id(last_id):
                    raise
            else:
                if reconnects <= 0 or not is_resumable_id(last_id):
                    return  # the server ended the stream without done
            reconnects -= 1
            res = self._send(urllib.request.Request(url, data=data, headers=dict(headers, **{"Last-Event-ID": last_id}), method=method))

    @staticmethod
    def _events(res) -> Iterator[Event]:
        with res:
            lines = io.TextIOWrapper(res, encoding="utf-8", newline="")
            for name, data, last_id in parse_sse(lines):
                frame = json.loads(data)
                yield Event(type=name, seq=int(frame.get("seq", 0)), request_id=frame.get("request_id", ""), id=last_id,
                            data=frame.get("data") or {}, ts=frame.get("ts"))
