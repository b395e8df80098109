"""Figshare: query and body building, page caps and published-date windows, change
detection, field mapping on real responses, file listings, and crawls through the real
Scrapy engine against the local API server."""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime, timedelta, timezone

import pytest
from scrapy import Request
from scrapy.http import TextResponse

from envision_spiders.items import DatasetItem
from envision_spiders.spiders.figshare import (
    FILES_PAGE_SIZE,
    FigshareSpider,
    PAGE_SIZE,
    RESULT_WINDOW,
    is_cap_error,
    needs_file_listing,
    next_window,
    saved_copy_is_current,
    search_body,
    search_for,
)
from envision_spiders.mapping.figshare import (
    access_type_of,
    keywords_of,
    map_files,
    portal_facts,
    unversioned_doi,
    version_stamp,
)

from tests.conftest import crawl_in_process, last_summary, make_spider, replay, sample, saved_mtimes, saved_records

API = "https://api.figshare.com/v2"


def answer(request, payload, status: int = 200) -> TextResponse:
    return TextResponse(request.url, status=status, body=json.dumps(payload).encode(), encoding="utf-8", request=request)


def split(outputs):
    """Search requests, detail requests, other requests and items of a callback."""
    out = {"search": [], "detail": [], "files": [], "items": []}
    for o in outputs:
        if isinstance(o, Request):
            key = "search" if o.url.endswith("/articles/search") else "files" if "/files" in o.url else "detail"
            out[key].append(o)
        else:
            out["items"].append(o)
    return out


# ------------------------------------------------------------------ pure helpers
def test_search_for_requires_every_word_and_quotes_odd_words():
    assert search_for("retinal OCT") == "retinal AND OCT"
    assert search_for("OCT-A retina") == '"OCT-A" AND retina'
    assert search_for("CHASE_DB1") == '"CHASE_DB1"'
    assert search_for('glaucoma OR "x') == 'glaucoma AND "OR" AND x'
    assert search_for(":title: fundus") == '":title:" AND fundus'


def test_search_body_uses_page_paging_ascending_publication_and_the_filters():
    body = search_body("retinal AND OCT", 3, modified_since="2026-11-01", published_since="2020-05-01")
    assert body == {
        "search_for": "retinal AND OCT", "item_type": 3, "page": 3, "page_size": PAGE_SIZE,
        "order": "published_date", "order_direction": "asc",
        "modified_since": "2026-11-01", "published_since": "2020-05-01",
    }
    plain = search_body("APTOS", 1)
    assert "limit" not in plain and "offset" not in plain, "mixing offset and page paging is a 422"
    assert "modified_since" not in plain and "published_since" not in plain


def test_next_window_starts_a_day_early_and_refuses_to_stand_still():
    assert next_window("2020-05-10T08:00:00Z", None) == "2020-05-09"
    assert next_window("2020-05-10T08:00:00Z", "2020-05-01") == "2020-05-09"
    assert next_window("2020-05-02T23:00:00Z", "2020-05-01") is None  # two days hold a whole window
    assert next_window(None, "2020-05-01") is None


def test_cap_answers_are_recognised():
    assert is_cap_error(400, {"message": "Max page reached. Please narrow down your search"})
    assert is_cap_error(422, {"message": "max page reached"})
    assert not is_cap_error(400, {"message": "Invalid value received for order"})
    assert not is_cap_error(500, {"message": "Max page reached"}) and not is_cap_error(400, ["junk"])


def test_version_stamp_ignores_the_related_papers_dates():
    hit = {"published_date": "2022-01-05T10:00:00Z",
           "timeline": {"posted": "2022-01-05T10:00:00", "firstOnline": "2022-01-01T00:00:00",
                        "publisherPublication": "2023-06-01T00:00:00"}}
    assert version_stamp(hit) == datetime(2022, 1, 5, 10, tzinfo=timezone.utc)
    assert version_stamp({"modified_date": "2024-02-02T00:00:00Z", **hit}) == datetime(2024, 2, 2, tzinfo=timezone.utc)
    assert version_stamp({"timeline": "?"}) is None and version_stamp("junk") is None


def test_saved_copy_is_current_only_when_neither_version_dates_nor_the_filter_say_otherwise():
    hit = version_stamp({"published_date": "2022-01-05T10:00:00Z", "timeline": {"posted": "2022-01-05T10:00:00"}})
    saved = "2022-03-01T00:00:00Z"  # the copy on disk: modified after publication
    assert saved_copy_is_current(hit, saved, None)
    # the day overlap of an incremental run brings back records saved last time
    assert saved_copy_is_current(hit, saved, "2022-02-28")
    # modified_since says it changed after our copy (a description edit: no new version)
    assert not saved_copy_is_current(hit, saved, "2022-03-02")
    # a new version moves the publication dates past our copy
    newer = {"published_date": "2022-04-01T00:00:00Z", "timeline": {"posted": "2022-04-01T00:00:00", "revision": "2022-04-01T00:00:00"}}
    assert not saved_copy_is_current(version_stamp(newer), saved, None)
    assert not saved_copy_is_current(hit, None, None) and not saved_copy_is_current(version_stamp({}), saved, None)


def test_map_files_falls_back_to_the_supplied_md5_and_keeps_link_only_files_apart():
    files, links = map_files(
        [
            {"id": 1, "name": "scans.zip", "size": 10, "is_link_only": False,
             "download_url": "https://ndownloader.figshare.com/files/1", "supplied_md5": "A" * 32, "computed_md5": ""},
            {"id": 2, "name": "code", "size": 0, "is_link_only": True, "download_url": "https://github.com/x/y"},
            {"id": 3, "name": "relative.csv", "size": -1, "download_url": "/files/3", "computed_md5": "b" * 32},
            "junk", {"name": ""}, {"id": 4, "name": "no-url.txt", "size": 5.0},
        ],
        "https://api.figshare.com/v2/articles/9/files",
    )
    assert files == [
        {"name": "scans.zip", "size_bytes": 10, "url": "https://ndownloader.figshare.com/files/1", "file_id": "1", "checksum": "md5:" + "a" * 32},
        {"name": "relative.csv", "size_bytes": None, "url": "https://api.figshare.com/files/3", "file_id": "3", "checksum": "md5:" + "b" * 32},
        {"name": "no-url.txt", "size_bytes": 5, "url": None, "file_id": "4", "checksum": None},
    ]
    assert links == ["https://github.com/x/y"]
    assert map_files({"not": "a list"}) == ([], [])


def test_file_listing_is_read_when_the_embedded_list_may_be_cut():
    small = {"size": 30, "files": [{"size": 10}, {"size": 20}]}
    assert not needs_file_listing(small)
    assert needs_file_listing({**small, "size": 31}), "bytes missing from the embedded list"
    assert needs_file_listing({"size": 10, "files": [{"size": 1}] * 10}), "a full page of the listing"
    assert needs_file_listing({"size": 0}), "no list at all"
    assert not needs_file_listing({"size": 500, "files": [], "is_embargoed": True})
    assert not needs_file_listing({"size": 0, "files": [], "is_metadata_record": True})


def test_access_type_doi_version_keywords_and_portals():
    assert access_type_of({"is_public": True}) == "open"
    assert access_type_of({"is_embargoed": True, "is_confidential": True}) == "embargoed"
    assert access_type_of({"is_confidential": True}) == "restricted"
    assert access_type_of({"is_metadata_record": True}) == "metadata-only"
    assert access_type_of({"is_public": False}) == "closed"
    assert unversioned_doi("10.6084/m9.figshare.19199774.v12") == "10.6084/m9.figshare.19199774"
    assert unversioned_doi("10.1371/journal.pone.0039704") == "10.1371/journal.pone.0039704"
    assert keywords_of({"tags": ["OCT", "glaucoma"], "keywords": ["oct", "Retina"], "categories": [{"title": "Glaucoma"}, "junk"]}) == [
        "OCT", "glaucoma", "Retina"]
    assert portal_facts({"url_public_html": "https://figshare.com/articles/dataset/x/1", "doi": "10.6084/m9.figshare.1.v1"}) == {}
    assert portal_facts({"url_public_html": "https://zenodo.figshare.com/articles/dataset/x/1", "doi": "10.5281/zenodo.7"}) == {
        "portal_host": "zenodo.figshare.com", "mirrored_from": "zenodo"}
    assert portal_facts({"url_public_html": "https://repository.lboro.ac.uk/articles/x/1", "doi": ""}) == {
        "portal_host": "repository.lboro.ac.uk"}


def test_token_header_uses_the_word_token_and_stays_on_the_api_host(tmp_path, monkeypatch):
    monkeypatch.setenv("FIGSHARE_ACCESS_TOKEN", "secret-token")
    spider = make_spider(FigshareSpider, tmp_path, FIGSHARE_API_URL=API)
    request = spider.search_request("retinal OCT")
    assert request.method == "POST" and request.url == f"{API}/articles/search"
    assert request.headers["Authorization"] == b"token secret-token"
    assert request.headers["Content-Type"] == b"application/json"
    assert json.loads(request.body)["search_for"] == "retinal AND OCT"
    assert "Authorization" not in spider.api_request("https://ndownloader.figshare.com/files/1", spider.parse_article).headers
    monkeypatch.delenv("FIGSHARE_ACCESS_TOKEN")
    assert "Authorization" not in make_spider(FigshareSpider, tmp_path, FIGSHARE_API_URL=API).search_request("x y z").headers


# ------------------------------------------------------------------ callbacks on real responses
@pytest.mark.parametrize("url", [f"{API}/articles/123456"], ids=["sample"])
def test_figshare_article_sample(response, tmp_path):
    spider = make_spider(FigshareSpider, tmp_path, FIGSHARE_API_URL=API)
    spider.first_sighting("123456", "blue light")
    (item,) = spider.parse_article(response)
    assert isinstance(item, DatasetItem)
    assert item.source == "figshare" and item.source_id == "123456"
    assert item.doi == "10.1371/journal.pone.0039704"
    assert item.url == "https://plos.figshare.com/articles/dataset/Transcriptome_Sequencing_and_Comparative_Analysis_of_Saccharina_japonica_Laminariales_Phaeophyceae_under_Blue_Light_Induction/123456"
    assert item.title == "Transcriptome Sequencing and Comparative Analysis of Saccharina japonica (Laminariales, Phaeophyceae) under Blue Light Induction"
    assert item.description.startswith("Background\nLight has significant effect on the growth and development of Saccharina japonica, but")
    assert "(E-value <10\u22125)" in item.description and "<" not in item.description.replace("<10", "")
    assert item.keywords == ["transcriptome", "sequencing", "comparative", "induction", "Inorganic Chemistry", "Genetics", "Developmental Biology"]
    assert item.creators == [{"name": n} for n in ("Yunyan Deng", "Jianting Yao", "Xiuliang Wang", "Hui Guo", "Delin Duan")]
    assert item.publication_year == 2012
    assert item.dates == {"created": "2012-06-27T00:57:36Z", "modified": "2016-01-19T09:09:40Z",
                          "published": "2012-06-27T00:57:36Z", "first_online": "2016-01-19T09:09:40Z"}
    assert item.license == "CC BY 4.0" and item.access_type == "open" and item.resource_type == "dataset"
    assert item.files == [{"name": "2011-02-15_14-24-56-228.png", "size_bytes": 470683,
                           "url": "https://ndownloader.figshare.com/files/3074543", "file_id": "3074543",
                           "checksum": "md5:eb5c9c6b278b533f98aa02feae57c266"}]
    assert item.total_size_bytes == 470683
    # the related paper is the record's own DOI here (PLOS portal): no related DOI
    assert item.related_identifiers == [{"identifier": "10.1371/journal.pone.0039704", "relation": "IsSupplementTo", "scheme": "doi"}]
    assert item.related_dois == [] and item.external_links == []
    assert item.extra == {
        "doi_unversioned": "10.1371/journal.pone.0039704", "version": 1, "group_id": 107,
        "portal_host": "plos.figshare.com",
        "resource_title": "Transcriptome Sequencing and Comparative Analysis of Saccharina japonica (Laminariales, Phaeophyceae) under Blue Light Induction",
    }
    assert item.provenance["search_terms"] == ["blue light"]
    assert item.provenance["source_modified"] == "2016-01-19T09:09:40Z"
    assert item.provenance["api_url"] == f"{API}/articles/123456"
    assert spider.crawler.stats.get_value("envision/figshare/file_listings") is None, "one file, all bytes: no listing"


def test_figshare_search_sample(vcr_settings, tmp_path):
    """The recorded answer was searched without item_type (three of five are not
    datasets) and its URLs and dates were redacted: only ids and types are asserted."""
    response = replay(vcr_settings, f"{API}/articles/search", method="POST", body={"search_for": "random", "page_size": 5})
    spider = make_spider(FigshareSpider, tmp_path, FIGSHARE_API_URL=API)
    out = split(spider.parse_search(response, term="random", page=1, window=None, latest=None))
    assert [r.url for r in out["detail"]] == [f"{API}/articles/5845593", f"{API}/articles/14675409"]
    assert out["detail"][0].cb_kwargs == {"project_id": None}
    assert out["search"] == [], "five hits are fewer than a page: the last page"
    stats = spider.crawler.stats
    assert stats.get_value("envision/figshare/not_dataset") == 3
    assert stats.get_value("envision/hits") == 5 and stats.get_value("envision/terms_searched") == 1
    assert spider.terms_for("5845593") == ["random"]


# ------------------------------------------------------------------ paging, caps, windows
def fake_search(records: list[dict], cap: int, descending: bool = False):
    """Figshare's search over ``records``: published_since (inclusive day), ascending
    publication order (unless a broken server ignores it), and a 400 past ``cap`` results."""

    def respond(request):
        body = json.loads(request.body)
        page, size = body["page"], body["page_size"]
        if page * size > cap:
            return answer(request, {"message": "Max page reached. Please narrow down your search", "code": "x"}, 400)
        since = body.get("published_since")
        found = sorted((r for r in records if not since or r["published_date"][:10] >= since),
                       key=lambda r: (r["published_date"], r["id"]), reverse=descending)
        return answer(request, found[(page - 1) * size : page * size])

    return respond


def walk(spider, respond, term="fundus image"):
    """Run a term's searches to the end; the detail requests it asked for, by id."""
    pending, details, searches = [spider.search_request(term)], [], 0
    while pending:
        req = pending.pop(0)
        searches += 1
        out = split(spider.parse_search(respond(req), **req.cb_kwargs))
        pending += out["search"]
        details += [int(r.url.rsplit("/", 1)[1]) for r in out["detail"]]
    return details, searches


def spread_records(n: int, days: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    start = datetime(2015, 1, 1, tzinfo=timezone.utc)
    return [
        {"id": 1000 + i, "defined_type": 3, "published_date": (start + timedelta(days=rng.randrange(days), seconds=rng.randrange(86400))).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for i in range(n)
    ]


@pytest.mark.parametrize("server_cap", [RESULT_WINDOW, 450], ids=["documented-cap", "lower-cap-answered-400"])
def test_a_capped_term_goes_on_in_publication_windows_until_every_record_is_reached(tmp_path, server_cap):
    records = spread_records(3500, 3000)
    spider = make_spider(FigshareSpider, tmp_path)
    details, searches = walk(spider, fake_search(records, server_cap))
    assert sorted(details) == sorted(r["id"] for r in records), "every record once, none lost past the cap"
    stats = spider.crawler.stats
    assert stats.get_value("envision/figshare/windows") >= 3500 // server_cap
    assert stats.get_value("envision/figshare/window_overflow") is None and spider.covers_everything()
    if server_cap < RESULT_WINDOW:
        assert stats.get_value("envision/figshare/cap_answers") == stats.get_value("envision/figshare/windows")
    else:
        assert stats.get_value("envision/figshare/cap_answers") is None, "the documented cap is never asked past"
    assert searches < 3500 / PAGE_SIZE * 1.3, "windows overlap by a day, not more"


def test_a_window_that_cannot_move_is_logged_and_keeps_the_mark(tmp_path, caplog):
    records = spread_records(1500, 1)  # all published on one day
    spider = make_spider(FigshareSpider, tmp_path)
    with caplog.at_level(logging.WARNING):
        details, _ = walk(spider, fake_search(records, RESULT_WINDOW), term="glaucoma OCT")
    assert len(details) == RESULT_WINDOW
    assert spider.crawler.stats.get_value("envision/figshare/window_overflow") == 1
    assert not spider.covers_everything(), "the last-success mark must not move past lost results"
    assert any("glaucoma OCT" in r.message and "not reachable" in r.message for r in caplog.records)


def test_a_server_that_ignores_the_order_is_not_trusted_with_windows(tmp_path, caplog):
    spider = make_spider(FigshareSpider, tmp_path)
    with caplog.at_level(logging.WARNING):
        details, searches = walk(spider, fake_search(spread_records(1500, 900), RESULT_WINDOW, descending=True))
    assert len(details) == RESULT_WINDOW and searches == RESULT_WINDOW // PAGE_SIZE
    assert not spider.covers_everything() and "did not sort the results" in caplog.text


def test_other_refusals_are_logged_and_end_the_term(tmp_path, caplog):
    spider = make_spider(FigshareSpider, tmp_path)
    req = spider.search_request("retinal OCT")
    with caplog.at_level(logging.ERROR):
        out = list(spider.parse_search(answer(req, {"message": "Invalid value received for order"}, 400), **req.cb_kwargs))
    assert out == [] and spider.crawler.stats.get_value("envision/figshare/search_refused") == 1
    assert "Invalid value received for order" in caplog.text


def test_max_per_query_stops_paging(tmp_path):
    spider = make_spider(FigshareSpider, tmp_path, MAX_PER_QUERY=150)
    details, searches = walk(spider, fake_search(spread_records(600, 300), RESULT_WINDOW))
    assert searches == 2 and len(details) == 200 and not spider.covers_everything()


# ------------------------------------------------------------------ file listings
def big_article(n_files: int, embedded: int) -> dict:
    article = sample("figshare/article_123456_2023-04.json")
    files = [{"id": 500 + k, "name": f"img_{k}.png", "size": 10, "is_link_only": False,
              "download_url": f"https://ndownloader.figshare.com/files/{500 + k}", "computed_md5": "c" * 32} for k in range(n_files)]
    article.update(id=77, size=10 * n_files, files=files[:embedded])
    return article, files


def test_a_large_article_reads_every_page_of_its_file_listing(tmp_path):
    spider = make_spider(FigshareSpider, tmp_path, FIGSHARE_API_URL=API)
    article, files = big_article(FILES_PAGE_SIZE + 5, 10)
    detail = Request(f"{API}/articles/77")
    (first,) = spider.parse_article(answer(detail, article))
    assert first.url == f"{API}/articles/77/files?page=1&page_size={FILES_PAGE_SIZE}"
    (second,) = spider.parse_files(answer(first, files[:FILES_PAGE_SIZE]), **first.cb_kwargs)
    assert second.url == f"{API}/articles/77/files?page=2&page_size={FILES_PAGE_SIZE}"
    (item,) = spider.parse_files(answer(second, files[FILES_PAGE_SIZE:]), **second.cb_kwargs)
    assert len(item.files) == FILES_PAGE_SIZE + 5 and len({f["file_id"] for f in item.files}) == FILES_PAGE_SIZE + 5
    assert item.extra["files_from_listing"] is True and item.total_size_bytes == 10 * (FILES_PAGE_SIZE + 5)


def test_a_refused_listing_keeps_the_embedded_files(tmp_path):
    spider = make_spider(FigshareSpider, tmp_path, FIGSHARE_API_URL=API)
    article, _ = big_article(30, 10)
    (listing,) = spider.parse_article(answer(Request(f"{API}/articles/77"), article))
    (item,) = spider.parse_files(answer(listing, {"message": "Forbidden"}, 403), **listing.cb_kwargs)
    assert len(item.files) == 10 and "files_from_listing" not in item.extra
    assert spider.crawler.stats.get_value("envision/figshare/file_listing_refused") == 1


# ------------------------------------------------------------------ malformed answers
def test_malformed_hits_are_skipped_one_by_one_and_broken_pages_raise(tmp_path):
    spider = make_spider(FigshareSpider, tmp_path, FIGSHARE_API_URL=API)
    req = spider.search_request("retinal OCT")
    page = [{"id": 11, "defined_type": 3}, {"title": "no id"}, "junk", {"id": "abc"}, {"id": 12, "defined_type": 9}, {"id": 13}]
    out = split(spider.parse_search(answer(req, page), **req.cb_kwargs))
    assert [r.url.rsplit("/", 1)[1] for r in out["detail"]] == ["11", "13"]
    assert spider.crawler.stats.get_value("envision/bad_record") == 3
    with pytest.raises(TypeError):
        list(spider.parse_search(answer(req, {"items": []}), **req.cb_kwargs))
    with pytest.raises(TypeError):
        list(spider.parse_article(answer(Request(f"{API}/articles/11"), [1, 2])))


def test_odd_types_in_an_article_do_not_break_it(tmp_path):
    spider = make_spider(FigshareSpider, tmp_path, FIGSHARE_API_URL=API)
    article = sample("figshare/article_123456_2023-04.json")
    article.update(authors={"full_name": "not a list"}, tags="fundus", categories=None, license="CC0", files=[],
                   size=0, references="https://example.org/x", related_materials=[None], funding_list=[{"title": "<b>NEI</b> R01"}],
                   title="<b>Retinal</b> OCT\u0000", version="2", timeline=None, doi="https://doi.org/10.6084/M9.FIGSHARE.1.V3")
    (item,) = spider.parse_article(answer(Request(f"{API}/articles/123456"), article))
    assert item.title == "Retinal OCT" and item.keywords == ["fundus"]
    assert item.creators == [{"name": "not a list"}], "one author object instead of a list is still an author"
    assert item.license == "CC0" and item.files == [] and item.doi == "10.6084/m9.figshare.1.v3"
    assert item.extra["doi_unversioned"] == "10.6084/m9.figshare.1" and "version" not in item.extra
    assert [f["award_title"] for f in item.funding] == ["<b>NEI</b> R01"] and "funding" not in item.extra
    assert item.external_links == ["https://example.org/x"]


# ------------------------------------------------------------------ crawls through the engine
def expected_records(api, terms=None) -> dict[str, set[str]]:
    """What a complete crawl must find: every dataset a term matches, and its terms."""
    from localapi.figshare import matches, parse_search_for, state_of
    from envision_spiders.terms import default_terms

    found: dict[str, set[str]] = {}
    for term in terms or default_terms():
        groups = parse_search_for(search_for(term))
        for art in state_of(api.state).articles.values():
            if art["defined_type"] == 3 and matches(art, groups):
                found.setdefault(str(art["id"]), set()).add(term)
    return found


def request_kinds(api) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for e in api.state.entries("/figshare/|/storage/"):
        path = e["path"]
        if "/ndownloader/" in path or path.startswith("/storage/"):
            kind = "peek"  # archive peeking (Range requests on the file host)
        else:
            kind = "search" if path.endswith("/search") else "files" if path.endswith("/files") else "detail"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


@pytest.mark.slow
def test_full_crawl_saves_every_dataset_once_with_all_its_files_and_terms(api, tmp_path):
    from localapi.figshare import state_of

    api.generate("figshare", 130, seed=3)
    result = crawl_in_process(api, "figshare", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = expected_records(api)
    records = saved_records(tmp_path, "figshare")
    assert set(records) == set(expected)
    articles = state_of(api.state).articles
    listed = 0
    for sid, rec in records.items():
        art = articles[int(sid)]
        assert set(rec["provenance"]["search_terms"]) == expected[sid], sid
        real = [f for f in art["files"] if not f["is_link_only"]]
        if art["is_embargoed"] or art["is_confidential"] or art["is_metadata_record"]:
            assert rec["files"] == [] and rec["access_type"] != "open"
            continue
        assert rec["file_count"] == len(real), f"{sid}: every file, also past the embedded ones"
        by_id = {str(f["id"]): f for f in real}
        for f in rec["files"]:
            md5 = by_id[f["file_id"]]["computed_md5"] or by_id[f["file_id"]]["supplied_md5"]
            assert f["checksum"] == (f"md5:{md5}" if md5 else None) and f["url"].startswith(api.base_url + "/figshare/ndownloader/")
        assert all(f["download_url"] in rec["external_links"] for f in art["files"] if f["is_link_only"]), "link-only files are links"
        listed += len(real) >= 10
    assert listed, "the generated corpus holds articles larger than the embedded list"
    kinds = request_kinds(api)
    assert kinds["search"] == 47 and kinds["detail"] == len(expected) and kinds.get("files", 0) == listed, (kinds, {k: v for k, v in last_summary(tmp_path, "figshare")["stats"].items() if "retry" in k or "429" in k or "bad" in k})
    assert all(e["auth"] is None for e in api.state.entries()), "anonymous without FIGSHARE_ACCESS_TOKEN"
    summary = last_summary(tmp_path, "figshare")
    assert summary["new"] == len(expected) and summary["failures"] == 0 and summary["terms_searched"] == 47


@pytest.mark.slow
def test_second_run_costs_only_searches_and_refreshes_what_changed(api, tmp_path):
    from localapi.figshare import state_of

    api.generate("figshare", 80, seed=4)
    assert crawl_in_process(api, "figshare", tmp_path).returncode == 0
    before = saved_mtimes(tmp_path, "figshare")
    api.state.reset_counters()
    assert crawl_in_process(api, "figshare", tmp_path).returncode == 0
    assert request_kinds(api) == {"search": 47}
    bodies = state_of(api.state).searches[-47:]
    assert all(b["modified_since"] == b["modified_since"][:10] and b["item_type"] == 3 for b in bodies), "incremental: modified_since"
    assert saved_mtimes(tmp_path, "figshare") == before, "nothing rewritten"
    # a server that returns everything again (an old since): hits are checked against the disk
    api.state.reset_counters()
    assert crawl_in_process(api, "figshare", tmp_path, "-a", "since=2000-01-01").returncode == 0
    assert request_kinds(api) == {"search": 47} and last_summary(tmp_path, "figshare")["unchanged"] == len(before)
    # new versions and metadata-only edits are both refreshed, nothing else
    articles = state_of(api.state).articles
    stamps = {aid: a["modified_date"] for aid, a in articles.items()}
    assert api.modify("figshare", 0.15, seed=9)
    touched = {str(aid) for aid, a in articles.items() if a["modified_date"] != stamps[aid] and f"{aid}.json" in before}
    assert {articles[int(sid)]["version"] for sid in touched} == {1, 2}, "both kinds of change among saved records"
    api.state.reset_counters()
    assert crawl_in_process(api, "figshare", tmp_path).returncode == 0
    assert request_kinds(api)["detail"] == len(touched)
    records = saved_records(tmp_path, "figshare")
    for sid in touched:
        art = articles[int(sid)]
        assert records[sid]["title"] == art["title"]
        assert records[sid]["doi"] == (art["doi"].lower() or None)
        if art["version"] == 1:
            assert records[sid]["description"].endswith("Updated description.") and "updated" in records[sid]["keywords"]
    assert any(records[sid]["doi"] and records[sid]["doi"].endswith(".v2") for sid in touched)


@pytest.mark.slow
def test_a_term_past_the_servers_cap_is_completed_in_windows(api, tmp_path):
    from localapi.figshare import add_article, state_of

    rng = random.Random(5)
    for i in range(420):
        created = datetime(2015, 1, 1, tzinfo=timezone.utc) + timedelta(days=rng.randrange(3000))
        add_article(api.state, 30_000_000 + i, title=f"Fundus photographs, cohort {i}", description="<p>Colour fundus images.</p>",
                    tags=["fundus"], created=created, rng=rng)
    state_of(api.state).max_results = 150  # a tighter cap than the documented 1,000
    terms = tmp_path / "terms.txt"
    terms.write_text("fundus\n")
    result = crawl_in_process(api, "figshare", tmp_path / "data", SEARCH_TERMS=str(terms))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(saved_records(tmp_path / "data", "figshare")) == 420
    stats = last_summary(tmp_path / "data", "figshare")["stats"]
    assert stats["envision/figshare/windows"] >= 3 and stats["envision/figshare/cap_answers"] >= 3
    windows = [b.get("published_since") for b in state_of(api.state).searches if b["page"] == 1]
    assert windows[0] is None and windows[1:] == sorted(windows[1:]) and len(set(windows)) == len(windows)
    assert (tmp_path / "data" / "state" / "figshare.json").exists(), "a complete run moves the mark"


@pytest.mark.slow
def test_storm_of_429_5xx_and_broken_answers_loses_no_record(api, tmp_path):
    api.generate("figshare", 60, seed=5)
    s = api.state
    s.add_fault(path=r"/figshare/v2/articles/search", kind="429", count=3, retry_after="1", method="POST")
    s.add_fault(path=r"/figshare/v2/articles/\d+$", kind="429", count=2, retry_after="1")
    s.add_fault(path=r"/figshare/v2/", kind="status", status=503, count=6)
    s.add_fault(path=r"/figshare/v2/articles/search", kind="drop", count=2)
    s.add_fault(path=r"/figshare/v2/articles/search", kind="truncate", count=2)
    s.add_fault(path=r"/figshare/v2/articles/\d+$", kind="malformed", count=2)
    result = crawl_in_process(api, "figshare", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(saved_records(tmp_path, "figshare")) == set(expected_records(api))
    summary = last_summary(tmp_path, "figshare")
    assert summary["failures"] == 0 and summary["rate_limited"] == 5 and summary["bad_responses"] >= 2
    assert summary["retries"] >= 6 + 2


@pytest.mark.slow
def test_a_failed_search_is_kept_with_its_body_and_sent_again_first(api, tmp_path):
    api.generate("figshare", 40, seed=6)
    terms = tmp_path / "terms.txt"
    terms.write_text("retinal OCT\nglaucoma dataset\n")
    data = tmp_path / "data"
    api.state.add_fault(path=r"/figshare/v2/articles/search", kind="status", status=500, count=-1, method="POST")
    result = crawl_in_process(api, "figshare", data, SEARCH_TERMS=str(terms), RETRY_TIMES="1", FIGSHARE_ACCESS_TOKEN="s3cret-value")
    assert result.returncode == 3, "a run that lost requests says so"
    failures = [json.loads(line) for line in (data / "failures" / "figshare.jsonl").read_text().splitlines()]
    assert sorted(json.loads(f["body"])["search_for"] for f in failures) == ["glaucoma AND dataset", "retinal AND OCT"]
    assert all(f["method"] == "POST" and f["callback"] == "parse_search" for f in failures)
    assert "s3cret-value" not in (data / "failures" / "figshare.jsonl").read_text() and "s3cret-value" not in result.stderr
    assert all(e["auth"] == "token" for e in api.state.entries("/figshare/v2/"))
    assert not (data / "state" / "figshare.json").exists()
    api.state.clear_faults()
    api.state.reset_counters()
    result = crawl_in_process(api, "figshare", data, SEARCH_TERMS=str(terms))
    assert result.returncode == 0, result.stderr[-3000:]
    first_two = api.state.entries()[:2]
    assert all(e["method"] == "POST" for e in first_two)
    assert set(saved_records(data, "figshare")) == set(expected_records(api, ["retinal OCT", "glaucoma dataset"]))
    assert not (data / "failures" / "figshare.jsonl").exists() and (data / "state" / "figshare.json").exists()


@pytest.mark.slow
def test_a_refused_token_is_dropped_and_the_public_crawl_goes_on(api, tmp_path):
    from localapi.figshare import state_of

    api.generate("figshare", 40, seed=7)
    state_of(api.state).valid_tokens = {"the-right-one"}
    terms = tmp_path / "terms.txt"
    terms.write_text("retinal OCT\nglaucoma dataset\n")
    result = crawl_in_process(api, "figshare", tmp_path / "data", SEARCH_TERMS=str(terms), FIGSHARE_ACCESS_TOKEN="a-wrong-one")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FIGSHARE_ACCESS_TOKEN was refused" in result.stderr and "a-wrong-one" not in result.stderr
    assert set(saved_records(tmp_path / "data", "figshare")) == set(expected_records(api, ["retinal OCT", "glaucoma dataset"]))
    refused = [e for e in api.state.entries("/figshare/v2/") if e["status"] == 401]
    assert refused and all(e["auth"] == "token" for e in refused)
    assert all(e["auth"] is None for e in api.state.entries("/figshare/v2/") if e["status"] == 200)


# ------------------------------------------------------------------ the local server speaks Figshare
def call(api, method: str, path: str, body=None, headers=None, raw: bool = False):
    """One request to the local server (no redirect following): status, headers and the
    body (parsed JSON unless ``raw``)."""
    import http.client

    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    content = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), content if raw else json.loads(content)


def test_local_server_answers_like_figshare(api):
    from localapi.figshare import PREFIX, state_of

    api.generate("figshare", 40, seed=8)
    search = PREFIX + "/articles/search"
    status, _, hits = call(api, "POST", search, {"search_for": "dataset OR images OR OCT", "page_size": 5})
    assert status == 200 and isinstance(hits, list) and len(hits) == 5
    assert set(hits[0]) == set(sample("figshare/search_2022-12_redacted.json")[0]), "the light shape of the recorded answer"
    assert hits[0]["url_public_api"].startswith(api.base_url + PREFIX + "/articles/")
    assert call(api, "POST", search, {"search_for": "dataset", "page": 2, "limit": 10})[0] == 422
    status, _, err = call(api, "POST", search, {"search_for": "dataset", "page": 11, "page_size": 100})
    assert status == 400 and err["message"] == "Max page reached. Please narrow down your search"
    assert call(api, "POST", search, {"search_for": "dataset", "order": "title"})[2]["message"] == "Invalid value received for order"
    assert call(api, "POST", search, b"{not json")[0] == 400
    assert call(api, "POST", search, {"search_for": "ab"})[0] == 422
    assert call(api, "POST", search, {"search_for": "dataset"}, {"Authorization": "Bearer x"})[0] == 401
    # filters: item_type, published_since / modified_since (inclusive), order
    status, _, found = call(api, "POST", search, {"search_for": "dataset OR images OR OCT OR fundus", "item_type": 3, "page_size": 1000,
                                                  "order": "published_date", "order_direction": "asc", "published_since": "2019-01-01"})
    assert found and all(h["defined_type"] == 3 and h["published_date"] >= "2019-01-01" for h in found)
    assert [h["published_date"] for h in found] == sorted(h["published_date"] for h in found)
    assert call(api, "POST", search, {"search_for": "dataset OR images", "modified_since": "2999-01-01"})[2] == []
    # the detail embeds at most 10 files; the listing pages through all of them
    articles = state_of(api.state).articles
    big = next(a for a in articles.values() if len(a["files"]) > 12 and not (a["is_embargoed"] or a["is_confidential"]))
    _, _, detail = call(api, "GET", f"{PREFIX}/articles/{big['id']}")
    assert len(detail["files"]) == 10 and detail["size"] == sum(f["size"] for f in big["files"])
    _, _, page1 = call(api, "GET", f"{PREFIX}/articles/{big['id']}/files")
    _, _, page2 = call(api, "GET", f"{PREFIX}/articles/{big['id']}/files?page=2")
    _, _, everything = call(api, "GET", f"{PREFIX}/articles/{big['id']}/files?page=1&page_size=1000")
    assert len(page1) == 10 and page1 + page2 == everything[:20] and len(everything) == len(big["files"])
    hidden = next(a for a in articles.values() if a["is_confidential"])
    assert call(api, "GET", f"{PREFIX}/articles/{hidden['id']}/files")[0] == 403
    assert call(api, "GET", f"{PREFIX}/articles/999")[0] == 404
    # ndownloader redirects to storage, where Range works
    entry = everything[0]
    status, headers, _ = call(api, "GET", entry["download_url"].replace(api.base_url, ""), raw=True)
    assert status == 302 and headers["Location"].startswith("/storage/figshare/")
    status, headers, part = call(api, "GET", headers["Location"], headers={"Range": "bytes=0-3"}, raw=True)
    assert status == 206 and len(part) == 4 and headers["Content-Range"] == f"bytes 0-3/{entry['size']}"
