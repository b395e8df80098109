"""Credentials per source, from the environment only: one object per source for the
spider's requests, its archive peeks and its downloads alike.

::

    creds = credentials_for("dryad", api_root="https://datadryad.org/api/v2")
    if creds.applies_to(url):                     # the one rule of where they go
        headers = await creds.headers()           # {} when nothing is configured
    ...
    if response.status == 401 and await creds.renew(sent=headers):
        ...                                       # send the request again, once or twice

**Where they go** (:meth:`Credentials.applies_to`): only to the exact origin (scheme,
host, port) of the source's API root, under its site's path (the API root without
``/api``, ``/api/vN``), or of a file host the source documents as needing them
(``file_sites``; none does today). Since the scheme is part of the origin, they go
over https unless the API root itself is http (the local test server). A crawl's
requests get them from ``CredentialsMiddleware`` when they leave, downloads from
``FileTransfer`` at every hop of a redirect; neither ever sends them anywhere else.

* ``StaticCredentials``: a token or a key sent as it is. Kaggle (``KAGGLE_API_TOKEN``
  as Bearer, else ``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` as HTTP basic, else the official
  client's config folder: ``KAGGLE_CONFIG_DIR``, ``~/.kaggle`` or
  ``$XDG_CONFIG_HOME/kaggle``, holding ``access_token`` or ``kaggle.json``), Zenodo
  (``ZENODO_TOKEN``, Bearer), Figshare (``FIGSHARE_ACCESS_TOKEN``, ``token ...``: a
  token Figshare refuses is dropped, since everything we read is public), OSF
  (``OSF_TOKEN``, Bearer).
* ``DryadOAuth``: ``DRYAD_CLIENT_ID`` + ``DRYAD_CLIENT_SECRET`` exchanged for a Bearer
  token with the OAuth client-credentials grant (``POST {site}/oauth/token``, where
  ``{site}`` is the API root without ``/api/v2``, or ``DRYAD_TOKEN_URL``). The token is
  fetched on first use, shared by every concurrent caller (one request, under a lock),
  cached until shortly before ``expires_in``, and renewed when a request carrying it
  gets a 401 (``renew(sent=...)`` renews only if the refused token is still the current
  one, so 20 parallel 401s cost one token request). A renewed token that the API
  refuses before it ever accepted it means the API refuses this account: the token is
  dropped and requests go on without one. A token that worked and later is refused has
  expired: it is renewed again.

The token request goes through a ``post`` coroutine the caller may supply (a crawl
passes one built on ``crawler.engine.download_async`` so the request is paced like any
other); the default uses aiohttp. Redirects are never followed with the secret in the
body.

Secrets are never logged, never written, never part of an exception message or a
``repr``: ``describe()`` names where credentials came from (a variable or a file name)
and the scheme, nothing more.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

# (status, body) of a POST of a form, for the token request
PostFunc = Callable[[str, Mapping[str, str]], Awaitable[tuple[int, bytes]]]

# A token is renewed this long before the expiry the server announced.
EXPIRY_MARGIN = 60.0

# The default API roots, for sources whose credentials apply to one site.
DEFAULT_API_ROOTS = {
    "zenodo": "https://zenodo.org/api",
    "figshare": "https://api.figshare.com/v2",
    "dryad": "https://datadryad.org/api/v2",
    "osf": "https://api.osf.io/v2",
    "kaggle": "https://www.kaggle.com/api/v1",
}
API_SETTINGS = {
    "zenodo": "ZENODO_API_URL",
    "figshare": "FIGSHARE_API_URL",
    "dryad": "DRYAD_API_URL",
    "osf": "OSF_API_URL",
    "kaggle": "KAGGLE_API_URL",
}


# Sources whose file hosts refuse anonymous downloads (docs/sources/dryad.md, kaggle.md):
# without credentials their files are neither peeked nor downloaded, and that is not an
# error.
FILES_NEED_CREDENTIALS = frozenset({"dryad", "kaggle"})
# File hosts apart from the API's own origin that a source documents as wanting its
# credentials (source -> site roots). None does today: Zenodo, Kaggle and Dryad serve
# files from their API's origin, and the others' file hosts serve public files.
FILE_SITES: dict[str, tuple[str, ...]] = {}


def site_root(api_root: str) -> str:
    """``https://datadryad.org/api/v2`` -> ``https://datadryad.org``; a mirror under a
    path keeps its path (``http://127.0.0.1:8765/dryad/api/v2`` -> ``.../dryad``)."""
    parts = urlsplit(api_root.strip())
    path = re.sub(r"/api(?:/v\d+)?$", "", parts.path.rstrip("/"))
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _origin_and_path(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    return parts.scheme.lower(), f"{(parts.hostname or '').lower()}:{port}", parts.path or "/"


def url_under(url: str, root: str) -> bool:
    """True when ``url`` is on the same scheme, host and port as ``root`` and its path
    is ``root``'s path or below it."""
    try:
        scheme, origin, path = _origin_and_path(url)
        rscheme, rorigin, rpath = _origin_and_path(root)
    except ValueError:  # a port that is not a number
        return False
    if (scheme, origin) != (rscheme, rorigin):
        return False
    rpath = rpath.rstrip("/")
    return not rpath or path == rpath or path.startswith(rpath + "/")


class Renewal(enum.IntEnum):
    """What a 401 did to the credentials (false when the request is not worth sending again)."""

    NO = 0  # nothing to change: the refusal stands
    AGAIN = 1  # the credentials changed after the request left (renewed for another refusal)
    RENEWED = 2  # this refusal changed them (a new token, or none any more)


class Credentials:
    """No credentials: every source without any configured, and the base interface."""

    def __init__(self, source: str, site: str = "", origin: str = "", file_sites: tuple[str, ...] = ()) -> None:
        self.source = source
        self.site = site  # credentials go only to URLs under this root (or under file_sites)
        self.file_sites = tuple(file_sites)
        self.origin = origin  # where they came from (a variable or a file name)
        # count("token_renewed") -> the crawl's stats (envision/{source}/...); set by the spider
        self.count: Callable[[str], None] = lambda key: None

    @property
    def configured(self) -> bool:
        return False

    @property
    def authenticated(self) -> bool:
        """Whether requests carry credentials now (a configured token that was refused
        and dropped, or never obtained, does not count)."""
        return self.configured

    def covers(self, url: str) -> bool:
        """Whether ``url`` is where this source's credentials belong: the exact origin
        (scheme, host, port) of the source's site, under its path, or of a documented
        file host."""
        return any(site and url_under(url, site) for site in (self.site, *self.file_sites))

    def applies_to(self, url: str) -> bool:
        """The one rule: credentials, when there are any, go only where they belong."""
        return self.configured and self.covers(url)

    def current_headers(self) -> dict[str, str]:
        """The headers to send now, without waiting (spiders build requests
        synchronously; a token still to be fetched is not there yet)."""
        return {}

    async def headers(self) -> dict[str, str]:
        return self.current_headers()

    def use_post(self, post: PostFunc) -> None:
        """Send token requests through ``post`` (only OAuth credentials make any)."""

    def accepted(self, sent: str | None) -> None:
        """A request sent with ``Authorization: sent`` got an answer other than 401."""

    async def renew(self, sent: Mapping[str, str] | None = None, *, resent: bool = False) -> Renewal:
        """After a 401 to a request sent with the headers ``sent`` (``resent``: that was
        already a second try): true when the request is worth sending again with the
        credentials current now (another token, or none); RENEWED when this refusal is
        what changed them, AGAIN when they had changed since the request left."""
        return Renewal.NO

    def describe(self) -> str:
        return "no credentials"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.source}: {self.describe()}>"


class StaticCredentials(Credentials):
    """One header value that never changes (a personal token, an API key).

    ``drop_when_refused``: a source whose reads are all public (Figshare) drops a token
    the API refuses, says so once, and goes on without it."""

    def __init__(self, source: str, site: str, scheme: str, value: str, origin: str, user: str = "",
                 *, drop_when_refused: bool = False, file_sites: tuple[str, ...] = ()) -> None:
        super().__init__(source, site, origin, file_sites)
        self.scheme = scheme  # "Bearer", "token", "Basic"
        self._value = value
        self.user = user
        self.drop_when_refused = drop_when_refused
        self.dropped = False

    @property
    def configured(self) -> bool:
        return bool(self._value)

    def current_headers(self) -> dict[str, str]:
        return {"Authorization": f"{self.scheme} {self._value}"} if self._value else {}

    async def renew(self, sent: Mapping[str, str] | None = None, *, resent: bool = False) -> Renewal:
        refused = (sent or {}).get("Authorization")
        if not self.drop_when_refused or refused is None:
            return Renewal.NO
        if refused != f"{self.scheme} {self._value}":
            return Renewal.AGAIN  # dropped already: sent again without the token
        self._value = ""
        self.dropped = True
        self.count("token_refused")
        logger.error(
            "%s: %s was refused (HTTP 401); going on without it (everything read is public): check the token",
            self.source, self.origin,
        )
        return Renewal.RENEWED

    def describe(self) -> str:
        who = f"user {self.user} " if self.user else ""
        return f"{who}{self.scheme} credentials from {self.origin}"


def basic_value(user: str, key: str) -> str:
    return base64.b64encode(f"{user}:{key}".encode("utf-8")).decode("ascii")


async def _aiohttp_post(url: str, form: Mapping[str, str]) -> tuple[int, bytes]:
    import aiohttp  # the crawl never needs it for other sources: import on use

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(
            url, data=dict(form), allow_redirects=False, headers={"Accept": "application/json"}
        ) as response:
            return response.status, await response.read()


def parse_token_answer(status: int, body: bytes) -> tuple[str | None, float | None, str]:
    """(access token, seconds until it expires, why not) from an OAuth token answer.
    The reason names the HTTP status and the OAuth ``error`` code, never a secret."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if status == 200 and isinstance(data, dict):
        token = data.get("access_token")
        kind = str(data.get("token_type") or "bearer").lower()
        if isinstance(token, str) and token.strip() and kind == "bearer":
            expires = data.get("expires_in")
            ttl = float(expires) if isinstance(expires, (int, float)) and not isinstance(expires, bool) and expires > 0 else None
            return token.strip(), ttl, ""
    error = data.get("error") if isinstance(data, dict) else None
    return None, None, f"HTTP {status}" + (f" ({error})" if isinstance(error, str) and error else "")


def dryad_client(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """Dryad's API account (client id and secret) from the environment, or None."""
    env = os.environ if environ is None else environ
    client_id = (env.get("DRYAD_CLIENT_ID") or "").strip()
    secret = (env.get("DRYAD_CLIENT_SECRET") or "").strip()
    return (client_id, secret) if client_id and secret else None


def dryad_token_url(api_root: str) -> str:
    """Dryad's OAuth token endpoint: the site root of its API plus ``/oauth/token``."""
    return site_root(api_root).rstrip("/") + "/oauth/token"


class DryadOAuth(Credentials):
    """OAuth2 client credentials, exchanged for a cached Bearer token on demand."""

    def __init__(
        self,
        site: str,
        client_id: str,
        client_secret: str,
        *,
        token_url: str = "",
        post: PostFunc | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("dryad", site, "DRYAD_CLIENT_ID and DRYAD_CLIENT_SECRET")
        self._client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url or site.rstrip("/") + "/oauth/token"
        self._post = post or _aiohttp_post
        self._clock = clock
        self._token: str | None = None
        self._expires_at = float("inf")
        self._lock: asyncio.Lock | None = None
        self._tried = False  # a token was asked for at least once
        self._worked = False  # the API accepted the current token at least once
        self.refused = False  # the API refuses the tokens this account gets: no more asked for
        self.fetches = 0  # token requests made (for stats and tests)
        self.last_error = ""

    @property
    def configured(self) -> bool:
        return bool(self._client_id and self._client_secret)

    @property
    def authenticated(self) -> bool:
        return self._token is not None

    def use_post(self, post: PostFunc) -> None:
        self._post = post

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a token is fetched: a request about to leave waits for the new one."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _bearer(self) -> str | None:
        return f"Bearer {self._token}" if self._token else None

    def _stale(self) -> bool:
        """No token yet, or the one we have expires within the margin. A token request
        that failed is not repeated on every request: only a refusal (renew) or the
        expiry of a token that was granted asks again."""
        if self.refused:
            return False
        if self._token is None:
            return not self._tried
        return self._clock() >= self._expires_at - EXPIRY_MARGIN

    async def _fetch(self) -> bool:
        self.fetches += 1
        self._tried = True
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret}
        try:
            status, body = await self._post(self.token_url, form)
        except Exception as exc:  # network errors: the caller goes on without a token
            token, ttl, why = None, None, f"{type(exc).__name__}"
        else:
            token, ttl, why = parse_token_answer(status, body)
        self._token, self._worked = token, False
        self._expires_at = self._clock() + ttl if ttl else float("inf")
        self.last_error = why if token is None else ""
        if token is None:
            self.count("token_failed")
            logger.error(
                "dryad: no OAuth token from %s: %s; check DRYAD_CLIENT_ID and DRYAD_CLIENT_SECRET (and "
                "DRYAD_TOKEN_URL); going on without one (anonymous limits, no file downloads)",
                self.token_url, why,
            )
            return False
        self.count("token_fetched")
        return True

    def current_headers(self) -> dict[str, str]:
        bearer = self._bearer()
        return {"Authorization": bearer} if bearer else {}

    async def headers(self) -> dict[str, str]:
        if not self.configured:
            return {}
        async with self.lock:  # also waits for a renewal in progress
            if self._stale():
                await self._fetch()
        return self.current_headers()

    def accepted(self, sent: str | None) -> None:
        if sent is not None and sent == self._bearer():
            self._worked = True

    async def renew(self, sent: Mapping[str, str] | None = None, *, resent: bool = False) -> Renewal:
        if not self.configured:
            return Renewal.NO
        refused = (sent or {}).get("Authorization")
        async with self.lock:
            if self._bearer() != refused:
                # renewed (or dropped) since the request left: it was in flight when its
                # token expired, and another refused request asked for the new one
                return Renewal.AGAIN
            if refused is not None:
                if resent and not self._worked:
                    # a renewed token refused before the API ever accepted it: the API
                    # refuses what this account gets; asking again would only repeat it
                    self._token, self.refused = None, True
                    self.count("token_refused")
                    logger.error("dryad: the API refuses even a new OAuth token; going on without a token "
                                 "(check the API account of DRYAD_CLIENT_ID)")
                else:
                    # the token expired (or was revoked): one new token for every refused request
                    logger.info("dryad: the API refused the OAuth token (expired?); asking for a new one")
                    if await self._fetch():
                        self.count("token_renewed")
            return Renewal.RENEWED if self._bearer() != refused else Renewal.NO

    def describe(self) -> str:
        return f"OAuth client credentials from {self.origin} (token from {self.token_url})"


# ------------------------------------------------------------------ Kaggle
def kaggle_config_dir(environ: Mapping[str, str], home: Path) -> Path:
    """Where the official Kaggle client keeps ``kaggle.json`` and ``access_token``."""
    explicit = (environ.get("KAGGLE_CONFIG_DIR") or "").strip()
    if explicit:
        return Path(explicit).expanduser()
    legacy = home / ".kaggle"
    if legacy.exists():
        return legacy
    xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    return xdg if xdg.exists() else legacy


def _read_secret_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("kaggle: cannot read %s (%s); ignored", path, getattr(exc, "strerror", None) or type(exc).__name__)
        return None


def kaggle_credentials(site: str, environ: Mapping[str, str], home: Path) -> Credentials:
    """The first Kaggle credentials found, in the official client's order. Problems are
    logged with the variable or file name, never a value."""
    token = (environ.get("KAGGLE_API_TOKEN") or "").strip()
    if token:
        return StaticCredentials("kaggle", site, "Bearer", token, "KAGGLE_API_TOKEN")
    user, key = (environ.get("KAGGLE_USERNAME") or "").strip(), (environ.get("KAGGLE_KEY") or "").strip()
    if user and key:
        return StaticCredentials("kaggle", site, "Basic", basic_value(user, key), "KAGGLE_USERNAME and KAGGLE_KEY", user)
    if user or key:
        logger.warning(
            "kaggle: %s is set but %s is not; both are needed, so they are ignored",
            *(("KAGGLE_USERNAME", "KAGGLE_KEY") if user else ("KAGGLE_KEY", "KAGGLE_USERNAME")),
        )
    folder = kaggle_config_dir(environ, home)
    token_file = folder / "access_token"
    token = (_read_secret_file(token_file) or "").strip()
    if token:
        return StaticCredentials("kaggle", site, "Bearer", token, str(token_file))
    json_file = folder / "kaggle.json"
    text = _read_secret_file(json_file)
    if text is None:
        return Credentials("kaggle", site, str(folder))
    try:
        data = json.loads(text)
    except ValueError:
        logger.warning("kaggle: %s is not valid JSON; ignored", json_file)
        return Credentials("kaggle", site, str(folder))
    user = data.get("username") if isinstance(data, dict) else None
    key = data.get("key") if isinstance(data, dict) else None
    if not (isinstance(user, str) and user.strip() and isinstance(key, str) and key.strip()):
        logger.warning("kaggle: %s lacks a username or a key; ignored", json_file)
        return Credentials("kaggle", site, str(folder))
    return StaticCredentials("kaggle", site, "Basic", basic_value(user.strip(), key.strip()), str(json_file), user.strip())


# ------------------------------------------------------------------ the registry
# source -> (variable, scheme) of sources with one personal token
STATIC_TOKENS = {
    "zenodo": ("ZENODO_TOKEN", "Bearer"),
    "figshare": ("FIGSHARE_ACCESS_TOKEN", "token"),
    "osf": ("OSF_TOKEN", "Bearer"),
}
# Sources whose every read is public: a token the API refuses is dropped, not fatal.
DROP_REFUSED_TOKENS = frozenset({"figshare"})

def credentials_for(
    source: str,
    api_root: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    settings: Any = None,
) -> Credentials:
    """The credentials of one source, read from the environment now.

    ``api_root`` is the source's API root (the ``*_API_URL`` setting); credentials are
    sent only to URLs under its site. ``settings`` (a Scrapy ``Settings`` or a mapping)
    supplies the API root when ``api_root`` is not given, and ``DRYAD_TOKEN_URL``.
    """
    env = os.environ if environ is None else environ
    if api_root is None:
        setting = API_SETTINGS.get(source)
        value = settings.get(setting) if settings is not None and setting else None
        api_root = value or DEFAULT_API_ROOTS.get(source, "")
    root = (api_root or "").rstrip("/")
    site = site_root(root) if root else ""
    files = FILE_SITES.get(source, ())
    if source == "kaggle":
        return kaggle_credentials(site, env, home or Path.home())
    if source == "dryad":
        account = dryad_client(env)
        if account:
            token_url = (settings.get("DRYAD_TOKEN_URL") if settings is not None else None) or env.get("DRYAD_TOKEN_URL")
            return DryadOAuth(site, *account, token_url=(token_url or "").strip())
        if (env.get("DRYAD_CLIENT_ID") or "").strip() or (env.get("DRYAD_CLIENT_SECRET") or "").strip():
            logger.warning("dryad: only one of DRYAD_CLIENT_ID and DRYAD_CLIENT_SECRET is set; both are needed for a token")
        return Credentials("dryad", site)
    static = STATIC_TOKENS.get(source)
    if static:
        variable, scheme = static
        token = (env.get(variable) or "").strip()
        if token:
            return StaticCredentials(source, site, scheme, token, variable, file_sites=files,
                                     drop_when_refused=source in DROP_REFUSED_TOKENS)
    return Credentials(source, site, file_sites=files)


def has_credentials(source: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment configures credentials for ``source`` (for a pace that
    depends on them, decided before the crawl builds them; nothing is logged). Kaggle's
    files in its config folder are not looked at: its pace does not depend on them."""
    env = os.environ if environ is None else environ
    if source == "dryad":
        return dryad_client(env) is not None
    variable = STATIC_TOKENS.get(source, ("",))[0]
    return bool(variable) and bool((env.get(variable) or "").strip())


def form_body(form: Mapping[str, str]) -> str:
    """The urlencoded body of a token request (for callers posting it themselves)."""
    return urlencode(dict(form))
