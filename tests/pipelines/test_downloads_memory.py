"""Memory stays flat while streaming: a behavioural test, not a measurement.

The download runs in a child process whose address space is capped (``RLIMIT_AS``)
at what it already uses plus 384 MiB, while the file is 1 GiB: a downloader that
buffered the body (as Scrapy does) would fail with MemoryError. The numbers (peak
RSS, MB/s) are measured by ``bench/downloads.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from localapi import ServedFile
from tests.conftest import ROOT

SIZE = 1024**3
HEADROOM = 384 * 1024**2

CHILD = textwrap.dedent(
    """
    import asyncio, json, resource, sys
    from pathlib import Path
    from envision_spiders.downloads.runner import DownloadConfig, DownloadRunner

    data_dir, cand, headroom = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
    cfg = DownloadConfig(data_dir=data_dir, results_dir=data_dir / "results", scale=0.0, min_free_bytes=0)

    def vm_size():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

    async def main():
        async with DownloadRunner(cfg) as runner:
            # everything is imported and the session is up: cap what may still be mapped
            limit = vm_size() + headroom
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                bytearray(headroom * 2)  # the cap is real: this must fail
                print(json.dumps({"error": "the limit did not hold"}))
                return
            except MemoryError:
                pass
            reports = await runner.run([cand])
        print(json.dumps({"status": reports[0].status, "counts": dict(reports[0].counts), "limit": limit}))

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_streaming_a_file_larger_than_the_process_may_hold(api, tmp_path):
    from localapi import sparse_reader
    from localapi.downloads import digest_of
    from envision_spiders.storage import atomic_write_json, record_path

    huge = ServedFile(size=SIZE, reader=sparse_reader(SIZE, {}))
    api.state.add_file("mem/huge.e2e", huge)
    md5 = digest_of(huge)
    data_dir = tmp_path / "data"
    files = [{"name": "huge.e2e", "size_bytes": SIZE, "url": f"{api.base_url}/storage/mem/huge.e2e",
              "file_id": 1, "checksum": f"md5:{md5}"}]
    atomic_write_json(record_path(data_dir, "zenodo", "huge"), {"source": "zenodo", "source_id": "huge", "files": files})
    cand = {"source": "zenodo", "source_id": "huge", "label": "EYE_IMAGING", "prob_eye_imaging": 0.9}
    env = {"PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(data_dir), json.dumps(cand), str(HEADROOM)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.get("status") == "complete", (out, result.stderr[-3000:])
    assert out["counts"] == {"downloaded": 1}
    target = data_dir / "downloads" / "zenodo" / "huge" / "huge.e2e"
    assert target.stat().st_size == SIZE
    target.unlink()  # 1 GiB less in /tmp right away
