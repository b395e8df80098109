"""What a hostile record cannot make the downloader do: pure checks, no I/O.

* ``check_url``: only ``http``/``https`` URLs with a host and without user info are
  fetched (never ``file:``, ``data:``, ``ftp:``, ``gopher:``...); the same check runs on
  every redirect target.
* ``safe_relpath``: a file name from an API or an archive becomes a relative POSIX path
  that stays inside the record's folder: ``\\`` is a separator too, drive letters and
  leading ``/`` go, ``.`` and ``..`` components are dropped (``../../etc/passwd`` ->
  ``etc/passwd``), NUL and control characters and ``<>:"|?*`` become ``_``,
  bidirectional controls (``U+202E`` making ``gnp.exe`` read as ``exe.png``) go, components
  are cut to 255 bytes keeping their extension — a file name to 231, so that the
  ``.part``, ``.part.json`` and the temporary name of its atomic write still fit —, a whole path to
  ``MAX_PATH_BYTES`` (folders are cut first), names Windows reserves get a ``_``.
  Nested paths stay nested, so two ``README.txt`` in different folders never collide.
* ``assign_paths``: names that still collide (the same path twice, paths differing
  only in case, two long names cut to the same bytes, a file named like our own
  ``manifest.json`` or ``*.part``) get a ``~2``, ``~3`` suffix before their extension,
  in a stable order, within the same byte limits.
* ``redact_url``: query parameters that look like credentials (signed storage URLs,
  ``access_token=``) are masked before a URL is logged or written.

Hand-written because no well-kept library does this: ``werkzeug.utils.secure_filename``
flattens folders and drops non-ASCII letters, ``pathvalidate`` validates single names
but neither de-duplicates nor keeps nesting.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from envision_spiders.filetypes import file_extension
from envision_spiders.storage import ATOMIC_TEMP_OVERHEAD
from envision_spiders.textutil import strip_bidi

ALLOWED_SCHEMES = ("http", "https")
MAX_COMPONENT_BYTES = 255  # a folder's name (the file systems' limit)
PART_SUFFIX = ".part"
# what the downloader adds to a file's name: <name>.part, <name>.part.json, and the
# temporary file of the atomic write of the latter, .<name>.part.json.<8 random>.tmp
MAX_NAME_BYTES = MAX_COMPONENT_BYTES - len(PART_SUFFIX + ".json") - ATOMIC_TEMP_OVERHEAD
# a whole relative path, leaving room under PATH_MAX (4096) for DATA_DIR/downloads/<source>/<id>/
MAX_PATH_BYTES = 3000
FOLDER_CUT_BYTES = 64  # folders of a path over MAX_PATH_BYTES are cut to this
MAX_DEPTH = 32
# Our own files in a record's folder; a data file never takes these names.
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".envision-download.lock"
RESERVED_TOP = {MANIFEST_NAME.casefold(), LOCK_NAME.casefold()}

_BAD_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
_DRIVE = re.compile(r"^[A-Za-z]:")
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_SECRET_PARAMS = re.compile(r"(token|key|secret|signature|sig|credential|auth|password|x-amz-|x-goog-)", re.IGNORECASE)


class UnsafeURL(ValueError):
    """A URL the downloader refuses to fetch."""


def check_url(url: object) -> str:
    """The URL if it may be fetched, else ``UnsafeURL`` saying why."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURL("no download URL")
    url = url.strip()
    if any(c in url for c in "\x00\r\n\t"):
        raise UnsafeURL("control characters in the URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UnsafeURL(f"malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"scheme {scheme or '(none)'!r} is not http or https")
    if not parts.hostname:
        raise UnsafeURL("no host in the URL")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("user info in the URL")
    return url


def redact_url(url: str | None) -> str | None:
    """The URL with credential-like query values replaced by ``REDACTED``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if not parts.query and netloc == parts.netloc:
        return url
    query = [(k, "REDACTED" if _SECRET_PARAMS.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/:"), parts.fragment))


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _split_ext(name: str) -> tuple[str, str]:
    """(stem, extension) of a name; an extension longer than 32 bytes is no extension."""
    ext = file_extension(name)
    if not ext or _utf8_len(ext) > 32 or len(ext) >= len(name):
        return name, ""
    return name[: len(name) - len(ext)], name[len(name) - len(ext):]


def _cut(component: str, limit: int = MAX_COMPONENT_BYTES, suffix: str = "") -> str:
    """``component`` + ``suffix`` (before the extension) in at most ``limit`` bytes of
    UTF-8: the stem is cut (on a character boundary), the extension and suffix kept."""
    stem, ext = _split_ext(component)
    if _utf8_len(stem + suffix + ext) <= limit:
        return stem + suffix + ext
    budget = max(1, limit - _utf8_len(suffix + ext))
    return stem.encode("utf-8")[:budget].decode("utf-8", "ignore") + suffix + ext


def _clean_component(component: str) -> str | None:
    c = _BAD_CHARS.sub("_", strip_bidi(component)).strip()
    c = c.rstrip(". ")  # Windows drops trailing dots and spaces: "a." and "a" would collide
    if not c or set(c) <= {"."}:
        return None
    if _WINDOWS_RESERVED.match(c):
        c = "_" + c
    return _cut(c)


def _fit(parts: list[str]) -> list[str]:
    """The file name within MAX_NAME_BYTES, and the whole path within MAX_PATH_BYTES
    (folders cut to FOLDER_CUT_BYTES first)."""
    parts = [*parts[:-1], _cut(parts[-1], MAX_NAME_BYTES)]
    if _utf8_len("/".join(parts)) > MAX_PATH_BYTES:
        parts = [_cut(p, FOLDER_CUT_BYTES) for p in parts[:-1]] + parts[-1:]
    return parts


def safe_relpath(name: object, fallback: str = "file") -> str:
    """A safe relative POSIX path for a file name from an API or an archive."""
    text = name if isinstance(name, str) else ""
    text = text.replace("\\", "/")
    text = _DRIVE.sub("", text)
    parts = []
    for raw in text.split("/"):
        if raw in ("", ".", ".."):
            continue
        c = _clean_component(raw)
        if c:
            parts.append(c)
    if len(parts) > MAX_DEPTH:
        parts = parts[: MAX_DEPTH - 1] + ["_".join(parts[MAX_DEPTH - 1 :])]
    if not parts:
        parts = [_clean_component(fallback) or "file"]
    return posixpath.join(*_fit(parts))


def _with_suffix(path: str, n: int, limit: int = MAX_NAME_BYTES) -> str:
    """``path`` with ``~n`` before the extension of its last component, within ``limit``."""
    folder, base = posixpath.split(path)
    name = _cut(base, limit, f"~{n}")
    return posixpath.join(folder, name) if folder else name


def _reserved(path: str) -> bool:
    low = path.casefold()
    return low in RESERVED_TOP or low.endswith(PART_SUFFIX) or low.endswith(PART_SUFFIX + ".json")


def _variant(path: str, n: int) -> str:
    if path.casefold().endswith((PART_SUFFIX, PART_SUFFIX + ".json")):
        folder, base = posixpath.split(path)
        name = base.encode("utf-8")[: MAX_NAME_BYTES - len(f"_{n}")].decode("utf-8", "ignore") + f"_{n}"
        return posixpath.join(folder, name) if folder else name  # no longer ends in .part
    return _with_suffix(path, n)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def assign_paths(names: Iterable[tuple[object, str]]) -> list[str]:
    """Safe, distinct relative paths for ``(name, fallback)`` pairs, in order.

    Paths are compared without case (a folder copied to a case-insensitive disk must
    not lose files). Whichever name comes later gets the ``~n`` suffix: a second
    ``README.txt`` in the same folder, a file named like a folder already used, a file
    inside a "folder" that is already a file (the folder is renamed), our own names.
    """
    files: set[str] = set()
    folders: set[str] = set()
    out: list[str] = []
    for name, fallback in names:
        path = safe_relpath(name, fallback)
        n = 1
        candidate = path
        while True:
            low = candidate.casefold()
            blocked_parent = next((p for p in _parents(candidate) if p.casefold() in files), None)
            if blocked_parent is not None:
                n += 1
                candidate = _with_suffix(blocked_parent, n, MAX_COMPONENT_BYTES) + candidate[len(blocked_parent):]
                continue
            if low in files or low in folders or _reserved(candidate):
                n += 1
                candidate = _variant(path, n)
                continue
            break
        files.add(candidate.casefold())
        folders.update(p.casefold() for p in _parents(candidate))
        out.append(candidate)
    return out
