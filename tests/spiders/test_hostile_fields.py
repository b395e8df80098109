"""Fields of the wrong type or with hidden characters never become records or names on disk.

* an ``id`` that is neither a string nor an integer (an object, a list, a boolean, a
  float) is a malformed record: counted (``envision/bad_record``), logged by whatever
  other identifier it has, never saved (it once became ``{'nested'_ 'dict'}.json``);
* creator names that are objects or lists are turned into text or dropped;
* bidirectional control characters (U+202A-U+202E, U+2066-U+2069, U+200E/F) are removed
  from titles and keywords, and from file names made safe for the disk;
* a RePORTER row without a core project number is kept as a record of its own, under
  its project number, else its application id; one without any is named in the log.
"""

from __future__ import annotations

import copy
import json
import logging

import pytest
from scrapy.http import JsonResponse, Request

from envision_spiders.downloads.safety import assign_paths, safe_relpath
from envision_spiders.items import DatasetItem
from envision_spiders.spiders.dryad import DryadSpider
from envision_spiders.spiders.nei import NeiSpider
from envision_spiders.spiders.osf import OSFSpider
from envision_spiders.spiders.zenodo import ZenodoSpider
from envision_spiders.storage import record_path, safe_id

from tests.conftest import make_spider, sample

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"


def zenodo_page(*hits) -> JsonResponse:
    url = "http://127.0.0.1:9/api/records?page=1"
    body = json.dumps({"hits": {"hits": list(hits), "total": len(hits)}}).encode()
    return JsonResponse(url, body=body, request=Request(url))


def zenodo_hit(**changes) -> dict:
    hit = copy.deepcopy(sample("zenodo/record_8173303_2026-07.json"))
    hit.update(changes)
    return hit


def items_of(outputs) -> list[DatasetItem]:
    return [o for o in outputs if isinstance(o, DatasetItem)]


@pytest.mark.parametrize("bad_id", [{"nested": "dict"}, ["8173303"], True, 3.5, "", None], ids=repr)
def test_an_id_that_is_not_a_string_or_an_integer_is_a_bad_record(tmp_path, caplog, bad_id):
    spider = make_spider(ZenodoSpider, tmp_path)
    with caplog.at_level(logging.ERROR):
        items = items_of(spider.parse_search(zenodo_page(zenodo_hit(id=bad_id), zenodo_hit(id=7)), term="t", page=1, created=None))
    assert [i.source_id for i in items] == ["7"], "only the record with a usable id"
    assert spider.crawler.stats.get_value("envision/bad_record") == 1
    # named in the log by the identifier it does have
    assert "skipped malformed record doi=10.5281/zenodo.8173303" in caplog.text
    assert not list((tmp_path / "metadata").glob("**/*nested*"))


def test_new_item_refuses_ids_of_other_types(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path)
    for bad in ({"nested": "dict"}, ["x"], 1.5, False, "  "):
        with pytest.raises(ValueError):
            spider.new_item(bad, source_modified=None, api_url="x")
    assert spider.new_item(12, source_modified=None, api_url="x").source_id == "12"


def test_an_osf_node_whose_id_is_an_object_is_a_bad_record(tmp_path, caplog):
    spider = make_spider(OSFSpider, tmp_path)
    node = sample("osf/node_detail_2026-02.json")["data"]
    bad = {**node, "id": {"nested": "dict"}}
    with caplog.at_level(logging.ERROR):
        out = list(spider.each_record([bad], lambda record: spider.handle_record(record, "t")))
    assert out == [] and spider.crawler.stats.get_value("envision/bad_record") == 1
    assert "skipped malformed record" in caplog.text and "'nested'" in caplog.text


def test_creator_names_that_are_objects_become_text_or_are_dropped(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path)
    metadata = dict(zenodo_hit()["metadata"])
    metadata["creators"] = [
        {"name": {"name": "Doe, Jane"}, "affiliation": {"name": "Eye Institute"}},
        {"name": {"givenName": "Ada", "familyName": "Byron"}},
        {"name": ["Alpha", "Beta"]},
        {"name": {"nested": "dict"}},  # no name in it: dropped
        {"name": "Plain, Name", "orcid": "0000-0002-8960-9642"},
    ]
    (item,) = items_of(spider.parse_search(zenodo_page(zenodo_hit(metadata=metadata)), term="t", page=1, created=None))
    assert item.creators == [
        {"name": "Doe, Jane", "affiliation": "Eye Institute"},
        {"name": "Byron, Ada"},
        {"name": "Alpha; Beta"},
        {"name": "Plain, Name", "orcid": "0000-0002-8960-9642"},
    ]


def test_dryad_author_names_that_are_objects_become_text(tmp_path):
    spider = make_spider(DryadSpider, tmp_path, DRYAD_API_URL="https://datadryad.org/api/v2")
    hit = sample("dryad/datasets_list_2020-06.json")["_embedded"]["stash:datasets"][0]
    hit = {**hit, "authors": [{"firstName": {"name": "Jane"}, "lastName": "Doe", "affiliation": {"name": "Eye Lab"}},
                              {"firstName": {"x": 1}, "lastName": {"y": 2}}]}
    item = spider.record_item(hit, [], 93)
    assert item.creators == [{"name": "Doe, Jane", "given_name": "Jane", "family_name": "Doe", "affiliation": "Eye Lab"}]
    assert all(isinstance(v, str) for c in item.creators for v in c.values())


def test_bidirectional_controls_leave_titles_and_keywords(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path)
    metadata = dict(zenodo_hit()["metadata"])
    metadata["title"] = f"Retinal{BIDI} OCT \u202egnp.exe"
    metadata["keywords"] = ["fundus\u202e", "\u2066OCT\u2069"]
    (item,) = items_of(spider.parse_search(zenodo_page(zenodo_hit(metadata=metadata)), term="t", page=1, created=None))
    assert item.title == "Retinal OCT gnp.exe"
    assert item.keywords[:2] == ["fundus", "OCT"]
    assert not any(c in json.dumps(item.creators + [item.description], ensure_ascii=False) for c in BIDI)


def test_bidirectional_controls_leave_names_on_disk():
    assert safe_relpath("scans/invoice\u202egnp.exe") == "scans/invoicegnp.exe"
    assert safe_relpath(f"a{BIDI}/b{BIDI}.png") == "a/b.png"
    assert assign_paths([("x\u202e.zip", "f1"), ("x.zip", "f2")]) == ["x.zip", "x~2.zip"]
    assert safe_id(f"10.5281/zenodo.1{BIDI}") == "10.5281_zenodo.1"
    assert record_path("data", "zenodo", "1\u202e2").name == "12.json"


def nei_row(**changes) -> dict:
    row = copy.deepcopy(sample("nei/project_record_fy2022.json"))
    row.update(changes)
    return row


def nei_answer(spider, rows):
    request = spider.search_request("oct", [2022])
    body = json.dumps({"meta": {"total": len(rows), "offset": 0, "limit": 500}, "results": rows}).encode()
    return JsonResponse(request.url, body=body, request=request), request.cb_kwargs


def test_reporter_rows_without_a_core_project_number_are_kept_under_their_next_identifier(tmp_path, caplog):
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL="https://api.reporter.nih.gov/v2")
    rows = [
        nei_row(core_project_num=None, project_num="5R01EY099999-02", appl_id=111),
        nei_row(core_project_num="  ", project_num=None, appl_id=222),
        nei_row(core_project_num=None, project_num=None, appl_id=None),
    ]
    response, kwargs = nei_answer(spider, rows)
    with caplog.at_level(logging.ERROR):
        assert list(spider.parse_search(response, **kwargs)) == []
    items = items_of(spider.emit_projects())
    assert sorted(i.source_id for i in items) == ["222", "5R01EY099999-02"]
    assert all(i.title and i.resource_type == "grant" for i in items), "otherwise whole: saved as records"
    assert spider.crawler.stats.get_value("envision/bad_record") == 1
    assert "nei: skipped malformed record without an id" in caplog.text
    assert "record ?" not in caplog.text
