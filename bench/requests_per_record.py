"""Requests per unique record, per source, against that API's floor.

    .venv/bin/python bench/requests_per_record.py [--records 500]

One ``scrapy crawl all`` (pacing off: request counts do not depend on it) against the
local API server with ``--records`` generated records per source; the 47 shared terms
find most records several times. Per source:

* API requests: every request a spider callback asked for (search pages, detail and
  file-listing calls, retries), archive peeks left out (see archive_peek.py);
* unique records saved, and requests per unique record;
* search pages, and among them pages that brought nothing new (every record on them was
  already found by an earlier term or page) and empty pages (no hit at all);
* detail calls: the requests the API forces per record (Figshare's article, Dryad's
  version files, Kaggle's file list, OSF's storage listings, Zenodo's listing of a
  restricted record); DataCite and RePORTER need none;
* two floors, both with the API's largest page size: **per query** (one page per
  page-size hits of each term's query, at least one page per query, plus the detail
  calls), the best with one query per term as the APIs are used today; and **union**
  (one page per page-size unique records, plus the detail calls), the best when the
  terms are OR-ed into as few queries as the API allows (Zenodo, DataCite, Figshare,
  RePORTER accept OR; Dryad, Kaggle and OSF's filters do not, so their floor is the
  per-query one).

Results go to ``bench/RESULTS.md`` (section 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import LIMITS, SPIDERS, ceil_div, generate_all, machine_line, run_crawl, save_json, table, write_section  # noqa: E402
from bench.crawl_all import needed_search_pages  # noqa: E402
from localapi import LocalAPIServer  # noqa: E402

# APIs whose search takes OR across terms (so the union floor is reachable)
OR_QUERIES = {"zenodo", "datacite", "figshare"}  # RePORTER too, but its hits are fiscal-year rows, not records
# the page size each spider asks for
SPIDER_PAGE = {"zenodo": 25, "figshare": 100, "dryad": 100, "osf": 100, "datacite": 250, "kaggle": 20, "nei": 500}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args()
    with LocalAPIServer() as server, tempfile.TemporaryDirectory(prefix="bench-rpr-") as tmp:
        generate_all(server, args.records)
        run = run_crawl(server, "all", Path(tmp) / "d", 0.0)
        if run["returncode"] != 0:
            print(Path(run["log"]).read_text()[-3000:])
    rows, data = [], {}
    for s in SPIDERS:
        inst = run["instrument"][s]
        summ = run["summaries"][s]
        by_cb = inst["requests_by_callback"]
        api = sum(n for cb, n in by_cb.items() if cb != "parse")  # "parse": archive peeks
        pages = inst["search_pages"]
        detail = api - len(pages)
        unique = summ["unique_records"]
        ps = LIMITS[s].page_size
        per_query = needed_search_pages(pages, ps) + detail
        union = max(1, ceil_div(unique, ps)) + detail
        nothing_new = sum(1 for p in pages if p["new"] == 0)
        empty = sum(1 for p in pages if p["hits"] == 0)
        floor = union if s in OR_QUERIES else per_query
        d = {"api_requests": api, "by_callback": by_cb, "unique": unique, "hits": summ["hits"], "search_pages": len(pages),
             "nothing_new": nothing_new, "empty": empty, "detail": detail, "floor_per_query": per_query,
             "floor_union": union, "floor": floor, "spider_page_size": SPIDER_PAGE[s], "api_page_size": ps,
             "queries": len({p["query"] for p in pages}),
             "needed_pages_spider_size": needed_search_pages(pages, SPIDER_PAGE[s])}
        data[s] = d
        rows.append([s, unique, api, round(api / unique, 2) if unique else "-", len(pages), d["queries"],
                     f"{nothing_new} ({empty} empty)", detail, f"{SPIDER_PAGE[s]} / {ps}",
                     per_query, round(per_query / unique, 2) if unique else "-",
                     union, round(union / unique, 2) if unique else "-",
                     round(api / floor, 2) if floor else "-"])
    osf = data["osf"]
    save_json("requests_per_record.json", {"records": args.records, "sources": data, "run": {k: v for k, v in run.items() if k != "instrument"}})
    tot_pages = sum(d["search_pages"] for d in data.values())
    tot_nn = sum(d["nothing_new"] for d in data.values())
    md = f"""## 2. Requests per unique record

{machine_line()}

`bench/requests_per_record.py --records {args.records}`: one `crawl all`, {args.records} generated records per source,
the 47 shared terms (each generated record mentions two of them, so most are found
more than once). Archive peeks are not counted here (section 3).

{table(["source", "unique records", "API requests", "per record", "search pages", "queries", "pages with nothing new", "detail calls", "page size spider / API max", "floor per query", "per record", "floor union", "per record", "made / floor"], rows)}

*Floor per query*: one page per page-size hits of each query (at least one per query) at
the API's largest page, plus the detail calls. *Floor union*: one page per page-size
unique records plus the detail calls, reachable only where the API takes OR across terms
(Zenodo, DataCite, Figshare, RePORTER); "made / floor" uses the union floor there and
the per-query floor for Dryad, Kaggle and OSF, whose searches cannot OR terms.

**Pages that brought nothing new: {tot_nn} of {tot_pages} search pages** ({100 * tot_nn / max(1, tot_pages):.0f}%). Every term costs at
least one request per query even when its records were all found by earlier terms;
deduplication (`first_sighting`) keeps those pages from costing a second detail call or a
second peek, but the page itself is spent. What would fix it: where the API takes OR
(Zenodo query string, DataCite Elasticsearch query, Figshare `search_for`, RePORTER
`advanced_text_search` with `or`), send the terms OR-ed in as few queries as the URL or
body length allows, at the largest page size, and work out which terms a record
matches locally (the same word rules the query used) for `provenance.search_terms`;
for Dryad and Kaggle (AND-only search) one query per term is the floor. OSF's list filters
cannot OR terms, but they OR fields: the spider sends one `filter[title,description,tags]=term`
query per term and endpoint (OSF's `FilterMixin` ORs the fields named in one filter), so
OSF's {osf['search_pages']} search pages here are one per query; before this (three
filters per term and endpoint) the same run took 282 search pages and 1,469 requests.
"""
    print(md)
    if not args.no_results:
        write_section("2", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
