"""SourceSpider's search loop, in one place: the spider of its docstring's recipe (taken
from the docstring itself, so the recipe cannot rot), against hand-made pages: terms and hits counted once, MAX_PER_QUERY, one fetch per
record per run with every term remembered, the incremental rule, malformed hits."""

from __future__ import annotations

import json
import logging
import textwrap

from scrapy.http import JsonResponse, Request

from envision_spiders.items import DatasetItem
from envision_spiders.politeness import Pace
from envision_spiders.spiders import base
from envision_spiders.spiders.base import SourceSpider, source_id
from envision_spiders.storage import atomic_write_json, record_path

from tests.conftest import make_spider


def map_record(hit: dict) -> dict:
    return {"title": hit.get("title") or ""}


def recipe_spider() -> type:
    """The spider of the base spider's docstring ("A whole spider, ..."), run as written."""
    doc = base.__doc__
    block = doc[doc.index("    class ExampleSpider"):doc.index("Politeness lives")]
    namespace = {"SourceSpider": SourceSpider, "Pace": Pace, "source_id": source_id, "map_record": map_record}
    exec(textwrap.dedent(block), namespace)  # noqa: S102 - the project's own docstring
    return namespace["ExampleSpider"]


ExampleSpider = recipe_spider()


ROOT = "https://api.example.org/v1"


def spider_for(tmp_path, **settings) -> ExampleSpider:
    return make_spider(ExampleSpider, tmp_path, EXAMPLE_API_URL=ROOT, **settings)


def page(request: Request, *hits) -> JsonResponse:
    return JsonResponse(request.url, body=json.dumps({"results": list(hits)}).encode(), request=request)


def hit(n, modified="2026-01-01T00:00:00Z", **kw) -> dict:
    return {"id": n, "title": f"Record {n}", "modified": modified, **kw}


def run(spider, request, *hits) -> list:
    return list(spider.parse_search(page(request, *hits), **request.cb_kwargs))


def test_the_recipe_spider_searches_pages_and_makes_records(tmp_path):
    spider = spider_for(tmp_path)
    first = spider.search_request("retinal OCT")
    assert first.url == f"{ROOT}/search?q=retinal+OCT&page=1" and first.errback == spider.on_request_failed
    out = run(spider, first, hit(1), hit(2))
    items, (following,) = out[:2], out[2:]
    assert [i.source_id for i in items] == ["1", "2"] and all(isinstance(i, DatasetItem) for i in items)
    assert items[0].provenance["search_terms"] == ["retinal OCT"] and items[0].provenance["api_url"] == f"{ROOT}/records/1"
    assert following.cb_kwargs == {"term": "retinal OCT", "page": 2}
    assert run(spider, following) == [], "an empty page ends the term"
    stats = spider.crawler.stats
    assert stats.get_value("envision/terms_searched") == 1 and stats.get_value("envision/hits") == 2
    assert stats.get_value("envision/records/unique") == 2


def test_a_record_found_by_several_terms_is_fetched_once_and_lists_every_term(tmp_path):
    spider = spider_for(tmp_path)
    run(spider, spider.search_request("a"), hit(1))
    again = run(spider, spider.search_request("b"), hit(1), hit(2))
    assert [o.source_id for o in again if isinstance(o, DatasetItem)] == ["2"]
    assert spider.terms_for("1") == ["a", "b"] and spider.terms_for("2") == ["b"]
    assert spider.crawler.stats.get_value("envision/terms_searched") == 2


def test_max_per_query_stops_paging_and_the_run_does_not_move_the_mark(tmp_path):
    spider = spider_for(tmp_path, MAX_PER_QUERY=2)
    out = run(spider, spider.search_request("a"), hit(1), hit(2))
    assert not [o for o in out if isinstance(o, Request)] and not spider.wants_more("a") and spider.wants_more("b")
    assert spider.hits_of("a") == 2 and not spider.covers_everything()


def test_a_saved_record_with_the_same_modified_date_is_not_fetched_and_gets_the_new_term(tmp_path):
    saved = {"source": "example", "source_id": "1", "title": "as saved",
             "provenance": {"source_modified": "2026-01-01T00:00:00Z", "search_terms": ["old term"]}}
    atomic_write_json(record_path(tmp_path, "example", "1"), saved)
    spider = spider_for(tmp_path)
    out = run(spider, spider.search_request("new term"), hit(1), hit(2, modified="2026-02-02"))
    assert [o.source_id for o in out if isinstance(o, DatasetItem)] == ["2"]
    on_disk = json.loads(record_path(tmp_path, "example", "1").read_text())
    assert on_disk["title"] == "as saved" and on_disk["provenance"]["search_terms"] == ["old term", "new term"]
    assert spider.crawler.stats.get_value("envision/records/unchanged") == 1
    # a full run refreshes it
    full = make_spider(ExampleSpider, tmp_path, EXAMPLE_API_URL=ROOT, spider_kwargs={"full": "1"})
    assert [o.source_id for o in run(full, full.search_request("new term"), hit(1)) if isinstance(o, DatasetItem)] == ["1"]


def test_malformed_hits_are_named_counted_and_skipped(tmp_path, caplog):
    spider = spider_for(tmp_path)
    with caplog.at_level(logging.ERROR):
        out = run(spider, spider.search_request("a"), {"doi": "10.1/x"}, {"id": {"o": 1}, "ref": "owner/slug"}, "junk", hit(3))
    assert [o.source_id for o in out if isinstance(o, DatasetItem)] == ["3"]
    assert spider.crawler.stats.get_value("envision/bad_record") == 3
    assert "skipped malformed record doi=10.1/x" in caplog.text and "skipped malformed record ref=owner/slug" in caplog.text


def test_too_many_hits_splits_or_says_what_is_out_of_reach(tmp_path):
    spider = spider_for(tmp_path)
    assert spider.too_many_hits("a", 20_000, 10_000, "2020", [(1, 2), (2, 3)]) == [(1, 2), (2, 3)]
    assert spider.covers_everything()
    assert spider.too_many_hits("a", 20_000, 10_000, "one day", None) is None
    stats = spider.crawler.stats
    assert stats.get_value("envision/example/window_splits") == 1 and stats.get_value("envision/example/window_overflow") == 1
    assert not spider.covers_everything(), "a run that could not reach everything keeps the incremental mark"
