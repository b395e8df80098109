"""DataCite: query and paging helpers, field mapping on real responses, the local
server's DataCite semantics, and crawls through the real Scrapy engine."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlparse

import pytest
from scrapy.http import JsonResponse, Request, TextResponse

from envision_spiders.items import DatasetItem
from localapi import datacite as server_dc
from envision_spiders.spiders.datacite import (
    ANONYMOUS_PACE,
    FUNDER_SEARCHES,
    DataCiteSpider,
    IDENTIFIED_PACE,
    build_query,
    funder_search,
    identified_user_agent,
    next_cursor,
    search_params,
)
from envision_spiders.mapping.datacite import (
    abstract_of,
    funding_of,
    format_extensions,
    hosting_repository,
    license_id,
    main_title,
    map_creators,
    map_dates,
    rights_of,
    size_in_bytes,
)
from envision_spiders.storage import record_path

from tests.conftest import crawl_in_process, last_summary, make_spider, saved_mtimes, saved_records

EMAIL = "curator@example.org"


# ------------------------------------------------------------------ pure helpers
def test_build_query_requires_every_word_and_filters_on_updated():
    assert build_query("retinal OCT") == '("retinal" AND "OCT")'
    assert build_query("OCT-A", since="2026-11-01") == '("OCT-A") AND updated:[2026-11-01 TO *]'


def test_search_params_freeze_shapes_skip_facets_and_identify():
    params = dict(search_params('("fundus")', "1", 250, EMAIL))
    assert params == {
        "query": '("fundus")', "resource-type-id": "dataset", "page[cursor]": "1", "page[size]": "250",
        "affiliation": "false", "publisher": "false", "disable-facets": "true", "mailto": EMAIL,
    }
    assert "mailto" not in dict(search_params('("fundus")', "1", 250, None))


def test_next_cursor_reads_only_cursor_links():
    token = "MTQ1NjA3NTAwMjg2MywxMC42MDg0L205LmZpZ3NoYXJlLjUwMDA1Nzc"
    nxt = f"https://api.datacite.org/dois?affiliation=false&page%5Bcursor%5D={token}&page%5Bsize%5D=5&query=x"
    assert next_cursor({"self": "s", "next": nxt}) == token
    # the recorded page-number link, no link, a broken `links`
    assert next_cursor({"next": "https://api.datacite.org/dois?page%5Bnumber%5D=2&page%5Bsize%5D=5"}) is None
    assert next_cursor({"self": "s"}) is None and next_cursor(None) is None and next_cursor({"next": 3}) is None


@pytest.mark.parametrize(
    "rights, expected",
    [
        # 2020 Zenodo shape: a licence URI and an eu-repo access statement
        ([{"rights": "CC BY 4.0", "rightsUri": "http://creativecommons.org/licenses/by/4.0/legalcode"},
          {"rights": "Open Access", "rightsUri": "info:eu-repo/semantics/openAccess"}], ("cc-by-4.0", "open")),
        # 2026 shape: the SPDX identifier wins over the URI
        ([{"rights": "x", "rightsUri": "https://example.org/l", "rightsIdentifier": "CC-BY-NC-4.0",
           "rightsIdentifierScheme": "SPDX"}], ("cc-by-nc-4.0", None)),
        ([{"rightsUri": "info:eu-repo/semantics/embargoedAccess"}], (None, "embargoed")),
        ([{"rights": "info:eu-repo/semantics/restrictedAccess"}], (None, "restricted")),
        ([{"rightsUri": "info:eu-repo/semantics/closedAccess"}, {"rights": "All rights reserved"}], ("All rights reserved", "closed")),
        ([{"rightsUri": "https://data.example.org/dua"}], ("https://data.example.org/dua", None)),
        ([], (None, None)),
        (None, (None, None)),
        (["garbage", {"rights": None}], (None, None)),
    ],
)
def test_rights_give_licence_and_access(rights, expected):
    assert rights_of(rights) == expected


def test_license_ids_of_licence_urls():
    assert license_id("https://creativecommons.org/licenses/by-sa/4.0/legalcode") == "cc-by-sa-4.0"
    assert license_id("http://creativecommons.org/licenses/by/3.0/") == "cc-by-3.0"
    assert license_id("https://creativecommons.org/licenses/by-nc-nd/4/") == "cc-by-nc-nd-4.0"
    assert license_id("https://creativecommons.org/publicdomain/zero/1.0/legalcode") == "cc0-1.0"
    assert license_id("https://spdx.org/licenses/MIT.html") == "mit"
    assert license_id("https://opensource.org/licenses/MIT") is None


def test_related_dois_and_links_from_related_identifiers():
    from envision_spiders.textutil import related_dois_and_links

    dois, links = related_dois_and_links(
        ["https://doi.org/10.1167/IOVS.61.4.1", "10.5281/zenodo.1", "10.5281/ZENODO.1", "https://github.com/x/y",
         "978-83-7683-181-7", "https://doi.org/10.6084/m9.figshare.9", None],
        "10.6084/m9.figshare.9",
        ["https://lab.example/page", "https://github.com/x/y"],
    )
    assert dois == ["10.1167/iovs.61.4.1", "10.5281/zenodo.1"]
    assert links == ["https://lab.example/page", "https://github.com/x/y"]


def test_sizes_with_byte_units_only():
    assert size_in_bytes("3009125660 Bytes") == 3009125660
    assert size_in_bytes("1.5 GB") == 1_500_000_000 and size_in_bytes("2 MiB") == 2 * 1024 * 1024
    assert size_in_bytes("300 kB") == 300_000 and size_in_bytes("1,5 MB") == 1_500_000
    for unknown in ("56311", "12 files", "300 pages", "", None, ["1 GB"]):
        assert size_in_bytes(unknown) is None


def test_formats_become_file_extensions_only_when_they_name_one():
    assert format_extensions(["application/zip", "text/csv; charset=utf-8"]) == [".csv", ".zip"]
    assert format_extensions(["image/tiff"]) in ([".tif"], [".tiff"])  # the standard table's choice
    assert format_extensions(["zip", ".nii.gz", "DICOM", "E2E", "png, jpg"]) == [".dicom", ".e2e", ".jpg", ".nii.gz", ".png", ".zip"]
    assert format_extensions(["application/dicom", "application/x-zip-compressed"]) == [".dcm", ".zip"]
    assert format_extensions(["Darwin Core Archive", "application/octet-stream", "GBIF", "", None, 3]) == []


def test_hosting_repository_from_client_prefix_or_publisher():
    assert hosting_repository("10.5281/zenodo.1", "cern.zenodo", "Zenodo") == "zenodo"
    assert hosting_repository("10.25405/data.ncl.1", "figshare.ncl", "Newcastle University") == "figshare"
    assert hosting_repository("10.6084/m9.figshare.1", None, None) == "figshare"
    assert hosting_repository("10.5061/dryad.8515", "dryad.dryad", "Dryad") == "dryad"
    assert hosting_repository("10.17605/osf.io/vr6nb", "cos.osf", None) == "osf"
    assert hosting_repository("10.1234/x", "other.repo", "Dryad Digital Repository") == "dryad"
    assert hosting_repository("10.15468/dl.msish2", "gbif.gbif", "GBIF") is None


def test_creators_in_both_affiliation_shapes():
    strings_shape = [{"name": "Gómez, Francis", "nameType": "Personal", "givenName": "Francis", "familyName": "Gómez",
                      "affiliation": ["KTH", "SciLifeLab"],
                      "nameIdentifiers": [{"nameIdentifier": "https://orcid.org/0000-0002-2874-287x",
                                           "nameIdentifierScheme": "ORCID"}]}]
    objects_shape = [{**strings_shape[0], "affiliation": [{"name": "KTH", "affiliationIdentifier": "https://ror.org/026vcq606"},
                                                          {"name": "SciLifeLab"}]}]
    expected = [{"name": "Gómez, Francis", "name_type": "Personal", "given_name": "Francis", "family_name": "Gómez",
                 "orcid": "0000-0002-2874-287X", "affiliation": "KTH; SciLifeLab"}]
    assert map_creators(strings_shape) == expected
    assert map_creators(objects_shape) == expected
    assert map_creators([{"name": "Occdownload Gbif.Org", "nameType": "Organizational", "affiliation": []}, {"name": None}, "x"]) == [
        {"name": "Occdownload Gbif.Org", "name_type": "Organizational"}
    ]


def test_main_title_and_abstract_preference():
    assert main_title([{"title": "Short", "titleType": "AlternativeTitle"}, {"title": "Main <i>title</i>"}]) == "Main title"
    assert main_title([{"title": "Only a subtitle", "titleType": "Subtitle"}]) == "Only a subtitle"
    assert main_title([]) == "" and main_title(None) == ""
    descriptions = [{"description": "Methods first", "descriptionType": "Methods"}, {"description": "The abstract", "descriptionType": "Abstract"}]
    assert abstract_of(descriptions) == "The abstract"
    assert abstract_of(descriptions[:1]) == "Methods first" and abstract_of([]) is None


def test_dates_by_type_and_registry_timestamps():
    attributes = {
        "dates": [{"date": "2015-06-14", "dateType": "Created"}, {"date": "2020", "dateType": "Issued"},
                  {"date": "2010/2012", "dateType": "Collected"}, {"date": "2016", "dateType": "Created"}, {"dateType": "Valid"}],
        "registered": "2015-06-15T04:17:38.000Z", "updated": "2024-04-03T15:08:19.000Z",
    }
    assert map_dates(attributes) == {"created": "2015-06-14", "issued": "2020", "collected": "2010/2012",
                                     "registered": "2015-06-15T04:17:38Z", "modified": "2024-04-03T15:08:19Z"}


def test_identified_user_agent():
    ua = "envision-spiders/0.1 (+https://github.com/EyeACT/envision-spiders)"
    assert identified_user_agent(ua, EMAIL) == f"envision-spiders/0.1 (+https://github.com/EyeACT/envision-spiders; mailto:{EMAIL})"
    assert identified_user_agent("bot/1", EMAIL) == f"bot/1 (mailto:{EMAIL})"
    assert identified_user_agent(identified_user_agent(ua, EMAIL), EMAIL) == identified_user_agent(ua, EMAIL)


def test_pace_and_user_agent_follow_contact_email(tmp_path, caplog):
    from envision_spiders.middlewares.ratelimit import RateLimitMiddleware

    spider = make_spider(DataCiteSpider, tmp_path, POLITENESS_SCALE=1.0, CONTACT_EMAIL=EMAIL)
    settings = spider.crawler.settings
    assert spider.pace == IDENTIFIED_PACE and spider.email == EMAIL
    assert settings.getfloat("DOWNLOAD_DELAY") == pytest.approx(0.3)
    assert settings.get("USER_AGENT").endswith(f"; mailto:{EMAIL})")
    assert RateLimitMiddleware(spider.crawler).budget(spider.api_host).windows == ((1000, 300.0),)
    assert parse_qs(urlparse(spider.search_request("fundus").url).query)["mailto"] == [EMAIL]

    with caplog.at_level(logging.WARNING):
        anonymous = make_spider(DataCiteSpider, tmp_path, POLITENESS_SCALE=1.0, CONTACT_EMAIL="not an address")
    assert "is not an e-mail address" in caplog.text
    assert anonymous.pace == ANONYMOUS_PACE and anonymous.email is None
    assert anonymous.crawler.settings.getfloat("DOWNLOAD_DELAY") == pytest.approx(0.6)
    assert "mailto" not in anonymous.crawler.settings.get("USER_AGENT")
    assert RateLimitMiddleware(anonymous.crawler).budget(anonymous.api_host).windows == ((500, 300.0),)
    assert "mailto" not in anonymous.search_request("fundus").url
    # never credentials: reading DataCite needs none
    assert "Authorization" not in anonymous.search_request("fundus").headers


def test_page_size_argument_and_max_per_query(tmp_path):
    assert make_spider(DataCiteSpider, tmp_path).page_size == 250
    assert make_spider(DataCiteSpider, tmp_path, spider_kwargs={"page_size": "7"}).page_size == 7
    assert make_spider(DataCiteSpider, tmp_path, MAX_PER_QUERY=20).page_size == 20
    with pytest.raises(ValueError):
        make_spider(DataCiteSpider, tmp_path, spider_kwargs={"page_size": "1001"})


# ------------------------------------------------------------------ callbacks on real responses (scrapy-mock)
@pytest.mark.parametrize("url", ["https://api.datacite.org/dois/10.6084/m9.figshare.1449060?include=media,client"], ids=["sample"])
def test_datacite_single_doi_2026_shape(response, tmp_path):
    spider = make_spider(DataCiteSpider, tmp_path, DATACITE_API_URL="https://api.datacite.org")
    (item,) = spider.handle_hit(response.json()["data"], "wing images")
    assert isinstance(item, DatasetItem)
    assert item.source == "datacite" and item.source_id == item.doi == "10.6084/m9.figshare.1449060"
    assert record_path("data", "datacite", item.source_id).name == "10.6084_m9.figshare.1449060.json"
    assert item.url == "https://figshare.com/articles/dataset/Drosophila_melanogaster_African_Wings/1449060/4"
    assert item.title == "Drosophila melanogaster wing images from low and high altitude populations in Ethiopia and Zambia."
    assert item.description.startswith("These are raw wing images from Drosophila melanogaster isofemale lines")
    assert "<i>" not in item.description and "<br>" not in item.description
    assert item.description.endswith("so I may need to re-upload all of them.")
    assert item.keywords == ["Evolutionary Biology", "FOS: Biological sciences",
                             "60412 Quantitative Genetics (incl. Disease and Trait Mapping Genetics)"]
    assert item.creators[0] == {"name": "Dworkin, Ian", "name_type": "Personal", "given_name": "Ian",
                                "family_name": "Dworkin", "orcid": "0000-0002-2874-287X"}
    assert [c["name"] for c in item.creators] == ["Dworkin, Ian", "Pool, John", "Pitchers, William", "Pesevski, Maria"]
    assert item.publication_year == 2020
    assert item.dates == {"created": "2015-06-14", "updated": "2020-06-02", "issued": "2020",
                          "registered": "2015-06-15T04:17:38Z", "modified": "2024-04-03T15:08:19Z"}
    assert item.license == "cc-by-4.0"
    assert item.access_type is None  # no access statement; never made up (nor read from schemaVersion)
    assert item.resource_type == "dataset"
    assert item.related_identifiers == [] and item.related_dois == [] and item.external_links == []
    assert item.files == [] and item.file_types == []
    assert item.total_size_bytes == 3009125660
    assert item.extra == {
        "hosting_repository": "figshare", "client_id": "figshare.ars", "provider_id": "otjm", "publisher": "figshare",
        "sizes": ["3009125660 Bytes"], "resource_subtype": "Dataset",
        "rights": ["Creative Commons Attribution 4.0 International"],
    }
    assert item.provenance["search_terms"] == ["wing images"]
    assert item.provenance["source_modified"] == "2024-04-03T15:08:19Z"
    assert item.provenance["api_url"] == "https://api.datacite.org/dois/10.6084/m9.figshare.1449060"
    # found again by another term: remembered, not mapped again
    assert list(spider.handle_hit(response.json()["data"], "drosophila")) == []
    assert spider.terms_for(item.source_id) == ["wing images", "drosophila"]


@pytest.mark.parametrize("url", ["https://api.datacite.org/dois?page%5Bsize%5D=5&page%5Bnumber%5D=1"], ids=["sample"])
def test_datacite_list_page_2020_shape(response, tmp_path):
    spider = make_spider(DataCiteSpider, tmp_path, DATACITE_API_URL="https://api.datacite.org")
    out = list(spider.parse_search(response, term="sample", cursor="1"))
    items = {i.source_id: i for i in out if isinstance(i, DatasetItem)}
    assert len(items) == len(out) == 5, "no request: a page-number next link is never followed"
    stats = spider.crawler.stats
    assert stats.get_value("envision/datacite/next_without_cursor") == 1 and spider.hit_cap_reached
    assert stats.get_value("envision/hits") == 5 and stats.get_value("envision/terms_searched") == 1

    software = items["10.5281/zenodo.3596961"]
    assert software.resource_type == "software" and software.access_type == "open" and software.license is None
    assert software.related_dois == ["10.5281/zenodo.3596960"]
    assert software.external_links == ["https://github.com/ALSETLab/sysml.powersystems.framework/tree/v1.0.1"]
    assert {"identifier": "10.5281/zenodo.3596960", "relation": "IsVersionOf", "scheme": "DOI"} in software.related_identifiers
    assert software.creators == [{"name": "Gómez, Francis", "name_type": "Personal", "given_name": "Francis",
                                  "family_name": "Gómez", "affiliation": "KTH Royal Institute of Technology"}]
    assert software.extra["hosting_repository"] == "zenodo" and software.extra["client_id"] == "cern.zenodo"
    assert software.extra["version"] == "v1.0.1" and software.url == "https://zenodo.org/record/3596961"
    assert software.dates == {"issued": "2020-01-02", "registered": "2020-01-02T22:21:56Z", "modified": "2020-01-02T22:21:56Z"}

    book = items["10.5281/zenodo.3520062"]
    assert book.license == "cc-by-4.0" and book.access_type == "open" and book.resource_type == "text"
    assert book.description.startswith("Studies on promotion of sport in rural areas")  # the Abstract, not "Other"
    assert book.related_dois == ["10.5281/zenodo.3520063"]  # the ISBN is not a DOI
    assert book.extra["resource_subtype"] == "Book" and book.publication_year == 2019

    gbif = items["10.15468/dl.msish2"]
    assert gbif.license == "cc-by-nc-4.0" and gbif.access_type is None  # schemaVersion kernel-4 is not an access type
    assert gbif.resource_type == "dataset" and gbif.keywords == ["GBIF", "biodiversity", "species occurrences"]
    assert gbif.extra["formats"] == ["Darwin Core Archive"] and gbif.extra["sizes"] == ["56311"]
    assert gbif.file_types == [] and gbif.total_size_bytes is None  # prose format, unit-less size
    assert "hosting_repository" not in gbif.extra and gbif.extra["publisher"] == "The Global Biodiversity Information Facility"
    assert len(gbif.related_dois) == len(gbif.related_identifiers) and "10.15468/efb17f" in gbif.related_dois
    assert gbif.creators == [{"name": "Occdownload Gbif.Org", "name_type": "Organizational"}]

    osf = items["10.17605/osf.io/vr6nb"]
    assert osf.extra["hosting_repository"] == "osf" and osf.resource_type == "text"
    assert osf.license is None and osf.access_type is None and osf.url == "https://osf.io/vr6nb/"


def test_malformed_records_are_skipped_and_counted(tmp_path):
    spider = make_spider(DataCiteSpider, tmp_path)
    good = json.loads((server_dc.SAMPLES / "doi_10.6084-m9.figshare.1449060_2026-07.json").read_text())["data"]
    page = {"data": ["a string", {"id": "10.1/x"}, {"id": "not a doi", "attributes": {}},
                     {"id": "10.1234/y", "attributes": {"titles": 5, "creators": "x", "updated": "2020-01-01"}}, good],
            "links": {}}
    request = spider.search_request("t")
    out = list(spider.parse_search(JsonResponse(request.url, body=json.dumps(page).encode(), request=request), term="t", cursor="1"))
    assert [i.source_id for i in out] == ["10.1234/y", "10.6084/m9.figshare.1449060"]
    assert spider.crawler.stats.get_value("envision/bad_record") == 3
    with pytest.raises(TypeError):
        list(spider.parse_search(JsonResponse(request.url, body=b'{"data": {"id": 1}}', request=request), term="t", cursor="1"))


def test_a_cursor_that_does_not_advance_ends_the_term_and_keeps_the_mark(tmp_path):
    spider = make_spider(DataCiteSpider, tmp_path)
    good = json.loads((server_dc.SAMPLES / "doi_10.6084-m9.figshare.1449060_2026-07.json").read_text())["data"]
    page = {"data": [good], "links": {"next": "https://api.datacite.org/dois?page%5Bcursor%5D=abc&page%5Bsize%5D=1"}}
    request = spider.search_request("t", "abc")
    out = list(spider.parse_search(JsonResponse(request.url, body=json.dumps(page).encode(), request=request), term="t", cursor="abc"))
    assert len(out) == 1 and isinstance(out[0], DatasetItem)
    assert spider.crawler.stats.get_value("envision/datacite/cursor_stuck") == 1
    assert spider.hit_cap_reached and not spider.covers_everything()


def test_normalize_keeps_declared_file_types_of_a_record_without_files(tmp_path):
    from pipelines.normalize import NormalizePipeline

    pipeline = NormalizePipeline(make_spider(DataCiteSpider, tmp_path).crawler)
    declared = pipeline.process_item(DatasetItem("datacite", "10.1/a", file_types=[".tiff", ".zip"], total_size_bytes=10))
    assert declared.file_types == [".tiff", ".zip"] and declared.total_size_bytes == 10 and declared.file_count == 0
    listed = pipeline.process_item(DatasetItem("zenodo", "1", file_types=[".tiff"], files=[{"name": "a.png", "size_bytes": 3}]))
    assert listed.file_types == [".png"] and listed.img_count == 1


# ------------------------------------------------------------------ the local server's DataCite
def get(api, path: str) -> tuple[int, dict, dict]:
    url = path if path.startswith("http") else api.base_url + server_dc.PREFIX + path
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_server_cursor_pages_and_next_links_like_datacite(api):
    api.generate("datacite", 60, seed=11)
    query = "query=%28%22fundus%22%29&resource-type-id=dataset&page%5Bsize%5D=4&affiliation=false&publisher=false&mailto=a%40b.org&sort=-created"
    status, headers, body = get(api, "/dois?page%5Bcursor%5D=1&" + query)
    assert status == 200 and headers["X-LupoVersion"] and not any("ratelimit" in h.lower() for h in headers)
    kept = parse_qs(urlparse(body["links"]["next"]).query)
    assert set(kept) == {"query", "resource-type-id", "page[size]", "page[cursor]", "affiliation"}  # publisher, mailto, sort dropped
    seen = [r["id"] for r in body["data"]]
    url = body["links"]["next"]
    while url:
        _, _, page = get(api, url)
        seen += [r["id"] for r in page["data"]]
        url = page["links"].get("next")
    st = server_dc.state_of(api.state)
    expected = sorted((r for r in st.records.values() if server_dc.matches(r, '("fundus")', {"resource-type-id": "dataset"})),
                      key=lambda r: (server_dc.created_ms(r), r["id"]))
    assert seen == [r["id"] for r in expected] and body["meta"]["total"] == len(expected)
    assert "page" not in body["meta"] and body["meta"]["resourceTypes"][0]["id"] == "dataset"
    assert get(api, "/dois?page%5Bcursor%5D=%25%25&page%5Bsize%5D=4")[0] == 400
    assert list(get(api, "/dois?page%5Bcursor%5D=1&disable-facets=true")[2]["meta"]) == ["total", "totalPages"]


def test_server_page_numbers_stop_at_the_window(api):
    api.generate("datacite", 30, seed=12)
    _, _, body = get(api, "/dois?page%5Bnumber%5D=10001&page%5Bsize%5D=1")
    assert body["meta"]["page"] == body["meta"]["totalPages"] == 30
    assert parse_qs(urlparse(body["links"]["next"]).query)["page[number]"] == ["30"], "next points to itself"
    _, _, first = get(api, "/dois?page%5Bnumber%5D=1&page%5Bsize%5D=7")
    assert parse_qs(urlparse(first["links"]["next"]).query)["page[number]"] == ["2"] and len(first["data"]) == 7


def test_server_shape_switches_single_doi_and_bare_429(api):
    api.generate("datacite", 20, seed=13)
    st = server_dc.state_of(api.state)
    doi = next(d for d, r in st.records.items() if any(c.get("affiliation") for c in r["attributes"]["creators"]))
    _, _, body = get(api, f"/dois/{doi.upper()}?affiliation=true&publisher=true&include=client")
    a = body["data"]["attributes"]
    assert isinstance(a["publisher"], dict) and isinstance(next(c for c in a["creators"] if c["affiliation"])["affiliation"][0], dict)
    assert a["xml"] and body["included"][0]["type"] == "clients"
    _, _, plain = get(api, f"/dois/{doi}")
    assert isinstance(plain["data"]["attributes"]["publisher"], str)
    st.objects_by_default = True  # DataCite's announced default from September 2027
    assert isinstance(get(api, f"/dois/{doi}")[2]["data"]["attributes"]["publisher"], dict)
    assert isinstance(get(api, f"/dois/{doi}?publisher=false")[2]["data"]["attributes"]["publisher"], str)
    status, _, missing = get(api, "/dois/10.1234/none")
    assert status == 404 and missing["errors"][0]["status"] == "404"
    api.state.set_rate_limit(server_dc.PREFIX, [(1, 60.0)], retry_header=None)
    get(api, "/dois?page%5Bcursor%5D=1")
    status, headers, _ = get(api, "/dois?page%5Bcursor%5D=1")
    assert status == 429 and not {"Retry-After", "X-RateLimit-Reset", "RateLimit-Reset"} & set(headers)


# ------------------------------------------------------------------ paging through the spider
def fetch(api, request: Request) -> TextResponse:
    with urllib.request.urlopen(request.url, timeout=10) as r:
        return TextResponse(request.url, body=r.read(), encoding="utf-8", request=request)


def expected_for(api, term: str) -> list[str]:
    st = server_dc.state_of(api.state)
    return sorted(d for d, r in st.records.items() if server_dc.matches(r, build_query(term), {"resource-type-id": "dataset"}))


def test_cursor_paging_reaches_the_end_and_rebuilds_every_url(api, tmp_path):
    api.generate("datacite", 200, seed=14)
    term = "fundus"
    expected = expected_for(api, term)
    assert len(expected) > 12
    spider = make_spider(DataCiteSpider, tmp_path, DATACITE_API_URL=api.base_url + server_dc.PREFIX,
                         CONTACT_EMAIL=EMAIL, spider_kwargs={"page_size": "4"})
    pending, requests, found = [spider.search_request(term)], [], []
    while pending:
        request = pending.pop()
        requests.append(request)
        for out in spider.parse_search(fetch(api, request), **request.cb_kwargs):
            if isinstance(out, Request):
                pending.append(out)
            else:
                found.append(out.source_id)
    assert sorted(found) == expected
    assert len(requests) == len(expected) // 4 + 1  # the last page is short, or empty after a full one
    for request in requests:
        params = parse_qs(urlparse(request.url).query)
        assert params["affiliation"] == ["false"] and params["publisher"] == ["false"] and params["mailto"] == [EMAIL]
        assert params["resource-type-id"] == ["dataset"] and "page[number]" not in params
    assert not spider.hit_cap_reached


def test_max_per_query_stops_paging(api, tmp_path):
    api.generate("datacite", 200, seed=14)
    spider = make_spider(DataCiteSpider, tmp_path, DATACITE_API_URL=api.base_url + server_dc.PREFIX, MAX_PER_QUERY=5,
                         spider_kwargs={"page_size": "3"})
    first = spider.search_request("fundus")
    out = list(spider.parse_search(fetch(api, first), **first.cb_kwargs))
    (second,) = [o for o in out if isinstance(o, Request)]
    assert parse_qs(urlparse(second.url).query)["page[size]"] == ["3"]
    assert not [o for o in spider.parse_search(fetch(api, second), **second.cb_kwargs) if isinstance(o, Request)]
    assert not spider.covers_everything()


# ------------------------------------------------------------------ crawls through the engine
def expected_by_funder(api) -> set[str]:
    """DOIs the funder searches return whose funding references are NEI's."""
    st = server_dc.state_of(api.state)
    found = set()
    for name in FUNDER_SEARCHES:
        query, filters = funder_search(name)
        for doi, r in st.records.items():
            if server_dc.matches(r, query or "", {**dict(filters), "resource-type-id": "dataset"}):
                if any(e["nei"] for e in funding_of(doi, r["attributes"])[0]):
                    found.add(doi)
    return found


def expected_records(api) -> dict[str, set[str]]:
    """DOI -> the terms that find it, for every DOI the terms or the funder search find."""
    from envision_spiders.terms import DEFAULT_TERMS_FILE, read_terms

    found: dict[str, set[str]] = {}
    for term in read_terms(DEFAULT_TERMS_FILE):
        for doi in expected_for(api, term):
            found.setdefault(doi, set()).add(term)
    for doi in expected_by_funder(api):
        found.setdefault(doi, set())
    return found


@pytest.mark.slow
def test_full_crawl_saves_every_dataset_once_with_all_its_terms(api, tmp_path):
    api.generate("datacite", 150, seed=3)
    result = crawl_in_process(api, "datacite", tmp_path, "-a", "page_size=7", CONTACT_EMAIL=EMAIL)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = expected_records(api)
    records = saved_records(tmp_path, "datacite")
    assert set(records) == set(expected)
    st = server_dc.state_of(api.state)
    by_funder = expected_by_funder(api)
    assert by_funder - {d for d, terms in expected.items() if terms}, "some DOIs only the funder search reaches"
    assert by_funder & {d for d, terms in expected.items() if terms}, "and some both channels reach"
    for doi, rec in records.items():
        assert set(rec["provenance"]["search_terms"]) == expected[doi], doi
        channels = (["terms"] if expected[doi] else []) + (["funder"] if doi in by_funder else [])
        assert rec["provenance"]["found_by"] == channels, doi
        source = st.records[doi]["attributes"]
        assert rec["title"] == next(t["title"] for t in source["titles"] if not t.get("titleType"))
        assert rec["resource_type"] == "dataset" and rec["files"] == [] and rec["file_count"] == 0
        assert rec["provenance"]["source_modified"] and doi not in rec["related_dois"]
        assert (tmp_path / "metadata" / "datacite" / (doi.replace("/", "_") + ".json")).exists()
    hosts = {r["extra"].get("hosting_repository") for r in records.values()}
    assert {"zenodo", "figshare", "dryad", None} <= hosts
    assert {r["access_type"] for r in records.values()} >= {"open", "restricted"}
    assert any(r["file_types"] for r in records.values()) and any(r["total_size_bytes"] for r in records.values())
    assert any(r["external_links"] and "/storage/datacite/" in " ".join(r["external_links"]) for r in records.values())
    summary = last_summary(tmp_path, "datacite")
    assert summary["new"] == len(expected) and summary["failures"] == 0 and summary["bad_responses"] == 0
    assert summary["terms_searched"] == 47
    terms_found = {d for d, terms in expected.items() if terms}
    assert summary["channels"] == {"terms_only": len(terms_found - by_funder), "funder_only": len(by_funder - terms_found),
                                   "both": len(terms_found & by_funder)}
    assert summary["stats"]["envision/channels/funder/searches"] == len(FUNDER_SEARCHES)
    assert summary["stats"]["envision/datacite/funder_not_nei"] >= 1, "the award wildcard's other funders are left out"
    log = api.state.entries()
    assert log and all(e["path"] == "/datacite/dois" for e in log), "search pages only: hits carry whole records"
    assert sum(1 for e in log if "page%5Bcursor%5D=1&" in e["path_qs"]) == 47 + len(FUNDER_SEARCHES)
    assert sum(1 for e in log if "funder-id=10.13039%2F100000053" in e["path_qs"]) >= 1
    assert all("mailto=curator%40example.org" in e["path_qs"] and "publisher=false" in e["path_qs"] for e in log)
    assert all(e["user_agent"].endswith(f"mailto:{EMAIL})") and e["auth"] is None for e in log)


@pytest.mark.slow
def test_second_run_asks_only_for_changes_and_skips_unchanged_records(api, tmp_path):
    api.generate("datacite", 80, seed=4)
    assert crawl_in_process(api, "datacite", tmp_path).returncode == 0
    before = saved_mtimes(tmp_path, "datacite")
    api.state.reset_counters()
    result = crawl_in_process(api, "datacite", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = api.state.entries()
    assert len(log) == 47 + len(FUNDER_SEARCHES), "one search page per term and per funder search, nothing else"
    assert all("updated%3A%5B" in e["path_qs"] for e in log), "incremental: updated:[since TO *]"
    assert saved_mtimes(tmp_path, "datacite") == before
    # changed records come back and are refreshed; the rest stay untouched
    changed = api.modify("datacite", 0.2)
    assert changed > 0
    api.state.reset_counters()
    assert crawl_in_process(api, "datacite", tmp_path).returncode == 0
    st = server_dc.state_of(api.state)
    revised = {d for d, r in st.records.items() if r["attributes"]["titles"][-1]["title"].endswith("(revised)")}
    records = saved_records(tmp_path, "datacite")
    refreshed = {d for d, r in records.items() if r["title"].endswith("(revised)")}
    assert refreshed == revised & set(expected_records(api)) and refreshed
    after = saved_mtimes(tmp_path, "datacite")
    untouched = {n for n in before if after[n] == before[n]}
    assert untouched == {n for n in before if n[:-5] not in {d.replace("/", "_") for d in refreshed}}
    assert last_summary(tmp_path, "datacite")["changed"] == len(refreshed)


@pytest.mark.slow
def test_storm_of_bare_429_5xx_and_broken_answers_loses_no_record(api, tmp_path):
    api.generate("datacite", 60, seed=5)
    s = api.state
    s.add_fault(path=r"/datacite/dois\?", kind="429", count=3)  # DataCite's 429: no header at all
    s.add_fault(path=r"/datacite/dois\?", kind="status", status=503, count=6)
    s.add_fault(path=r"/datacite/dois\?", kind="status", status=500, count=2)
    s.add_fault(path=r"/datacite/dois\?", kind="drop", count=2)
    s.add_fault(path=r"/datacite/dois\?", kind="truncate", count=2)
    s.add_fault(path=r"/datacite/dois\?", kind="malformed", count=2)
    result = crawl_in_process(api, "datacite", tmp_path, "-a", "page_size=5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(saved_records(tmp_path, "datacite")) == set(expected_records(api))
    summary = last_summary(tmp_path, "datacite")
    assert summary["failures"] == 0 and summary["rate_limited"] == 3
    assert summary["retries"] >= 8 + 2 and summary["bad_responses"] >= 2
    assert not (tmp_path / "failures" / "datacite.jsonl").exists()
    # anonymous: neither mailto nor an identified User-Agent
    assert all("mailto" not in e["path_qs"] and "mailto" not in (e["user_agent"] or "") for e in s.entries())


@pytest.mark.slow
def test_a_failed_cursor_page_is_kept_and_resumed_next_run(api, tmp_path):
    api.generate("datacite", 120, seed=6)
    term = "glaucoma dataset"
    assert len(expected_for(api, term)) > 6
    page_two = r"query=%28%22glaucoma%22\+AND\+%22dataset%22%29&resource-type-id=dataset&page%5Bcursor%5D=[A-Za-z0-9_-]{8,}"
    api.state.add_fault(path=page_two, kind="status", status=500, count=-1)
    result = crawl_in_process(api, "datacite", tmp_path, "-a", "page_size=3", RETRY_TIMES="1")
    assert result.returncode == 3, "a run that lost a request says so in its exit status"
    failures = [json.loads(line) for line in (tmp_path / "failures" / "datacite.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and failures[0]["callback"] == "parse_search" and failures[0]["reason"] == "HTTP 500"
    assert failures[0]["cb_kwargs"]["term"] == term and failures[0]["cb_kwargs"]["cursor"] != "1"
    assert not (tmp_path / "state" / "datacite.json").exists(), "a run with failures does not move the mark"
    api.state.clear_faults()
    api.state.reset_counters()
    # one request at a time, so the order the server sees is the order they were sent
    result = crawl_in_process(api, "datacite", tmp_path, "-a", "page_size=3", "-s", "CONCURRENT_REQUESTS=1")
    assert result.returncode == 0
    failed = urlparse(failures[0]["url"])
    assert api.state.entries()[0]["path_qs"] == f"{failed.path}?{failed.query}", "the failed page goes first"
    assert set(saved_records(tmp_path, "datacite")) == set(expected_records(api))
    assert not (tmp_path / "failures" / "datacite.jsonl").exists() and (tmp_path / "state" / "datacite.json").exists()
