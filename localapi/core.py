"""The local API server: one aiohttp process on 127.0.0.1 serving all seven APIs.

It is built for tests, the offline demo and the benchmarks:

* every source module (``zenodo.py``, ...) registers its routes under its own prefix
  (``/zenodo/api``, ``/figshare/v2``, ...) and answers with the real response shapes
  of ``samples/`` (real recorded responses, see ``samples/PROVENANCE.md``), filled with
  as many generated records as a test asks for;
* files are served with HTTP Range support (206, suffix ranges, several ranges in one
  ``multipart/byteranges`` answer, 416, HEAD), from bytes in memory or from *virtual*
  files whose content is computed per range, so a "50 GB" archive costs nothing;
  ``/redirect/...`` answers 302 to the same file under ``/storage/...``;
* faults are injected per path on request: 429 with ``Retry-After`` (seconds or an
  HTTP date) or ``X-RateLimit-Reset`` / ``RateLimit-Reset``, bursts of 5xx, slow
  answers, malformed JSON, truncated bodies, dropped connections, a server that
  ignores ``Range``, and redirects to any URL (another port or scheme);
* simulated rate limits per source (sliding windows) answer 429 like the real API;
* it counts requests and bytes per path so tests can assert on what a crawl cost.

State is manipulated in-process (``LocalAPIServer.state``) by tests that start the
server in a thread, or over HTTP under ``/_control/`` by other processes (demo, bench).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import email.utils
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024


# --------------------------------------------------------------------------- files
@dataclass
class ServedFile:
    """A file the server can serve, from bytes or from a function of (offset, length)."""

    size: int
    data: bytes | None = None
    reader: Callable[[int, int], bytes] | None = None
    content_type: str = "application/octet-stream"
    ignore_range: bool = False  # answer 200 with the whole body whatever the Range says
    md5: str | None = None
    sha256: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes, **kw: Any) -> ServedFile:
        return cls(
            size=len(data),
            data=data,
            md5=hashlib.md5(data).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
            **kw,
        )

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        if self.data is not None:
            return self.data[offset : offset + length]
        assert self.reader is not None
        return self.reader(offset, length)


def sparse_reader(size: int, regions: dict[int, bytes]) -> Callable[[int, int], bytes]:
    """Content that is zero everywhere except at the given offsets (e.g. a ZIP's tail).

    Regions must not overlap. A read looks only at the regions it touches (bisect), so a
    virtual TAR with a header every few megabytes of a 50 GB file stays cheap to serve.
    """
    items = sorted((start, blob) for start, blob in regions.items() if blob)
    starts = [start for start, _ in items]

    def read(offset: int, length: int) -> bytes:
        out = bytearray(length)
        end = offset + length
        i = max(0, bisect.bisect_right(starts, offset) - 1)
        while i < len(items) and items[i][0] < end:
            start, blob = items[i]
            i += 1
            stop = start + len(blob)
            if stop <= offset:
                continue
            a, b = max(start, offset), min(stop, end)
            out[a - offset : b - offset] = blob[a - start : b - start]
        return bytes(out)

    return read


_RANGE_RE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range_header(value: str, size: int) -> list[tuple[int, int]] | None:
    """Byte ranges of a ``Range`` header as inclusive (start, end) pairs.

    Returns None when the header is not a byte range we understand (serve 200),
    and [] when no range is satisfiable (serve 416).
    """
    if not value or not value.strip().lower().startswith("bytes="):
        return None
    ranges: list[tuple[int, int]] = []
    for part in value.split("=", 1)[1].split(","):
        m = _RANGE_RE.match(part)
        if not m:
            return None
        first, last = m.groups()
        if first == "" and last == "":
            return None
        if first == "":  # suffix range: the last N bytes
            n = int(last)
            if n == 0:
                continue
            ranges.append((max(0, size - n), size - 1))
        else:
            a = int(first)
            b = int(last) if last else size - 1
            if a > b:
                return None
            if a >= size:
                continue
            ranges.append((a, min(b, size - 1)))
    return ranges


# --------------------------------------------------------------------------- faults
@dataclass
class Fault:
    """One injected fault, applied to requests whose path (with query) matches."""

    path: str  # regular expression searched in "path?query"
    kind: str  # "status", "429", "slow", "malformed", "truncate", "drop", "ignore_range", "redirect"
    count: int = 1  # how many requests it hits; -1 for every request
    status: int = 503
    retry_after: str | None = None  # "5" or an HTTP date, for 429
    reset_header: str | None = None  # "X-RateLimit-Reset" (epoch) or "RateLimit-Reset" (delta)
    reset_seconds: float = 1.0
    delay: float = 0.0  # for "slow"
    location: str = ""  # for "redirect": the absolute URL a 302 sends the client to
    method: str | None = None
    hits: int = 0

    def matches(self, request: web.Request) -> bool:
        if self.count != -1 and self.hits >= self.count:
            return False
        if self.method and request.method != self.method:
            return False
        return re.search(self.path, request.path_qs) is not None


@dataclass
class RateWindow:
    """A simulated API limit: at most ``limit`` requests per ``period`` seconds."""

    limit: int
    period: float
    # or "RateLimit-Reset" (Dryad) / "X-RateLimit-Reset" (Zenodo) / None: no header (DataCite)
    retry_header: str | None = "Retry-After"
    stamps: collections.deque = field(default_factory=collections.deque)

    def check(self, now: float) -> float:
        """0 if the request may pass (and counts it), else seconds until it could."""
        while self.stamps and now - self.stamps[0] >= self.period:
            self.stamps.popleft()
        if len(self.stamps) < self.limit:
            self.stamps.append(now)
            return 0.0
        return self.period - (now - self.stamps[0])


# --------------------------------------------------------------------------- state
class ServerState:
    """Everything a test may look at or change. One lock guards it across threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.sources: dict[str, Any] = {}  # name -> source state (see the source modules)
        self.files: dict[str, ServedFile] = {}  # path under /storage/ -> file
        self.faults: list[Fault] = []
        # path prefix (or a regular expression of the path, starting with "^") -> windows
        self.rate_windows: dict[str, list[RateWindow]] = {}
        self.requests: collections.Counter = collections.Counter()  # path -> count
        self.bytes_sent: collections.Counter = collections.Counter()  # path -> body bytes
        self.log: list[dict[str, Any]] = []  # one entry per request
        self.base_url = ""

    def reset_counters(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bytes_sent.clear()
            self.log.clear()

    def add_fault(self, **kw: Any) -> Fault:
        fault = Fault(**kw)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def set_rate_limit(self, prefix: str, windows: list[tuple[int, float]], retry_header: str | None = "Retry-After") -> None:
        with self.lock:
            self.rate_windows[prefix] = [RateWindow(n, p, retry_header) for n, p in windows]

    def add_file(self, path: str, served: ServedFile) -> str:
        """Register a file under /storage/{path}; returns its URL path."""
        path = path.lstrip("/")
        with self.lock:
            self.files[path] = served
        return "/storage/" + path

    def count(self, pattern: str) -> int:
        """Requests whose path matches a regular expression."""
        with self.lock:
            return sum(n for p, n in self.requests.items() if re.search(pattern, p))

    def bytes_for(self, pattern: str) -> int:
        with self.lock:
            return sum(n for p, n in self.bytes_sent.items() if re.search(pattern, p))

    def entries(self, pattern: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.log if re.search(pattern, e["path_qs"])]

    def source(self, name: str) -> Any:
        return self.sources[name]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "bytes": dict(self.bytes_sent),
                "log": list(self.log),
            }


STATE_KEY = web.AppKey("state", ServerState)
ENTRY_KEY = web.RequestKey("entry", dict)
IGNORE_RANGE_KEY = web.RequestKey("ignore_range", bool)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=headers,
    )


# Absolute URLs in stored answers name ORIGIN; render_json replaces it with the address
# the client used, so records generated before the server knew its port stay right.
ORIGIN = "http://localapi.invalid"


def render_json(
    request: web.Request,
    payload: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    origin = f"{request.scheme}://{request.host}"
    text = json.dumps(payload, ensure_ascii=False).replace(ORIGIN, origin)
    return web.Response(text=text, status=status, content_type=content_type, headers=headers)


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


# --------------------------------------------------------------------------- middleware
@web.middleware
async def accounting_and_faults(request: web.Request, handler: Callable) -> web.StreamResponse:
    state: ServerState = request.app[STATE_KEY]
    if request.path.startswith("/_control/"):
        return await handler(request)
    path = request.path
    entry = {
        "method": request.method,
        "path": path,
        "path_qs": request.path_qs,
        "range": request.headers.get("Range"),
        "auth": request.headers.get("Authorization", "").split(" ", 1)[0] or None,
        "user_agent": request.headers.get("User-Agent"),
        "time": time.time(),
        "status": None,
        "bytes": 0,
    }
    request[ENTRY_KEY] = entry
    fault = None
    with state.lock:
        state.requests[path] += 1
        state.log.append(entry)
        for f in state.faults:
            if f.matches(request):
                f.hits += 1
                fault = f
                break
        limited = 0.0
        header: str | None = "Retry-After"
        for prefix, windows in state.rate_windows.items():
            if re.match(prefix, path) if prefix.startswith("^") else path.startswith(prefix):
                for w in windows:
                    wait = w.check(time.monotonic())
                    if wait > limited:
                        limited, header = wait, w.retry_header
    if limited > 0:
        entry["status"] = 429
        return _too_many(limited, header)
    if fault is not None:
        response = await _apply_fault(fault, request, handler, entry)
        if response is not None:
            return response
    response = await handler(request)
    entry["status"] = response.status
    if isinstance(response, web.Response) and response.body is not None and request.method != "HEAD":
        n = len(response.body) if isinstance(response.body, (bytes, bytearray)) else 0
        entry["bytes"] = n
        with state.lock:
            state.bytes_sent[path] += n
    return response


def _too_many(wait: float, header: str | None) -> web.Response:
    seconds = max(1, int(wait + 0.999))
    if not header:
        headers: dict[str, str] = {}
    elif header == "X-RateLimit-Reset":
        headers = {"X-RateLimit-Reset": str(int(time.time() + wait + 0.999)), "X-RateLimit-Remaining": "0"}
    elif header == "RateLimit-Reset":
        headers = {"RateLimit-Reset": str(seconds), "RateLimit-Remaining": "0", "RateLimit-Limit": "0"}
    else:
        headers = {"Retry-After": str(seconds)}
    return json_response({"message": "Too many requests", "status": 429}, status=429, headers=headers)


async def _apply_fault(fault: Fault, request: web.Request, handler: Callable, entry: dict) -> web.StreamResponse | None:
    kind = fault.kind
    if kind == "429":
        headers: dict[str, str] = {}
        if fault.reset_header == "X-RateLimit-Reset":
            headers["X-RateLimit-Reset"] = str(int(time.time() + fault.reset_seconds + 0.999))
            headers["X-RateLimit-Remaining"] = "0"
        elif fault.reset_header == "RateLimit-Reset":
            headers["RateLimit-Reset"] = str(int(fault.reset_seconds + 0.999))
            headers["RateLimit-Remaining"] = "0"
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        entry["status"] = 429
        return json_response({"message": "Too many requests", "status": 429}, status=429, headers=headers)
    if kind == "status":
        entry["status"] = fault.status
        return json_response({"message": "injected failure", "status": fault.status}, status=fault.status)
    if kind == "slow":
        await asyncio.sleep(fault.delay)
        return None
    if kind == "drop":
        entry["status"] = "dropped"
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError()
    if kind in ("malformed", "truncate"):
        response = await handler(request)
        body = response.body if isinstance(response, web.Response) else b""
        body = bytes(body or b"")
        if kind == "malformed":
            entry["status"] = response.status
            return web.Response(body=b'{"hits": {"hits": [ {"id": 1,, broken', status=200, content_type="application/json")
        # truncate: promise the whole body, send half, then close the connection
        stream = web.StreamResponse(status=response.status, headers={"Content-Type": response.content_type or "application/json"})
        stream.content_length = len(body)
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        entry["status"] = "truncated"
        if request.transport is not None:
            request.transport.abort()
        return stream
    if kind == "redirect":
        # a redirect to anywhere (another port, another scheme): where credentials must not follow
        entry["status"] = 302
        return web.Response(status=302, headers={"Location": fault.location})
    if kind == "ignore_range":
        request[IGNORE_RANGE_KEY] = True
        return None
    raise ValueError(f"unknown fault kind {kind!r}")


# --------------------------------------------------------------------------- file routes
async def serve_storage(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE_KEY]
    rel = request.match_info["path"]
    with state.lock:
        served = state.files.get(rel)
    if served is None:
        return json_response({"message": "not found", "status": 404}, status=404)
    return await serve_file(request, served)


async def serve_redirect(request: web.Request) -> web.StreamResponse:
    """``/redirect/{path}`` -> 302 to ``/storage/{path}`` (as repositories do to object storage)."""
    raise web.HTTPFound(location="/storage/" + request.match_info["path"])


async def serve_file(request: web.Request, served: ServedFile) -> web.StreamResponse:
    size = served.size
    headers = {"Content-Type": served.content_type}
    ranges = None
    if not served.ignore_range and not request.get(IGNORE_RANGE_KEY):
        headers["Accept-Ranges"] = "bytes"  # a server that ignores Range does not say it takes them
        ranges = parse_range_header(request.headers.get("Range", ""), size)
    if ranges == []:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    if not ranges:
        return await _stream(request, served, 200, headers, [(0, size - 1)] if size else [], size, None)
    if len(ranges) == 1:
        a, b = ranges[0]
        headers["Content-Range"] = f"bytes {a}-{b}/{size}"
        return await _stream(request, served, 206, headers, [(a, b)], b - a + 1, None)
    boundary = "envisionbyteranges"
    parts = []
    total = 0
    for a, b in ranges:
        head = (
            f"\r\n--{boundary}\r\nContent-Type: {served.content_type}\r\n"
            f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n"
        ).encode()
        parts.append((head, a, b))
        total += len(head) + (b - a + 1)
    tail = f"\r\n--{boundary}--\r\n".encode()
    total += len(tail)
    headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    return await _stream(request, served, 206, headers, parts, total, tail)


async def _stream(request, served, status, headers, spans, length, tail):
    state: ServerState = request.app[STATE_KEY]
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    await response.prepare(request)
    entry = request.get(ENTRY_KEY, {})
    entry["status"] = status
    if request.method == "HEAD":
        return response
    sent = 0
    try:
        for span in spans:
            if len(span) == 3:
                head, a, b = span
                await response.write(head)
                sent += len(head)
            else:
                a, b = span
            pos = a
            while pos <= b:
                n = min(CHUNK, b - pos + 1)
                chunk = served.read(pos, n)
                await response.write(chunk)
                sent += len(chunk)
                pos += n
        if tail:
            await response.write(tail)
            sent += len(tail)
        await response.write_eof()
    finally:
        # what the client actually made us send, even when it hung up early
        entry["bytes"] = sent
        with state.lock:
            state.bytes_sent[request.path] += sent
    return response


# --------------------------------------------------------------------------- landing pages
def add_page(state: ServerState, page_id: str, jsonld: Any, *, delay_ms: int = 200, status: int = 200) -> str:
    """A dataset landing page that builds its JSON-LD with JavaScript ``delay_ms`` after
    loading (as single-page apps do after a data request), so only a real browser sees
    it; returns its path. Kept with the sources' state, so tests start without pages."""
    with state.lock:
        state.sources.setdefault("pages", {})[page_id] = {"jsonld": jsonld, "delay_ms": delay_ms, "status": status}
    return f"/pages/dataset/{page_id}"


async def serve_page(request: web.Request) -> web.Response:
    state: ServerState = request.app[STATE_KEY]
    with state.lock:
        page = state.sources.get("pages", {}).get(request.match_info["id"])
    if page is None:
        return web.Response(status=404, text="<html><body>Not found</body></html>", content_type="text/html")
    # a JS string literal holding the JSON; "</" escaped so it cannot close the script
    literal = json.dumps(json.dumps(page["jsonld"])).replace("</", "<\\/")
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Dataset</title>"
        "<link rel='stylesheet' href='/pages/asset/site.css'><script>"
        f"window.addEventListener('load', function () {{ setTimeout(function () {{"
        f" var s = document.createElement('script'); s.type = 'application/ld+json';"
        f" s.textContent = JSON.stringify(JSON.parse({literal})); document.head.appendChild(s);"
        f" }}, {int(page['delay_ms'])}); }});"
        "</script></head><body><h1>Loading dataset&hellip;</h1><img src='/pages/asset/banner.png' alt=''></body></html>"
    )
    return web.Response(status=page["status"], text=html, content_type="text/html")


# --------------------------------------------------------------------------- control
async def control(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE_KEY]
    action = request.match_info["action"]
    body = await request.json() if request.can_read_body else {}
    if action == "stats":
        return json_response(state.snapshot())
    if action == "reset":
        state.reset_counters()
        state.clear_faults()
        with state.lock:
            state.rate_windows.clear()
        return json_response({"ok": True})
    if action == "faults":
        for f in body if isinstance(body, list) else [body]:
            state.add_fault(**f)
        return json_response({"ok": True, "faults": len(state.faults)})
    if action == "ratelimit":
        state.set_rate_limit(body["prefix"], [tuple(w) for w in body["windows"]], body.get("retry_header", "Retry-After"))
        return json_response({"ok": True})
    if action == "generate":
        from . import generate_source

        n = generate_source(state, body["source"], int(body.get("n", 50)), seed=int(body.get("seed", 1)))
        return json_response({"ok": True, "records": n})
    if action == "modify":
        from . import modify_source

        n = modify_source(state, body["source"], float(body.get("fraction", 0.01)), seed=int(body.get("seed", 2)))
        return json_response({"ok": True, "modified": n})
    return json_response({"message": f"unknown control action {action}"}, status=404)


def make_app(state: ServerState, registrars: list[Callable[[web.Application], None]]) -> web.Application:
    app = web.Application(middlewares=[accounting_and_faults], client_max_size=16 * 1024 * 1024)
    app[STATE_KEY] = state
    app.router.add_route("*", "/_control/{action}", control)
    app.router.add_get("/storage/{path:.+}", serve_storage)  # add_get also answers HEAD
    app.router.add_get("/redirect/{path:.+}", serve_redirect)
    app.router.add_get("/pages/dataset/{id}", serve_page)
    for register in registrars:
        register(app)
    return app
