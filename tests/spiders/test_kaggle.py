"""Kaggle: credentials, paging and its caps, field mapping on the real responses, and
crawls through the real Scrapy engine against the local API server."""

from __future__ import annotations

import base64
import json
import logging
import re
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from scrapy.http import JsonResponse, Request

from envision_spiders.items import DatasetItem
from localapi import kaggle as server_kaggle
from envision_spiders.spiders.kaggle import (
    KaggleSpider,
    LAST_PAGE,
    next_step,
    page_items,
)
from envision_spiders.mapping.kaggle import (
    download_url,
    map_files,
    split_ref,
    value,
)
from envision_spiders.storage import atomic_write_json, record_path
from envision_spiders.textutil import iso, parse_datetime

from tests.conftest import crawl_in_process, last_summary, make_spider, sample, saved_mtimes, saved_records

API = "https://www.kaggle.com/api/v1"
CREDENTIAL_VARIABLES = ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME")


@pytest.fixture(autouse=True)
def no_real_credentials(monkeypatch, tmp_path):
    """Neither the machine's Kaggle variables nor its ~/.kaggle reach a test (or the
    crawls it starts, which inherit this environment)."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def list_sample() -> list[dict]:
    return sample("kaggle/datasets_list_2021-06.json")


def youtube_hit() -> dict:
    return next(h for h in list_sample() if h["ref"] == "datasnaek/youtube-new")


def json_response(url: str, payload, **cb_kwargs) -> JsonResponse:
    request = Request(url, cb_kwargs=cb_kwargs)
    return JsonResponse(url, body=json.dumps(payload).encode(), request=request)


# ------------------------------------------------------------------ pure helpers
def test_value_prefers_the_nullable_form_and_skips_placeholders():
    # the 2022-2023 legacy shape: x, hasX, xNullable; the plain field may be a placeholder
    hit = {"title": False, "hasTitle": True, "titleNullable": "Real Title", "subtitle": "", "subtitleNullable": None,
           "hasSubtitle": False, "totalBytes": 0, "totalBytesNullable": 12, "url": "https://k/x"}
    assert value(hit, "title") == "Real Title"
    assert value(hit, "subtitle") is None
    assert value(hit, "totalBytes", int) == 12
    assert value(hit, "url") == "https://k/x"
    assert value({"isPrivate": False}, "isPrivate", bool) is False
    assert value({"voteCount": True}, "voteCount", int) is None  # a boolean is not a count
    assert value({"title": "  "}, "title") is None and value("junk", "title") is None


def test_page_items_reads_both_generations_and_refuses_error_bodies():
    assert page_items([{"ref": "a/b"}]) == [{"ref": "a/b"}]
    assert page_items({"datasets": [{"ref": "a/b"}], "nextPageToken": "x"}) == [{"ref": "a/b"}]
    with pytest.raises(ValueError, match="429 TooManyRequests"):
        page_items({"code": 429, "message": "TooManyRequests"})
    with pytest.raises(ValueError, match="429 RESOURCE_EXHAUSTED Too many requests"):
        page_items({"error": {"code": 429, "message": "Too many requests", "status": "RESOURCE_EXHAUSTED"}})
    with pytest.raises(TypeError):
        page_items({"hits": []})


@pytest.mark.parametrize(
    ("page", "n", "kwargs", "expected"),
    [
        (1, 20, {}, "next"),
        (1, 19, {}, "last_page"),
        (3, 0, {}, "last_page"),
        (LAST_PAGE - 1, 20, {}, "next"),
        (LAST_PAGE, 20, {}, "cap"),
        (LAST_PAGE, 7, {}, "last_page"),
        (2, 20, {"oldest": datetime(2021, 1, 1, tzinfo=timezone.utc), "since": datetime(2021, 2, 1, tzinfo=timezone.utc)}, "older_than_since"),
        (2, 20, {"oldest": datetime(2021, 3, 1, tzinfo=timezone.utc), "since": datetime(2021, 2, 1, tzinfo=timezone.utc)}, "next"),
        (LAST_PAGE, 20, {"oldest": datetime(2021, 1, 1, tzinfo=timezone.utc), "since": datetime(2021, 2, 1, tzinfo=timezone.utc)}, "older_than_since"),
        (3, 20, {"seen": 60, "max_per_query": 50}, "max_per_query"),
        (2, 20, {"seen": 40, "max_per_query": 50}, "next"),
    ],
)
def test_next_step(page, n, kwargs, expected):
    assert next_step(page, n, **kwargs) == expected


def test_split_ref():
    assert split_ref("datasnaek/youtube-new") == ("datasnaek", "youtube-new")
    for bad in ("youtube-new", "a/b/c", "/b", "a/", None, 42):
        with pytest.raises(ValueError):
            split_ref(bad)


def test_download_urls_quote_names_like_the_official_client():
    assert download_url(API, "datasnaek", "youtube-new", "RUvideos.csv") == f"{API}/datasets/download/datasnaek/youtube-new/RUvideos.csv"
    odd = "train images/fundus [left] é#1?.png"
    url = download_url(API + "/", "o", "s", odd)
    assert url == f"{API}/datasets/download/o/s/train%20images%2Ffundus%20%5Bleft%5D%20%C3%A9%231%3F.png"
    assert unquote(url.rsplit("/", 1)[1]) == odd
    # the whole dataset's ZIP: its own URL, not one of the files
    assert download_url(API, "o", "s") == f"{API}/datasets/download/o/s"


def test_map_files_reads_the_sample_and_ignores_the_file_url():
    entries = sample("kaggle/dataset_files_list_2021-06.json")["datasetFiles"]
    files = map_files(entries, lambda name: f"DL/{name}")
    assert len(files) == 20
    assert files[0] == {"name": "RUvideos.csv", "size_bytes": 76268286, "url": "DL/RUvideos.csv", "file_id": "RUvideos.csv", "checksum": None}
    assert all(f["url"] != "https://www.kaggle.com/" for f in files)
    assert sum(f["size_bytes"] for f in files) == sum(e["totalBytes"] for e in entries)
    # newer answers: ``size``; broken entries are skipped
    assert map_files([{"name": "a.png", "size": 5}, {"name": None}, "junk", {"name": "b.png", "totalBytes": -1}], str) == [
        {"name": "a.png", "size_bytes": 5, "url": "a.png", "file_id": "a.png", "checksum": None},
        {"name": "b.png", "size_bytes": None, "url": "b.png", "file_id": "b.png", "checksum": None},
    ]


def test_timestamps_of_the_samples_parse_with_every_number_of_digits():
    stamps = [h["lastUpdated"] for h in list_sample()]
    stamps += [f["creationDate"] for f in sample("kaggle/dataset_files_list_2021-06.json")["datasetFiles"]]
    assert all(parse_datetime(s) is not None for s in stamps)
    assert iso("2019-06-03T00:56:47.1511526Z") == "2019-06-03T00:56:47.151152Z"  # seven digits
    assert iso("2021-06-16T07:56:03.46Z") == "2021-06-16T07:56:03.460000Z"  # two
    assert iso("2017-11-27T17:08:04.7Z") == "2017-11-27T17:08:04.700000Z"  # one
    assert iso(server_kaggle.kaggle_time(datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc), 0)) == "2020-01-02T03:04:05Z"


# ------------------------------------------------------------------ credentials
def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_credentials_go_to_the_api_host_only(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_secret")
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    request = spider.search_request("retinal OCT")
    assert request.headers["Authorization"] == b"Bearer KGAT_secret"
    assert "Authorization" not in spider.api_request("https://storage.googleapis.com/x", spider.parse_files).headers
    assert parse_qs(urlparse(request.url).query) == {"search": ["retinal OCT"], "sortBy": ["updated"], "page": ["1"]}


# ------------------------------------------------------------------ callbacks on the real responses
@pytest.mark.parametrize("url", [f"{API}/datasets/list"], ids=["sample"])
def test_kaggle_list_sample_asks_for_each_file_list_and_the_next_page(response, tmp_path):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    out = list(spider.parse_search(response, term="youtube", page=1))
    assert all(isinstance(r, Request) for r in out) and len(out) == 21
    files_requests, (next_page,) = out[:20], out[20:]
    assert [r.cb_kwargs["hit"]["ref"] for r in files_requests] == [h["ref"] for h in list_sample()]
    assert files_requests[16].url == f"{API}/datasets/list/datasnaek/youtube-new?pageSize=200"
    assert all("/datasets/view/" not in r.url for r in out)
    assert parse_qs(urlparse(next_page.url).query) == {"search": ["youtube"], "sortBy": ["updated"], "page": ["2"]}
    stats = spider.crawler.stats
    assert stats.get_value("envision/hits") == 20 and stats.get_value("envision/terms_searched") == 1
    # a second term finding the same datasets costs no request; the state keeps the term
    again = list(spider.parse_search(response, term="video", page=1))
    assert spider.terms_for("datasnaek/youtube-new") == ["youtube", "video"]
    assert len(again) == 1 and isinstance(again[0], Request)  # only the next page


@pytest.mark.parametrize("url", [f"{API}/datasets/list"], ids=["sample"])
def test_kaggle_list_sample_incremental_stops_at_since(response, tmp_path):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API, spider_kwargs={"since": "2021-03-01"})
    out = list(spider.parse_search(response, term="youtube", page=1))
    # the page reaches 2017: no page 2; the page's own hits are still handled
    assert len(out) == 20 and all(r.callback == spider.parse_files for r in out)
    assert spider.crawler.stats.get_value("envision/kaggle/stopped_at_since") == 1
    assert spider.covers_everything()


@pytest.mark.parametrize("url", [f"{API}/datasets/list/datasnaek/youtube-new"], ids=["sample"])
def test_kaggle_files_sample_makes_the_record(response, tmp_path):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    hit = youtube_hit()
    spider.first_sighting(hit["ref"], "youtube")
    (item,) = spider.parse_files(response, hit=hit)
    assert isinstance(item, DatasetItem)
    assert item.source == "kaggle" and item.source_id == "datasnaek/youtube-new"
    assert item.doi is None and item.related_dois == [] and item.external_links == []
    assert item.url == "https://www.kaggle.com/datasnaek/youtube-new"
    assert item.title == "Trending YouTube Video Statistics"
    assert item.description == "Daily statistics for trending YouTube videos"
    assert item.keywords == ["internet", "linguistics", "languages", "popular culture", "arts and entertainment"]
    assert item.creators == [{"name": "Timo Bozsolik"}]
    assert item.license == "CC0: Public Domain" and item.access_type == "open" and item.resource_type == "dataset"
    assert item.dates == {"modified": "2019-06-03T00:56:47.177000Z"} and item.publication_year is None
    assert item.total_size_bytes == 210575746
    assert len(item.files) == 20
    assert item.files[0] == {
        "name": "RUvideos.csv",
        "size_bytes": 76268286,
        "url": f"{API}/datasets/download/datasnaek/youtube-new/RUvideos.csv",
        "file_id": "RUvideos.csv",
        "checksum": None,
    }
    assert item.extra == {
        "ref": "datasnaek/youtube-new",
        "owner": "datasnaek",
        "slug": "youtube-new",
        "kaggle_id": 4549,
        "owner_name": "Mitchell J",
        "creator_name": "Timo Bozsolik",
        "creator_ref": "timoboz",
        "subtitle": "Daily statistics for trending YouTube videos",
        "total_bytes": 210575746,
        "current_version": 115,
        "usability_rating": 0.7941176,
        "download_count": 142614,
        "vote_count": 4008,
        "view_count": 1129843,
        "dataset_archive_url": f"{API}/datasets/download/datasnaek/youtube-new",
        "needs_landing_page": True,
        "files_complete": True,
    }
    assert item.extra["dataset_archive_url"] not in [f["url"] for f in item.files]
    assert item.provenance["search_terms"] == ["youtube"]
    assert item.provenance["source_modified"] == "2019-06-03T00:56:47.177000Z"
    assert item.provenance["api_url"] == f"{API}/datasets/list/datasnaek/youtube-new?pageSize=200"


def test_every_sample_item_maps_and_the_nullable_shape_maps_the_same(tmp_path):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    for hit in list_sample():
        plain = spider.record_item(hit, [])
        nullable = spider.record_item(server_kaggle.render_item(hit, "nullable"), [])
        for item in (plain, nullable):
            item.provenance.pop("harvested_at")
        assert plain == nullable
        assert plain.title == hit["title"] and plain.description == hit["subtitle"].strip()
        assert plain.extra["owner"] == hit["ownerRef"] and plain.extra["owner_name"] == hit["ownerName"]
        assert plain.creators == [{"name": hit["creatorName"]}] and plain.license == hit["licenseName"]
    # the 2022-2023 placeholders (a boolean title, an empty url) never leak into a record
    broken = {**youtube_hit(), "title": False, "titleNullable": "T", "url": False, "urlNullable": None}
    item = spider.record_item(broken, [])
    assert item.title == "T" and item.url == "https://www.kaggle.com/datasets/datasnaek/youtube-new"


def test_links_and_dois_in_subtitle_and_description_mark_mirrors(tmp_path):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    hit = {**youtube_hit(), "subtitle": "Mirror of doi:10.5281/ZENODO.123, see https://physionet.org/content/x/1.0/.",
           "description": "Original: [STARE](https://cecas.clemson.edu/~ahoover/stare/) and https://doi.org/10.1167/iovs.1"}
    item = spider.record_item(hit, [])
    assert item.description.startswith("Original: [STARE]")
    assert item.extra["needs_landing_page"] is False and item.extra["subtitle"].startswith("Mirror of")
    assert item.external_links == [
        "https://physionet.org/content/x/1.0/", "https://cecas.clemson.edu/~ahoover/stare/", "https://doi.org/10.1167/iovs.1",
    ]
    assert item.related_dois == ["10.5281/zenodo.123", "10.1167/iovs.1"]


def test_unchanged_dataset_costs_no_request(tmp_path):
    hit = youtube_hit()
    # saved last week (as the persistence pipeline writes it); Kaggle now sends the same
    # time with seven fractional digits
    atomic_write_json(record_path(tmp_path, "kaggle", hit["ref"]), {
        "source": "kaggle", "source_id": hit["ref"],
        "provenance": {"source_modified": iso(hit["lastUpdated"]), "search_terms": ["youtube"]},
    })
    hit = {**hit, "lastUpdated": "2019-06-03T00:56:47.1770000Z"}
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    assert list(spider.handle_hit(hit, "trending")) == []
    assert spider.crawler.stats.get_value("envision/records/unchanged") == 1
    # the unchanged record stays as saved, with the new term merged into its file
    saved = json.loads(record_path(tmp_path, "kaggle", hit["ref"]).read_text())
    assert saved["provenance"]["search_terms"] == ["youtube", "trending"]
    newer = {**hit, "lastUpdated": "2019-06-04T00:00:00.1234567Z"}
    spider2 = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    (request,) = spider2.handle_hit(newer, "trending")
    assert request.callback == spider2.parse_files


def test_a_full_page_500_is_the_cap_and_keeps_the_mark(tmp_path, caplog):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    url = f"{API}/datasets/list?search=eye&sortBy=updated&page={LAST_PAGE}"
    caplog.set_level(logging.WARNING)
    out = list(spider.parse_search(json_response(url, list_sample()), term="eye", page=LAST_PAGE))
    assert len(out) == 20 and all(r.callback == spider.parse_files for r in out)  # no page 501
    assert spider.hit_cap_reached and not spider.covers_everything()
    assert spider.crawler.stats.get_value("envision/kaggle/page_cap") == 1
    assert "term 'eye' still has matches on page 500" in caplog.text


def test_max_per_query_stops_paging(tmp_path):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API, MAX_PER_QUERY=30)
    first = list(spider.parse_search(json_response(f"{API}/datasets/list?page=1", list_sample()), term="t", page=1))
    assert first[-1].cb_kwargs == {"term": "t", "page": 2}
    second = list(spider.parse_search(json_response(f"{API}/datasets/list?page=2", list_sample()), term="t", page=2))
    assert not any(r.callback == spider.parse_search for r in second if isinstance(r, Request))
    assert not spider.covers_everything()


def test_file_list_pages_are_followed_within_a_bound(tmp_path):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API, KAGGLE_MAX_FILE_PAGES=2)
    hit = youtube_hit()
    entries = sample("kaggle/dataset_files_list_2021-06.json")["datasetFiles"]
    page1 = {"datasetFiles": entries[:10], "errorMessage": None, "nextPageToken": "tok-2"}
    (follow,) = spider.parse_files(json_response(spider.files_url(hit["ref"]), page1), hit=hit)
    assert follow.url == f"{API}/datasets/list/datasnaek/youtube-new?pageSize=200&pageToken=tok-2"
    assert len(follow.cb_kwargs["files"]) == 10 and follow.cb_kwargs["page"] == 2
    page2 = {"datasetFiles": entries[10:15], "errorMessage": None, "nextPageToken": "tok-3"}
    (item,) = spider.parse_files(json_response(follow.url, page2), **follow.cb_kwargs)
    assert [f["name"] for f in item.files] == [e["name"] for e in entries[:15]]
    assert item.extra["files_complete"] is False
    assert spider.crawler.stats.get_value("envision/kaggle/files_truncated") == 1
    # a token that repeats itself ends the list instead of looping
    same = {"datasetFiles": entries[:1], "nextPageToken": "tok-2"}
    (item,) = spider.parse_files(json_response(follow.url, same), hit=hit, files=[], page=1, token="tok-2")
    assert len(item.files) == 1 and item.extra["files_complete"] is True


def test_file_list_error_message_keeps_the_record(tmp_path, caplog):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    caplog.set_level(logging.WARNING)
    body = {"datasetFiles": [], "errorMessage": "Dataset files are being processed"}
    (item,) = spider.parse_files(json_response(spider.files_url("datasnaek/youtube-new"), body), hit=youtube_hit())
    assert item.files == [] and item.extra["files_error"] == "Dataset files are being processed"
    assert "datasnaek/youtube-new" in caplog.text
    with pytest.raises(ValueError):  # an error body is malformed: the middleware asks again
        list(spider.parse_files(json_response(f"{API}/x", {"code": 429, "message": "TooManyRequests"}), hit=youtube_hit()))
    with pytest.raises(TypeError):
        list(spider.parse_files(json_response(f"{API}/x", []), hit=youtube_hit()))


def http_failure(request: Request, status: int):
    from scrapy.http import TextResponse
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.python.failure import Failure

    failure = Failure(HttpError(TextResponse(request.url, status=status, body=b"{}", request=request), "refused"))
    failure.request = request
    return failure


def test_refusals_are_said_once_and_a_forbidden_file_list_keeps_the_dataset(tmp_path, caplog):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    caplog.set_level(logging.WARNING)
    for term in ("a", "b", "c"):
        assert spider.on_request_failed(http_failure(spider.search_request(term), 401)) is None
    assert caplog.text.count("kaggle: HTTP 401") == 1 and "set KAGGLE_API_TOKEN" in caplog.text
    assert spider.crawler.stats.get_value("envision/kaggle/refused") == 3 and not spider.covers_everything()
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    (item,) = spider.on_request_failed(http_failure(spider.files_request(youtube_hit()), 403))
    assert item.source_id == "datasnaek/youtube-new" and item.files == []
    assert item.extra["files_error"] == "HTTP 403" and item.extra["files_complete"] is False
    assert spider.covers_everything()
    # other answers go to the base errback: a 404 is skipped, a 500 kept for the next run
    assert spider.on_request_failed(http_failure(spider.files_request(youtube_hit()), 404)) is None
    assert spider.crawler.stats.get_value("envision/http_error/404") == 1


def test_malformed_records_are_skipped_one_by_one(tmp_path):
    spider = make_spider(KaggleSpider, tmp_path, KAGGLE_API_URL=API)
    good = youtube_hit()
    page = ["junk", {"ref": "no-slash"}, {"title": "no ref"}, {"ref": ["a", "b"]}, good]
    out = list(spider.parse_search(json_response(f"{API}/datasets/list", page), term="t", page=1))
    assert [r.cb_kwargs["hit"]["ref"] for r in out] == ["datasnaek/youtube-new"]
    assert spider.crawler.stats.get_value("envision/bad_record") == 4
    with pytest.raises(ValueError):
        list(spider.parse_search(json_response(f"{API}/x", {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}), term="t", page=1))


# ------------------------------------------------------------------ the local server
def http(url: str, auth: str | None = None):
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read(), r.url
    except urllib.error.HTTPError as e:
        return e.code, e.read(), None


BASIC = "Basic " + base64.b64encode(f"{server_kaggle.TEST_USERNAME}:{server_kaggle.TEST_KEY}".encode()).decode()
BEARER = "Bearer " + server_kaggle.TEST_TOKEN


def test_local_server_pages_caps_and_guards_downloads(api):
    api.generate("kaggle", 60, seed=11)
    root = api.api_settings()["KAGGLE_API_URL"]
    st = server_kaggle.state_of(api.state)
    status, body, _ = http(f"{root}/datasets/list?search=&sortBy=updated&page=1")
    items = json.loads(body)
    assert status == 200 and len(items) == 20
    stamps = [parse_datetime(i["lastUpdated"]) for i in items]
    assert stamps == sorted(stamps, reverse=True)
    assert http(f"{root}/datasets/list?page={LAST_PAGE + 1}")[1] == b"[]"
    assert http(f"{root}/datasets/list?sortBy=relevance")[0] == 400
    assert {i.get("hasTitle") for i in items} == {True, None}  # the nullable shape is served too
    # a paged file list (current shape, more than 200 files)
    ref = next(r for r, f in st.files.items() if len(f) > 200 and st.shapes[r] == "current")
    _, body, _ = http(f"{root}/datasets/list/{ref}?pageSize=200")
    first = json.loads(body)
    assert len(first["datasetFiles"]) == 200 and first["nextPageToken"]
    _, body, _ = http(f"{root}/datasets/list/{ref}?pageSize=200&pageToken={first['nextPageToken']}")
    assert json.loads(body)["nextPageToken"] == "" and len(json.loads(body)["datasetFiles"]) == len(st.files[ref]) - 200
    assert http(f"{root}/datasets/list/nobody/nothing")[0] == 404
    # downloads: 401 without credentials, a redirect to signed storage with them
    name = st.files[ref][0]["name"]
    file_url = download_url(root, *ref.split("/"), name)
    assert http(file_url)[0] == 401
    assert http(file_url, "Basic " + base64.b64encode(b"curator:wrong").decode())[0] == 401
    status, data, final = http(file_url, BASIC)
    assert status == 200 and "/storage/kaggle/" in final
    assert data == api.state.files[f"kaggle/{ref}/{name}"].data
    status, data, final = http(download_url(root, *ref.split("/")), BEARER)
    assert status == 200 and data[:4] == b"PK\x03\x04"
    assert len(data) != sum(f["totalBytes"] for f in st.files[ref])  # the archive is not the total
    # both 429 bodies
    server_kaggle.throttle(api.state, "legacy", "new")
    assert json.loads(http(f"{root}/datasets/list")[1]) == {"code": 429, "message": "TooManyRequests"}
    assert json.loads(http(f"{root}/datasets/list")[1])["error"]["status"] == "RESOURCE_EXHAUSTED"


# ------------------------------------------------------------------ crawls through the engine
def expected_records(api, terms: list[str] | None = None) -> dict[str, set[str]]:
    """What a complete crawl must find: every dataset some term matches, and its terms."""
    from envision_spiders.terms import DEFAULT_TERMS_FILE, read_terms

    st = server_kaggle.state_of(api.state)
    found: dict[str, set[str]] = {}
    for term in terms or read_terms(DEFAULT_TERMS_FILE):
        for ref in st.datasets:
            if server_kaggle.matches(st, ref, term):
                found.setdefault(ref, set()).add(term)
    return found


def file_pages(n_files: int) -> int:
    return max(1, -(-n_files // 200))


@pytest.mark.slow
def test_full_crawl_then_incremental_runs(api, tmp_path):
    api.generate("kaggle", 120, seed=3)
    st = server_kaggle.state_of(api.state)
    result = crawl_in_process(api, "kaggle", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = expected_records(api)
    records = saved_records(tmp_path, "kaggle")
    assert set(records) == set(expected)
    for ref, rec in records.items():
        assert set(rec["provenance"]["search_terms"]) == expected[ref], ref
        assert [f["name"] for f in rec["files"]] == [e["name"] for e in st.files[ref]], ref  # every page
        assert rec["total_size_bytes"] == sum(e["totalBytes"] for e in st.files[ref])
        assert rec["title"] == st.datasets[ref]["title"] and rec["extra"]["needs_landing_page"] is True
    assert any(len(r["files"]) > 200 for r in records.values())
    assert result.stderr.count("kaggle: no credentials") == 1
    summary = last_summary(tmp_path, "kaggle")
    assert summary["new"] == len(expected) and summary["failures"] == 0 and summary["terms_searched"] == 47
    log = api.state.entries(r"^/kaggle/")
    assert all(e["auth"] is None for e in log)
    assert not api.state.count("/datasets/view/")
    searches = api.state.entries(r"/datasets/list\?")
    assert searches and all("sortBy=updated" in e["path_qs"] for e in searches)
    listings = api.state.entries(r"/datasets/list/[^?]+/[^?]+")
    assert all("pageSize=200" in e["path_qs"] for e in listings)
    paged = sum(file_pages(len(st.files[r])) if st.shapes[r] != "2021" else 1 for r in expected)
    assert len(listings) == paged, "one file list (all its pages) per dataset, whatever the number of terms"
    mirrors = [r for r in records.values() if r["external_links"] or r["related_dois"]]
    assert mirrors and all(r["extra"]["subtitle"] for r in mirrors)

    # second run: the search pages only, stopping at the last run's date; nothing rewritten
    before = saved_mtimes(tmp_path, "kaggle")
    api.state.reset_counters()
    result = crawl_in_process(api, "kaggle", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = api.state.entries()
    assert log and all(re.search(r"/kaggle/api/v1/datasets/list\?", e["path_qs"]) for e in log), "only search pages"
    assert len(log) == 47, "every term stops on its first page: nothing changed since"
    assert saved_mtimes(tmp_path, "kaggle") == before

    # changed datasets (newer lastUpdated, on top of the "updated" order) are fetched again
    changed = api.modify("kaggle", 0.1)
    changed_refs = {r for r, it in st.datasets.items() if it["title"].endswith("(revised)") and r in expected}
    api.state.reset_counters()
    result = crawl_in_process(api, "kaggle", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    fetched = {unquote(re.search(r"/datasets/list/([^?]+)", e["path_qs"]).group(1)) for e in api.state.entries(r"/datasets/list/")}
    assert fetched == changed_refs and changed >= len(changed_refs) > 0
    records = saved_records(tmp_path, "kaggle")
    assert all(records[r]["title"].endswith("(revised)") for r in changed_refs)
    summary = last_summary(tmp_path, "kaggle")
    assert summary["changed"] == len(changed_refs) and summary["new"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["token", "env_pair", "kaggle_json", "access_token"])
def test_crawl_with_each_kind_of_credentials(api, tmp_path, variant):
    api.generate("kaggle", 30, seed=5)
    terms = tmp_path / "terms.txt"
    terms.write_text("retinal OCT\nglaucoma dataset\n")
    config = tmp_path / "kaggle-config"
    secret = server_kaggle.TEST_KEY
    settings: dict[str, str] = {"SEARCH_TERMS": str(terms)}
    if variant == "token":
        settings["KAGGLE_API_TOKEN"] = secret = server_kaggle.TEST_TOKEN
    elif variant == "env_pair":
        settings.update(KAGGLE_USERNAME=server_kaggle.TEST_USERNAME, KAGGLE_KEY=secret)
    elif variant == "kaggle_json":
        write(config / "kaggle.json", json.dumps({"username": server_kaggle.TEST_USERNAME, "key": secret}))
        settings["KAGGLE_CONFIG_DIR"] = str(config)
    else:
        write(config / "access_token", server_kaggle.TEST_TOKEN)
        settings["KAGGLE_CONFIG_DIR"] = str(config)
        secret = server_kaggle.TEST_TOKEN
    data = tmp_path / "data"
    result = crawl_in_process(api, "kaggle", data, **settings)
    assert result.returncode == 0, result.stderr[-3000:]
    scheme = "Bearer" if variant in ("token", "access_token") else "Basic"
    log = api.state.entries(r"^/kaggle/")
    assert log and all(e["auth"] == scheme for e in log)
    assert "kaggle: authenticating with" in result.stderr and "no credentials" not in result.stderr
    assert secret not in result.stderr + result.stdout
    assert all(secret not in p.read_text() for p in data.rglob("*") if p.is_file())
    records = saved_records(data, "kaggle")
    assert set(records) == set(expected_records(api, ["retinal OCT", "glaucoma dataset"]))
    # the recorded download URLs work with the same credentials
    auth = f"Bearer {secret}" if scheme == "Bearer" else BASIC
    rec = next(iter(records.values()))
    status, body, final = http(rec["files"][0]["url"], auth)
    assert status == 200 and "/storage/" in final and len(body) == rec["files"][0]["size_bytes"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["anonymous_refused", "wrong_key"])
def test_refused_searches_are_said_once_and_keep_the_mark(api, tmp_path, variant):
    api.generate("kaggle", 20, seed=6)
    settings: dict[str, str] = {}
    if variant == "anonymous_refused":
        server_kaggle.state_of(api.state).anonymous_search = False
    else:
        settings.update(KAGGLE_USERNAME=server_kaggle.TEST_USERNAME, KAGGLE_KEY="not-the-key-4711")
    result = crawl_in_process(api, "kaggle", tmp_path, **settings)
    assert result.returncode == 3, "a refused run is unhealthy: " + result.stderr[-3000:]
    assert result.stderr.count("] ERROR: kaggle: HTTP 401") == 1
    if variant == "wrong_key":
        assert "Kaggle refused user curator Basic credentials from KAGGLE_USERNAME and KAGGLE_KEY; check them" in result.stderr
        assert "not-the-key-4711" not in result.stderr
    else:
        assert "set KAGGLE_API_TOKEN" in result.stderr
    summary = last_summary(tmp_path, "kaggle")
    assert summary["stats"]["envision/kaggle/refused"] == 47 and summary["new"] == 0
    assert not (tmp_path / "state" / "kaggle.json").exists(), "a refused run does not move the mark"


@pytest.mark.slow
def test_storm_of_429_bodies_5xx_and_broken_answers_loses_no_dataset(api, tmp_path):
    api.generate("kaggle", 50, seed=7)
    # 429s where no fault rewrites the answer (a "malformed" or "truncate" fault replaces
    # the body the handler made)
    server_kaggle.throttle(api.state, "legacy", "new", "legacy", "new", path=r"/datasets/list\?")
    s = api.state
    s.add_fault(path=r"/kaggle/api/v1/datasets/list\?", kind="status", status=503, count=6)
    s.add_fault(path=r"/kaggle/api/v1/datasets/list\?", kind="drop", count=2)
    s.add_fault(path=r"/kaggle/api/v1/datasets/list/", kind="status", status=502, count=4)
    s.add_fault(path=r"/kaggle/api/v1/datasets/list/", kind="malformed", count=2)
    s.add_fault(path=r"/kaggle/api/v1/datasets/list/", kind="truncate", count=2)
    result = crawl_in_process(api, "kaggle", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    st = server_kaggle.state_of(api.state)
    records = saved_records(tmp_path, "kaggle")
    assert set(records) == set(expected_records(api))
    assert all(len(r["files"]) == len(st.files[ref]) for ref, r in records.items())
    summary = last_summary(tmp_path, "kaggle")
    assert summary["failures"] == 0 and summary["rate_limited"] == 4
    assert summary["bad_responses"] >= 2 and summary["retries"] >= 10
    assert (tmp_path / "state" / "kaggle.json").exists()
