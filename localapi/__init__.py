"""The local API server for tests, the offline demo and the benchmarks (see core.py).

Test and demo support, not part of what runs in production: a package of the repository
beside ``envision_spiders`` (which never imports it), left out of the wheel and the scrapyd
egg (``pyproject.toml`` ``[tool.setuptools.packages.find]``) and found from the checkout:
pytest puts the repository on ``sys.path`` (``pythonpath``), ``python -m localapi`` run from
the repository root does too, and so do ``automation.sh demo`` and ``bench/``.

Start it in a thread from Python::

    server = LocalAPIServer().start()
    server.generate("zenodo", 200)
    settings = server.api_settings()   # {"ZENODO_API_URL": "http://127.0.0.1:PORT/zenodo/api", ...}

or as a process: ``python -m localapi --port 8765 --records 200``.
The envision portal's stand-in is served too (``portal.py``): ``server.portal_settings()``
gives ``PORTAL_URL`` and its ``PORTAL_API_KEY``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from typing import Any

from aiohttp import web

from . import datacite, downloads, dryad, figshare, kaggle, nei, osf, portal, zenodo
from .core import ServedFile, ServerState, make_app, sparse_reader

__all__ = ["LocalAPIServer", "ServedFile", "ServerState", "sparse_reader", "SOURCES"]

# Routes that belong to no source: test helpers for downloads (/dl) and the envision
# portal's stand-in (/portal).
HELPERS = [downloads, portal]

# source name -> (module, the setting of its API root, the prefix the module serves)
SOURCES: dict[str, tuple[Any, str, str]] = {
    "zenodo": (zenodo, "ZENODO_API_URL", zenodo.PREFIX),
    "nei": (nei, "NEI_API_URL", nei.PREFIX),
    "kaggle": (kaggle, "KAGGLE_API_URL", kaggle.PREFIX),
    "datacite": (datacite, "DATACITE_API_URL", datacite.PREFIX),
    "figshare": (figshare, "FIGSHARE_API_URL", figshare.PREFIX),
    "osf": (osf, "OSF_API_URL", osf.PREFIX),
    "dryad": (dryad, "DRYAD_API_URL", dryad.PREFIX),
}


def generate_source(state: ServerState, source: str, n: int, seed: int = 1) -> int:
    return SOURCES[source][0].generate(state, n, seed=seed)


def modify_source(state: ServerState, source: str, fraction: float, seed: int = 2) -> int:
    return SOURCES[source][0].modify(state, fraction, seed=seed)


class LocalAPIServer:
    """Runs the app on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False) -> None:
        self.host = host
        self.port = port
        # https with a certificate from a throwaway CA (trustme, a test dependency): Scrapy
        # does not verify certificates, so a crawl reaches it like a real API over https
        self.tls = tls
        self.state = ServerState()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def _ssl_context(self) -> Any:
        import ssl

        import trustme

        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(self.host).configure_cert(context)
        return context

    def api_settings(self) -> dict[str, str]:
        return {setting: self.base_url + prefix for _, setting, prefix in SOURCES.values()}

    def portal_settings(self) -> dict[str, str]:
        """``PORTAL_URL`` and ``PORTAL_API_KEY`` of the portal stand-in (its key is made
        per state, so ask again after the test fixture reset it)."""
        return {"PORTAL_URL": self.base_url + portal.PREFIX, "PORTAL_API_KEY": portal.state_of(self.state).api_key}

    def generate(self, source: str, n: int, seed: int = 1) -> int:
        return generate_source(self.state, source, n, seed)

    def modify(self, source: str, fraction: float, seed: int = 2) -> int:
        return modify_source(self.state, source, fraction, seed)

    def start(self) -> LocalAPIServer:
        # The socket is bound here and handed to aiohttp, so the port asked of the OS (0:
        # any free one) is the port served: probing for a free port and binding it later
        # would race with other processes (parallel test workers) doing the same.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()

        async def boot() -> None:
            app = make_app(self.state, [module.register for module, _, _ in SOURCES.values()] + [m.register for m in HELPERS])
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            ssl_context = self._ssl_context() if self.tls else None
            await web.SockSite(self._runner, sock, backlog=512, ssl_context=ssl_context).start()

        booted: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(boot())
            except BaseException as exc:  # reported to start(), which raises it
                sock.close()
                booted.set_exception(exc)
                return
            booted.set_result(None)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="localapi", daemon=True)
        self._thread.start()
        # no timeout: the boot either finishes or raises, however busy the machine is
        booted.result()
        self.state.base_url = self.base_url
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> LocalAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
