"""The review page at scale: build it from a generated results folder and time it in Chromium.

    .venv/bin/python bench/report_page.py [--records 50000] [--eye-share 0.5] [--borderline-share 0.2]
                                          [--runs 3] [--json bench/out/report_page.json]

Generates ``--records`` classified records over the seven sources (``tests/report_data.py``:
about half EYE_IMAGING, a fifth borderline NEGATIVE, DataCite duplicates of Zenodo
records, a saved record with an archive listing for every table row, a crawl run,
downloads and a queue), times ``write_report`` (Python), then opens the page ``--runs``
times in a fresh headless Chromium page (Debian's ``/usr/bin/chromium`` or
``CHROMIUM_PATH``) and measures:

* load: navigation start to DOMContentLoaded and to the load event, the page script's own
  time (JSON.parse of the rows and the first render of both tables), first contentful
  paint, the JS heap after load;
* interactions on the EYE_IMAGING table, each from the event to the next painted frame
  (handler + layout + paint): the first sort by title (computes and caches that order),
  the reverse sort, the same sort again (cached), sort by size, a source filter, a
  modality filter, a two-word search, the next page, and reset.

Medians over the runs are printed and written as JSON. Numbers vary with the machine and
its load (the reference machine has 2 shared cores); they are figures, not asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envision_spiders.report import write_report  # noqa: E402
from tests.report_data import generate  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

LOAD_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByType('paint').find(p => p.name === 'first-contentful-paint');
  return {
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    load_event_ms: nav.loadEventEnd,
    script_ms: window.__report.readyMs,
    first_contentful_paint_ms: fcp ? fcp.startTime : null,
    js_heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null,
    eye_rows_in_dom: document.querySelectorAll('#eye tbody tr').length,
    eye_matching: Number(document.getElementById('eye').dataset.matching),
    borderline_matching: Number(document.getElementById('borderline').dataset.matching),
  };
}"""

# each step: (name, JS run in the page that triggers it); timed to the next painted frame
STEPS = [
    ("sort_title_first", "document.querySelector('#eye th button[data-sort=title]').click()"),
    ("sort_title_reverse_first", "document.querySelector('#eye th button[data-sort=title]').click()"),
    ("sort_title_cached", "document.querySelector('#eye th button[data-sort=title]').click()"),
    ("sort_size_first", "document.querySelector('#eye th button[data-sort=size]').click()"),
    ("filter_source", "{const s = document.querySelector('#eye select[data-f=source]'); s.value = '2'; "
                      "s.dispatchEvent(new Event('change'));}"),
    ("filter_modality", "{const s = document.querySelector('#eye select[data-f=modality]'); s.value = '1'; "
                        "s.dispatchEvent(new Event('change'));}"),
    ("search_two_words", "{const t = window.__report.tables.eye; t.filters.q = 'retinal fundus'; t.update();}"),
    ("next_page", "document.querySelector('#eye [data-f=reset]').click(); "
                  "document.querySelector('#eye .pager button.next').click()"),
    ("reset", "document.querySelector('#eye [data-f=reset]').click()"),
]
TIMED = """async () => {
  const t0 = performance.now();
  CODE;
  const handler = performance.now() - t0;
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return {handler_ms: handler, to_next_frame_ms: performance.now() - t0};
}"""


def browser_runs(path: Path, runs: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + ["--enable-precise-memory-info"])
        for _ in range(runs):
            # the page keeps its policy: Playwright's evaluate runs outside it
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            started = time.perf_counter()
            page.goto(path.as_uri(), timeout=300_000)
            page.wait_for_selector("html[data-ready='1']", timeout=300_000)
            wall = (time.perf_counter() - started) * 1000
            run = {"load": {**page.evaluate(LOAD_JS), "wall_ms": wall}, "steps": {}}
            for name, code in STEPS:
                run["steps"][name] = page.evaluate(TIMED.replace("CODE", code))
            ctx.close()
            out.append(run)
        browser.close()
    return out


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--eye-share", type=float, default=0.5)
    ap.add_argument("--borderline-share", type=float, default=0.2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "report_page.json"))
    args = ap.parse_args()
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        sys.exit(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)")
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        counts = generate(root, args.records, eye_share=args.eye_share, borderline_share=args.borderline_share)
        generated = time.perf_counter() - t
        t = time.perf_counter()
        path = write_report(root / "data", root / "results", run_id="bench")
        built = time.perf_counter() - t
        size_mb = path.stat().st_size / 1e6
        runs = browser_runs(path, args.runs)
    load = {k: median([r["load"][k] for r in runs]) for k in runs[0]["load"]}
    steps = {name: {k: median([r["steps"][name][k] for r in runs]) for k in ("handler_ms", "to_next_frame_ms")}
             for name, _ in STEPS}
    result = {
        "records": counts, "runs": args.runs, "generate_s": round(generated, 1), "write_report_s": round(built, 1),
        "page_mb": round(size_mb, 1), "load_median": load, "steps_median": steps, "cpus": os.cpu_count(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{args.records:,} records ({counts['EYE_IMAGING']:,} EYE_IMAGING, {counts['borderline']:,} borderline): "
          f"write_report {built:.1f} s, page {size_mb:.1f} MB")
    print(f"load (median of {args.runs}): " + ", ".join(f"{k} {v}" for k, v in load.items()))
    for name, v in steps.items():
        print(f"  {name:26s} handler {v['handler_ms']:7.1f} ms   to next frame {v['to_next_frame_ms']:7.1f} ms")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
