"""OSF: query building, paging, folder walking and the hourly budget; field mapping on
the real responses of OSF's test server; crawls through the real Scrapy engine against
the local API server (full, incremental, token, fault storm, kept failures, budget)."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import pytest
from scrapy.http import Request, TextResponse

from envision_spiders.items import DatasetItem
from envision_spiders.spiders.osf import (
    ANONYMOUS_PACE,
    ENDPOINTS,
    FILTER_FIELDS,
    OSFSpider,
    PAGE_SIZE,
    TOKEN_PACE,
    folder_link,
    search_params,
    total_of,
)
from envision_spiders.mapping.osf import (
    access_type_of,
    checksum_of,
    map_file,
    map_record,
)
from envision_spiders.textutil import parse_datetime

from tests.conftest import crawl_in_process, last_summary, make_spider, sample, saved_mtimes, saved_records

TEST_API = "https://api.test.osf.io/v2"


def osf_spider(tmp_path, **settings):
    settings.setdefault("OSF_API_URL", TEST_API)
    return make_spider(OSFSpider, tmp_path, **settings)


def answer(url: str, body: dict) -> TextResponse:
    return TextResponse(url, body=json.dumps(body).encode(), encoding="utf-8", request=Request(url))


def empty_listing(url: str) -> TextResponse:
    return answer(url, {"data": [], "links": {"first": None, "last": None, "prev": None, "next": None,
                                              "meta": {"total": 0, "per_page": 100}}, "meta": {"version": "2.0"}})


def node(node_id: str = "y8t6r") -> dict:
    record = copy.deepcopy(sample("osf/node_detail_2026-02.json")["data"])
    record["id"] = node_id
    return record


# ------------------------------------------------------------------ pure helpers
def test_search_params_never_send_an_empty_filter():
    assert search_params("retinal OCT", "title") == [
        ("filter[title]", "retinal OCT"), ("page[size]", "100"), ("embed", "identifiers"), ("embed", "license")]
    params = dict(search_params("  glaucoma   OCT ", "tags", "2026-11-01", public_only=True))
    assert params["filter[tags]"] == "glaucoma OCT"
    assert params["filter[date_modified][gte]"] == "2026-11-01" and params["filter[public]"] == "true"
    for empty in ("", "   "):
        with pytest.raises(ValueError, match="matches every node"):
            search_params(empty, "title")
    with pytest.raises(ValueError):
        search_params("OCT", "contributors")


def test_total_at_default_version_and_from_2_3():
    assert total_of(sample("osf/node_children_page1_2026-02.json")) == 30  # links.meta (2.0)
    assert total_of({"data": [], "links": {"next": None}, "meta": {"total": 7, "per_page": 10, "version": "2.20"}}) == 7
    assert total_of({"data": [], "meta": {"version": "2.0"}}) is None


def test_checksum_prefers_sha256_and_keeps_md5():
    assert checksum_of({"md5": "AB" * 16, "sha256": "CD" * 32}) == "sha256:" + "cd" * 32
    assert checksum_of({"md5": "ab" * 16, "sha256": None}) == "md5:" + "ab" * 16
    assert checksum_of({"md5": None, "sha256": None}) is None and checksum_of(None) is None


def test_access_types():
    assert access_type_of({"public": True}) == "open"
    assert access_type_of({"public": False}) == "restricted"
    assert access_type_of({"public": False, "embargoed": True}) == "embargoed"
    assert access_type_of({"withdrawn": True}) == "metadata-only"


def test_timestamps_with_and_without_z_in_the_same_file():
    attrs = sample("osf/file_detail_file_2026-02.json")["data"]["attributes"]
    assert attrs["date_created"].endswith("Z") and not attrs["date_modified"].endswith("Z")
    created, modified = parse_datetime(attrs["date_created"]), parse_datetime(attrs["date_modified"])
    assert created == modified == datetime(2026, 2, 19, 2, 59, 28, 146904, tzinfo=timezone.utc)
    node_attrs = sample("osf/node_detail_2026-02.json")["data"]["attributes"]
    assert parse_datetime(node_attrs["date_modified"]) == datetime(2019, 3, 9, 19, 23, 11, 527347, tzinfo=timezone.utc)
    for entry in sample("osf/folder_files_page2_2026-02.json")["data"]:
        a = entry["attributes"]
        assert parse_datetime(a["date_created"]) == parse_datetime(a["date_modified"]) is not None


def test_registration_mapping_on_the_served_shape():
    """No registration was recorded: the local server derives one from the recorded
    node and OSF's RegistrationSerializer; embeds give the DOI and licence name."""
    from localapi.core import ServerState
    from localapi.osf import LICENSES, _with_embeds, add_record, state_of

    server = ServerState()
    created = datetime(2020, 5, 4, 3, 2, 1, tzinfo=timezone.utc)
    lid = next(iter(LICENSES))
    rec = add_record(server, "ab2cd", kind="registrations", title="OCT <i>registry</i>", description="See https://example.org/x.",
                     tags=["OCT", "retina"], created=created, license_id=lid, doi="10.17605/OSF.IO/AB2CD",
                     ark="c7605/osf.io/ab2cd", article_doi="https://doi.org/10.1167/IOVS.61.2.3")
    fields = map_record(_with_embeds(state_of(server), rec, ["identifiers", "license"]))
    assert fields["doi"] == "10.17605/osf.io/ab2cd"
    assert fields["license"] == LICENSES[lid][0] and fields["extra"]["license_id"] == lid
    assert fields["title"] == "OCT registry" and fields["external_links"] == ["https://example.org/x"]
    assert fields["resource_type"] == "registration" and fields["access_type"] == "open"
    assert fields["related_dois"] == ["10.1167/iovs.61.2.3"]
    assert fields["publication_year"] == 2020 and fields["dates"]["registered"] == "2020-05-07T03:02:01Z"
    assert fields["extra"]["identifiers"] == [{"category": "ark", "value": "c7605/osf.io/ab2cd"}]
    assert fields["extra"]["withdrawn"] is False and fields["keywords"] == ["OCT", "retina"]
    # without the embeds only the licence id of the relationship is known
    bare = map_record(rec)
    assert bare["license"] is None and bare["doi"] is None and bare["extra"]["license_id"] == lid
    withdrawn = add_record(server, "wd3ef", kind="registrations", title="t", description="", tags=["x"], created=created,
                           withdrawn=True)
    w = map_record(_with_embeds(state_of(server), withdrawn, ["identifiers", "license"]))
    assert w["access_type"] == "metadata-only" and w["keywords"] == [] and w["extra"]["withdrawn"] is True


def test_pace_budget_and_auth_depend_on_token(tmp_path, monkeypatch):
    monkeypatch.delenv("OSF_TOKEN", raising=False)
    spider = osf_spider(tmp_path)
    assert spider.pace == ANONYMOUS_PACE and spider.pace.windows == ((100, 3660.0),)
    assert spider.listing_budget == OSFSpider.LISTING_REQUESTS_PER_NODE
    request = spider.search_request("retinal OCT", "nodes", "title")
    assert "Authorization" not in request.headers and "filter%5Bpublic%5D" not in request.url
    monkeypatch.setenv("OSF_TOKEN", "secret-token")
    spider = osf_spider(tmp_path)
    assert spider.pace == TOKEN_PACE and spider.listing_budget == OSFSpider.LISTING_REQUESTS_PER_NODE_TOKEN
    request = spider.search_request("retinal OCT", "registrations", "description")
    assert request.headers["Authorization"] == b"Bearer secret-token"
    query = parse_qs(urlparse(request.url).query)
    assert query["filter[description]"] == ["retinal OCT"] and query["filter[public]"] == ["true"]
    assert query["page[size]"] == [str(PAGE_SIZE)] and query["embed"] == ["identifiers", "license"]
    assert urlparse(request.url).path == "/v2/registrations/"
    # every OSF request counts against the API's budget, retried twice at most
    assert request.meta["budget"] == "api.test.osf.io" and request.meta["max_retry_times"] == OSFSpider.MAX_RETRIES
    assert request.priority == OSFSpider.SEARCH_PRIORITY


def test_every_term_is_searched_in_both_endpoints_over_three_fields_at_once(tmp_path):
    spider = osf_spider(tmp_path, SEARCH_TERMS=str(write_terms(tmp_path, ["fundus", "OCT-A retina"])))

    async def collect():
        return [r async for r in spider.searches()]

    requests = asyncio.run(collect())
    seen = {(urlparse(r.url).path.split("/")[2], next(k for k in parse_qs(urlparse(r.url).query) if k.startswith("filter[")),
             r.cb_kwargs["term"]) for r in requests}
    assert seen == {(e, "filter[" + ",".join(FILTER_FIELDS) + "]", t) for e in ENDPOINTS for t in ("fundus", "OCT-A retina")}
    assert len(requests) == 4, "one query per endpoint: OSF ORs the fields of one filter"


def test_retries_pass_through_the_budget(tmp_path):
    """Every attempt, retries included, takes from OSF's window: a retry of a failed
    request waits like any other request once the window is spent."""
    from envision_spiders.middlewares.ratelimit import RateLimitMiddleware
    from envision_spiders.middlewares.retry import BackoffRetryMiddleware

    scale = 0.3 / 3660  # the hourly window lasts 0.3 s
    spider = osf_spider(tmp_path, POLITENESS_SCALE=scale)
    crawler = spider.crawler
    limiter = RateLimitMiddleware.from_crawler(crawler)
    retrier = BackoffRetryMiddleware.from_crawler(crawler)
    request = spider.search_request("fundus", "nodes", "title")

    async def scenario():
        for _ in range(100):
            await limiter.process_request(request)
        retry = retrier._retry(request, "503 Service Unavailable")
        assert retry is not None and retry.meta["retry_times"] == 1 and retry.meta["max_retry_times"] == 2
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(limiter.process_request(retry), timeout=0.1)  # the window is spent
        await asyncio.wait_for(limiter.process_request(retry), timeout=2)  # and refills
        budget = limiter.budget("api.test.osf.io")
        assert budget.windows == ((100, pytest.approx(0.3)),)

    asyncio.run(scenario())


# ------------------------------------------------------------------ callbacks on real responses (scrapy-mock)
@pytest.mark.parametrize("url", [f"{TEST_API}/nodes/brfza/"], ids=["sample"])
def test_osf_node_detail(response, tmp_path):
    spider = osf_spider(tmp_path)
    (listing_request,) = spider.parse_node(response)
    assert listing_request.url == f"{TEST_API}/nodes/brfza/files/osfstorage/?page%5Bsize%5D=100"
    assert listing_request.priority == OSFSpider.LISTING_PRIORITY
    (item,) = spider.parse_listing(empty_listing(listing_request.url), **listing_request.cb_kwargs)
    assert isinstance(item, DatasetItem)
    assert item.source == "osf" and item.source_id == "brfza"
    assert item.title == "osfr-testthat-project"
    assert item.description == "This project is for osfr's unit tests and should not be deleted."
    assert item.url == "https://test.osf.io/brfza/" and item.doi is None and item.license is None
    assert item.keywords == [] and item.access_type == "open" and item.resource_type == "project"
    assert item.dates == {"created": "2019-01-08T14:10:15.355071Z", "modified": "2019-03-09T19:23:11.527347Z"}
    assert item.publication_year == 2019 and item.files == []
    assert item.extra == {"kind": "nodes", "category": "project"}  # root is itself, no licence
    assert item.provenance["source_modified"] == "2019-03-09T19:23:11.527347Z"
    assert item.provenance["api_url"] == f"{TEST_API}/nodes/brfza/"


@pytest.mark.parametrize("url", [f"{TEST_API}/nodes/4fjxr/children/?filter%5Btitle%5D=&page=1"], ids=["sample"])
def test_osf_list_page_with_next_link(response, tmp_path):
    spider = osf_spider(tmp_path)
    out = list(spider.parse_search(response, term="paginated component", endpoint="nodes", field="title"))
    listings = [r for r in out if r.callback == spider.parse_listing]
    (nxt,) = [r for r in out if r.callback == spider.parse_search]
    assert len(listings) == 10 and all(r.priority == OSFSpider.LISTING_PRIORITY for r in listings)
    assert {r.cb_kwargs["node_id"] for r in listings} >= {"ramg7", "q58vh", "r7uap"}
    assert nxt.url == f"{TEST_API}/nodes/4fjxr/children/?filter%5Btitle%5D=&page=2"  # links.next as given
    assert nxt.priority == OSFSpider.SEARCH_PRIORITY and nxt.cb_kwargs["page"] == 2
    assert spider.crawler.stats.get_value("envision/hits") == 10
    assert spider.crawler.stats.get_value("envision/terms_searched") == 1
    # the same nodes found by another term (or field) are not fetched again
    again = list(spider.parse_search(response, term="osfr", endpoint="nodes", field="description"))
    assert all(spider.terms_for(r.cb_kwargs["node_id"]) == ["paginated component", "osfr"] for r in listings)
    assert [r.callback for r in again] == [spider.parse_search]  # only the next page
    assert list(spider.parse_search(response, term="osfr", endpoint="nodes", field="tags"))[:-1] == []
    # a component: uncategorized, its parent and root kept
    ramg7 = next(r for r in listings if r.cb_kwargs["node_id"] == "ramg7")
    (item,) = spider.parse_listing(empty_listing(ramg7.url), **ramg7.cb_kwargs)
    assert item.title == "osfr-testthat-paginated-component-01" and item.resource_type is None
    assert item.description == "" and item.extra == {"kind": "nodes", "parent": "4fjxr", "root": "y8t6r"}
    assert item.provenance["search_terms"] == ["paginated component", "osfr"]


@pytest.mark.parametrize("url", [f"{TEST_API}/nodes/4fjxr/children/?filter%5Btitle%5D=&page=2"], ids=["sample"])
def test_osf_list_middle_page(response, tmp_path):
    spider = osf_spider(tmp_path, MAX_PER_QUERY=5)
    out = list(spider.parse_search(response, term="component", endpoint="nodes", field="title", page=2))
    assert len(out) == 10 and all(r.callback == spider.parse_listing for r in out), "MAX_PER_QUERY stops the paging"
    spider = osf_spider(tmp_path)
    out = list(spider.parse_search(response, term="component", endpoint="nodes", field="title", page=2))
    assert out[-1].url.endswith("page=3") and out[-1].cb_kwargs["page"] == 3


@pytest.mark.parametrize("url", [f"{TEST_API}/nodes/y8t6r/files/osfstorage/?page=1"], ids=["sample"])
def test_osf_root_listing_files_and_folders(response, tmp_path):
    spider = osf_spider(tmp_path)
    spider.first_sighting("y8t6r", "image")
    (first,) = spider.start_listing(node("y8t6r"))
    folders = list(spider.parse_listing(response, **first.cb_kwargs))
    assert [r.url for r in folders] == [
        f"{TEST_API}/nodes/y8t6r/files/osfstorage/5d4ef2104e90e100146f7e53/?page%5Bsize%5D=100",
        f"{TEST_API}/nodes/y8t6r/files/osfstorage/5d4f01fb4fb5130014d6754d/?page%5Bsize%5D=100",
    ]
    assert all(r.priority == OSFSpider.LISTING_CONTINUE_PRIORITY and r.cb_kwargs["depth"] == 1 for r in folders)
    assert list(spider.parse_listing(empty_listing(folders[0].url), **folders[0].cb_kwargs)) == []  # one still open
    (item,) = spider.parse_listing(empty_listing(folders[1].url), **folders[1].cb_kwargs)
    assert item.files == [{
        "name": "image-file-01.pdf",
        "size_bytes": 7709,
        "url": "https://test.osf.io/download/bexrz/",
        "file_id": "5d4ef38e4e90e100146f7f41",
        "checksum": "sha256:09de58bd85494bf792e8838b1f77afd11ca43b4746362c8128fcbcdeea80cc49",
        "md5": "b2b8554427811f3d67cd91e1b4e6631b",
        "sha256": "09de58bd85494bf792e8838b1f77afd11ca43b4746362c8128fcbcdeea80cc49",
    }]
    assert "files_truncated" not in item.extra and spider._listings == {}


@pytest.mark.parametrize(
    "url",
    [f"{TEST_API}/nodes/y8t6r/files/osfstorage/5d4ef2104e90e100146f7e53/?page=1",
     f"{TEST_API}/nodes/y8t6r/files/osfstorage/5d4ef2104e90e100146f7e53/?page=2"],
    ids=["sample", "page2"],
)
def test_osf_folder_listing_pages(response, tmp_path, url):
    spider = osf_spider(tmp_path)
    list(spider.start_listing(node("y8t6r")))
    page = int(url[-1])
    (nxt,) = spider.parse_listing(response, node_id="y8t6r", kind="nodes", depth=1)
    assert nxt.url == f"{TEST_API}/nodes/y8t6r/files/osfstorage/5d4ef2104e90e100146f7e53/?page={page + 1}"
    assert nxt.cb_kwargs["depth"] == 1 and nxt.priority == OSFSpider.LISTING_CONTINUE_PRIORITY
    files = spider._listings["y8t6r"].files
    assert len(files) == 10 and all(f["name"].startswith("many-files/text-file-") for f in files)
    first = files[0]
    if page == 1:
        assert first == {
            "name": "many-files/text-file-02.txt", "size_bytes": 1800,
            "url": "https://test.osf.io/download/5d4ef2744e90e100146f7e5d/", "file_id": "5d4ef2744e90e100146f7e5d",
            "checksum": "sha256:c43ae879b050122b1b4c65e3b95ff6c7d6f80f2c198af2bee6da6351e5116290",
            "md5": "10de77f80b5a03defbeac880c6f06b40",
            "sha256": "c43ae879b050122b1b4c65e3b95ff6c7d6f80f2c198af2bee6da6351e5116290",
        }
    else:
        assert first["name"] == "many-files/text-file-11.txt" and first["size_bytes"] == 1802


@pytest.mark.parametrize(
    "url", [f"{TEST_API}/files/69967c90d957f4745b0cab28/", f"{TEST_API}/files/5d4ef2104e90e100146f7e53/"],
    ids=["sample", "folder"],
)
def test_osf_file_detail(response, url):
    data = json.loads(response.body)["data"]
    if "69967c90" in url:
        assert folder_link(data) is None
        assert map_file(data) == {
            "name": "osfr-local-file.txt", "size_bytes": 40, "url": "https://test.osf.io/download/69967c90d957f4745b0cab28/",
            "file_id": "69967c90d957f4745b0cab28",
            "checksum": "sha256:5cb4615c09d7a8bb0a75688e183bb1fd30f25291a1461d02fccff2111c6a2d1f",
            "md5": "686d347b97dbbfa88f852ab3e72e5999",
            "sha256": "5cb4615c09d7a8bb0a75688e183bb1fd30f25291a1461d02fccff2111c6a2d1f",
        }
    else:
        assert map_file(data) is None
        assert folder_link(data) == f"{TEST_API}/nodes/y8t6r/files/osfstorage/5d4ef2104e90e100146f7e53/"


# ------------------------------------------------------------------ walking limits and bad input
def synthetic_listing(folders: int, files: int, nxt: str | None = None) -> dict:
    file_tpl = sample("osf/folder_files_page1_2026-02.json")["data"][0]
    folder_tpl = sample("osf/node_files_osfstorage_root_2026-02.json")["data"][0]
    data = []
    for i in range(folders):
        f = copy.deepcopy(folder_tpl)
        f["relationships"]["files"]["links"]["related"]["href"] = f"{TEST_API}/nodes/y8t6r/files/osfstorage/f{i}/"
        data.append(f)
    for i in range(files):
        f = copy.deepcopy(file_tpl)
        f["id"] = f"file{i}"
        f["attributes"]["materialized_path"] = f"/x/file{i}.png"
        data.append(f)
    return {"data": data, "links": {"next": nxt, "meta": {"total": len(data), "per_page": 100}}}


def test_folders_deeper_than_the_limit_are_not_walked(tmp_path):
    spider = osf_spider(tmp_path)
    list(spider.start_listing(node()))
    url = f"{TEST_API}/nodes/y8t6r/files/osfstorage/deep/"
    out = list(spider.parse_listing(answer(url, synthetic_listing(2, 1)), node_id="y8t6r", kind="nodes",
                                    depth=OSFSpider.MAX_FOLDER_DEPTH))
    (item,) = out
    assert len(item.files) == 1
    assert item.extra["files_truncated"] == {"reasons": [f"folders deeper than {OSFSpider.MAX_FOLDER_DEPTH}"],
                                             "skipped_folders": 2, "skipped_pages": 0}


def test_request_budget_per_node_cuts_the_listing_and_says_so(tmp_path):
    spider = osf_spider(tmp_path)
    (root,) = spider.start_listing(node())
    root_url = root.url
    out = list(spider.parse_listing(answer(root_url, synthetic_listing(12, 2, nxt=root_url + "&page=2")), **root.cb_kwargs))
    budget = OSFSpider.LISTING_REQUESTS_PER_NODE
    assert len(out) == budget - 1, "the root listing plus nine folders"
    assert spider._listings["y8t6r"].requests == budget
    for r in out[:-1]:
        assert list(spider.parse_listing(empty_listing(r.url), **r.cb_kwargs)) == []
    (item,) = spider.parse_listing(empty_listing(out[-1].url), **out[-1].cb_kwargs)
    assert len(item.files) == 2
    assert item.extra["files_truncated"] == {"reasons": [f"request budget of {budget} per node"],
                                             "skipped_folders": 3, "skipped_pages": 1}
    assert spider.crawler.stats.get_value("envision/osf/listing_truncated") == 1


def test_a_malformed_record_does_not_break_its_page(tmp_path):
    spider = osf_spider(tmp_path)
    body = copy.deepcopy(sample("osf/node_children_page2_2026-02.json"))
    body["data"][1]["attributes"] = "broken"
    body["data"][2] = ["not", "an", "object"]
    body["data"][3]["type"] = "users"
    out = list(spider.parse_search(answer(f"{TEST_API}/nodes/", body), term="x", endpoint="nodes", field="title"))
    assert len([r for r in out if r.callback == spider.parse_listing]) == 7
    assert spider.crawler.stats.get_value("envision/bad_record") == 3
    with pytest.raises((ValueError, KeyError, TypeError)):
        list(spider.parse_search(answer(f"{TEST_API}/nodes/", {"errors": [{"detail": "x"}]}), term="x",
                                 endpoint="nodes", field="title"))
    with pytest.raises(ValueError):
        list(spider.parse_listing(TextResponse(f"{TEST_API}/x", body=b'{"data": [', encoding="utf-8"),
                                  node_id="y8t6r", kind="nodes"))


def test_a_folder_gone_keeps_the_record_and_a_failed_listing_keeps_the_node(tmp_path):
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.python.failure import Failure

    def failed(request, status):
        response = TextResponse(request.url, status=status, body=b'{"errors": []}', request=request)
        try:
            raise HttpError(response, "Ignoring non-200 response")
        except HttpError:
            failure = Failure()
        failure.request = request
        return failure

    spider = osf_spider(tmp_path)
    (root,) = spider.start_listing(node())
    folders = list(spider.parse_listing(answer(root.url, synthetic_listing(2, 3)), **root.cb_kwargs))
    assert spider.on_request_failed(failed(folders[0], 404)) is None  # the other folder is still open
    (item,) = spider.on_request_failed(failed(folders[1], 410))
    assert len(item.files) == 3 and item.extra["files_listing_errors"] == [
        f"HTTP 404 for {folders[0].url}", f"HTTP 410 for {folders[1].url}"]
    assert not (tmp_path / "failures" / "osf.jsonl").exists(), "a permanent answer is not retried"
    # a server error that outlived its retries: no record now, the request kept for next run
    spider = osf_spider(tmp_path)
    (root,) = spider.start_listing(node())
    assert spider.on_request_failed(failed(root, 503)) is None and spider._listings == {}
    (kept,) = [json.loads(line) for line in (tmp_path / "failures" / "osf.jsonl").read_text().splitlines()]
    assert kept["callback"] == "parse_listing" and kept["cb_kwargs"] == {"node_id": "y8t6r", "kind": "nodes", "depth": 0}


def test_private_nodes_are_skipped_and_a_listing_from_last_run_restarts_its_node(tmp_path):
    spider = osf_spider(tmp_path)
    private = node("pr1vt")
    private["attributes"]["public"] = False
    assert list(spider.handle_record(private, "x")) == []
    assert spider.crawler.stats.get_value("envision/osf/private_skipped") == 1
    url = f"{TEST_API}/registrations/ab2cd/files/osfstorage/?page%5Bsize%5D=100"
    (restart,) = spider.parse_listing(empty_listing(url), node_id="ab2cd", kind="registrations", depth=0)
    assert restart.url == f"{TEST_API}/registrations/ab2cd/?embed=identifiers&embed=license"
    assert restart.callback == spider.parse_node and restart.dont_filter


# ------------------------------------------------------------------ crawls through the engine
def write_terms(tmp_path, terms: list[str]):
    path = tmp_path / "terms.txt"
    path.write_text("\n".join(terms) + "\n")
    return path


def expected_records(api, terms: list[str] | None = None, token: bool = False) -> dict[str, set[str]]:
    """What a complete crawl must save: every public node or registration a filter of a
    term matches (OSF's semantics, from the local server), with its terms."""
    from localapi.osf import FILTERABLE, matches, state_of, visible
    from envision_spiders.terms import DEFAULT_TERMS_FILE, read_terms

    st = state_of(api.state)
    found: dict[str, set[str]] = {}
    for term in terms or read_terms(DEFAULT_TERMS_FILE):
        for rec in st.records.values():
            if rec["attributes"].get("public") is False or not visible(rec, token):
                continue
            if any(matches(rec, f, FILTERABLE[f], term) for f in FILTER_FIELDS):
                found.setdefault(rec["id"], set()).add(term)
    return found


def served_files(api, guid: str) -> dict[str, str]:
    from localapi.osf import state_of

    return {path: f"sha256:{f.sha256}" for path, f in state_of(api.state).files[guid].items()}


def api_entries(api) -> list[dict]:
    return api.state.entries(r"^/osf/v2/")


@pytest.mark.slow
def test_full_crawl_saves_every_public_node_once_with_files_and_terms(api, tmp_path):
    from localapi.osf import state_of

    api.generate("osf", 70, seed=3)
    result = crawl_in_process(api, "osf", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no OSF_TOKEN" in result.stderr
    expected = expected_records(api)
    records = saved_records(tmp_path, "osf")
    assert set(records) == set(expected)
    st = state_of(api.state)
    truncated = withdrawn = 0
    for sid, rec in records.items():
        assert set(rec["provenance"]["search_terms"]) == expected[sid], sid
        server = st.records[sid]
        assert rec["title"] == server["attributes"]["title"] and rec["extra"]["kind"] == server["type"]
        got = {f["name"]: f["checksum"] for f in rec["files"]}
        if "files_truncated" in rec["extra"]:
            truncated += 1
            assert set(got.items()) < set(served_files(api, sid).items())
        else:
            assert got == served_files(api, sid), sid
        assert all(f["url"].startswith(api.base_url + "/osf/download/") for f in rec["files"])
        if server["attributes"].get("withdrawn"):
            withdrawn += 1
            assert rec["access_type"] == "metadata-only" and rec["files"] == []
        if server["type"] == "registrations" and not server["attributes"].get("withdrawn"):
            assert rec["doi"] == f"10.17605/osf.io/{sid}"
    assert truncated >= 2 and withdrawn >= 1
    reasons = {r for rec in records.values() for r in rec["extra"].get("files_truncated", {}).get("reasons", [])}
    assert reasons == {"folders deeper than 5", "request budget of 10 per node"}
    summary = last_summary(tmp_path, "osf")
    assert summary["new"] == len(expected) and summary["failures"] == 0 and summary["bad_responses"] == 0
    assert summary["terms_searched"] == 47
    log = api_entries(api)
    searches = [e for e in log if re.match(r"^/osf/v2/(nodes|registrations)/\?", e["path_qs"])]
    assert len(searches) >= 47 * 2 and all("page%5Bsize%5D=100" in e["path_qs"] for e in searches)
    assert not any(re.search(r"filter%5B\w+%5D=(&|$)", e["path_qs"]) for e in searches), "never an empty filter"
    assert all(e["auth"] is None for e in log)
    # a node found by several terms and filters is listed once
    roots = [e["path"] for e in log if e["path"].endswith("/files/osfstorage/")]
    assert len(roots) == len(set(roots)) == sum(1 for r in records.values() if not r["extra"].get("withdrawn"))


@pytest.mark.slow
def test_second_run_costs_only_the_searches(api, tmp_path):
    api.generate("osf", 40, seed=4)
    assert crawl_in_process(api, "osf", tmp_path).returncode == 0
    before = saved_mtimes(tmp_path, "osf")
    api.state.reset_counters()
    result = crawl_in_process(api, "osf", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = api_entries(api)
    assert len(log) == 47 * 2, "one search page per query, nothing else"
    assert all("filter%5Bdate_modified%5D%5Bgte%5D=" in e["path_qs"] for e in log)
    after = saved_mtimes(tmp_path, "osf")
    assert after == before
    # changed nodes are found by the date filter, listed again and rewritten
    changed = api.modify("osf", 0.25)
    assert changed > 0
    api.state.reset_counters()
    result = crawl_in_process(api, "osf", tmp_path)
    assert result.returncode == 0
    records = saved_records(tmp_path, "osf")
    revised = {sid for sid, r in records.items() if r["title"].endswith("(revised)")}
    expected_revised = {sid for sid in expected_records(api) if sid in records and
                        api.state.sources["osf"].records[sid]["attributes"]["title"].endswith("(revised)")}
    assert revised == expected_revised and revised
    listed = {e["path"].split("/")[4] for e in api_entries(api) if e["path"].endswith("/files/osfstorage/")}
    assert listed == {sid for sid in revised if not records[sid]["extra"].get("withdrawn")}
    assert last_summary(tmp_path, "osf")["changed"] == len(revised)


@pytest.mark.slow
def test_token_sees_more_per_node_and_never_saves_private_nodes(api, tmp_path):
    from localapi.osf import state_of

    api.generate("osf", 70, seed=3)
    result = crawl_in_process(api, "osf", tmp_path, OSF_TOKEN="test-token-123")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test-token-123" not in result.stderr
    log = api_entries(api)
    assert log and all(e["auth"] == "Bearer" for e in log)
    searches = [e for e in log if "filter%5B" in e["path_qs"]]
    assert all("filter%5Bpublic%5D=true" in e["path_qs"] for e in searches)
    records = saved_records(tmp_path, "osf")
    private = {g for g, r in state_of(api.state).records.items() if r["attributes"].get("public") is False}
    assert private and not private & set(records)
    assert set(records) == set(expected_records(api, token=True))
    # the token's budget of 50 requests per node lists the node with 14 sibling folders completely
    reasons = {r for rec in records.values() for r in rec["extra"].get("files_truncated", {}).get("reasons", [])}
    assert reasons == {"folders deeper than 5"}
    assert not list((tmp_path / "failures").glob("*"))


@pytest.mark.slow
def test_storm_of_429_5xx_and_broken_answers_loses_no_record(api, tmp_path):
    api.generate("osf", 40, seed=5)
    s = api.state
    s.add_fault(path=r"^/osf/v2/nodes/\?", kind="429", count=3, retry_after="1")
    s.add_fault(path=r"^/osf/v2/", kind="status", status=503, count=6)
    s.add_fault(path=r"/files/osfstorage/", kind="status", status=502, count=3)
    s.add_fault(path=r"^/osf/v2/registrations/\?", kind="drop", count=2)
    s.add_fault(path=r"/files/osfstorage/", kind="truncate", count=2)
    s.add_fault(path=r"^/osf/v2/nodes/\?", kind="malformed", count=2)
    s.add_fault(path=r"/files/osfstorage/", kind="malformed", count=1)
    result = crawl_in_process(api, "osf", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(saved_records(tmp_path, "osf")) == set(expected_records(api))
    summary = last_summary(tmp_path, "osf")
    assert summary["failures"] == 0 and summary["rate_limited"] == 3
    assert summary["retries"] >= 6 + 3 + 2 and summary["bad_responses"] >= 3
    assert not (tmp_path / "failures" / "osf.jsonl").exists()
    assert (tmp_path / "state" / "osf.json").exists()


@pytest.mark.slow
def test_failed_listing_keeps_the_node_for_next_run(api, tmp_path):
    from localapi.osf import state_of

    api.generate("osf", 30, seed=6)
    expected = expected_records(api)
    victim = next(sid for sid in sorted(expected) if not state_of(api.state).records[sid]["attributes"].get("withdrawn"))
    kind = state_of(api.state).records[victim]["type"]
    api.state.add_fault(path=rf"/{victim}/files/osfstorage/", kind="status", status=500, count=-1)
    gone = next(sid for sid in sorted(expected, reverse=True) if sid != victim and state_of(api.state).folders[sid].get("")
                and any(len(entries) for fid, entries in state_of(api.state).folders[sid].items() if fid))
    api.state.add_fault(path=rf"/{gone}/files/osfstorage/\w+/", kind="status", status=404, count=-1)
    result = crawl_in_process(api, "osf", tmp_path)
    assert result.returncode == 3, "a run that lost a request says so in its exit status"
    records = saved_records(tmp_path, "osf")
    assert set(records) == set(expected) - {victim}
    assert records[gone]["extra"]["files_listing_errors"][0].startswith("HTTP 404 for ")
    assert "files_truncated" not in records[gone]["extra"]
    failures = [json.loads(line) for line in (tmp_path / "failures" / "osf.jsonl").read_text().splitlines()]
    assert [f["callback"] for f in failures] == ["parse_listing"] and failures[0]["reason"] == "HTTP 500"
    assert failures[0]["cb_kwargs"]["node_id"] == victim
    assert len(api.state.entries(rf"/{victim}/files/osfstorage/")) == 1 + OSFSpider.MAX_RETRIES
    assert not (tmp_path / "state" / "osf.json").exists(), "a run with failures does not move the mark"
    api.state.clear_faults()
    api.state.reset_counters()
    result = crawl_in_process(api, "osf", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    paths = [e["path"] for e in api_entries(api)]
    assert paths.count(f"/osf/v2/{kind}/{victim}/") == 1, "the node is fetched again"
    assert paths.count(f"/osf/v2/{kind}/{victim}/files/osfstorage/") == 1, "and listed once"
    records = saved_records(tmp_path, "osf")
    assert set(records) == set(expected) and records[victim]["files"]
    assert not (tmp_path / "failures" / "osf.jsonl").exists()


@pytest.mark.slow
def test_hourly_budget_pauses_the_spider_and_the_server_never_counts_more(api, tmp_path):
    """At 0.4 % of the real pace OSF's hour lasts 14.4 s: the crawl needs more than 100
    requests, so it must pause (and say so); the server counts every request, retries
    included, and never sees more than 100 in any of its windows; searches go first."""
    scale = 0.004
    period = 3600 * scale
    api.generate("osf", 60, seed=8)
    api.state.set_rate_limit("/osf/v2", [(100, period)])
    api.state.add_fault(path=r"^/osf/v2/nodes/\?", kind="status", status=503, count=4)
    api.state.add_fault(path=r"/files/osfstorage/", kind="status", status=502, count=2)
    terms = ["fundus", "OCT", "glaucoma", "retina", "macular", "cornea", "APTOS", "EyePACS", "retinal OCT",
             "eye imaging data", "slit lamp imaging", "diabetic retinopathy", "ocular imaging", "Spectralis OCT",
             "meibography", "IDRiD", "AMD dataset", "foveal OCT"]
    result = crawl_in_process(api, "osf", tmp_path, POLITENESS_SCALE=scale, SEARCH_TERMS=write_terms(tmp_path, terms))
    assert result.returncode == 0, result.stderr[-3000:]
    log = api_entries(api)
    assert len(log) > 100, "the crawl needs more than one window"
    assert not [e for e in log if e["status"] == 429], "the server never had to refuse a request"
    stamps = [e["time"] for e in log]
    assert max(sum(1 for t in stamps[i:] if t - s < period) for i, s in enumerate(stamps)) <= 100
    assert re.search(r"osf: pacing: waiting \d+ s before the next request to 127\.0\.0\.1: its request budget "
                     r"\(100 per \d+ s\) is spent", result.stderr)
    summary = last_summary(tmp_path, "osf")
    # the spider waited for its budget (how long depends on how fast the first hundred
    # went, which load changes: the window assertion above is the bound)
    assert summary["stats"].get("envision/pacing/waits", 0) >= 1, "the spider waited"
    # archive peeks (file downloads and their redirects) are not API requests: osf.io serves them
    api_requests = summary["requests"] - (len(api.state.entries()) - len(log))
    assert summary["retries"] == 6 and api_requests == len(log), "every attempt went through the budget"
    assert set(saved_records(tmp_path, "osf")) == set(expected_records(api, terms))
    # the budget goes to every search page first, then to the file listings
    kinds = ["search" if "filter%5B" in e["path_qs"] else "listing" for e in log]
    assert kinds.count("search") >= 2 * len(terms) and "search" not in kinds[kinds.index("listing"):]
