"""The review page in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): the tables hold the expected rows, sorting and filtering change them, a
hostile title stays text, nothing is fetched, and a 50,000-record page renders.
Screenshots are kept under ``tests/artifacts/`` (gitignored)."""

from __future__ import annotations

import json
import os

import pytest

from envision_spiders.report import write_report
from envision_spiders.report.gather import snapshot_path

from tests.conftest import ROOT
from tests.report_data import archive, generate, result, write_duplicates, write_results, write_run, write_saved

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "tests" / "artifacts"
HOSTILE = '<img src=x onerror="window.__xss=1">'

pytestmark = [
    pytest.mark.skipif(not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
                       reason=f"no Chromium binary at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)"),
]

# 30 Zenodo fundus records (in the previous report), 20 Figshare OCT and 10 Dryad
# records (new), one of which has a hostile title and link; 8 borderline NEGATIVE records.
WORDS = ["Glaucoma", "Retina", "Macula", "Cornea", "Fundus", "Choroid", "Vessel", "Optic", "Lens", "Iris"]


def fixture_records() -> list[dict]:
    out = []
    p = 0.999
    for i in range(30):
        out.append(result("zenodo", f"z{i:02d}", label="EYE_IMAGING", p=round(p, 4), size_mb=float(i + 1),
                          title=f"{WORDS[(i * 7) % 10]} fundus photographs {i:02d}", file_names=[f"fundus_{i}.png"],
                          license="cc-by-4.0", doi=f"10.5281/zenodo.{i}"))
        p -= 0.003
    for i in range(20):
        out.append(result("figshare", f"f{i:02d}", label="EYE_IMAGING", p=round(p, 4), size_mb=float(100 + i * 3 % 7),
                          title=f"{WORDS[(i * 3) % 10]} OCT volumes {i:02d}", file_names=["scans.zip"],
                          file_types=[".e2e", ".zip"], archive_count=1, license="CC0-1.0", access="restricted",
                          evidence=[{"supports": "EYE_IMAGING", "reason": "412 .e2e files (Heidelberg OCT)"},
                                    {"supports": "NEGATIVE", "reason": "words in the text: 'volumes'"}],
                          disagreement=i < 3, prob_text=0.2 if i < 3 else round(p, 4)))
        p -= 0.003
    for i in range(10):
        title = HOSTILE if i == 4 else f"{WORDS[i]} slit-lamp images {i:02d}"
        out.append(result("dryad", f"d{i:02d}", label="EYE_IMAGING", p=round(p, 4), size_mb=None, title=title,
                          file_names=["photos.zip"], file_types=[".jpg", ".zip"], archive_count=1,
                          url="javascript:window.__xss=2" if i == 4 else None,
                          description="Anterior segment photographs" if i == 3 else "",
                          evidence=[{"supports": "NEGATIVE", "reason": HOSTILE}] if i == 4 else []))
        p -= 0.003
    out.append(result("datacite", "10.5281/zenodo.0", label="EYE_IMAGING", p=0.9,
                      duplicate_of={"source": "zenodo", "source_id": "z00"}, url="https://doi.org/10.5281/zenodo.0"))
    for i, q in enumerate((0.79, 0.75, 0.7, 0.64, 0.6, 0.5, 0.42, 0.31)):
        out.append(result("osf", f"o{i}", label="NEGATIVE", p=q, title=f"Eye tracking study {i}"))
    out.append(result("osf", "far", label="NEGATIVE", p=0.1))
    return out


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("report")
    data, results = root / "data", root / "results"
    records = fixture_records()
    write_results(results, records)
    write_duplicates(results, [("zenodo:z00", ["zenodo:z00", "datacite:10.5281/zenodo.0"], "doi")])
    write_saved(data, "dryad", "d03", [archive("photos.zip", {".jpg": 300}, ["slit/eye_001.jpg"])])
    write_run(data, "20260708T000000Z", "zenodo", hits=120, new=3)
    previous = snapshot_path(data, "20260701T000000Z")
    previous.parent.mkdir(parents=True)
    previous.write_text(json.dumps({"run_id": "20260701T000000Z", "generated_at": "2026-07-01T06:00:00Z",
                                    "eye_imaging": [f"zenodo:z{i:02d}" for i in range(30)]}))
    path = write_report(data, results, run_id="20260708T000000Z")
    return {"path": path, "records": records}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, page_file):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    errors: list[str] = []
    requests: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # CSP violations too
    pg.on("request", lambda r: requests.append(r.url))
    pg.goto(page_file["path"].as_uri())
    pg.wait_for_selector("html[data-ready='1']", timeout=30_000)
    pg.errors, pg.requests = errors, requests
    yield pg
    ctx.close()
    assert not errors, errors


def keys(pg, table: str) -> list[str]:
    return pg.eval_on_selector_all(f"#{table} tbody tr[data-key]", "rows => rows.map(r => r.dataset.key)")


def column(pg, table: str, selector: str) -> list[str]:
    # :is(): a selector list ("a.title, span.title") stays inside the table's rows
    return pg.eval_on_selector_all(f"#{table} tbody tr[data-key] :is({selector})", "xs => xs.map(x => x.textContent)")


def choose(pg, table: str, name: str, label_start: str) -> None:
    select = pg.locator(f"#{table} select[data-f={name}]")
    options = select.locator("option").all_text_contents()
    select.select_option(label=next(o for o in options if o.startswith(label_start)))


def eye_records(page_file) -> list[dict]:
    return [r for r in page_file["records"] if r["label"] == "EYE_IMAGING" and not r["duplicate_of"]]


# ------------------------------------------------------------------ rows
def test_the_tables_hold_the_expected_rows(page, page_file):
    eye = eye_records(page_file)
    by_p = sorted(eye, key=lambda r: -r["prob_eye_imaging"])
    assert keys(page, "eye") == [f"{r['source']}:{r['source_id']}" for r in by_p[:50]]
    assert page.locator("#eye .status").text_content() == f"Showing 1–50 of {len(eye)} records; 1 duplicates folded"
    borderline = sorted((r for r in page_file["records"] if r["label"] == "NEGATIVE" and 0.3 <= r["prob_eye_imaging"] <= 0.8),
                        key=lambda r: -r["prob_eye_imaging"])
    assert keys(page, "borderline") == [f"osf:{r['source_id']}" for r in borderline]
    # the canonical Zenodo record lists its DataCite duplicate; the figures agree
    first = page.locator('#eye tr[data-key="zenodo:z00"]')
    assert first.locator("a.dup").get_attribute("href") == "https://doi.org/10.5281/zenodo.0"
    assert first.locator("a.title").get_attribute("href") == "https://zenodo.example.org/records/z00"
    assert page.locator(".card.new .card-v").text_content() == "+30"
    # page two holds the rest
    page.locator("#eye .pager button.next").click()
    assert keys(page, "eye") == [f"{r['source']}:{r['source_id']}" for r in by_p[50:]]
    assert page.locator("#eye .pager .pg.cur").text_content() == "2"
    assert all(u.startswith("file://") for u in page.requests), page.requests


def test_sorting_changes_the_rows(page, page_file):
    eye = eye_records(page_file)
    choose(page, "eye", "source", "figshare")
    header = page.locator("#eye th button[data-sort=title]")
    header.click()
    figshare = [r for r in eye if r["source"] == "figshare"]
    titles = sorted(r["title"] for r in figshare)
    assert column(page, "eye", "a.title, span.title") == titles
    assert page.locator("#eye th:has(button[data-sort=title])").get_attribute("aria-sort") == "ascending"
    header.click()
    assert column(page, "eye", "a.title, span.title") == titles[::-1]
    page.locator("#eye select[data-f=source]").select_option("-1")
    page.locator("#eye th button[data-sort=size]").click()
    sized = sorted((r for r in eye if r["size_mb"] is not None), key=lambda r: (-r["size_mb"], eye.index(r)))
    assert keys(page, "eye")[:10] == [f"{r['source']}:{r['source_id']}" for r in sized[:10]]
    page.locator("#eye th button[data-sort=new]").click()
    assert keys(page, "eye")[0].split(":")[0] in ("figshare", "dryad"), "new records first"


def test_filters_narrow_the_rows_and_reset_restores_them(page, page_file):
    eye = eye_records(page_file)
    total = str(len(eye))
    choose(page, "eye", "source", "dryad")
    assert sorted(keys(page, "eye")) == sorted(f"dryad:{r['source_id']}" for r in eye if r["source"] == "dryad")
    page.locator("#eye [data-f=reset]").click()
    choose(page, "eye", "modality", "OCT")
    assert page.locator("#eye").get_attribute("data-matching") == "20"
    assert set(column(page, "eye", ".chip.m-oct")) == {"OCT"}
    page.locator("#eye [data-f=reset]").click()
    page.locator("#eye [data-f=new]").check()
    assert page.locator("#eye").get_attribute("data-matching") == str(sum(r["source"] != "zenodo" for r in eye))
    page.locator("#eye [data-f=new]").uncheck()
    choose(page, "eye", "band", "high")
    assert page.locator("#eye").get_attribute("data-matching") == str(sum(r["prob_eye_imaging"] >= 0.95 for r in eye))
    choose(page, "eye", "access", "restricted")
    assert page.locator("#eye").get_attribute("data-matching") == "0", "filters combine"
    assert page.locator("#eye tbody tr.none").text_content() == "No record matches these filters."
    page.locator("#eye [data-f=reset]").click()
    choose(page, "eye", "access", "restricted")
    assert {k.split(":")[0] for k in keys(page, "eye")} == {"figshare"} and len(keys(page, "eye")) == 20
    page.locator("#eye [data-f=reset]").click()
    choose(page, "eye", "license", "CC0-1.0")
    assert page.locator("#eye").get_attribute("data-matching") == "20"
    page.locator("#eye [data-f=reset]").click()
    page.locator("#eye [data-f=q]").fill("macula oct")
    page.wait_for_function("() => document.getElementById('eye').dataset.matching !== '%s'" % total)
    expected = [r for r in eye if "macula" in r["title"].lower() and "oct" in r["title"].lower()]
    assert sorted(keys(page, "eye")) == sorted(f"{r['source']}:{r['source_id']}" for r in expected)
    page.locator("#eye [data-f=q]").fill("no such words")
    page.wait_for_function("() => document.getElementById('eye').dataset.matching === '0'")
    page.locator("#eye [data-f=reset]").click()
    assert page.locator("#eye").get_attribute("data-matching") == total


def test_a_row_says_why_and_disagreements_filter(page):
    row = page.locator('#eye tr[data-key="figshare:f05"]')
    why = row.locator(".c-why")
    assert "412 .e2e files (Heidelberg OCT)" in why.text_content()
    assert why.locator(".why-eye").count() == 1 and why.locator(".why-neg").count() == 1
    page.locator("#eye [data-f=disagree]").check()
    assert sorted(keys(page, "eye")) == ["figshare:f00", "figshare:f01", "figshare:f02"]
    assert page.locator("#eye .badge.disagree").count() == 3
    page.locator("#eye [data-f=reset]").click()
    assert not page.locator("#eye [data-f=disagree]").is_checked()
    page.locator('#eye tr[data-key="figshare:f01"] button.expand').click()
    details = page.locator("#eye tr.details").text_content()
    assert "Why the model says EYE_IMAGING (text alone: P(eye) 0.20)" in details and "Heidelberg OCT" in details


def test_charts_and_cards_filter_the_table(page):
    page.locator('.bar-row[data-filter=source][data-value=figshare]').click()
    assert page.locator("#eye select[data-f=source] option:checked").text_content().startswith("figshare")
    assert {k.split(":")[0] for k in keys(page, "eye")} == {"figshare"}
    page.locator('.bar-row[data-filter=modality][data-value=fundus]').click()
    assert page.locator("#eye select[data-f=modality] option:checked").text_content().startswith("Fundus")
    page.locator(".card.new").click()
    assert page.locator("#eye [data-f=new]").is_checked()
    assert page.locator("#eye").get_attribute("data-matching") == "30"


def test_a_hostile_title_stays_text(page):
    choose(page, "eye", "source", "dryad")
    row = page.locator('#eye tr[data-key="dryad:d04"]')
    title = row.locator(".title")
    assert title.text_content() == HOSTILE
    assert title.evaluate("e => e.tagName") == "SPAN", "a javascript: URL is not a link"
    assert HOSTILE in row.locator(".c-why").text_content(), "a hostile reason stays text too"
    assert page.locator("#eye tbody img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    row.click()
    details = page.locator("#eye tr.details")
    assert details.count() == 1 and page.evaluate("typeof window.__xss") == "undefined"


def test_row_details_and_the_screenshot(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
    choose(page, "eye", "source", "dryad")
    expand = page.locator('#eye tr[data-key="dryad:d03"] button.expand')
    expand.click()
    details = page.locator("#eye tr.details")
    assert "Anterior segment photographs" in details.text_content()
    assert "slit/eye_001.jpg" in details.text_content()
    assert expand.get_attribute("aria-expanded") == "true"
    expand.click()
    assert page.locator("#eye tr.details").count() == 0
    page.locator('#eye tr[data-key="dryad:d03"] .c-arch').click()  # the whole row opens it too
    assert page.locator("#eye tr.details").count() == 1
    page.locator("#eye").screenshot(path=str(ARTIFACTS / "report-eye-table.png"))


@pytest.mark.slow
def test_a_page_of_50000_records_renders_its_first_page(browser, tmp_path):
    counts = generate(tmp_path, 50_000, saved_share=0.05)
    path = write_report(tmp_path / "data", tmp_path / "results", run_id="bench")
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(path.as_uri(), timeout=120_000)
    pg.wait_for_selector("html[data-ready='1']", timeout=120_000)
    assert pg.locator("#eye tbody tr[data-key]").count() == 50
    assert pg.locator("#borderline tbody tr[data-key]").count() == 50
    eye_rows = counts["EYE_IMAGING"] - counts["duplicates"]
    assert pg.locator("#eye").get_attribute("data-matching") == str(eye_rows)
    assert pg.locator("#borderline").get_attribute("data-matching") == str(counts["borderline"])
    assert pg.evaluate("document.querySelectorAll('tr').length") < 200, "one page of rows in the DOM"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "report-50k.png"))
    pg.close()
    assert not errors, errors
