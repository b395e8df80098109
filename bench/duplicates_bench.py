"""Time the cross-source duplicate search on generated records (default 40,000, the
size of a full crawl), with planted Kaggle copies, and check it finds every one.

    .venv/bin/python bench/duplicates_bench.py [N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from envision_spiders.duplicates import find_duplicates  # noqa: E402
from tests.unit.test_duplicates import generated_records  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    records, expected = generated_records(n, planted=max(10, n // 100))
    started = time.perf_counter()
    groups = find_duplicates(records)
    elapsed = time.perf_counter() - started
    found = {frozenset(m["key"] for m in g["members"]) for g in groups}
    print(f"{len(records)} records: {elapsed:.2f} s, {len(groups)} groups, "
          f"{len(expected & found)}/{len(expected)} planted copies found, {len(found - expected)} unexpected groups")


if __name__ == "__main__":
    main()
