"""Test helpers for downloads on the local API server, under ``/dl`` (any source).

* ``POST /dl/oauth/token``: an OAuth client-credentials endpoint (the Dryad shape:
  ``{"access_token", "token_type": "Bearer", "expires_in"}``; ``invalid_client`` 401
  otherwise). ``DownloadsState.rotate()`` invalidates every token issued so far, so a
  client holding one gets a 401 and must renew it.
* ``GET /dl/auth/{path}``: a download that needs ``Authorization`` (a token issued by
  the endpoint above, or a header in ``accepted``); 401 otherwise; then 302 to
  ``/storage/{path}`` like Kaggle and Dryad redirect to their object storage. Answers
  carry ``RateLimit-*`` headers when ``ratelimit_remaining`` is set (Dryad's family).
* ``cut_once(served, at)``: the same file, but the first transfer that reaches byte
  ``at`` stops there and the connection is closed mid-body (the reader raises after
  the headers went out, so the client sees a truncated body); later requests, with or
  without ``Range``, get the file whole.
* ``GET /dl/endless?stop=N``: a body without ``Content-Length`` (chunked) that never
  ends, or ends after ``N`` bytes (so a test of a client without a cap still ends);
  no ``Accept-Ranges``.
* ``GET /dl/trickle/{path}?interval=S``: a file of ``/storage/`` sent one byte at a
  time, ``S`` seconds apart (default 0.05), with its true ``Content-Length``: a sender
  no read timeout ever catches.

State lives in ``ServerState.sources["dl"]`` so the ``api`` fixture resets it per test.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
from dataclasses import dataclass, field

from aiohttp import web

from .core import STATE_KEY, ServedFile, ServerState, json_response

PREFIX = "/dl"


@dataclass
class DownloadsState:
    clients: dict[str, str] = field(default_factory=dict)  # client id -> secret
    tokens: set[str] = field(default_factory=set)  # valid bearer tokens
    accepted: set[str] = field(default_factory=set)  # other accepted Authorization values
    expires_in: int = 3600
    token_requests: int = 0
    ratelimit_remaining: int | None = None
    ratelimit_reset: int = 1

    def rotate(self) -> None:
        """Every token issued so far stops working."""
        self.tokens.clear()


def state_of(server: ServerState) -> DownloadsState:
    with server.lock:
        return server.sources.setdefault("dl", DownloadsState())


async def token(request: web.Request) -> web.Response:
    st = state_of(request.app[STATE_KEY])
    form = await request.post()
    st.token_requests += 1
    if form.get("grant_type") != "client_credentials":
        return json_response({"error": "unsupported_grant_type"}, 400)
    client, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    if not client or st.clients.get(client) != secret:
        return json_response({"error": "invalid_client"}, 401)
    value = secrets.token_urlsafe(16)
    st.tokens.add(value)
    return json_response({"access_token": value, "token_type": "Bearer", "expires_in": st.expires_in, "scope": "all"})


async def authenticated(request: web.Request) -> web.StreamResponse:
    st = state_of(request.app[STATE_KEY])
    header = request.headers.get("Authorization", "")
    ok = header in st.accepted or (header.startswith("Bearer ") and header[7:] in st.tokens)
    if not ok:
        return json_response({"error": "unauthorized"}, 401)
    headers = {"Location": "/storage/" + request.match_info["path"]}
    if st.ratelimit_remaining is not None:
        headers.update({
            "RateLimit-Limit": "100",
            "RateLimit-Remaining": str(st.ratelimit_remaining),
            "RateLimit-Reset": str(st.ratelimit_reset),
        })
    return web.Response(status=302, headers=headers)


def cut_once(served: ServedFile, at: int) -> ServedFile:
    """``served`` whose first transfer reaching byte ``at`` is cut there."""
    lock = threading.Lock()
    left = [1]

    def read(offset: int, length: int) -> bytes:
        with lock:
            cut = left[0] > 0 and offset + length > at
            if cut:
                left[0] -= 1
        if cut:
            raise ConnectionResetError("cut by the test server")
        return served.read(offset, length)

    return ServedFile(size=served.size, reader=read, content_type=served.content_type,
                      ignore_range=served.ignore_range, md5=served.md5, sha256=served.sha256)


def digest_of(served: ServedFile, algorithm: str = "md5", block: int = 4 * 1024**2) -> str:
    """The checksum of a (virtual) file's whole content, read in blocks."""
    h = hashlib.new(algorithm)
    for offset in range(0, served.size, block):
        h.update(served.read(offset, block))
    return h.hexdigest()


async def endless(request: web.Request) -> web.StreamResponse:
    stop = int(request.query.get("stop", "0") or 0)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/octet-stream"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    block = b"\0" * 65536
    sent = 0
    while not stop or sent < stop:
        n = len(block) if not stop else min(len(block), stop - sent)
        await response.write(block[:n])
        sent += n
    await response.write_eof()
    return response


async def trickle(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE_KEY]
    with state.lock:
        served = state.files.get(request.match_info["path"])
    if served is None:
        return json_response({"message": "not found", "status": 404}, 404)
    interval = float(request.query.get("interval", "0.05"))
    response = web.StreamResponse(status=200, headers={"Content-Type": served.content_type})
    response.content_length = served.size
    await response.prepare(request)
    for offset in range(served.size):
        await response.write(served.read(offset, 1))
        await asyncio.sleep(interval)
    await response.write_eof()
    return response


def register(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/oauth/token", token)
    app.router.add_get(f"{PREFIX}/auth/{{path:.+}}", authenticated)
    app.router.add_get(f"{PREFIX}/endless", endless)
    app.router.add_get(f"{PREFIX}/trickle/{{path:.+}}", trickle)
