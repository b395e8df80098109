"""Zenodo: query building, date splitting, field mapping on real responses, and crawls
through the real Scrapy engine against the local API server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from scrapy.http import JsonResponse, Request

from envision_spiders.query import term_query
from envision_spiders.textutil import checksum
from envision_spiders.items import DatasetItem
from envision_spiders.spiders.zenodo import (
    RESULT_WINDOW,
    ZenodoSpider,
    build_query,
    split_slice,
)
from envision_spiders.mapping.zenodo import map_files

from tests.conftest import ROOT, crawl_env, crawl_in_process, last_summary, make_spider, sample, saved_mtimes, saved_records


# ------------------------------------------------------------------ pure helpers
def test_term_query_requires_every_word_and_quotes_reserved_characters():
    assert term_query("retinal OCT") == '"retinal" AND "OCT"'
    assert term_query("OCT-A retina") == '"OCT-A" AND "retina"'
    assert term_query("CHASE_DB1") == '"CHASE_DB1"'
    assert term_query('say "hi"') == '"say" AND "\\"hi\\""'
    assert "-October" not in build_query("retinal OCT")


def test_build_query_adds_created_slice_and_incremental_filter():
    q = build_query("AMD dataset", since="2026-11-01", created=(date(2020, 1, 1), date(2020, 7, 1)))
    assert q == '("AMD" AND "dataset") AND created:[2020-01-01 TO 2020-07-01} AND updated:[2026-11-01 TO *]'
    assert build_query("APTOS", created=(None, date(2019, 1, 1))) == '("APTOS") AND created:[* TO 2019-01-01}'


def test_split_slice_halves_until_one_day():
    today = date(2026, 11, 25)
    halves = split_slice(None, today)
    assert halves[0][0] is None and halves[1][1] is None and halves[0][1] == halves[1][0]
    assert split_slice((date(2020, 1, 1), date(2020, 1, 2)), today) is None
    lo, hi = split_slice((date(2020, 1, 1), date(2020, 1, 5)), today)
    assert lo == (date(2020, 1, 1), date(2020, 1, 3)) and hi == (date(2020, 1, 3), date(2020, 1, 5))


def test_checksums_of_both_shapes():
    assert checksum("md5:ABC" + "0" * 29) == "md5:abc" + "0" * 29
    assert checksum("0" * 32) == "md5:" + "0" * 32
    assert checksum("") is None and checksum(None) is None and checksum(42) is None


def test_map_files_reads_2024_and_2023_shapes_and_quotes_keys():
    url = lambda key: f"https://z/api/records/1/files/{key}/content"  # noqa: E731
    new = map_files(sample("zenodo/record_8173303_2026-07.json")["files"], url)
    assert new == [
        {
            "name": "20230711-CERN-NASA-Open-Science-Summit-Summary-Drawings.pdf",
            "size_bytes": 13994803,
            "url": "https://z/api/records/1/files/20230711-CERN-NASA-Open-Science-Summit-Summary-Drawings.pdf/content",
            "file_id": "a3d52e85-858a-4ceb-88bd-34e636c74e08",
            "checksum": "md5:45d8b11d4ef0da78b9db5397d8e0e8d9",
        }
    ]
    # Oct-2023 transitional shape (docs/sources/zenodo.md): filename, filesize, bare md5, links.download
    old = map_files(
        [{"id": "x1", "filename": "scans.zip", "filesize": 10, "checksum": "a" * 32,
          "links": {"self": "https://zenodo.org/api/files/b/scans.zip", "download": "https://zenodo.org/api/files/b/scans.zip/content"}},
         "garbage", {"filename": None}],
        url,
    )
    assert old == [{"name": "scans.zip", "size_bytes": 10, "url": url("scans.zip"), "file_id": "x1", "checksum": "md5:" + "a" * 32}]


def test_file_urls_are_quoted_from_the_api_root(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path, ZENODO_API_URL="http://mirror.example/zenodo/api/")
    key = "Thuiller et al. - 2006 - INTERACTIONS BETWEEN ENVIRONMENT, SPECIES TRAITS, .]"
    url = spider.file_url("13505983", key)
    assert url.startswith("http://mirror.example/zenodo/api/records/13505983/files/")
    assert " " not in url and "]" not in url and unquote(url.split("/files/")[1].rsplit("/content")[0]) == key


def test_page_size_depends_on_token(tmp_path, monkeypatch):
    monkeypatch.delenv("ZENODO_TOKEN", raising=False)
    assert make_spider(ZenodoSpider, tmp_path).page_size == 25
    monkeypatch.setenv("ZENODO_TOKEN", "secret-token")
    spider = make_spider(ZenodoSpider, tmp_path)
    assert spider.page_size == 100
    request = spider.search_request("retinal OCT")
    assert request.headers["Authorization"] == b"Bearer secret-token"
    assert parse_qs(urlparse(request.url).query)["size"] == ["100"]
    # credentials never go to another host
    assert "Authorization" not in spider.api_request("http://elsewhere.example/x", spider.parse_files).headers


# ------------------------------------------------------------------ callbacks on real responses (scrapy-mock)
@pytest.mark.parametrize("url", ["https://zenodo.org/api/records/8173303"], ids=["sample"])
def test_zenodo_record_2024_shape(response, tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path, ZENODO_API_URL="https://zenodo.org/api")
    out = list(spider.handle_hit(response.json(), "open science"))
    assert len(out) == 1 and isinstance(out[0], DatasetItem)
    item = out[0]
    assert item.source == "zenodo" and item.source_id == "8173303"
    assert item.doi == "10.5281/zenodo.8173303"
    assert item.url == "https://zenodo.org/records/8173303"
    assert item.title == "ARCHIVE - 11 July 2023 (Day 2) CERN \u2013 NASA Open Science Summit Sketch Notes"
    assert item.description.startswith("CERN/NASA \u201cAccelerating the Adoption of Open Science\u201d")
    assert "<p>" not in item.description and "&nbsp;" not in item.description
    assert item.external_links == ["https://indico.cern.ch/event/1254282/"]
    assert item.license == "cc-by-4.0" and item.access_type == "open" and item.resource_type == "presentation"
    assert item.creators == [{"name": "Seibold, Heidi", "orcid": "0000-0002-8960-9642"}]
    assert item.publication_year == 2023
    assert item.dates == {"created": "2023-07-21T22:00:21.474631Z", "modified": "2025-01-22T19:42:46.763514Z", "published": "2023-07-21"}
    assert item.extra["conceptrecid"] == "8173302" and item.extra["conceptdoi"] == "10.5281/zenodo.8173302"
    assert item.files[0]["checksum"] == "md5:45d8b11d4ef0da78b9db5397d8e0e8d9"
    assert item.provenance["search_terms"] == ["open science"]
    assert item.provenance["source_modified"] == "2025-01-22T19:42:46.763514Z"
    # the same record found by a second term is not processed again: the crawl state
    # keeps the term (no pseudo-item in the item stream)
    again = list(spider.handle_hit(response.json(), "sketch notes"))
    assert again == []
    assert spider.terms_for("8173303") == ["open science", "sketch notes"]


@pytest.mark.parametrize(
    "url",
    ["https://zenodo.org/api/records?allversions=True&page=1&q=%22hash%3A%2F%2Fmd5%2F942d0c469322df33da20e10204197bc5%22&size=25&sort=bestmatch"],
    ids=["sample"],
)
def test_zenodo_restricted_hit_asks_for_listing(response, tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path, ZENODO_API_URL="https://zenodo.org/api")
    out = list(spider.parse_search(response, term="bat literature", page=1, created=None))
    assert len(out) == 1 and isinstance(out[0], Request)
    assert out[0].url == "https://zenodo.org/api/records/13505983/files"
    assert out[0].cb_kwargs["hit"]["metadata"]["access_right"] == "restricted"
    assert spider.crawler.stats.get_value("envision/hits") == 1


@pytest.mark.parametrize("url", ["https://zenodo.org/api/records/13505983/files"], ids=["sample"])
def test_zenodo_files_listing(response, tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path, ZENODO_API_URL="https://zenodo.org/api")
    hit = sample("zenodo/search_2025-01_restricted_hit.json")["hits"]["hits"][0]
    spider.first_sighting("13505983", "bat literature")
    (item,) = spider.parse_files(response, hit=hit)
    assert item.access_type == "restricted" and item.license is None
    assert item.publication_year == 2006
    assert item.keywords[:3] == ["Biodiversity", "Mammalia", "Chiroptera"]
    (f,) = item.files
    assert f["name"].endswith("TRAITS, .]") and f["size_bytes"] == 557019
    assert f["url"] == "https://zenodo.org/api/records/13505983/files/Thuiller%20et%20al.%20-%202006%20-%20INTERACTIONS%20BETWEEN%20ENVIRONMENT%2C%20SPECIES%20TRAITS%2C%20.%5D/content"
    assert f["checksum"] == "md5:942d0c469322df33da20e10204197bc5"
    assert item.related_dois == ["10.5281/zenodo.1410543"]
    assert "https://zotero.org/groups/5435545/items/W92DGTU4" in item.external_links
    assert {"identifier": "10.5281/zenodo.1410543", "relation": "isCompiledBy", "scheme": "doi", "resource_type": "software"} in item.related_identifiers


@pytest.mark.parametrize(
    "url",
    ["https://zenodo.org/api/records?allversions=True&page=1&q=_files.checksum%3A%22md5%3A942d0c469322df33da20e10204197bc5%22&size=25&sort=bestmatch"],
    ids=["sample"],
)
def test_zenodo_empty_search(response, tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path, ZENODO_API_URL="https://zenodo.org/api")
    assert list(spider.parse_search(response, term="nothing", page=1, created=None)) == []
    assert spider.crawler.stats.get_value("envision/terms_searched") == 1


def test_result_window_is_split_by_creation_date_until_every_slice_fits(tmp_path):
    """Walk the splitting with an API that answers totals for 30,000 records."""
    spider = make_spider(ZenodoSpider, tmp_path)
    created = sorted(datetime(2014, 1, 1, tzinfo=timezone.utc).toordinal() + (i * 97) % 4000 for i in range(30_000))
    dates = [date.fromordinal(d).isoformat() for d in created]

    def answer(request):
        q = parse_qs(urlparse(request.url).query)["q"][0]
        m = re.search(r"created:\[(\S+) TO (\S+)\}", q)
        lo, hi = (m.group(1), m.group(2)) if m else ("*", "*")
        n = sum(1 for d in dates if (lo == "*" or d >= lo) and (hi == "*" or d < hi))
        body = json.dumps({"hits": {"hits": [], "total": n}}).encode()
        return JsonResponse(request.url, body=body, request=request)

    pending = [spider.search_request("fundus image dataset")]
    leaves = []
    while pending:
        req = pending.pop()
        resp = answer(req)
        total = json.loads(resp.body)["hits"]["total"]
        out = list(spider.parse_search(resp, **req.cb_kwargs))
        if total > RESULT_WINDOW:
            assert len(out) == 2 and all(r.cb_kwargs["page"] == 1 for r in out)
            pending.extend(out)
        else:
            leaves.append((req.cb_kwargs["created"], total))
    assert all(t <= RESULT_WINDOW for _, t in leaves)
    assert sum(t for _, t in leaves) == 30_000  # the slices partition the records


# ------------------------------------------------------------------ crawls through the engine
def expected_records(api) -> dict[str, set[str]]:
    """What a complete crawl must find: every dataset that a term matches, and its terms."""
    from localapi.zenodo import _matches, parse_query, state_of
    from envision_spiders.spiders.zenodo import build_query
    from envision_spiders.terms import default_terms

    st = state_of(api.state)
    found: dict[str, set[str]] = {}
    for term in default_terms():
        phrases, ranges = parse_query(build_query(term))
        for rec in st.records.values():
            if rec["metadata"]["resource_type"]["type"] == "dataset" and _matches(rec, phrases, ranges):
                found.setdefault(str(rec["id"]), set()).add(term)
    return found


def comparable(records: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for sid, rec in records.items():
        rec = json.loads(json.dumps(rec))
        rec["provenance"].pop("harvested_at")
        rec["provenance"]["search_terms"] = sorted(rec["provenance"]["search_terms"])
        out[sid] = rec
    return out


@pytest.mark.slow
def test_full_crawl_saves_every_dataset_once_with_all_its_terms(api, tmp_path):
    api.generate("zenodo", 150, seed=3)
    result = crawl_in_process(api, "zenodo", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = expected_records(api)
    records = saved_records(tmp_path, "zenodo")
    assert set(records) == set(expected)
    for sid, rec in records.items():
        assert set(rec["provenance"]["search_terms"]) == expected[sid], sid
        assert rec["file_count"] == len(rec["files"]) > 0  # restricted ones too, from the listing
    restricted = [r for r in records.values() if r["access_type"] == "restricted"]
    assert restricted and all(r["files"] for r in restricted)
    summary = last_summary(tmp_path, "zenodo")
    assert summary["new"] == len(expected) and summary["failures"] == 0 and summary["bad_responses"] == 0
    assert summary["terms_searched"] == 47
    # anonymous: 25 per page, each search asks for datasets only
    searches = api.state.entries(r"/zenodo/api/records\?")
    assert searches and all("size=25" in e["path_qs"] and "type=dataset" in e["path_qs"] for e in searches)
    assert all(e["auth"] is None for e in api.state.entries())
    # restricted records cost one listing each, open ones none
    assert api.state.count(r"/records/\d+/files$") == len(restricted)


@pytest.mark.slow
def test_second_run_asks_only_for_changes_and_skips_unchanged_records(api, tmp_path):
    api.generate("zenodo", 80, seed=4)
    assert crawl_in_process(api, "zenodo", tmp_path).returncode == 0
    before = saved_mtimes(tmp_path, "zenodo")
    api.state.reset_counters()
    result = crawl_in_process(api, "zenodo", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = api.state.entries()
    assert log and all(re.search(r"/zenodo/api/records\?", e["path_qs"]) for e in log), "only search pages"
    assert all("updated%3A%5B" in e["path_qs"] for e in log), "incremental: updated:[since TO *]"
    after = saved_mtimes(tmp_path, "zenodo")
    assert after == before, "unchanged records are left untouched on disk"
    # a full run refreshes everything it finds
    changed = api.modify("zenodo", 0.1)
    assert changed > 0
    result = crawl_in_process(api, "zenodo", tmp_path, "-a", "full=1")
    assert result.returncode == 0
    summary = last_summary(tmp_path, "zenodo")
    assert summary["unchanged"] == 0 and summary["changed"] >= 1


@pytest.mark.slow
def test_storm_of_429_5xx_and_broken_answers_loses_no_record(api, tmp_path):
    api.generate("zenodo", 60, seed=5)
    s = api.state
    s.add_fault(path=r"/zenodo/api/records\?", kind="429", count=4, retry_after="1")
    s.add_fault(path=r"/zenodo/api/records\?", kind="429", count=2, retry_after=time_http_date(1), method="GET")
    s.add_fault(path=r"/zenodo/api/records\?", kind="429", count=1, reset_header="X-RateLimit-Reset", reset_seconds=1)
    s.add_fault(path=r"/zenodo/api/", kind="status", status=503, count=8)
    s.add_fault(path=r"/zenodo/api/", kind="status", status=502, count=3)
    s.add_fault(path=r"/zenodo/api/records\?", kind="drop", count=3)
    s.add_fault(path=r"/zenodo/api/records\?", kind="truncate", count=2)
    s.add_fault(path=r"/zenodo/api/records\?", kind="malformed", count=2)
    result = crawl_in_process(api, "zenodo", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(saved_records(tmp_path, "zenodo")) == set(expected_records(api))
    summary = last_summary(tmp_path, "zenodo")
    assert summary["failures"] == 0
    assert summary["rate_limited"] == 7 and summary["retries"] >= 11 + 3
    assert summary["bad_responses"] >= 2
    assert not (tmp_path / "failures" / "zenodo.jsonl").exists()


def time_http_date(seconds: float) -> str:
    import email.utils

    return email.utils.formatdate(time.time() + seconds, usegmt=True)


@pytest.mark.slow
def test_failed_requests_are_kept_and_retried_first_next_run(api, tmp_path):
    api.generate("zenodo", 40, seed=6)
    api.state.add_fault(path=r"q=%28%22retinal%22\+AND\+%22OCT%22%29", kind="status", status=500, count=-1)
    result = crawl_in_process(api, "zenodo", tmp_path, RETRY_TIMES="1")
    assert result.returncode == 3, "a run that lost requests says so in its exit status"
    assert "ZENODO RUN HEALTH: 1 requests failed for good" in result.stderr
    failures = [json.loads(l) for l in (tmp_path / "failures" / "zenodo.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and failures[0]["reason"] == "HTTP 500" and failures[0]["callback"] == "parse_search"
    assert "Authorization" not in json.dumps(failures)
    assert not (tmp_path / "state" / "zenodo.json").exists(), "a run with failures does not move the mark"
    api.state.clear_faults()
    api.state.reset_counters()
    # one request at a time, so the order the server sees is the order they were sent
    result = crawl_in_process(api, "zenodo", tmp_path, "-s", "CONCURRENT_REQUESTS=1")
    assert result.returncode == 0
    first = api.state.entries()[0]
    assert "retinal" in unquote(first["path_qs"]) and "OCT" in first["path_qs"]
    assert not (tmp_path / "failures" / "zenodo.jsonl").exists()
    assert set(saved_records(tmp_path, "zenodo")) == set(expected_records(api))
    assert (tmp_path / "state" / "zenodo.json").exists()


@pytest.mark.slow
def test_killed_crawl_resumes_to_the_same_records_with_no_corrupt_file(api, tmp_path):
    api.generate("zenodo", 120, seed=7)
    reference = tmp_path / "reference"
    assert crawl_in_process(api, "zenodo", reference).returncode == 0
    api.state.add_fault(path=r"/zenodo/api/records", kind="slow", delay=0.15, count=-1)
    killed = tmp_path / "killed"
    env = crawl_env(api, killed)
    proc = subprocess.Popen([sys.executable, "-m", "scrapy", "crawl", "zenodo"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = killed / "metadata" / "zenodo"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 25:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = list(folder.glob("*.json"))
    assert 0 < len(partial) < len(expected_records(api)), "killed halfway"
    for p in partial:
        json.loads(p.read_text())  # every saved file is whole
    api.state.clear_faults()
    assert crawl_in_process(api, "zenodo", killed).returncode == 0
    assert comparable(saved_records(killed, "zenodo")) == comparable(saved_records(reference, "zenodo"))
    assert not list(folder.glob(".*")), "no temporary file left behind"


def test_odd_types_html_titles_and_unicode_are_handled_record_by_record(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path)
    good = sample("zenodo/record_8173303_2026-07.json")
    odd = json.loads(json.dumps(good))
    odd.update(id=5, metadata={**odd["metadata"], "title": "<b>Retinal</b> OCT \u2014 caf\u00e9\u0000", "keywords": "fundus",
                                "creators": {"name": "not a list"}, "license": "cc-by-4.0", "access_right": ["open"],
                                "publication_date": 2020, "resource_type": "dataset", "related_identifiers": [None, {"identifier": 5}]})
    broken = {"no": "id"}
    body = json.dumps({"hits": {"hits": [good, odd, broken, "junk"], "total": 4}}).encode()
    response = JsonResponse("http://127.0.0.1:9/api/records?page=1", body=body, request=Request("http://127.0.0.1:9/api/records?page=1"))
    items = [o for o in spider.parse_search(response, term="retinal OCT", page=1, created=None) if isinstance(o, DatasetItem)]
    assert [i.source_id for i in items] == ["8173303", "5"]
    odd_item = items[1]
    assert odd_item.title == "Retinal OCT \u2014 caf\u00e9"
    assert odd_item.keywords == ["fundus"] and odd_item.creators == [] and odd_item.access_type is None
    assert odd_item.license == "cc-by-4.0" and odd_item.publication_year == 2020 and odd_item.related_identifiers == []
    assert spider.crawler.stats.get_value("envision/bad_record") == 2
