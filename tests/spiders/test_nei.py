"""NIH RePORTER (spider ``nei``): request bodies, fiscal-year splitting, paging, the merge
of fiscal years into one record per core project, field mapping on the real samples,
and crawls through the real Scrapy engine against the local API server."""

from __future__ import annotations

import copy
import json
import re
import urllib.error
import urllib.request
from datetime import date, datetime, timezone

import pytest
from scrapy.http import JsonResponse, Request

from envision_spiders.items import DatasetItem
from localapi.nei import matches, pascal_to_snake, state_of
from envision_spiders.spiders.nei import (
    FIRST_FISCAL_YEAR,
    INCLUDE_FIELDS,
    NeiSpider,
    fiscal_year_of,
    fiscal_years_to_search,
    search_body,
    split_years,
)
from envision_spiders.mapping.nei import Project, split_terms
from envision_spiders.storage import atomic_write_json, record_path
from pipelines.persist import accumulate

from tests.conftest import crawl_in_process, last_summary, make_spider, replay, sample, saved_mtimes, saved_records

API = "https://api.reporter.nih.gov/v2"
SEARCH = f"{API}/projects/search"


def row(**kw) -> dict:
    """The real sample row with some fields changed."""
    r = copy.deepcopy(sample("nei/project_record_fy2022.json"))
    r.update(kw)
    return r


def answer(request, rows, total=None):
    body = {"meta": {"total": len(rows) if total is None else total, "offset": 0, "limit": 500}, "results": rows}
    return JsonResponse(request.url, body=json.dumps(body).encode(), request=request)


# ------------------------------------------------------------------ pure helpers
def test_fiscal_years_follow_the_federal_calendar():
    assert fiscal_year_of(date(2026, 9, 30)) == 2026 and fiscal_year_of(date(2026, 10, 1)) == 2027
    full = fiscal_years_to_search(None, date(2026, 11, 25))
    assert full[0] == 2027 and full[-1] == FIRST_FISCAL_YEAR and full == sorted(full, reverse=True)
    assert len(full) == 2027 - FIRST_FISCAL_YEAR + 1
    # incremental: the fiscal year before the one of `since`, to the current one
    since = datetime(2026, 11, 17, tzinfo=timezone.utc)
    assert fiscal_years_to_search(since, date(2026, 11, 25)) == [2027, 2026]
    assert fiscal_years_to_search(datetime(2026, 3, 1, tzinfo=timezone.utc), date(2026, 11, 25)) == [2027, 2026, 2025]


def test_split_years_halves_down_to_one_year():
    assert split_years([2027, 2026, 2025]) == [[2027], [2026, 2025]]
    assert split_years([2027]) is None and split_years([]) is None


def test_search_body_asks_nei_with_every_word_and_pascal_case_fields():
    body = search_body("retinal OCT", [2026, 2027], offset=500)
    c = body["criteria"]
    assert c["agencies"] == ["NEI"] and c["is_agency_admin"] is True and c["is_agency_funding"] is True
    assert c["fiscal_years"] == [2026, 2027]
    assert c["advanced_text_search"] == {"operator": "and", "search_field": "projecttitle,abstracttext,terms", "search_text": "retinal OCT"}
    assert body["offset"] == 500 and body["limit"] == 500
    assert body["sort_field"] == "appl_id"
    # RePORTER silently ignores snake_case include_fields: every name must be PascalCase
    fields = body["include_fields"]
    assert fields and all(re.fullmatch(r"(?:[A-Z][a-z]+)+", f) for f in fields), fields
    # ... and name a field of a real row (no typo that would drop data)
    sample_keys = set(sample("nei/project_record_fy2022.json"))
    documented = {"abstract_text", "terms", "date_added", "is_active", "project_detail_url", "contact_pi_name", "opportunity_number"}
    for f in fields:
        assert pascal_to_snake(f) in sample_keys | documented, f
    assert {"ApplId", "CoreProjectNum", "FiscalYear", "AbstractText", "Terms", "PrincipalInvestigators"} <= set(INCLUDE_FIELDS)


def test_terms_are_split_from_both_shapes():
    assert split_terms("<Address><Adult><Affect>") == ["Address", "Adult", "Affect"]
    assert split_terms("2019-nCoV;Affinity; Air ;affinity;") == ["2019-nCoV", "Affinity", "Air"]
    assert split_terms("<Optical Coherence Tomography><Eye>") == ["Optical Coherence Tomography", "Eye"]
    assert split_terms("") == [] and split_terms(None) == [] and split_terms(3) == []


def test_project_keeps_the_latest_year_whatever_the_order():
    years = [2019, 2022, 2020, 2021]
    p = Project(best=row(fiscal_year=2018, appl_id=1, award_amount=10))
    for i, fy in enumerate(years, start=2):
        p.add(row(fiscal_year=fy, appl_id=i, award_amount=100 + fy))
    p.add(row(fiscal_year=2018, appl_id=1, award_amount=10))  # the same row found by another term
    assert p.best["fiscal_year"] == 2022 and p.best["appl_id"] == 3
    assert p.fiscal_years == {2018, 2019, 2020, 2021, 2022}
    # a supplement and a subproject of the latest year never replace the parent row
    p.add(row(fiscal_year=2022, appl_id=99, award_type="3", award_amount=5))
    p.add(row(fiscal_year=2022, appl_id=98, subproject_id="5001", award_amount=7))
    assert p.best["appl_id"] == 3
    # yearly amounts: parent + supplement, never the subproject, never a row twice
    assert p.award_amounts() == {"2018": 10, "2019": 2119, "2020": 2120, "2021": 2121, "2022": 2122 + 5}


def test_accumulate_grows_lists_and_mappings():
    assert accumulate([2019, 2020], [2021, 2020]) == [2019, 2020, 2021]
    assert accumulate({"2019": 1, "2020": 2}, {"2020": 3}) == {"2019": 1, "2020": 3}
    assert accumulate([{"a": 1}], [{"b": 2}]) == [{"b": 2}, {"a": 1}]
    assert accumulate([1], None) == [1] and accumulate("x", "y") == "y"


# ------------------------------------------------------------------ field mapping on the real samples
def emitted(spider) -> list:
    return list(spider.emit_projects())


def test_nei_record_from_the_real_sample(tmp_path):
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    spider.collect(sample("nei/project_record_fy2022.json"), "biosensor")
    (item,) = emitted(spider)
    assert isinstance(item, DatasetItem)
    assert item.source == "nei" and item.source_id == "U01AA029316"
    assert item.url == "https://reporter.nih.gov/project-details/10320986"
    assert item.title == "Touchscreen-compatible, real-time electrochemical sensing of SARS-CoV-2"
    # no abstract in this row: the public health relevance text stands in, hard wraps kept as lines
    assert item.description.startswith("PROJECT NARRATIVE\nThere is an urgent need for new and rapidly translatable")
    assert item.resource_type == "grant" and item.access_type == "metadata-only"
    assert item.doi is None and item.files == [] and item.license is None
    assert item.creators == [
        {"name": "Pun, Suzie H.", "name_type": "Personal", "role": "contact PI",
         "affiliation": "UNIVERSITY OF WASHINGTON", "nih_profile_id": 8012149},
        {"name": "Smith, Joshua R", "name_type": "Personal", "role": "PI",
         "affiliation": "UNIVERSITY OF WASHINGTON", "nih_profile_id": 11273504},
    ]
    assert item.keywords[:3] == ["2019-nCoV", "Affinity", "Air"] and "viral transmission" in item.keywords
    assert len(item.keywords) == len({k.lower() for k in item.keywords}) == 87
    assert item.publication_year == 2020
    assert item.dates == {
        "project_start": "2020-12-21T12:12:00Z", "project_end": "2023-11-30T12:11:00Z",
        "budget_start": "2021-12-01T12:12:00Z", "budget_end": "2023-11-30T12:11:00Z",
        "award_notice": "2021-12-01T12:12:00Z",
    }
    x = item.extra
    assert x["fiscal_years"] == [2022] and x["award_amounts"] == {"2022": 455938}
    assert x["appl_id"] == 10320986 and x["project_num"] == "4U01AA029316-02"
    assert x["award_amount"] == 455938 and x["direct_cost_amt"] == 293208 and x["indirect_cost_amt"] == 162730
    assert x["agency_ic_admin"] == "NIAAA" and x["agency_ic_fundings"] == [{"fy": 2022, "ic": "OD", "total_cost": 455938}]
    assert "nei_role" not in x  # neither administered nor funded by NEI
    assert x["organization"] == {"name": "UNIVERSITY OF WASHINGTON", "city": "SEATTLE", "state": "WA",
                                 "country": "UNITED STATES", "department": "ENGINEERING (ALL TYPES)", "uei": "HD1WMN6945W6"}
    assert x["program_officers"] == ["Changhai Cui"] and x["opportunity_number"] == "RFA-OD-20-014"
    assert x["activity_code"] == "U01" and x["award_type"] == "4N" and x["funding_mechanism"] == "Non-SBIR/STTR"
    assert "public_health_relevance" not in x  # it is the description already
    assert item.provenance["search_terms"] == ["biosensor"]
    assert item.provenance["source_modified"] == "2021-12-01T12:12:00Z"  # no date_added: the award notice


def test_nei_fy2023_dates_without_zone_empty_strings_and_plain_text(tmp_path):
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    r = row(
        fiscal_year=2023, appl_id=10700001, project_start_date="2023-08-01T00:00:00", project_end_date="2028-07-31T00:00:00",
        budget_start="", budget_end=None, award_notice_date="2023-07-20T00:00:00", date_added="2023-08-05T00:00:00",
        abstract_text="Eyes with IOP<21 mmHg and n<b groups (R&D); see https://example.org/study.", terms="",
        pref_terms=None, agency_ic_admin={"code": "EY", "abbreviation": "NEI", "name": "National Eye Institute"},
        principal_investigators=[{"full_name": "Mononym", "is_contact_pi": True}, "broken"],
        program_officers=None, organization=None, full_foa=None, opportunity_number="PA-20-185", is_active=True,
    )
    spider.collect(r, "IOP")
    (item,) = emitted(spider)
    assert item.description == "Eyes with IOP<21 mmHg and n<b groups (R&D); see https://example.org/study."
    assert item.external_links == ["https://example.org/study"]
    assert item.keywords == []
    assert item.dates == {"project_start": "2023-08-01T00:00:00Z", "project_end": "2028-07-31T00:00:00Z",
                          "award_notice": "2023-07-20T00:00:00Z", "added": "2023-08-05T00:00:00Z"}
    assert item.creators == [{"name": "Mononym", "name_type": "Personal", "role": "contact PI"}]
    assert item.extra["nei_role"] == "administering" and item.extra["opportunity_number"] == "PA-20-185"
    assert item.extra["is_active"] is True and "organization" not in item.extra
    assert item.extra["public_health_relevance"].startswith("PROJECT NARRATIVE")
    assert item.provenance["source_modified"] == "2023-08-05T00:00:00Z"


def test_nei_cofunded_project_says_so(tmp_path):
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    spider.collect(row(agency_ic_admin={"code": "EB", "abbreviation": "NIBIB"},
                       agency_ic_fundings=[{"fy": 2022, "abbreviation": "NIBIB"}, {"fy": 2022, "code": "EY", "abbreviation": "NEI"}]), "t")
    (item,) = emitted(spider)
    assert item.extra["nei_role"] == "co-funding" and item.extra["agency_ic_admin"] == "NIBIB"


def test_nei_envelope_without_rows_ends_paging(vcr_settings, tmp_path):
    body = {"criteria": {"agencies": ["NEI"]}, "offset": 0, "limit": 1}
    response = replay(vcr_settings, SEARCH, method="POST", body=body)
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    # the real envelope: total 155, results emptied: nothing to collect, no page after an empty one
    assert list(spider.parse_search(response, term="eye", years=[2023], offset=0)) == []
    assert spider.projects == {}
    assert spider.crawler.stats.get_value("envision/terms_searched") == 1


# ------------------------------------------------------------------ paging, splitting, dedup in the spider
def test_pages_follow_offsets_until_the_total(tmp_path):
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    req = spider.search_request("fundus", [2026])
    assert req.method == "POST" and req.url == SEARCH and req.headers["Content-Type"] == b"application/json"
    assert json.loads(req.body)["include_fields"] == list(INCLUDE_FIELDS)
    rows = [row(appl_id=i, core_project_num=f"R01EY{i:06d}", fiscal_year=2026) for i in range(500)]
    out = list(spider.parse_search(answer(req, rows, total=1200), **req.cb_kwargs))
    (nxt,) = [o for o in out if isinstance(o, Request)]
    assert json.loads(nxt.body)["offset"] == 500 and nxt.cb_kwargs["offset"] == 500
    out = list(spider.parse_search(answer(nxt, rows[:200], total=1200), **nxt.cb_kwargs | {"offset": 1000}))
    assert not [o for o in out if isinstance(o, Request)], "1000 + 200 = total: the last page"
    assert len(spider.projects) == 500


def test_max_per_query_stops_paging(tmp_path):
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API, MAX_PER_QUERY=400)
    req = spider.search_request("fundus", [2026])
    rows = [row(appl_id=i, core_project_num=f"R01EY{i:06d}") for i in range(500)]
    assert not [o for o in spider.parse_search(answer(req, rows, total=5000), **req.cb_kwargs) if isinstance(o, Request)]
    assert not spider.covers_everything()


def test_result_window_is_split_by_fiscal_year_until_every_query_fits(tmp_path):
    """Walk the splitting with an API that answers totals for about 40,000 rows."""
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    per_year = {fy: (fy * 37) % 1900 for fy in range(FIRST_FISCAL_YEAR, 2028)}
    assert sum(per_year.values()) > 3 * spider.result_window
    years = fiscal_years_to_search(None, date(2026, 11, 25))
    pending, leaves = [spider.search_request("retina", years)], []
    while pending:
        req = pending.pop()
        crit = json.loads(req.body)["criteria"]
        total = sum(per_year[fy] for fy in crit["fiscal_years"])
        out = list(spider.parse_search(answer(req, [], total=total), **req.cb_kwargs))
        if total > spider.result_window:
            assert len(out) == 2 and all(json.loads(r.body)["offset"] == 0 for r in out)
            pending.extend(out)
        else:
            assert out == []
            leaves.append(crit["fiscal_years"])
    covered = sorted(fy for leaf in leaves for fy in leaf)
    assert covered == sorted(years), "the leaves partition the fiscal years"
    assert all(sum(per_year[fy] for fy in leaf) <= spider.result_window for leaf in leaves)
    assert spider.covers_everything()


def test_a_single_year_past_the_window_is_logged_and_keeps_the_mark(tmp_path):
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    req = spider.search_request("retina", [2026])
    rows = [row(appl_id=i, core_project_num=f"R01EY{i:06d}") for i in range(500)]
    out = list(spider.parse_search(answer(req, rows, total=spider.result_window + 1), **req.cb_kwargs))
    assert any(isinstance(o, Request) for o in out)
    assert not spider.covers_everything()
    assert spider.crawler.stats.get_value("envision/nei/window_overflow") == 1


def test_one_record_per_core_project_with_the_latest_year_whatever_the_order(tmp_path):
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    req = spider.search_request("oct", [2019])

    def grant(fy, appl_id, title):
        return row(fiscal_year=fy, appl_id=appl_id, core_project_num="R01EY012345", project_title=title,
                   award_amount=1000 + fy, date_added=f"{fy - 1}-11-01T00:00:00")

    # searches answer the older years last, and a second term finds an old year again
    list(spider.parse_search(answer(req, [grant(2021, 21, "Year 3"), row(core_project_num="R21EY000001")]), term="oct", years=[2021], offset=0))
    list(spider.parse_search(answer(req, [grant(2019, 19, "Year 1")]), term="oct", years=[2019], offset=0))
    list(spider.parse_search(answer(req, [grant(2020, 20, "Year 2")]), term="retina", years=[2020], offset=0))
    items = {i.source_id: i for i in emitted(spider) if isinstance(i, DatasetItem)}
    assert set(items) == {"R01EY012345", "R21EY000001"}
    item = items["R01EY012345"]
    assert item.title == "Year 3" and item.extra["appl_id"] == 21 and item.extra["award_amount"] == 3021
    assert item.extra["fiscal_years"] == [2019, 2020, 2021]
    assert item.url.endswith("/project-details/21")
    assert sorted(item.provenance["search_terms"]) == ["oct", "retina"]
    assert spider.crawler.stats.get_value("envision/records/unique") == 2
    assert emitted(spider) == [], "emitted once"


def test_unchanged_projects_only_add_their_terms(tmp_path):
    saved = {"source": "nei", "source_id": "U01AA029316", "title": "kept as it is",
             "provenance": {"source_modified": "2021-12-01T12:12:00Z", "search_terms": ["x"]}}
    atomic_write_json(record_path(tmp_path, "nei", "U01AA029316"), saved)
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    spider.collect(sample("nei/project_record_fy2022.json"), "biosensor")
    assert emitted(spider) == []
    on_disk = json.loads(record_path(tmp_path, "nei", "U01AA029316").read_text())
    assert on_disk["title"] == "kept as it is" and on_disk["provenance"]["search_terms"] == ["x", "biosensor"]


def test_malformed_rows_and_pages(tmp_path):
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API)
    req = spider.search_request("oct", [2026])
    nameless = row(core_project_num=None, project_num=None, appl_id=None)
    out = list(spider.parse_search(answer(req, [nameless, "junk", row()]), **req.cb_kwargs))
    assert out == [] and list(spider.projects) == ["U01AA029316"]
    assert spider.crawler.stats.get_value("envision/bad_record") == 2
    bad = JsonResponse(SEARCH, body=b'{"meta": {"total": 3}, "results": {"a": 1}}', request=req)
    with pytest.raises(TypeError):
        list(spider.parse_search(bad, **req.cb_kwargs))
    with pytest.raises(KeyError):
        list(spider.parse_search(JsonResponse(SEARCH, body=b'{"results": []}', request=req), **req.cb_kwargs))


# ------------------------------------------------------------------ the local server's RePORTER
def post(api, body, method="POST"):
    url = api.api_settings()["NEI_API_URL"] + "/projects/search"
    data = None if method == "GET" else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as f:
            return f.status, json.loads(f.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_local_reporter_behaves_like_the_real_one(api):
    api.generate("nei", 40, seed=11)
    rows = list(state_of(api.state).rows.values())
    assert any(r["date_added"].endswith("Z") for r in rows) and any(not r["date_added"].endswith("Z") for r in rows)
    body = search_body("eye", fiscal_years_to_search(None, date.today()), limit=5)
    status, data = post(api, body)
    assert status == 200 and data["meta"]["total"] > 5 and len(data["results"]) == 5
    assert data["meta"]["properties"]["URL"].startswith("https:/reporter.nih.gov/")  # malformed, as the real one
    assert set(data["results"][0]) <= {pascal_to_snake(f) for f in INCLUDE_FIELDS}
    # snake_case include_fields are silently ignored: whole rows come back
    status, whole = post(api, {**body, "include_fields": ["project_title", "appl_id"]})
    assert status == 200 and len(whole["results"][0]) > len(data["results"][0]) and "cong_dist" in whole["results"][0]
    # the result window, the page size, bad bodies, GET
    assert post(api, {**body, "offset": 15_000})[0] == 400
    assert post(api, {**body, "limit": 501})[0] == 400
    assert post(api, b"{not json")[0] == 400
    assert post(api, None, method="GET")[0] == 405
    # criteria: NEI only (administering or co-funding), fiscal years, every word required
    crit = body["criteria"]
    for r in rows:
        assert matches(r, crit) == (
            ("NEI" in {r["agency_ic_admin"]["abbreviation"], *(f["abbreviation"] for f in r["agency_ic_fundings"])})
            and r["fiscal_year"] in crit["fiscal_years"]
            and "eye" in re.findall(r"[a-z0-9]+", " ".join(str(r.get(k) or "") for k in ("project_title", "abstract_text", "terms")).lower())
        )
    assert not matches(rows[0], {**crit, "fiscal_years": [1990]})
    assert not matches(rows[0], {**crit, "advanced_text_search": {**crit["advanced_text_search"], "search_text": "eye zzzunknown"}})


# ------------------------------------------------------------------ crawls through the engine
def expected_projects(api, years=None) -> dict[str, dict]:
    """What a complete crawl must save: core project -> its best row, the years and terms found."""
    from envision_spiders.mapping.nei import row_rank
    from envision_spiders.terms import DEFAULT_TERMS_FILE, read_terms

    years = years or fiscal_years_to_search(None, date.today())
    out: dict[str, dict] = {}
    for term in read_terms(DEFAULT_TERMS_FILE):
        crit = search_body(term, years)["criteria"]
        for r in state_of(api.state).rows.values():
            if matches(r, crit):
                e = out.setdefault(r["core_project_num"], {"best": r, "years": set(), "terms": set()})
                e["years"].add(r["fiscal_year"])
                e["terms"].add(term)
                if row_rank(r) > row_rank(e["best"]):
                    e["best"] = r
    return out


def check_saved(records: dict, expected: dict) -> None:
    assert set(records) == set(expected)
    for core, e in expected.items():
        rec = records[core]
        best = e["best"]
        assert rec["title"] == best["project_title"], core
        assert rec["extra"]["appl_id"] == best["appl_id"], core
        assert rec["extra"]["fiscal_years"] == sorted(e["years"]), core
        assert set(rec["provenance"]["search_terms"]) == e["terms"], core
        assert rec["resource_type"] == "grant" and rec["url"] == f"https://reporter.nih.gov/project-details/{best['appl_id']}"


@pytest.mark.slow
def test_full_crawl_then_incremental_runs(api, tmp_path):
    api.generate("nei", 70, seed=12)
    result = crawl_in_process(api, "nei", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = expected_projects(api)
    assert len(expected) > 20
    check_saved(saved_records(tmp_path, "nei"), expected)
    assert any(len(e["years"]) > 1 for e in expected.values())
    assert not any(core[3:5] == "AG" for core in expected), "projects without NEI money are not asked for"
    summary = last_summary(tmp_path, "nei")
    assert summary["new"] == len(expected) and summary["failures"] == 0 and summary["terms_searched"] == 47
    log = api.state.entries()
    assert log and all(e["method"] == "POST" and e["path"].endswith("/projects/search") for e in log)
    assert len(log) == 47, "every term fits one page of one query"

    # second run: only the searches, only recent fiscal years, nothing rewritten
    before = saved_mtimes(tmp_path, "nei")
    api.state.reset_counters()
    state_of(api.state).searches.clear()
    assert crawl_in_process(api, "nei", tmp_path).returncode == 0
    fy = fiscal_year_of(date.today())
    assert all(c["fiscal_years"] == [fy - 1, fy] for c in state_of(api.state).searches)
    assert saved_mtimes(tmp_path, "nei") == before

    # a new fiscal year of some grants: those records show it, keeping their older years
    changed = api.modify("nei", 0.1)
    assert changed > 0
    assert crawl_in_process(api, "nei", tmp_path).returncode == 0
    records = saved_records(tmp_path, "nei")
    check_saved(records, expected_projects(api))
    continued = [r for r in records.values() if r["title"].endswith("(continued)")]
    assert continued and all(len(r["extra"]["fiscal_years"]) >= 2 for r in continued)
    after = saved_mtimes(tmp_path, "nei")
    assert sum(after[n] != before[n] for n in before) == len(continued)


@pytest.mark.slow
def test_crawl_splits_fiscal_years_and_survives_a_fault_storm(api, tmp_path):
    api.generate("nei", 50, seed=13)
    s = api.state
    s.add_fault(path=r"/reporter/v2/projects/search", kind="429", count=3, retry_after="1")
    s.add_fault(path=r"/reporter/v2/projects/search", kind="status", status=503, count=4)
    s.add_fault(path=r"/reporter/v2/projects/search", kind="malformed", count=2)
    s.add_fault(path=r"/reporter/v2/projects/search", kind="truncate", count=2)
    s.add_fault(path=r"/reporter/v2/projects/search", kind="drop", count=2)
    # a result window that every single fiscal year fits but many terms pass forces
    # fiscal-year splitting against the real filters
    from envision_spiders.terms import DEFAULT_TERMS_FILE, read_terms

    years = fiscal_years_to_search(None, date.today())
    rows = list(state_of(s).rows.values())
    totals, per_year = [], []
    for term in read_terms(DEFAULT_TERMS_FILE):
        crit = search_body(term, years)["criteria"]
        found = [r["fiscal_year"] for r in rows if matches(r, crit)]
        totals.append(len(found))
        per_year += [found.count(fy) for fy in set(found)]
    window = max(per_year)
    assert sum(t > window for t in totals) >= 5
    result = crawl_in_process(api, "nei", tmp_path, NEI_RESULT_WINDOW=str(window))
    assert result.returncode == 0, result.stderr[-3000:]
    check_saved(saved_records(tmp_path, "nei"), expected_projects(api))
    summary = last_summary(tmp_path, "nei")
    assert summary["failures"] == 0 and summary["rate_limited"] == 3 and summary["bad_responses"] >= 2
    assert summary["stats"]["envision/nei/window_splits"] > 0 and "envision/nei/window_overflow" not in summary["stats"]
    single = [c for c in state_of(api.state).searches if len(c["fiscal_years"]) == 1]
    assert single, "some queries went down to one fiscal year"


def test_the_older_setting_names_are_still_read(tmp_path):
    """NEI_API_URL / NEI_RESULT_WINDOW are the names; NIH_REPORTER_* still work, from the
    environment (settings.py) or given with -s (a higher priority than the default)."""
    import subprocess
    import sys

    from scrapy.settings import Settings

    from envision_spiders.spiders.base import setting_with_aliases

    from tests.conftest import ROOT

    settings = Settings({"NEI_API_URL": "https://new.example/v2", "NIH_REPORTER_API_URL": "https://new.example/v2"})
    assert setting_with_aliases(settings, "NEI_API_URL", "NIH_REPORTER_API_URL") == "https://new.example/v2"
    settings.set("NIH_REPORTER_API_URL", "https://old.example/v2", priority="cmdline")
    assert setting_with_aliases(settings, "NEI_API_URL", "NIH_REPORTER_API_URL") == "https://old.example/v2"
    settings.set("NEI_API_URL", "https://new.example/v3", priority="cmdline")
    assert setting_with_aliases(settings, "NEI_API_URL", "NIH_REPORTER_API_URL") == "https://new.example/v3"
    spider = make_spider(NeiSpider, tmp_path, NEI_API_URL=API, NEI_RESULT_WINDOW=123)
    assert spider.api_root == API and spider.result_window == 123
    code = "from scrapy.utils.project import get_project_settings as g; s = g(); print(s['NEI_API_URL'], s['NEI_RESULT_WINDOW'])"
    env = {"PATH": "/usr/bin:/bin", "NIH_REPORTER_API_URL": "http://127.0.0.1:9/old", "NIH_REPORTER_RESULT_WINDOW": "77"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["http://127.0.0.1:9/old", "77"]
