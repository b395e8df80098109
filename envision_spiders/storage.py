"""Files on disk: safe names, atomic JSON writes, reading records back.

Every file the project writes that a curator or a later run relies on goes through
:func:`atomic_write_json`: a temporary file in the same directory, flushed and
fsynced, then ``os.replace``d over the target. A crash, a kill or a full disk leaves
either the old file or the new one, never half of one. The file gets the mode the old one
had, or the one the user's umask gives a new file (not ``mkstemp``'s 0600).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envision_spiders.textutil import strip_bidi

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
# what an atomic write adds to a file's name for its temporary file: ".<name>.<8 random>.tmp"
ATOMIC_TEMP_OVERHEAD = len("." + "." + "x" * 8 + TMP_SUFFIX)
_UNSAFE = re.compile(r'[/\\\x00-\x1f\x7f<>:"|?*]')


# bytes of a safe id: with ".json" and the temporary name of an atomic write
# (".<name>.<random>.tmp") it stays under the file systems' 255 bytes
SAFE_ID_BYTES = 200


def safe_id(source_id: str) -> str:
    """A file-name-safe form of a source id: ``/`` (and other separators or characters
    that are unsafe in file names on some system) become ``_``, bidirectional controls
    go; never empty, never starting with a dot; at most SAFE_ID_BYTES of UTF-8 — a
    longer id is cut and ends with ``~`` and a hash of the whole id, so two long ids
    never share a file."""
    s = _UNSAFE.sub("_", strip_bidi(str(source_id))).strip()
    if not s or s.startswith("."):
        s = "_" + s
    if len(s.encode("utf-8")) > SAFE_ID_BYTES:
        tag = "~" + hashlib.sha256(str(source_id).encode("utf-8")).hexdigest()[:12]
        s = s.encode("utf-8")[: SAFE_ID_BYTES - len(tag)].decode("utf-8", "ignore") + tag
    return s


def record_path(data_dir: str | Path, source: str, source_id: str) -> Path:
    return Path(data_dir) / "metadata" / source / f"{safe_id(source_id)}.json"


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where Linux says it
    (``/proc/self/status``), else by setting and restoring it under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The mode a rewritten file gets: the one it has, else what ``open()`` would give a
    new file under the user's umask (``mkstemp`` makes its file 0600)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, dumps(obj))


def read_json(path: str | Path) -> Any | None:
    """The JSON in a file, or None when it is missing or unreadable (logged)."""
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.error("Cannot read %s: %s", path, exc)
        return None


def iter_records(data_dir: str | Path, source: str) -> Iterator[tuple[Path, dict]]:
    """Every saved record of a source, skipping temporary and unreadable files."""
    folder = Path(data_dir) / "metadata" / source
    if not folder.is_dir():
        return
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        record = read_json(entry.path)
        if isinstance(record, dict):
            yield Path(entry.path), record


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete temporary files a killed run left behind; returns how many."""
    folder = Path(folder)
    n = 0
    if folder.is_dir():
        for p in folder.glob("." + "*" + TMP_SUFFIX):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line and fsync: a kill loses at most the line being written,
    and a reader skips a torn last line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(obj, ensure_ascii=False, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    out: list[dict] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    logger.warning("Skipping a torn line %d of %s", n, path)
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    except FileNotFoundError:
        pass
    return out
