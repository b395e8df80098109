"""Dryad: query and URL building, field mapping on real responses, HAL paging, the OAuth
token and its renewal, Dryad's rate-limit headers, and crawls through the real Scrapy
engine against the local API server."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import pytest
from scrapy.http import JsonResponse, Request, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from envision_spiders.items import DatasetItem
from envision_spiders.middlewares.ratelimit import RateLimitMiddleware
from envision_spiders.middlewares.credentials import MAX_SENT_AGAIN, RESENDS, SENT_AGAIN, CredentialsMiddleware
from envision_spiders.spiders.dryad import (
    ANONYMOUS_PACE,
    DryadSpider,
    TOKEN_PACE,
    build_query,
    dataset_path,
    embedded,
    since_param,
)
from envision_spiders.mapping.dryad import (
    access_of,
    creators_of,
    license_of,
    map_dataset,
    map_files,
    trailing_id,
)
from envision_spiders.credentials import dryad_token_url, site_root
from envision_spiders.textutil import checksum
from envision_spiders.storage import safe_id

from tests.conftest import crawl_in_process, last_summary, make_spider, sample, saved_mtimes, saved_records

ROOT = "https://datadryad.org/api/v2"
VERSION_RECORD = sample("dryad/dataset_versions_2026-07.json")["_embedded"]["stash:versions"][0]


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch):
    monkeypatch.delenv("DRYAD_CLIENT_ID", raising=False)
    monkeypatch.delenv("DRYAD_CLIENT_SECRET", raising=False)


def spider_for(tmp_path, **settings) -> DryadSpider:
    return make_spider(DryadSpider, tmp_path, DRYAD_API_URL=ROOT, **settings)


def hal_page(url: str, rel: str, items: list, next_href: str | None = None, total: int | None = None) -> JsonResponse:
    links = {"self": {"href": urlparse(url).path}}
    if next_href:
        links["next"] = {"href": next_href}
    body = {"_links": links, "count": len(items), "total": len(items) if total is None else total, "_embedded": {rel: items}}
    return JsonResponse(url, body=json.dumps(body).encode(), request=Request(url))


def hit_2026(**overrides) -> dict:
    """A search hit of today's shape: the version record under the dataset-level fields."""
    hit = {
        "_links": {
            "self": {"href": "/api/v2/datasets/doi%3A10.5061%2Fdryad.6hdr7sr8z"},
            "stash:versions": {"href": "/api/v2/datasets/doi%3A10.5061%2Fdryad.6hdr7sr8z/versions"},
            "stash:version": {"href": "/api/v2/versions/355108"},
            "stash:download": {"href": "/api/v2/datasets/doi%3A10.5061%2Fdryad.6hdr7sr8z/download"},
        },
        "identifier": "doi:10.5061/dryad.6hdr7sr8z",
        "id": 140000,
        "storageSize": 679469,
        **{k: v for k, v in VERSION_RECORD.items() if k != "_links"},
        "license": "https://spdx.org/licenses/CC0-1.0.html",
    }
    hit.update(overrides)
    return hit


# ------------------------------------------------------------------ pure helpers
def test_query_quotes_every_word_so_lucene_operators_stay_inert():
    assert build_query("retinal OCT") == '"retinal" "OCT"'
    assert build_query("OCT-A retina") == '"OCT-A" "retina"'
    assert build_query("CHASE_DB1") == '"CHASE_DB1"'
    assert build_query('a "b"') == '"a" "\\"b\\""'


def test_since_is_sent_in_utc_with_a_z():
    assert since_param(None) is None
    assert since_param(datetime(2026, 11, 1, 10, 24, 53, 123456, tzinfo=timezone.utc)) == "2026-11-01T10:24:53Z"
    from datetime import timedelta

    two_hours_east = timezone(timedelta(hours=2))
    assert since_param(datetime(2026, 11, 1, 1, 0, tzinfo=two_hours_east)) == "2026-10-31T23:00:00Z"


def test_site_root_token_url_and_encoded_dataset_paths(tmp_path, monkeypatch):
    assert site_root("https://datadryad.org/api/v2") == "https://datadryad.org"
    assert site_root("https://datadryad.org/api/v2/") == "https://datadryad.org"
    assert dryad_token_url("http://127.0.0.1:8765/dryad/api/v2") == "http://127.0.0.1:8765/dryad/oauth/token"
    assert dryad_token_url("https://sandbox.datadryad.org/api/v2") == "https://sandbox.datadryad.org/oauth/token"
    assert dataset_path("doi:10.5061/dryad.6hdr7sr8z") == "datasets/doi%3A10.5061%2Fdryad.6hdr7sr8z"
    monkeypatch.setenv("DRYAD_CLIENT_ID", "client")
    monkeypatch.setenv("DRYAD_CLIENT_SECRET", "secret")
    spider = spider_for(tmp_path)
    assert spider.credentials.token_url == "https://datadryad.org/oauth/token"
    proxied = make_spider(DryadSpider, tmp_path, DRYAD_API_URL="https://proxy.example/dryad/api/v2",
                          DRYAD_TOKEN_URL="https://datadryad.org/oauth/token")
    assert proxied.credentials.token_url == "https://datadryad.org/oauth/token"
    assert proxied.site_root == "https://proxy.example/dryad"


def test_checksums_from_digest_and_type():
    sha = "dff4a33ec5fe8ade65c2d157048a9a99b537c316dea6329eb4f23775d2e8f79e"
    assert checksum(sha, "sha-256") == f"sha256:{sha}"
    assert checksum(sha.upper(), "SHA-256") == f"sha256:{sha}"
    assert checksum("a" * 32, "md5") == "md5:" + "a" * 32
    assert checksum("b" * 40, "sha-1") == "sha1:" + "b" * 40
    assert checksum("a" * 32, None) == "md5:" + "a" * 32  # a type-less digest is told by its length
    assert checksum(sha, "") == f"sha256:{sha}"
    assert checksum("a" * 32, "sha-256") is None  # wrong length for its type: no checksum rather than a wrong one
    assert checksum("z" * 32, "md5") is None
    assert checksum(None, "md5") is None and checksum(12, "md5") is None and checksum("", None) is None


def test_spdx_license_urls_become_ids():
    assert license_of("https://spdx.org/licenses/CC0-1.0.html") == "CC0-1.0"
    assert license_of("http://spdx.org/licenses/CC-BY-4.0.json") == "CC-BY-4.0"
    assert license_of("https://spdx.org/licenses/CC-BY-4.0.html#licenseText") == "CC-BY-4.0"
    assert license_of("https://creativecommons.org/publicdomain/zero/1.0/") == "https://creativecommons.org/publicdomain/zero/1.0/"
    assert license_of(None) is None and license_of("  ") is None


def test_authors_keep_names_orcid_and_affiliations_but_not_emails():
    creators = creators_of(VERSION_RECORD["authors"])
    assert len(creators) == 9
    assert creators[0] == {"name": "Chaudhary, Bala", "given_name": "Bala", "family_name": "Chaudhary",
                           "orcid": "0000-0002-7232-1757", "affiliation": "Dartmouth College"}
    assert creators[2] == {"name": "Gonzalez, Jennifer", "given_name": "Jennifer", "family_name": "Gonzalez",
                           "affiliation": "Dartmouth College"}
    assert creators[8]["affiliation"] == "University of Jyväskylä"
    assert "email" not in json.dumps(creators) and "@" not in json.dumps(creators)
    odd = creators_of([{"firstName": "Ann", "orcid": "https://orcid.org/0000-0001-2345-678x",
                        "affiliations": [{"name": "A"}, {"name": "B"}], "affiliation": "A"},
                       {"firstName": "", "lastName": ""}, "garbage", {"lastName": "Solo"}])
    assert odd == [{"name": "Ann", "given_name": "Ann", "orcid": "0000-0001-2345-678X", "affiliation": "A; B"},
                   {"name": "Solo", "family_name": "Solo"}]
    assert creators_of(None) == [] and creators_of("x") == []


def test_access_type_from_curation_status_and_visibility():
    assert access_of({"curationStatus": "Published", "visibility": "public"}) == "open"
    assert access_of({"curationStatus": "Published"}) == "open"  # 2020 answers have no visibility
    assert access_of({"curationStatus": "Embargoed", "visibility": "restricted"}) == "embargoed"
    assert access_of({"curationStatus": "Published", "visibility": "restricted"}) == "restricted"
    assert access_of({}) is None


def test_hal_helpers_refuse_what_is_not_a_page():
    assert embedded({"_embedded": {"stash:files": [1]}}, "stash:files") == [1]
    assert embedded({"count": 0, "total": 0}, "stash:files") == []
    for broken in ([], {"_embedded": {"stash:files": {"a": 1}}}, "text"):
        with pytest.raises(TypeError):
            embedded(broken, "stash:files")
    with pytest.raises(AttributeError):
        embedded({"_embedded": ["x"]}, "stash:files")
    assert trailing_id("/api/v2/versions/355108", "versions") == 355108
    assert trailing_id("https://datadryad.org/api/v2/files/3985003?x=1", "files") == 3985003
    assert trailing_id("/api/v2/datasets/doi%3A10.5061%2Fdryad.x", "versions") is None and trailing_id(None, "files") is None


def test_map_files_skips_deleted_resolves_links_and_falls_back_to_the_file_id():
    resolve = lambda href: "https://datadryad.org" + href  # noqa: E731
    entries = [
        {"_links": {"self": {"href": "/api/v2/files/1"}, "stash:download": {"href": "/api/v2/files/1/download"}},
         "path": "scans/a b.zip", "size": 10, "status": "created", "digest": "a" * 64, "digestType": "sha-256"},
        {"_links": {"self": {"href": "/api/v2/files/2"}}, "path": "old.csv", "size": 5, "status": "deleted",
         "digest": "b" * 64, "digestType": "sha-256"},
        {"_links": {"self": {"href": "/api/v2/files/3"}}, "path": "no_link.csv", "size": -1, "status": "copied",
         "digest": "c" * 32, "digestType": "md5"},
        {"path": None}, "garbage",
    ]
    files = map_files(entries, resolve, lambda file_id: f"https://datadryad.org/api/v2/files/{file_id}/download")
    assert files == [
        {"name": "scans/a b.zip", "size_bytes": 10, "url": "https://datadryad.org/api/v2/files/1/download",
         "file_id": "1", "checksum": "sha256:" + "a" * 64},
        {"name": "no_link.csv", "size_bytes": None, "url": "https://datadryad.org/api/v2/files/3/download",
         "file_id": "3", "checksum": "md5:" + "c" * 32},
    ]


# ------------------------------------------------------------------ callbacks on real responses (scrapy-mock)
@pytest.mark.parametrize("url", [f"{ROOT}/datasets"], ids=["sample"])
def test_dryad_datasets_list_2020_shape(response, tmp_path):
    """The 2020 list has the search envelope: every hit asks for its latest version's files
    (the ``stash:version`` link, not the dataset's id) and the next page is the root-relative
    link resolved against the response."""
    spider = spider_for(tmp_path)
    out = list(spider.parse_search(response, term="sabertooth", page=1))
    files_requests = [r for r in out if r.callback == spider.parse_files]
    pages = [r for r in out if r.callback == spider.parse_search]
    assert len(files_requests) == 10 and len(pages) == 1
    assert files_requests[0].url == f"{ROOT}/versions/93/files?per_page=100"
    assert [r.cb_kwargs["version_id"] for r in files_requests][5:8] == [35333, 35335, 40259]  # ids 98-100 differ
    assert pages[0].url == f"{ROOT}/datasets?page=2"
    assert pages[0].cb_kwargs == {"term": "sabertooth", "page": 2}
    assert spider.crawler.stats.get_value("envision/terms_searched") == 1
    assert spider.crawler.stats.get_value("envision/hits") == 10
    assert all("Authorization" not in r.headers for r in out)

    hits = sample("dryad/datasets_list_2020-06.json")["_embedded"]["stash:datasets"]
    item = spider.record_item(hits[0], [], 93)
    assert isinstance(item, DatasetItem)
    assert item.source == "dryad" and item.source_id == "10.5061/dryad.7rh4625" and item.doi == "10.5061/dryad.7rh4625"
    assert item.url == "https://datadryad.org/dataset/doi:10.5061/dryad.7rh4625"
    assert item.title == "Data from: Distinct predatory behaviors in scimitar- and dirk-toothed sabertooth cats"
    assert item.description.startswith("Over the Cenozoic, large cat-like forms have convergently evolved")
    assert item.creators[1] == {"name": "Lautenschlager, Stephan", "given_name": "Stephan",
                                "family_name": "Lautenschlager", "affiliation": "University of Birmingham"}
    assert item.keywords[:3] == ["cranial biomechanics", "Panthera leo", "paleobiology"] and len(item.keywords) == 15
    assert item.related_identifiers == [{"identifier": "doi:10.1016/j.cub.2018.08.012", "relation": "IsSupplementTo", "scheme": "DOI"}]
    assert item.related_dois == ["10.1016/j.cub.2018.08.012"]
    assert item.license is None and item.access_type == "open" and item.resource_type == "dataset"
    assert item.publication_year == 2019 and item.dates == {"published": "2019-08-14"}
    assert item.total_size_bytes == 999901812
    assert item.extra["storage_size"] == 999901812 and item.extra["dryad_id"] == 93 and item.extra["version_id"] == 93
    assert item.extra["usage_notes"].startswith("Crocuta_bite\nCrocuta_lateral\nCrocuta_pull\nFEA model")
    assert item.extra["locations"] == ["Africa", "North America"]
    assert item.extra["files_need_auth"] is True
    assert item.provenance["api_url"] == f"{ROOT}/datasets/doi%3A10.5061%2Fdryad.7rh4625"
    assert item.provenance["source_modified"] == "2019-08-14T00:00:00Z"  # no lastModificationDate in 2020
    # a URN related work is kept as an identifier, but is neither a DOI nor a web link
    wasps = spider.record_item(hits[1], [], 94)
    assert {"identifier": "GenBank:../bioproject/?term=PRJNA379583", "relation": "IsSupplementedBy", "scheme": "URN"} in wasps.related_identifiers
    assert wasps.related_dois == ["10.1016/j.cub.2017.03.027"] and wasps.external_links == []
    assert [(f["funder_name"], f["award_number"], f["nei"]) for f in wasps.funding] == [
        ("National Science Foundation", "DEB-1354996, DEB-0814544, DEB-0742998, DEB-1555905", False)]


@pytest.mark.parametrize("url", [f"{ROOT}/datasets/doi%3A10.5061%2Fdryad.6hdr7sr8z/versions"], ids=["sample"])
def test_dryad_version_record_2026_shape(response):
    (record,) = embedded(response.json(), "stash:versions")
    fields = map_dataset(record, "https://datadryad.org")
    assert fields["doi"] is None and fields["url"] is None  # a version record names no dataset DOI
    assert fields["title"] == "TraitAM, a global spore trait database for arbuscular mycorrhizal fungi"
    assert fields["description"].startswith("Knowledge regarding organismal traits supports a better understanding")
    assert "<p>" not in fields["description"] and fields["description"].endswith("symbiotic fungi.")
    assert fields["keywords"] == ["Mycorrhiza", "Quantitative traits", "Fungal spores", "Earth and related environmental sciences"]
    assert fields["creators"][1]["orcid"] == "0000-0001-6451-5087"
    assert fields["related_dois"] == ["10.1038/s41597-025-04940-x"]
    assert fields["related_identifiers"] == [{"identifier": "https://doi.org/10.1038/s41597-025-04940-x",
                                              "relation": "primary_article", "scheme": "DOI"}]
    assert fields["external_links"] == []
    assert fields["dates"] == {"published": "2025-03-28", "modified": "2025-03-28"} and fields["publication_year"] == 2025
    assert fields["access_type"] == "open" and fields["license"] is None and fields["total_size_bytes"] is None
    assert fields["extra"] == {
        "version_number": 6,
        "curation_status": "Published",
        "version_changes": "files_changed",
        "field_of_science": "Earth and related environmental sciences",
    }
    assert [(f["funder_name"], f["funder_id"], f["award_number"]) for f in fields["funding"]] == [
        ("U.S. National Science Foundation", "https://ror.org/021nxhr62", "2205650")]
    assert fields["funding_problems"] == []


@pytest.mark.parametrize("url", [f"{ROOT}/versions/355108/files?per_page=100"], ids=["sample"])
def test_dryad_version_files(response, tmp_path):
    spider = spider_for(tmp_path)
    hit = hit_2026()
    spider.first_sighting("10.5061/dryad.6hdr7sr8z", "fungal traits")
    (item,) = spider.parse_files(response, hit=hit, version_id=355108, files=[], deleted=0)
    assert item.source_id == "10.5061/dryad.6hdr7sr8z" and item.license == "CC0-1.0"
    assert len(item.files) == 9
    assert item.files[0] == {
        "name": "DataRecord_1_CalculatedTraitMetrics_18Jun2024.csv",
        "size_bytes": 35689,
        "url": f"{ROOT}/files/3985003/download",
        "file_id": "3985003",
        "checksum": "sha256:dff4a33ec5fe8ade65c2d157048a9a99b537c316dea6329eb4f23775d2e8f79e",
    }
    assert item.files[-1]["name"] == "README.md" and item.files[-1]["url"] == f"{ROOT}/files/3985010/download"
    assert not any("versions/355108/api" in f["url"] for f in item.files)  # resolved, never appended
    assert item.total_size_bytes == 679469 and item.extra["version_id"] == 355108
    assert item.dates == {"published": "2025-03-28", "modified": "2025-03-28"}
    assert item.provenance["search_terms"] == ["fungal traits"]
    assert item.provenance["source_modified"] == "2025-03-28T00:00:00Z"


# ------------------------------------------------------------------ paging and record handling
def test_search_follows_next_links_to_the_end_and_stops_at_max_per_query(tmp_path):
    spider = spider_for(tmp_path)
    first = spider.search_request("retinal OCT")
    q = parse_qs(urlparse(first.url).query)
    assert q == {"q": ['"retinal" "OCT"'], "per_page": ["100"]}  # no modifiedSince on a first run
    page = lambda url, ids, nxt: hal_page(url, "stash:datasets", [hit_2026(identifier=f"doi:10.5061/dryad.{i}") for i in ids], nxt, total=5)  # noqa: E731
    out = list(spider.parse_search(page(first.url, [1, 2], "/api/v2/search?page=2&per_page=100&q=x"), term="retinal OCT", page=1))
    (nxt,) = [r for r in out if r.callback == spider.parse_search]
    assert nxt.url == f"{ROOT}/search?page=2&per_page=100&q=x"
    out = list(spider.parse_search(page(nxt.url, [3, 4, 5], None), term="retinal OCT", page=2))
    assert not [r for r in out if r.callback == spider.parse_search]
    assert spider.crawler.stats.get_value("envision/terms_searched") == 1
    assert spider.crawler.stats.get_value("envision/dryad/paging_ended_early") is None
    # the last page came early: said in the log and counted
    short = list(spider.parse_search(page(first.url, [6], None), term="glaucoma", page=1))
    assert spider.crawler.stats.get_value("envision/dryad/paging_ended_early") == 1 and len(short) == 1
    # a page naming itself as next does not loop
    assert not [r for r in spider.parse_search(page(first.url, [7], first.url), term="x", page=1) if r.callback == spider.parse_search]
    assert spider.crawler.stats.get_value("envision/dryad/self_link_loop") == 1
    capped = spider_for(tmp_path, MAX_PER_QUERY=2)
    assert "per_page=2" in capped.search_request("x").url
    out = list(capped.parse_search(page(first.url, [8, 9], "/api/v2/search?page=2"), term="x", page=1))
    assert not [r for r in out if r.callback == capped.parse_search]


def test_files_pages_accumulate_deleted_files_are_skipped_and_counted(tmp_path):
    spider = spider_for(tmp_path)
    (request,) = spider.handle_hit(hit_2026(), "term")
    assert request.url == f"{ROOT}/versions/355108/files?per_page=100" and request.priority == 1
    entry = lambda i, status="copied": {"_links": {"self": {"href": f"/api/v2/files/{i}"}, "stash:download": {"href": f"/api/v2/files/{i}/download"}},  # noqa: E731
                                        "path": f"f{i}.csv", "size": i, "status": status, "digest": "a" * 64, "digestType": "sha-256"}
    one = hal_page(request.url, "stash:files", [entry(1), entry(2, "deleted")], "/api/v2/versions/355108/files?page=2&per_page=100", total=3)
    (again,) = spider.parse_files(one, **request.cb_kwargs)
    assert again.url == f"{ROOT}/versions/355108/files?page=2&per_page=100"
    two = hal_page(again.url, "stash:files", [entry(3)], None, total=3)
    (item,) = spider.parse_files(two, **again.cb_kwargs)
    assert [f["name"] for f in item.files] == ["f1.csv", "f3.csv"]
    assert item.extra["deleted_files"] == 1
    assert spider.crawler.stats.get_value("envision/dryad/deleted_files_skipped") == 1


def test_stubs_and_hits_without_a_version_link(tmp_path):
    spider = spider_for(tmp_path)
    stub = {"identifier": "doi:10.5061/dryad.gone", "id": 9,
            "message": "Identifier cannot be viewed. Either you lack permission to view it, or it is missing required elements."}
    assert list(spider.handle_hit(stub, "term")) == []
    assert spider.crawler.stats.get_value("envision/dryad/not_viewable") == 1
    assert spider.terms_for("10.5061/dryad.gone") == []
    links = dict(hit_2026()["_links"])
    links.pop("stash:version")
    (item,) = spider.handle_hit(hit_2026(_links=links), "term")
    assert isinstance(item, DatasetItem) and item.files == [] and "version_id" not in item.extra
    assert spider.crawler.stats.get_value("envision/dryad/no_version") == 1
    # found again by another term: the term is remembered, no second fetch
    assert list(spider.handle_hit(hit_2026(_links=links), "other")) == []
    assert spider.terms_for("10.5061/dryad.6hdr7sr8z") == ["term", "other"]
    # a malformed hit breaks only itself
    bad = hal_page(f"{ROOT}/search?q=x", "stash:datasets", [{"identifier": "not a doi"}, {"id": 3}, hit_2026(identifier="doi:10.5061/dryad.ok")])
    out = list(spider.parse_search(bad, term="x", page=1))
    assert len(out) == 1 and spider.crawler.stats.get_value("envision/bad_record") == 2


def test_a_modified_day_is_trusted_only_before_the_day_of_the_last_run(tmp_path):
    """``lastModificationDate`` is a day: a record saved on the day it changed may have
    changed again that day."""
    spider = spider_for(tmp_path)
    state = spider.state
    state._mark = {"last_success": "2026-11-20T10:00:00Z", "terms_sha": spider.terms_sha}
    state.index[safe_id("10.5061/dryad.old")] = {"source_modified": "2026-11-19T00:00:00Z", "search_terms": []}
    state.index[safe_id("10.5061/dryad.today")] = {"source_modified": "2026-11-20T00:00:00Z", "search_terms": []}
    assert spider.is_unchanged("10.5061/dryad.old", "2026-11-19")
    assert not spider.is_unchanged("10.5061/dryad.old", "2026-11-21")
    assert not spider.is_unchanged("10.5061/dryad.today", "2026-11-20")
    assert not spider.is_unchanged("10.5061/dryad.new", "2026-11-01")
    assert not spider.is_unchanged("10.5061/dryad.old", None)
    assert parse_qs(urlparse(spider.search_request("x").url).query)["modifiedSince"] == ["2026-11-19T10:00:00Z"]


# ------------------------------------------------------------------ credentials
class FakeEngine:
    """``download_async`` of the token endpoint: hands out tok1, tok2, ... or refuses."""

    def __init__(self, refuse: bool = False):
        self.calls: list[Request] = []
        self.refuse = refuse

    async def download_async(self, request):
        self.calls.append(request)
        await asyncio.sleep(0.01)  # let concurrent renewals meet at the lock
        if self.refuse:
            return TextResponse(request.url, status=401, body=b'{"error": "invalid_client"}', request=request)
        body = json.dumps({"access_token": f"tok{len(self.calls)}", "token_type": "Bearer", "expires_in": 7200})
        return TextResponse(request.url, status=200, body=body.encode(), request=request)


def with_account(monkeypatch, tmp_path, refuse: bool = False, **settings):
    monkeypatch.setenv("DRYAD_CLIENT_ID", "client")
    monkeypatch.setenv("DRYAD_CLIENT_SECRET", "s3cret")
    spider = spider_for(tmp_path, **settings)
    spider.crawler.engine = FakeEngine(refuse)
    return spider, CredentialsMiddleware.from_crawler(spider.crawler)


async def leave(mw, request):
    """A request as the downloader sends it (after the credentials middleware)."""
    await mw.process_request(request)
    return request


def refused(request) -> TextResponse:
    return TextResponse(request.url, status=401, body=b'{"error": "The access token is invalid"}', request=request)


def refused_failure(request) -> Failure:
    failure = Failure(HttpError(refused(request)))
    failure.request = request
    return failure


def test_pace_and_budgets_follow_the_credentials(tmp_path, monkeypatch):
    anonymous = spider_for(tmp_path)
    assert anonymous.pace == ANONYMOUS_PACE and anonymous.crawler.settings.getfloat("DOWNLOAD_DELAY") == 0
    request = anonymous.search_request("x")
    assert "Authorization" not in request.headers and request.meta["budget"] == "datadryad.org#anonymous"
    assert anonymous.windows_for("datadryad.org#anonymous", 1.0) == ANONYMOUS_PACE.windows
    spider, _ = with_account(monkeypatch, tmp_path, POLITENESS_SCALE=1)
    assert spider.pace == TOKEN_PACE and spider.crawler.settings.getfloat("DOWNLOAD_DELAY") == 0.25
    assert asyncio.run(spider.credentials.headers()) == {"Authorization": "Bearer tok1"}
    request = spider.search_request("x")
    assert request.headers["Authorization"] == b"Bearer tok1" and request.meta["budget"] == "datadryad.org"
    assert spider.windows_for("datadryad.org", 1.0) == TOKEN_PACE.windows
    assert "Authorization" not in spider.api_request("https://elsewhere.example/x", spider.parse_files).headers
    monkeypatch.delenv("DRYAD_CLIENT_SECRET")  # half the credentials: the anonymous pace
    assert spider_for(tmp_path, POLITENESS_SCALE=1).crawler.settings.getfloat("DOWNLOAD_DELAY") == 2.0


def test_token_is_fetched_once_and_renewed_once_for_all_refused_requests(tmp_path, monkeypatch):
    spider, mw = with_account(monkeypatch, tmp_path)
    engine = spider.crawler.engine

    async def scenario():
        in_flight = [await leave(mw, spider.search_request(t)) for t in ("a", "b", "c")]
        (token_request,) = engine.calls
        assert token_request.method == "POST" and token_request.url == "https://datadryad.org/oauth/token"
        assert parse_qs(token_request.body.decode()) == {"grant_type": ["client_credentials"], "client_id": ["client"], "client_secret": ["s3cret"]}
        assert token_request.meta["dont_redirect"] and token_request.meta["credentials"] is False and token_request.errback is None
        assert all(r.headers["Authorization"] == b"Bearer tok1" for r in in_flight)
        again = await asyncio.gather(*(mw.process_response(r, refused(r)) for r in in_flight))
        assert len(engine.calls) == 2  # one renewal for three refused requests
        assert all(isinstance(r, Request) and r.meta[SENT_AGAIN] == 1 and r.dont_filter for r in again)
        # only the refusal that renewed the token counts against its request; the other two
        # were in flight with a token renewed since (nobody's fault)
        assert sorted(r.meta[RESENDS] for r in again) == [0, 0, 1]
        assert [r.cb_kwargs["term"] for r in again] == ["a", "b", "c"] and again[0].priority == 10
        again = [await leave(mw, r) for r in again]
        assert all(r.headers["Authorization"] == b"Bearer tok2" for r in again)
        # the new token refused at once: the credentials do not open the API; on without a token
        anonymous = await mw.process_response(again[0], refused(again[0]))
        anonymous = await leave(mw, anonymous)
        assert "Authorization" not in anonymous.headers and anonymous.meta[SENT_AGAIN] == 2
        assert anonymous.meta["budget"] == "datadryad.org#anonymous" and not spider.files_readable()
        # refused once more: it reaches the spider, which keeps it for the next run; no third token
        final = refused(anonymous)
        assert await mw.process_response(anonymous, final) is final
        spider.on_request_failed(refused_failure(anonymous))
        assert len(engine.calls) == 2

    asyncio.run(scenario())
    stats = spider.crawler.stats
    assert stats.get_value("envision/dryad/token_fetched") == 2 and stats.get_value("envision/dryad/token_renewed") == 1
    assert stats.get_value("envision/dryad/token_refused") == 1
    failures = (tmp_path / "failures" / "dryad.jsonl").read_text()
    assert "HTTP 401" in failures and "tok1" not in failures and "tok2" not in failures and "s3cret" not in failures


def test_a_request_in_flight_at_each_expiry_is_sent_again_but_not_for_ever(tmp_path, monkeypatch):
    """Tokens that expire while a request is in flight, again and again (a busy crawl
    with short-lived tokens: CI once failed a request met by three expiries in a row),
    do not make it a failure and fetch no token for it; a bound stops it going round."""
    spider, mw = with_account(monkeypatch, tmp_path)

    async def expire_meanwhile():
        # another request, refused with the current token, renews it while ours is in flight
        other = await leave(mw, spider.search_request("other"))
        ok = TextResponse(other.url, status=200, body=b"{}", request=other)
        assert await mw.process_response(other, ok) is ok  # the token worked: it expired later
        assert isinstance(await mw.process_response(other, refused(other)), Request)

    async def scenario():
        request = await leave(mw, spider.search_request("a"))
        for n in range(1, MAX_SENT_AGAIN + 1):
            await expire_meanwhile()
            fetched = len(spider.crawler.engine.calls)
            request = await mw.process_response(request, refused(request))
            assert isinstance(request, Request) and request.meta[RESENDS] == 0 and request.meta[SENT_AGAIN] == n
            assert len(spider.crawler.engine.calls) == fetched, "no token fetched for a refusal of an old one"
            request = await leave(mw, request)
        await expire_meanwhile()
        final = refused(request)
        assert await mw.process_response(request, final) is final

    asyncio.run(scenario())


def test_a_renewed_token_that_worked_and_then_expired_is_renewed_again(tmp_path, monkeypatch):
    """The fix that once lived only in the spider, now in the one credentials object the
    crawl, the peeks and the downloads share: a token the API accepted and later
    refused has expired too (it is not the account that is refused)."""
    spider, mw = with_account(monkeypatch, tmp_path)

    async def scenario():
        first = await leave(mw, spider.search_request("a"))
        renewed = await leave(mw, await mw.process_response(first, refused(first)))
        assert renewed.headers["Authorization"] == b"Bearer tok2"
        worked = await leave(mw, spider.search_request("b"))
        assert await mw.process_response(worked, TextResponse(worked.url, status=200, body=b"{}", request=worked))
        expired = await mw.process_response(renewed, refused(renewed))  # tok2 expires in turn
        return await leave(mw, expired)

    again = asyncio.run(scenario())
    assert again.headers["Authorization"] == b"Bearer tok3" and spider.credentials.authenticated
    assert spider.crawler.stats.get_value("envision/dryad/token_refused") is None


def test_refused_credentials_mean_going_on_without_a_token(tmp_path, monkeypatch, caplog):
    spider, mw = with_account(monkeypatch, tmp_path, refuse=True)

    async def scenario():
        anonymous = await leave(mw, spider.search_request("a"))
        assert "Authorization" not in anonymous.headers and anonymous.meta["budget"] == "datadryad.org#anonymous"
        # refused without a token, and none to be had: it reaches the spider, no further token request
        final = refused(anonymous)
        assert await mw.process_response(anonymous, final) is final
        await leave(mw, spider.search_request("b"))

    asyncio.run(scenario())
    assert len(spider.crawler.engine.calls) == 1
    assert not spider.credentials.authenticated
    assert "s3cret" not in caplog.text and "invalid_client" in caplog.text
    item = spider.record_item(hit_2026(), [], 355108)
    assert item.extra["files_need_auth"] is True


def test_the_rate_limit_middleware_reads_dryads_429_and_exhausted_budget(tmp_path):
    """Dryad (rack-attack) sends RateLimit-Limit/-Remaining/-Reset with the epoch second
    the fixed window ends, and no Retry-After."""
    crawler = get_crawler(DryadSpider, {"POLITENESS_SCALE": 0, "DRYAD_API_URL": ROOT, "DATA_DIR": str(tmp_path)})
    crawler.spider = DryadSpider.from_crawler(crawler)
    mw = RateLimitMiddleware.from_crawler(crawler)
    request = Request(f"{ROOT}/search?q=x", meta={"budget": "datadryad.org#anonymous"})
    reset = int(time.time()) + 30
    headers = {"RateLimit-Limit": "30", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)}
    throttled = TextResponse(request.url, status=429, headers=headers, body=b"Request rejected due to rate limits.\n", request=request)
    retry = mw.process_response(request, throttled)
    assert isinstance(retry, Request) and retry.url == request.url and retry.meta["ratelimit_retries"] == 1
    budget = mw.budget("datadryad.org#anonymous")
    assert 25 < budget.wait(time.monotonic()) <= 31
    assert crawler.stats.get_value("envision/ratelimit/429") == 1
    # an answer that spends the last request of the window pauses before a 429 happens
    other = Request(f"{ROOT}/versions/1/files", meta={"budget": "datadryad.org"})
    last = TextResponse(other.url, status=200, headers={**headers, "RateLimit-Reset": str(int(time.time()) + 12)}, body=b"{}", request=other)
    assert mw.process_response(other, last) is last
    assert 8 < mw.budget("datadryad.org").wait(time.monotonic()) <= 13
    fine = TextResponse(other.url, status=200, headers={"RateLimit-Remaining": "7", "RateLimit-Reset": str(reset)}, body=b"{}", request=other)
    mw.process_response(Request(f"{ROOT}/x", meta={"budget": "other"}), fine)
    assert mw.budget("other").wait(time.monotonic()) == 0


def test_requests_leave_with_the_token_current_when_they_are_sent(tmp_path, monkeypatch):
    spider, mw = with_account(monkeypatch, tmp_path)
    creds = spider.credentials
    asyncio.run(creds.headers())  # tok1
    waiting = spider.search_request("x")
    elsewhere = spider.api_request("https://storage.example/f", spider.parse_files)
    elsewhere.headers["Authorization"] = "Bearer tok1"  # never leaves the API's origin
    assert waiting.headers["Authorization"] == b"Bearer tok1"

    async def scenario():
        async with creds.lock:  # a renewal in progress: the request waits for its end
            sending = asyncio.ensure_future(mw.process_request(waiting))
            await asyncio.sleep(0.01)
            assert not sending.done()
            await creds._fetch()  # tok2, as a renewal does under the lock
        await sending
        assert waiting.headers["Authorization"] == b"Bearer tok2"
        await mw.process_request(elsewhere)

    asyncio.run(scenario())
    assert "Authorization" not in elsewhere.headers


def test_local_server_speaks_dryads_paging_auth_and_throttling(api):
    """The local Dryad: UrlPager links, encoded DOIs, Doorkeeper tokens, rack-attack 429s."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlencode

    def get(path, **headers):
        try:
            with urllib.request.urlopen(urllib.request.Request(api.base_url + path, headers=headers)) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    add_crowd(api, 45)
    status, _, body = get("/dryad/api/v2/search?q=%22meibography%22&per_page=20&page=2")
    page = json.loads(body)
    assert status == 200 and page["count"] == 20 and page["total"] == 45
    assert page["_links"]["next"]["href"] == "/dryad/api/v2/search?page=3&per_page=20&q=%22meibography%22"
    assert page["_links"]["prev"]["href"] == "/dryad/api/v2/search?page=1&per_page=20&q=%22meibography%22"
    assert page["_links"]["first"]["href"] == "/dryad/api/v2/search?per_page=20&q=%22meibography%22"
    hit = page["_embedded"]["stash:datasets"][0]
    assert hit["_links"]["self"]["href"] == "/dryad/api/v2/datasets/doi%3A10.5061%2Fdryad.crowd0020"
    assert get("/dryad/api/v2/datasets/doi:10.5061%2Fdryad.crowd0020")[0] == 200  # the colon may come unencoded
    assert get("/dryad/api/v2/search?q=x&modifiedSince=2020-01-01")[0] == 400
    assert json.loads(get("/dryad/api/v2/search?q=%22meibography%22+-%22subject%22")[2])["total"] == 0
    assert get("/dryad/api/v2/files/3985020/download")[0] == 401  # no anonymous downloads
    form = urlencode({"grant_type": "client_credentials", "client_id": "envision-test", "client_secret": "nope"}).encode()
    try:
        urllib.request.urlopen(urllib.request.Request(api.base_url + "/dryad/oauth/token", data=form))
        raise AssertionError("a wrong secret got a token")
    except urllib.error.HTTPError as e:
        assert e.code == 401 and json.loads(e.read())["error"] == "invalid_client"
    form = form.replace(b"nope", b"envision-test-secret")
    token = json.loads(urllib.request.urlopen(urllib.request.Request(api.base_url + "/dryad/oauth/token", data=form)).read())
    assert token["token_type"] == "Bearer" and token["access_token"]
    assert get("/dryad/api/v2/versions/355000", Authorization="Bearer " + token["access_token"])[0] == 200
    assert get("/dryad/api/v2/versions/355000", Authorization="Bearer forged")[0] == 401
    # with a token a download is sent to storage (urllib follows the redirect)
    status, _, body = get("/dryad/api/v2/files/3985020/download", Authorization="Bearer " + token["access_token"])
    assert (status, body) == (200, b"20\n") and api.state.count(r"^/storage/dryad/") == 1
    st = dryad_state(api)
    st.limits = {"anonymous": (2, 60.0)}
    statuses = [get("/dryad/api/v2/versions/355000") for _ in range(3)]
    assert [s for s, _, _ in statuses] == [200, 200, 429]
    _, headers, body = statuses[2]
    assert body == b"Request rejected due to rate limits.\n" and "Retry-After" not in headers
    assert headers["RateLimit-Limit"] == "2" and headers["RateLimit-Remaining"] == "0"
    assert time.time() < int(headers["RateLimit-Reset"]) <= time.time() + 61  # the epoch second the window ends


# ------------------------------------------------------------------ crawls through the engine
def dryad_state(api):
    from localapi.dryad import state_of

    return state_of(api.state)


def expected_records(api) -> dict[str, set[str]]:
    """Every viewable dataset some term matches, with its terms."""
    from localapi.dryad import matches
    from envision_spiders.terms import DEFAULT_TERMS_FILE, read_terms

    st = dryad_state(api)
    found: dict[str, set[str]] = {}
    for term in read_terms(DEFAULT_TERMS_FILE):
        for ds in st.datasets.values():
            if not ds["stub"] and matches(st, ds, build_query(term)):
                found.setdefault(ds["identifier"][4:], set()).add(term)
    return found


def add_crowd(api, n: int, word: str = "meibography") -> None:
    """``n`` small datasets one term finds, so its hits span several pages of 100."""
    from localapi import ServedFile
    from localapi.dryad import add_dataset

    when = datetime(2021, 5, 4, tzinfo=timezone.utc)
    for i in range(n):
        add_dataset(api.state, f"doi:10.5061/dryad.crowd{i:04d}", dataset_id=900_000 + i, title=f"{word.title()} series {i}",
                    abstract=f"<p>{word} of the eyelid, subject {i}.</p>", keywords=[word], published=when, updated=when,
                    files={"table.csv": ServedFile.from_bytes(f"{i}\n".encode())})


def latest_files(api, doi: str) -> list[dict]:
    st = dryad_state(api)
    v = st.versions[st.datasets["doi:" + doi]["latest"]]
    return [st.files[f] for f in v["file_ids"] if st.files[f]["status"] != "deleted"]


@pytest.mark.slow
def test_full_crawl_then_incremental_runs_that_cost_only_searches(api, tmp_path):
    api.generate("dryad", 70, seed=11)
    add_crowd(api, 130)
    result = crawl_in_process(api, "dryad", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = expected_records(api)
    records = saved_records(tmp_path, "dryad")
    assert set(records) == set(expected)
    st = dryad_state(api)
    base = api.base_url + "/dryad/api/v2"
    for doi, rec in records.items():
        assert set(rec["provenance"]["search_terms"]) == expected[doi], doi
        files = latest_files(api, doi)
        assert [(f["name"], f["size_bytes"], f["url"], f["file_id"], f["checksum"]) for f in rec["files"]] == [
            (f["path"], f["size"], f"{base}/files/{f['id']}/download", str(f["id"]),
             ("sha256:" if f["digest_type"] == "sha-256" else "md5:") + f["digest"])
            for f in files
        ], doi
        assert rec["file_count"] == len(files) and rec["extra"]["files_need_auth"] is True
        assert rec["extra"]["version_id"] == st.datasets["doi:" + doi]["latest"]
        assert rec["url"] == f"{api.base_url}/dryad/dataset/doi:{doi}"
    assert any(r["file_count"] > 100 for r in records.values()), "a listing of several pages was read to the end"
    assert any(r["extra"].get("deleted_files") for r in records.values())
    assert not any("draft_v" in n for r in records.values() for n in r["file_names"]), "older versions' files stay out"
    assert any("https://example.org/protocols/" in link for r in records.values() for link in r["external_links"])
    summary = last_summary(tmp_path, "dryad")
    assert summary["new"] == len(expected) and summary["failures"] == 0 and summary["bad_responses"] == 0
    assert summary["terms_searched"] == 47
    searches = api.state.entries(r"/dryad/api/v2/search\?")
    assert searches and all("per_page=100" in e["path_qs"] and "modifiedSince" not in e["path_qs"] for e in searches)
    assert any("page=2" in e["path_qs"] for e in searches), "next links were followed"
    assert all(e["auth"] is None for e in api.state.entries())
    assert result.stderr.count("crawling without an OAuth token") == 1
    listings = api.state.count(r"/versions/\d+/files$")
    assert listings == len(expected) + sum(1 for r in records.values() if r["file_count"] > 100)

    # second run: only the searches, with modifiedSince; nothing on disk is rewritten
    before = saved_mtimes(tmp_path, "dryad")
    api.state.reset_counters()
    result = crawl_in_process(api, "dryad", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = api.state.entries()
    assert log and all(e["path"] == "/dryad/api/v2/search" for e in log), "only search pages"
    assert all(re.search(r"modifiedSince=\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A\d\dZ", e["path_qs"]) for e in log)
    assert saved_mtimes(tmp_path, "dryad") == before

    # new versions published: exactly those are fetched again, from their new version
    latest = {doi: st.datasets["doi:" + doi]["latest"] for doi in expected}
    assert api.modify("dryad", 0.15) > 0
    changed = {doi for doi in expected if st.datasets["doi:" + doi]["latest"] != latest[doi]}
    api.state.reset_counters()
    result = crawl_in_process(api, "dryad", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    records = saved_records(tmp_path, "dryad")
    revised = {doi for doi, r in records.items() if r["title"].endswith("(revised)")}
    assert revised and revised == changed
    assert api.state.count(r"/versions/\d+/files$") == len(revised) + sum(1 for d in revised if records[d]["file_count"] > 100)
    for doi in revised:
        assert records[doi]["extra"]["version_id"] == st.datasets["doi:" + doi]["latest"]
        assert any(n.startswith("revision_") for n in records[doi]["file_names"])
    assert last_summary(tmp_path, "dryad")["changed"] == len(revised)


@pytest.mark.slow
def test_oauth_crawl_renews_expiring_tokens_and_never_writes_them(api, tmp_path):
    api.generate("dryad", 40, seed=12)
    st = dryad_state(api)
    st.token_uses = 30  # tokens "expire" every 30 requests (the crawl makes about 100)
    result = crawl_in_process(api, "dryad", tmp_path, DRYAD_CLIENT_ID="envision-test", DRYAD_CLIENT_SECRET="envision-test-secret")
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(saved_records(tmp_path, "dryad")) == set(expected_records(api))
    summary = last_summary(tmp_path, "dryad")
    assert summary["failures"] == 0
    posts = api.state.entries(r"/dryad/oauth/token$")
    assert len(posts) == len(st.issued) >= 3
    # one renewal per refused token, however many requests in flight it failed
    assert set(st.refused) == set(st.issued[:-1])
    api_calls = api.state.entries(r"/dryad/api/v2/")
    assert api_calls and all(e["auth"] == "Bearer" for e in api_calls)
    assert not any(r["extra"].get("files_need_auth") for r in saved_records(tmp_path, "dryad").values())
    assert "crawling without an OAuth token" not in result.stderr
    assert "refuses even a new OAuth token" not in result.stderr  # a renewed token that worked, then expired
    assert "HTTP 401" not in result.stderr  # archive peeks refused with an expired token are sent again
    written = result.stdout + result.stderr + "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert "envision-test-secret" not in written
    assert not any(token in written for token in st.issued)


@pytest.mark.slow
def test_refused_credentials_crawl_goes_on_anonymously(api, tmp_path):
    api.generate("dryad", 25, seed=13)
    result = crawl_in_process(api, "dryad", tmp_path, DRYAD_CLIENT_ID="envision-test", DRYAD_CLIENT_SECRET="wrong-secret-7f3a")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no OAuth token from" in result.stderr and "invalid_client" in result.stderr
    assert "wrong-secret-7f3a" not in result.stderr + result.stdout
    assert len(api.state.entries(r"/dryad/oauth/token$")) == 1
    records = saved_records(tmp_path, "dryad")
    assert set(records) == set(expected_records(api))
    assert all(r["extra"]["files_need_auth"] for r in records.values())
    assert all(e["auth"] is None for e in api.state.entries(r"/dryad/api/v2/"))


@pytest.mark.slow
def test_storm_of_dryad_429s_5xx_and_broken_answers_loses_no_record(api, tmp_path):
    api.generate("dryad", 40, seed=14)
    st = dryad_state(api)
    st.limits = {"anonymous": (15, 1.0)}  # rack-attack: 15 a second, epoch reset, no Retry-After
    s = api.state
    s.add_fault(path=r"/dryad/api/v2/search\?", kind="status", status=503, count=6)
    s.add_fault(path=r"/dryad/api/v2/versions/", kind="status", status=502, count=4)
    s.add_fault(path=r"/dryad/api/v2/search\?", kind="drop", count=2)
    s.add_fault(path=r"/dryad/api/v2/search\?", kind="truncate", count=2)
    s.add_fault(path=r"/dryad/api/v2/versions/", kind="malformed", count=2)
    result = crawl_in_process(api, "dryad", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(saved_records(tmp_path, "dryad")) == set(expected_records(api))
    summary = last_summary(tmp_path, "dryad")
    assert summary["failures"] == 0 and summary["rate_limited"] > 0
    assert summary["bad_responses"] >= 2 and summary["retries"] >= 10
    assert not (tmp_path / "failures" / "dryad.jsonl").exists()


@pytest.mark.slow
def test_a_failed_listing_is_kept_with_its_terms_and_fetched_first_next_run(api, tmp_path):
    api.generate("dryad", 30, seed=15)
    expected = expected_records(api)
    doi = max(expected, key=lambda d: len(expected[d]))
    vid = dryad_state(api).datasets["doi:" + doi]["latest"]
    api.state.add_fault(path=rf"/versions/{vid}/files", kind="status", status=500, count=-1)
    result = crawl_in_process(api, "dryad", tmp_path, RETRY_TIMES="1")
    assert result.returncode == 3, "a run that lost a request says so in its exit status"
    failures = [json.loads(line) for line in (tmp_path / "failures" / "dryad.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and failures[0]["callback"] == "parse_files" and failures[0]["reason"] == "HTTP 500"
    # the terms that had found the record when its listing failed for good travel with it
    kept = set(failures[0]["cb_kwargs"]["terms"])
    assert kept and kept <= expected[doi]
    assert doi not in saved_records(tmp_path, "dryad")
    assert not (tmp_path / "state" / "dryad.json").exists(), "a run with failures does not move the mark"
    api.state.clear_faults()
    api.state.reset_counters()
    # one request at a time, so the order the server sees is the order they were sent
    result = crawl_in_process(api, "dryad", tmp_path, "-s", "CONCURRENT_REQUESTS=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert api.state.entries()[0]["path"] == f"/dryad/api/v2/versions/{vid}/files"
    records = saved_records(tmp_path, "dryad")
    assert set(records) == set(expected) and set(records[doi]["provenance"]["search_terms"]) >= kept
    assert not (tmp_path / "failures" / "dryad.jsonl").exists() and (tmp_path / "state" / "dryad.json").exists()
