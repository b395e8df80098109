"""File contents for generated records: real (small) archives and plain files.

The file name decides the content: ``.zip``, ``.tar``, ``.tar.gz`` become real
archives of image-like members (nested folders, spaces), other names get a few
deterministic bytes. Every file is served with Range support by ``core.serve_file``.
"""

from __future__ import annotations

import random
import zipfile

from envision_spiders.filetypes import file_extension

from .archives import tar_bytes, zip_bytes
from .core import ServedFile


def _members(rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        folder = rng.choice(["train/images", "test/images", "masks", "raw scans"])
        ext = rng.choice([".png", ".jpg", ".png", ".tif"])
        out.append((f"{folder}/img_{i:05d}{ext}", bytes(rng.getrandbits(8) for _ in range(rng.randint(20, 200)))))
    out.append(("labels.csv", b"id,grade\n1,0\n"))
    return out


def make_payload(name: str, rng: random.Random, small: bool = True) -> ServedFile:
    ext = file_extension(name)
    n = rng.randint(3, 12) if small else rng.randint(200, 2000)
    if ext == ".zip":
        return ServedFile.from_bytes(zip_bytes(_members(rng, n), compression=zipfile.ZIP_DEFLATED), content_type="application/zip")
    if ext in (".tar.gz", ".tgz"):
        return ServedFile.from_bytes(tar_bytes(_members(rng, n), compression="gz"), content_type="application/gzip")
    if ext == ".tar":
        return ServedFile.from_bytes(tar_bytes(_members(rng, n)), content_type="application/x-tar")
    size = rng.randint(64, 4096)
    return ServedFile.from_bytes(bytes(rng.getrandbits(8) for _ in range(size)))
