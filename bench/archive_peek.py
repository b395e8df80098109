"""Bytes and requests an archive peek costs, per archive kind and size.

    .venv/bin/python bench/archive_peek.py [--json bench/out/archive_peek.json] [--no-crawl]

Runs every peeker in-process against the test archives of
``localapi.archives`` (real small ones, and virtual ones of tens of GB)
through ``local_answer`` (206 answers, or 200 when a server ignores Range), and prints per
archive: its size, members, whether the listing is complete, the requests and bytes read,
bytes read as a share of the archive, the CPU time of the peek (transport included) and the peak of memory
allocated while peeking (tracemalloc; the in-process transport's copy of each answer included).

Then (unless ``--no-crawl``) the same archives through the real crawl path: each one
is a file of its own Zenodo record on the local API server (started in this process),
one ``scrapy crawl zenodo`` peeks them all with the project's settings
(ARCHIVE_PEEK_MAX_BYTES, ARCHIVE_PEEK_MAX_REQUESTS), and the server's own counters give
the requests (the API's redirect and the storage answers apart) and the body bytes it
sent per archive. Both tables go to ``bench/RESULTS.md`` (section 3).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envision_spiders.archive import PeekLimits  # noqa: E402
from localapi import archives as A  # noqa: E402
from localapi.core import ServedFile  # noqa: E402


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


def parser_rows() -> list[dict]:
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
    return rows


def crawl_rows() -> tuple[list[dict], dict]:
    """Every archive of ``cases()`` (but those with their own peek limits, which are a
    setting of the whole crawl) in a Zenodo record of its own; one crawl peeks them all."""
    from datetime import datetime, timezone

    from bench.common import run_crawl
    from localapi import LocalAPIServer
    from localapi.zenodo import add_record

    rows = []
    with LocalAPIServer() as server, tempfile.TemporaryDirectory(prefix="bench-peek-") as tmp:
        plan = {}
        for i, (label, name, archive, kw) in enumerate(cases()):
            if "limits" in kw:
                continue
            served = archive if isinstance(archive, ServedFile) else ServedFile.from_bytes(archive)
            served.ignore_range = bool(kw.get("ignore_range"))
            rid = 2_000_001 + 2 * i
            add_record(server.state, rid, title=f"Retinal OCT archive {i}", description="retinal OCT scans",
                       keywords=["OCT"], created=datetime(2024, 1, 1, tzinfo=timezone.utc), files={name: served})
            plan[rid] = (label, name, served)
        terms = Path(tmp) / "terms.txt"
        terms.write_text("retinal OCT\n")
        server.state.reset_counters()
        run = run_crawl(server, "zenodo", Path(tmp) / "d", 0.0, SEARCH_TERMS=str(terms))
        records = {}
        for p in (Path(tmp) / "d" / "metadata" / "zenodo").glob("*.json"):
            rec = json.loads(p.read_text())
            records[int(rec["source_id"])] = rec
        st = server.state
        for rid, (label, name, served) in plan.items():
            api = st.count(rf"^/zenodo/api/records/{rid}/files/")
            storage = st.count(rf"^/storage/zenodo/{rid}/")
            sent = st.bytes_for(rf"^/storage/zenodo/{rid}/") + st.bytes_for(rf"^/zenodo/api/records/{rid}/files/")
            archives = (records.get(rid) or {}).get("archives") or [{}]
            a = archives[0]
            rows.append({"archive": label, "size": served.size, "api_redirects": api, "storage_requests": storage,
                         "bytes_sent": sent, "listed": a.get("listed"), "complete": a.get("complete"),
                         "member_count": a.get("member_count"), "bytes_read": a.get("bytes_read"), "reason": a.get("reason")})
            print(f"{label:38} {served.size:>17,} api {api:>3} storage {storage:>3} sent {sent:>12,} "
                  f"members {a.get('member_count') or 0:>10,} complete {a.get('complete')}")
        meta = {"returncode": run["returncode"], "wall_s": run["wall_s"], "search_requests": st.count(r"^/zenodo/api/records$")}
    return rows, meta


def size_label(n: int) -> str:
    for unit, f in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= f:
            return f"{n / f:,.1f} {unit}"
    return f"{n} B"


def markdown(parsed: list[dict], crawled: list[dict], meta: dict) -> str:
    from bench.common import machine_line, table

    prow = [[r["archive"], size_label(r["size"]), r["member_count"] or 0, r["members_listed"], "yes" if r["complete"] else "no",
             r["requests"], r["bytes_read"], f"{100 * r['bytes_read'] / r['size']:.4f}%", r["cpu_ms"], r["peak_mib"]] for r in parsed]
    crow = [[r["archive"], size_label(r["size"]), r["api_redirects"], r["storage_requests"], r["bytes_sent"],
             f"{100 * r['bytes_sent'] / r['size']:.4f}%", r["bytes_read"] or 0, r["member_count"] or 0,
             "yes" if r["complete"] else "no", (r["reason"] or "")[:90]] for r in crawled]
    return f"""## 3. Archive peeking cost

{machine_line()}

`bench/archive_peek.py`. Through the real crawl path: each archive is the file of a
Zenodo record on the local server, one `scrapy crawl zenodo` (project settings: at most
16 MiB and 8 requests per archive) peeked them all ({meta['wall_s']:.1f} s, exit {meta['returncode']}).
Counted by the server: the API's 302 redirects (Zenodo answers file content on its API host,
here through a redirect to storage, so each range request is two HTTP requests and the
first spends the API's rate budget), the storage answers (206, or 200 when Range is
ignored), and the body bytes sent (for a 200 the server may have sent more than the client read
before it hung up); "bytes read" is what the record says the peek read.

{table(["archive", "size", "API redirects", "storage requests", "bytes sent", "% of size", "bytes read (record)", "members", "complete", "reason"], crow)}

Floor: a ZIP whose central directory fits the tail needs one suffix request; a larger
directory (or ZIP64) one more for the directory itself, so its bytes are the directory's
size; a TAR needs one request per header hop (a header before every member: 512 bytes and one
request per member when members are larger than a hop, so a TAR of 1,000 members of 30 MB
cannot be listed whole within 8 requests); a TAR.GZ can only be read from the start (a
compressed stream), so it is listed as far as the first MiB inflates.

In-process, the parsers alone (`local_answer`, no HTTP; CPU time and peak memory allocated
during the peek):

{table(["archive", "size", "members", "listed", "complete", "requests", "bytes read", "% of size", "CPU ms", "peak MiB"], prow)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--no-crawl", action="store_true", help="only the in-process parser figures")
    parser.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    rows = parser_rows()
    crawled, meta = ([], {}) if args.no_crawl else crawl_rows()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"parsers": rows, "crawl": crawled, "crawl_run": meta}, indent=2))
    if crawled and not args.no_results:
        from bench.common import write_section

        write_section("3", markdown(rows, crawled, meta))


if __name__ == "__main__":
    main()
