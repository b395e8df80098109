"""Discovery by funder: DataCite's search for datasets whose funding references name the
National Eye Institute, next to the search terms. Its queries, the local server's
answers to them, the channels kept in ``provenance.found_by`` (this run's and earlier
runs', merged into saved records like terms), the per-run count of records each
channel found that the other did not, and the switch that turns it off."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from datetime import datetime, timezone
from urllib.parse import urlencode

import pytest

from envision_spiders import storage
from envision_spiders.extensions.state import CrawlState, merged_channels, saved_channels, terms_hash
from localapi import datacite as server_dc
from localapi.core import ServerState
from localapi.corpus import GeneratedText
from envision_spiders.recall.match import view_of
from envision_spiders.recall.terms import contributions
from envision_spiders.spiders.datacite import (
    FUNDER_MARK,
    FUNDER_SEARCHES,
    DataCiteSpider,
    funder_search,
    search_params,
)
from envision_spiders.terms import default_terms
from pipelines.normalize import NormalizePipeline
from pipelines.persist import PersistPipeline

from tests.conftest import make_spider


# ------------------------------------------------------------------ the queries
def test_funder_searches_name_nei_by_funder_id_and_the_rest_by_query():
    query, filters = funder_search("funder-id")
    assert query is None and filters == (("funder-id", "10.13039/100000053"),)
    query, _ = funder_search("funder-id", "2026-11-01")
    assert query == "updated:[2026-11-01 TO *]", "incremental like the terms"
    query, filters = funder_search("nei-awards", "2026-11-01")
    assert filters == () and query.endswith(" AND updated:[2026-11-01 TO *]")
    for clause in ('funding_references.funderIdentifier:"https://ror.org/03wkg3b53"',
                   'funding_references.funderName:"National Eye Institute"', "funding_references.awardNumber:*EY*"):
        assert clause in query
    params = search_params(None, "1", 250, None, (("funder-id", "10.13039/100000053"),))
    assert "query" not in dict(params) and dict(params)["funder-id"] == "10.13039/100000053"
    assert dict(params)["resource-type-id"] == "dataset"


# ------------------------------------------------------------------ the local server
def served(state: ServerState, name: str) -> set[str]:
    query, filters = funder_search(name)
    return {d for d, r in server_dc.state_of(state).records.items()
            if server_dc.matches(r, query or "", {**dict(filters), "resource-type-id": "dataset"})}


def test_the_server_filters_on_funding_like_datacite():
    state = ServerState()
    server_dc.generate(state, 100, seed=3)
    recs = server_dc.state_of(state).records
    only = server_dc.generate_funder_only(ServerState(), 4, seed=3)
    assert [d for d in only if d in recs] == only, "generate() makes them among its n"
    by_id, by_query = served(state, "funder-id"), served(state, "nei-awards")
    for doi in by_id:  # funder-id: exactly NEI's Crossref Funder ID as a DOI URL
        assert any(r.get("funderIdentifier") == "https://doi.org/10.13039/100000053"
                   for r in recs[doi]["attributes"]["fundingReferences"])
    ror_only = [d for d in by_query if all(r.get("funderIdentifier") != "https://doi.org/10.13039/100000053"
                                           for r in recs[d]["attributes"]["fundingReferences"])]
    assert ror_only and not set(ror_only) & by_id, "NEI named by ROR or NIH with an EY award: the query finds it"
    decoy = [d for d in by_query if any("SURVEY" in str(r.get("awardNumber"))
                                        for r in recs[d]["attributes"]["fundingReferences"])]
    assert len(decoy) == 1, "the award wildcard also finds another funder's number holding EY"
    terms = default_terms()
    for doi in only:  # no search term reaches them
        assert not any(server_dc.matches(recs[doi], f'("{t}")', {}) for t in terms)
    unfunded = [d for d, r in recs.items() if not r["attributes"]["fundingReferences"]]
    assert unfunded and not set(unfunded) & (by_id | by_query)


def test_the_server_answers_funder_queries_over_http(api):
    api.generate("datacite", 50, seed=21)
    expected = served(api.state, "funder-id")
    url = api.base_url + server_dc.PREFIX + "/dois?" + urlencode(
        search_params(None, "1", 100, None, FUNDER_SEARCHES["funder-id"][1]))
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert {d["id"] for d in body["data"]} == expected and expected
    query, _ = funder_search("nei-awards")
    url = api.base_url + server_dc.PREFIX + "/dois?" + urlencode(search_params(query, "1", 100, None))
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert {d["id"] for d in body["data"]} == served(api.state, "nei-awards")


# ------------------------------------------------------------------ channels kept and counted
def test_merged_channels_order_and_records_saved_before_channels():
    assert merged_channels(["funder"], ["terms", "funder"]) == ["terms", "funder"]
    assert merged_channels(None, ["funder"]) == ["funder"]
    assert saved_channels({"search_terms": ["retinal OCT"]}) == ["terms"], "saved before found_by existed"
    assert saved_channels({"search_terms": [], "found_by": ["funder"]}) == ["funder"]
    assert saved_channels(None) == []


def record(doi: str, updated: str = "2026-01-01T00:00:00.000Z") -> dict:
    """A DOI of the local server's shape (the recorded one), NEI-funded, found by 'retinal OCT'."""
    text = GeneratedText("Retinal OCT of a cohort", "Retinal OCT volumes.", ["retinal OCT"], True, ["retinal OCT"])
    rec, _ = server_dc.make_record(random.Random(1), 1, "other", text, datetime(2020, 1, 1, tzinfo=timezone.utc),
                                   "Dataset")
    rec["id"] = rec["attributes"]["doi"] = doi
    rec["attributes"]["updated"] = updated
    rec["attributes"]["fundingReferences"] = [
        {"funderName": "National Eye Institute", "funderIdentifier": "https://doi.org/10.13039/100000053",
         "funderIdentifierType": "Crossref Funder ID", "awardNumber": "R01EY012345"}]
    return rec


def saved(tmp_path, doi):
    return json.loads(storage.record_path(tmp_path, "datacite", doi).read_text())


def persist_all(spider, items):
    norm, persist = NormalizePipeline.from_crawler(spider.crawler), PersistPipeline.from_crawler(spider.crawler)
    for item in items:
        persist.process_item(norm.process_item(item))


def test_found_by_each_channel_and_both_and_the_run_counts(tmp_path):
    spider = make_spider(DataCiteSpider, tmp_path)
    a, b, c = record("10.82001/a"), record("10.82001/b"), record("10.82001/c")
    items = [*spider.handle_hit(a, "retinal OCT"), *spider.handle_funder_hit(b, "funder search funder-id"),
             *spider.handle_hit(c, "retinal OCT")]
    # c is found by the funder search while its item is on its way: it keeps both channels
    assert list(spider.handle_funder_hit(c, "funder search nei-awards")) == []
    persist_all(spider, items)
    assert saved(tmp_path, "10.82001/a")["provenance"]["found_by"] == ["terms"]
    assert saved(tmp_path, "10.82001/b")["provenance"]["found_by"] == ["funder"]
    assert saved(tmp_path, "10.82001/b")["provenance"]["search_terms"] == []
    assert saved(tmp_path, "10.82001/c")["provenance"]["found_by"] == ["terms", "funder"]
    # a is found by the funder search after it was written: merged into the file at once
    assert list(spider.handle_funder_hit(a, "funder search funder-id")) == []
    assert saved(tmp_path, "10.82001/a")["provenance"]["found_by"] == ["terms", "funder"]
    assert CrawlState.of(spider.crawler).channel_counts() == {"terms_only": 0, "funder_only": 1, "both": 2}


def test_an_unchanged_record_found_by_the_funder_search_next_run_gets_the_channel(tmp_path):
    first = make_spider(DataCiteSpider, tmp_path)
    persist_all(first, list(first.handle_hit(record("10.82001/a"), "retinal OCT")))
    before = saved(tmp_path, "10.82001/a")
    second = make_spider(DataCiteSpider, tmp_path)
    assert list(second.handle_funder_hit(record("10.82001/a"), "funder search funder-id")) == [], "unchanged: not fetched"
    after = saved(tmp_path, "10.82001/a")
    assert after["provenance"]["found_by"] == ["terms", "funder"]
    assert after["provenance"]["search_terms"] == before["provenance"]["search_terms"] == ["retinal OCT"]
    # found by a term only, this run: the saved file is not rewritten for a channel it has
    third = make_spider(DataCiteSpider, tmp_path)
    stamp = storage.record_path(tmp_path, "datacite", "10.82001/a").stat().st_mtime_ns
    assert list(third.handle_hit(record("10.82001/a"), "retinal OCT")) == []
    assert storage.record_path(tmp_path, "datacite", "10.82001/a").stat().st_mtime_ns == stamp
    assert CrawlState.of(third.crawler).channel_counts() == {"terms_only": 1, "funder_only": 0, "both": 0}


def test_a_funder_hit_without_nei_funding_is_left_to_the_terms(tmp_path):
    spider = make_spider(DataCiteSpider, tmp_path)
    rec = record("10.82001/x")
    rec["attributes"]["fundingReferences"] = [{"funderName": "NSF", "awardNumber": "SURVEY-2021-EY"}]
    assert list(spider.handle_funder_hit(rec, "funder search nei-awards")) == []
    assert spider.crawler.stats.get_value("envision/datacite/funder_not_nei") == 1
    assert CrawlState.of(spider.crawler).channel_counts() == {"terms_only": 0, "funder_only": 0, "both": 0}


def test_the_setting_turns_the_funder_search_off_and_the_mark_knows_it(tmp_path):
    on = make_spider(DataCiteSpider, tmp_path)
    off = make_spider(DataCiteSpider, tmp_path, DATACITE_FUNDER_SEARCH=False)
    assert on.channels == ("terms", "funder") and off.channels == ("terms",)
    assert off.terms_sha == terms_hash(off.terms) and on.terms_sha == terms_hash([*on.terms, FUNDER_MARK])
    assert on.terms_sha != off.terms_sha, "switching it on makes the next run a full one"


@pytest.mark.parametrize("enabled, funder_requests", [(True, len(FUNDER_SEARCHES)), (False, 0)])
def test_searches_include_the_funder_search_only_when_on(tmp_path, enabled, funder_requests):
    spider = make_spider(DataCiteSpider, tmp_path, DATACITE_FUNDER_SEARCH=enabled)

    async def collect():
        return [r async for r in spider.searches()]

    requests = asyncio.run(collect())
    assert len(requests) == len(spider.terms) + funder_requests
    funder = [r for r in requests if r.callback == spider.parse_funder]
    assert len(funder) == funder_requests
    assert all(set(r.cb_kwargs) == {"search", "cursor"} for r in funder)


# ------------------------------------------------------------------ recall: what is a term's own
def test_a_record_the_funder_search_also_found_is_no_terms_own():
    def view(terms, found_by):
        return view_of({"source": "datacite", "source_id": "10.82001/" + "".join(terms) + "".join(found_by), "title": "x",
                        "provenance": {"search_terms": terms, "found_by": found_by}})

    rows = contributions([view(["retinal OCT"], ["terms"]), view(["retinal OCT"], ["terms", "funder"]),
                          view(["retinal OCT"], []), view([], ["funder"])], ["retinal OCT"])
    assert rows["retinal OCT"]["found"] == 3 and rows["retinal OCT"]["unique"] == 2


def test_funder_pages_follow_the_cursor_and_a_stuck_one_ends_the_search(tmp_path, caplog):
    from scrapy.http import JsonResponse

    spider = make_spider(DataCiteSpider, tmp_path)
    rec = record("10.82001/p")
    page = {"data": [rec], "links": {"next": "https://api.datacite.org/dois?page%5Bcursor%5D=abc&page%5Bsize%5D=1"}}
    request = spider.funder_request("funder-id")
    out = list(spider.parse_funder(JsonResponse(request.url, body=json.dumps(page).encode(), request=request),
                                   search="funder-id", cursor="1"))
    (item, following) = out
    assert item.provenance["found_by"] == ["funder"] and item.provenance["search_terms"] == []
    assert following.callback == spider.parse_funder and following.cb_kwargs == {"search": "funder-id", "cursor": "abc"}
    assert "funder-id=10.13039%2F100000053" in following.url and "page%5Bcursor%5D=abc" in following.url
    assert list(spider.parse_funder(JsonResponse(following.url, body=json.dumps(page).encode(), request=following),
                                    search="funder-id", cursor="abc")) == []
    assert spider.crawler.stats.get_value("envision/datacite/cursor_stuck") == 1 and spider.hit_cap_reached
    assert "datacite: funder search funder-id: the cursor did not advance" in caplog.text
    assert spider.crawler.stats.get_value("envision/channels/funder/searches") == 1
    assert spider.crawler.stats.get_value("envision/terms_searched") is None
