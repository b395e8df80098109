"""The persistence pipeline, the normalising pipeline and the crawl state."""

from __future__ import annotations

import errno
import json

import pytest
from scrapy import Request
from scrapy.exceptions import DropItem

from envision_spiders import storage
from envision_spiders.extensions.state import CrawlState
from envision_spiders.items import DatasetItem
from envision_spiders.spiders.zenodo import ZenodoSpider
from pipelines.normalize import NormalizePipeline
from pipelines.persist import PersistPipeline

from tests.conftest import make_spider


def _item(sid="1", terms=("retinal OCT",), **kw):
    fields = dict(title="Retinal OCT", files=[{"name": "a.zip", "size_bytes": 3}, {"name": "b.png", "size_bytes": 4}])
    fields.update(kw)
    item = DatasetItem(source="zenodo", source_id=sid, **fields)
    item.provenance = {"harvested_at": "2026-11-25T00:00:00Z", "search_terms": list(terms), "source_modified": "2026-01-01T00:00:00Z", "api_url": "x"}
    return item


@pytest.fixture
def pipes(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path)
    return spider, NormalizePipeline.from_crawler(spider.crawler), PersistPipeline.from_crawler(spider.crawler)


def _saved(tmp_path, sid="1"):
    return json.loads((tmp_path / "metadata" / "zenodo" / f"{storage.safe_id(sid)}.json").read_text())


def test_normalize_derives_file_statistics(pipes):
    _, norm, _ = pipes
    item = norm.process_item(_item())
    assert item.file_count == 2 and item.img_count == 1 and item.archive_count == 1 and item.total_size_bytes == 7
    with pytest.raises(DropItem):
        norm.process_item(_item(sid=""))


def test_new_changed_unchanged_and_terms_union(pipes, tmp_path):
    spider, norm, persist = pipes
    persist.process_item(norm.process_item(_item()))
    assert _saved(tmp_path)["provenance"]["search_terms"] == ["retinal OCT"]
    # a later term finds it again: merged into the file, no refetch
    assert not spider.needs_fetching("1", "fundus image dataset", "2026-01-01T00:00:00Z")
    assert _saved(tmp_path)["provenance"]["search_terms"] == ["retinal OCT", "fundus image dataset"]
    # a refresh from another run keeps the terms of earlier runs and what later steps added
    rec = _saved(tmp_path)
    rec["classification"] = {"label": "EYE_IMAGING"}
    storage.atomic_write_json(tmp_path / "metadata" / "zenodo" / "1.json", rec)
    persist.process_item(norm.process_item(_item(terms=["glaucoma dataset"], title="Retinal OCT v2")))
    rec = _saved(tmp_path)
    assert rec["title"] == "Retinal OCT v2" and rec["classification"] == {"label": "EYE_IMAGING"}
    assert set(rec["provenance"]["search_terms"]) == {"retinal OCT", "fundus image dataset", "glaucoma dataset"}
    stats = spider.crawler.stats
    assert stats.get_value("envision/records/new") == 1 and stats.get_value("envision/records/changed") == 1


def test_a_huge_description_is_read_or_cut_never_emptied_and_never_replaces_a_good_one(pipes, tmp_path, caplog,
                                                                                        monkeypatch):
    """A 10 MB HTML description: libxml2's text-node limit made lxml return nothing and
    the record was saved with "" over its earlier description, without a word. It is
    read now (and cut, with a log line); and an empty text never replaces a saved one."""
    from envision_spiders import textutil

    sentence = "Spectral-domain OCT volumes of the macula. "
    huge = "<p>" + sentence * 240_000 + "</p>"  # 10.3 MB in one text node
    with monkeypatch.context() as m:
        m.setattr(textutil, "MAX_TEXT_CHARS", 10**9, raising=False)
        assert len(textutil.html_to_text(huge)[0]) == len(sentence) * 240_000 - 1  # read whole
    text, _ = textutil.html_to_text(huge)
    assert text.startswith(sentence) and len(text) == textutil.MAX_TEXT_CHARS
    assert "a text of 10319999 characters was cut to 1000000 (MAX_TEXT_CHARS)" in caplog.text

    spider, norm, persist = pipes
    persist.process_item(norm.process_item(_item(description="Fundus photographs of 300 eyes, with grades.")))
    caplog.clear()
    persist.process_item(norm.process_item(_item(description="", title="")))
    saved = _saved(tmp_path)
    assert saved["description"] == "Fundus photographs of 300 eyes, with grades." and saved["title"] == "Retinal OCT"
    assert "the new description is empty; the saved one (44 characters) is kept" in caplog.text
    assert spider.crawler.stats.get_value("envision/persist/kept_saved_text") == 2
    persist.process_item(norm.process_item(_item(description="A new abstract.")))
    assert _saved(tmp_path)["description"] == "A new abstract."  # a text that was read still replaces it


def test_a_term_found_before_its_record_is_kept_until_it_arrives(pipes, tmp_path):
    spider, norm, persist = pipes
    spider.first_sighting("7", "AMD dataset")
    assert not (tmp_path / "metadata" / "zenodo" / "7.json").exists()
    persist.process_item(norm.process_item(_item(sid="7")))
    assert _saved(tmp_path, "7")["provenance"]["search_terms"] == ["retinal OCT", "AMD dataset"]


def test_full_disk_drops_the_item_and_keeps_the_old_record(pipes, tmp_path, monkeypatch):
    spider, norm, persist = pipes
    persist.process_item(norm.process_item(_item()))

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pipelines.persist.atomic_write_json", full)
    with pytest.raises(DropItem):
        persist.process_item(norm.process_item(_item(title="changed")))
    assert _saved(tmp_path)["title"] == "Retinal OCT"
    assert spider.crawler.stats.get_value("envision/persist/errors") == 1


def test_ids_with_slashes_are_saved_under_safe_names(pipes, tmp_path):
    _, norm, persist = pipes
    persist.process_item(norm.process_item(_item(sid="10.5061/dryad.8515")))
    assert (tmp_path / "metadata" / "zenodo" / "10.5061_dryad.8515.json").exists()


def test_state_remembers_failures_without_secrets_and_moves_the_mark_only_on_success(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path)
    state = CrawlState.of(spider.crawler)
    req = spider.api_request("http://127.0.0.1:9/api/records?q=x", spider.parse_search,
                             headers={"X-Api-Key": "k"}, cb_kwargs={"term": "t", "page": 2, "created": None})
    req.headers["Authorization"] = "Bearer secret"
    state.record_failure(req, "HTTP 503")
    line = (tmp_path / "failures" / "zenodo.jsonl").read_text()
    assert "secret" not in line and "X-Api-Key" not in line
    assert json.loads(line)["cb_kwargs"] == {"term": "t", "page": 2, "created": None}
    state.spider_closed(spider, "finished")
    assert not (tmp_path / "state" / "zenodo.json").exists(), "a run with a failure does not move the mark"
    assert len((tmp_path / "failures" / "zenodo.jsonl").read_text().splitlines()) == 1

    # next run: the failure is loaded, retried first, and a clean finish clears it
    spider2 = make_spider(ZenodoSpider, tmp_path)
    retried = list(spider2.retry_previous_failures())
    assert len(retried) == 1 and retried[0].callback == spider2.parse_search and retried[0].cb_kwargs["page"] == 2
    CrawlState.of(spider2.crawler).spider_closed(spider2, "finished")
    assert not (tmp_path / "failures" / "zenodo.jsonl").exists()
    assert (tmp_path / "state" / "zenodo.json").exists()
    spider3 = make_spider(ZenodoSpider, tmp_path)
    assert spider3.since is not None
    assert make_spider(ZenodoSpider, tmp_path, spider_kwargs={"full": "1"}).since is None
    assert make_spider(ZenodoSpider, tmp_path, spider_kwargs={"since": "2025-02-03"}).since_date() == "2025-02-03"
    with pytest.raises(ValueError, match="since"):
        make_spider(ZenodoSpider, tmp_path, spider_kwargs={"since": "last week"})


def test_capped_runs_and_changed_terms_do_not_count_as_complete(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path, MAX_PER_QUERY=5)
    CrawlState.of(spider.crawler).spider_closed(spider, "finished")
    assert not (tmp_path / "state" / "zenodo.json").exists()
    spider = make_spider(ZenodoSpider, tmp_path)
    CrawlState.of(spider.crawler).spider_closed(spider, "finished")
    terms = tmp_path / "terms.txt"
    terms.write_text("retinal OCT\n")
    assert make_spider(ZenodoSpider, tmp_path, SEARCH_TERMS=str(terms)).since is None
    assert make_spider(ZenodoSpider, tmp_path).since is not None


def test_interrupted_run_keeps_old_failures(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path)
    state = CrawlState.of(spider.crawler)
    state.record_failure(Request("http://127.0.0.1:9/api/a", callback=spider.parse_search), "HTTP 500")
    spider2 = make_spider(ZenodoSpider, tmp_path)
    state2 = CrawlState.of(spider2.crawler)
    state2.record_failure(Request("http://127.0.0.1:9/api/b", callback=spider2.parse_search), "HTTP 502")
    state2.spider_closed(spider2, "shutdown")
    urls = [json.loads(l)["url"] for l in (tmp_path / "failures" / "zenodo.jsonl").read_text().splitlines()]
    assert urls == ["http://127.0.0.1:9/api/a", "http://127.0.0.1:9/api/b"]
