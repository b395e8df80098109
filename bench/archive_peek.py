"""Bytes and requests an archive peek costs, per archive kind and size (parsers only).

    .venv/bin/python bench/archive_peek.py [--json bench/out/archive_peek.json]

Runs every peeker in-process against the test archives of
``envision_spiders.localapi.archives`` (real small ones, and virtual ones of tens of GB)
through ``local_answer`` (206 answers, or 200 when a server ignores Range), and prints per
archive: its size, members, whether the listing is complete, the requests and bytes read,
bytes read as a share of the archive, the CPU time of the peek (transport included) and the peak of memory
allocated while peeking (tracemalloc; the in-process transport's copy of each answer included). The middleware benchmark measures the same over
HTTP; this one isolates the parsers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envision_spiders.archive import PeekLimits  # noqa: E402
from envision_spiders.localapi import archives as A  # noqa: E402
from envision_spiders.localapi.core import ServedFile  # noqa: E402


def ten_million_zip() -> ServedFile:
    """A ZIP64 declaring 10^7 members with a real 550 MB directory (a repeating record)."""
    return A.repeating_zip64(10**7)[0]


def cases():
    small = [f"study/fundus/{i:03d}.png" for i in range(40)] + ["study/labels.csv"]
    yield "zip small (41 members)", "a.zip", A.zip_bytes(small), {}
    yield "zip 200 x 200 KB, small directory", "b.zip", A.zip_bytes([(f"i/{i}.png", bytes(200_000)) for i in range(200)]), {}
    yield "zip directory 250 KB (3,000)", "c.zip", A.zip_with_large_directory(3000)[0], {}
    yield "zip 65,535-byte comment", "d.zip", A.zip_with_max_comment(small), {}
    yield "zip64 forced (2,500)", "e.zip", A.zip64_bytes([f"s/{i}.dcm" for i in range(2500)]), {}
    yield "zip64 virtual 50 GB (100,000)", "f.zip", A.virtual_zip64(100_000, 50 * 10**9)[0], {}
    yield "zip64 virtual 500 GB (300,000)", "g.zip", A.virtual_zip64(300_000, 500 * 10**9)[0], {}
    yield "zip64 declaring 10^7 (550 MB dir)", "h.zip", ten_million_zip(), {}
    yield "zip 3,000, server ignores Range", "i.zip", A.zip_with_large_directory(3000)[0], {"ignore_range": True}
    yield "tar small (41)", "a.tar", A.tar_bytes(small), {}
    yield "tar 300 x 10 KB", "b.tar", A.tar_bytes([(f"p/{i}.png", bytes(10_000)) for i in range(300)]), {}
    yield "tar virtual 30 GB (1,000 x 30 MB)", "c.tar", A.virtual_big_tar(1000, 30 * 10**6)[0], {}
    yield "tar virtual 30 GB, 32 requests", "d.tar", A.virtual_big_tar(1000, 30 * 10**6)[0], {"limits": PeekLimits(max_requests=32)}
    yield "tar virtual, server ignores Range", "e.tar", A.virtual_big_tar(1000, 30 * 10**6)[0], {"ignore_range": True}
    yield "tgz small (41)", "a.tgz", A.tar_bytes(small, compression="gz"), {}
    yield "tgz virtual 20 GB", "b.tgz", A.virtual_tgz([(f"i/{i}.png", 150_000) for i in range(500)])[0], {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    rows = []
    header = f"{'archive':38} {'size':>17} {'members':>10} {'listed':>9} {'cmpl':>5} {'req':>4} {'bytes read':>12} {'% size':>8} {'ms':>7} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    for label, name, archive, kw in cases():
        served = archive if isinstance(archive, ServedFile) else ServedFile.from_bytes(archive)
        t0 = time.process_time()
        r = A.peek_local(name, served, **kw)
        ms = (time.process_time() - t0) * 1000
        tracemalloc.start()  # a second run: tracemalloc slows allocation-heavy code down
        A.peek_local(name, served, **kw)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        share = 100 * r["bytes_read"] / served.size
        rows.append({"archive": label, "size": served.size, **{k: r[k] for k in ("member_count", "members_listed", "complete", "requests", "bytes_read", "reason")}, "cpu_ms": round(ms, 1), "peak_mib": round(peak, 1)})
        print(
            f"{label:38} {served.size:>17,} {r['member_count'] or 0:>10,} {r['members_listed']:>9,} "
            f"{'yes' if r['complete'] else 'no':>5} {r['requests']:>4} {r['bytes_read']:>12,} {share:>7.3f}% {ms:>7.0f} {peak:>9.1f}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
