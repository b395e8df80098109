"""Curators decide on the review page in a real headless Chromium (as in
test_report_browser.py): the "To review" queue, accept / reject with a reason, the choices
kept in the browser, the exported decisions file, and `scrapy review import` recording
exactly those decisions, after which the page shows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envision_spiders.report import write_report
from envision_spiders.review import Ledger, Review, decision_from

from tests.conftest import ROOT
from tests.commands.test_report_browser import ARTIFACTS, CHROMIUM, browser, keys  # noqa: F401 (browser: the fixture)
from tests.commands.test_review_commands import setup_records

pytestmark = [
    pytest.mark.skipif(not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
                       reason=f"no Chromium binary at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)"),
]


def open_page(ctx, path, errors):
    pg = ctx.new_page()
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # CSP violations too
    pg.on("request", lambda r: errors.append(f"request {r.url}") if not r.url.startswith(("file:", "blob:")) else None)
    pg.goto(path.as_uri())
    pg.wait_for_selector("html[data-ready='1']", timeout=30_000)
    return pg


def decide(pg, table: str, key: str, decision: str, reason: str = "", code: str = "") -> None:
    row = pg.locator(f'#{table} tr[data-key="{key}"]')
    row.locator(f"button.rv-do-{decision}").click()
    form = pg.locator(f'#{table} tr[data-key="{key}"] + tr.details form.rv-form')
    assert form.locator("select.rv-decision").input_value() == decision, "the button chose the decision"
    if code:
        form.locator("select.rv-code").select_option(code)
    form.locator("input.rv-text").fill(reason)
    form.locator("button.rv-save").click()


def import_file(tmp_path, path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "RESULTS_DIR": str(tmp_path / "results"),
           "PYTHONPATH": str(ROOT), "REVIEW_CURATOR": "someone-else"}
    return subprocess.run([sys.executable, "-m", "scrapy", "review", "import", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_decide_on_the_page_export_and_import(browser, tmp_path):
    data, results = setup_records(tmp_path)
    # an earlier decision: dave accepted zenodo:5
    Ledger(data).append([decision_from({"source": "zenodo", "source_id": "5", "decision": "accept",
                                        "reason": "AMD OCT volumes", "curator": "dave"})])
    from envision_spiders.results import write_results

    write_results(data, results)
    page_path = write_report(data, results, run_id="r1")
    errors: list[str] = []
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = open_page(ctx, page_path, errors)

    # the queue: what waits, most useful first; the card counts it
    assert keys(pg, "queue") == ["zenodo:2", "zenodo:1", "zenodo:3"]
    assert pg.locator(".card.queue .card-v").text_content() == "3"
    assert pg.locator('#queue tr[data-key="zenodo:2"] .why').text_content() == "new EYE_IMAGING"
    # a decision that stands shows on its row, with its reason
    accepted = pg.locator('#eye tr[data-key="zenodo:5"]')
    assert accepted.get_attribute("data-decision") == "accept"
    assert "accepted" in accepted.locator(".c-rv .rv").text_content()
    assert accepted.locator(".rv-reason").text_content() == "AMD OCT volumes"

    pg.locator('[data-rv="curator"]').fill("carol")
    # a rejection without a reason is refused on the page
    decide(pg, "queue", "zenodo:1", "reject")
    assert pg.locator('#queue tr[data-key="zenodo:1"] + tr.details .rv-msg').text_content() == \
        "Say why: a reason or a reason code."
    assert pg.locator("#review-bar").get_attribute("data-pending") == "0"
    decide(pg, "queue", "zenodo:1", "reject", "intracoronary OCT, not the eye", "not-eye")
    decide(pg, "queue", "zenodo:2", "accept", "colour fundus photographs")
    decide(pg, "queue", "zenodo:3", "unsure", "retinal videos or gaze only?")
    assert pg.locator("#review-bar").get_attribute("data-pending") == "3"
    row = pg.locator('#queue tr[data-key="zenodo:1"]')
    assert row.get_attribute("data-decision") == "reject" and "here" in row.locator(".rv").text_content()
    # changed her mind on zenodo:3: undo
    pg.locator('#queue tr[data-key="zenodo:3"] button.rv-do-unsure').click()
    pg.locator("#queue tr.details button.rv-undo").click()
    assert pg.locator("#review-bar").get_attribute("data-pending") == "2"

    # the choices survive closing the page (kept in the browser, nothing written elsewhere)
    pg.close()
    pg = open_page(ctx, page_path, errors)
    assert pg.locator("#review-bar").get_attribute("data-pending") == "2"
    assert pg.locator('[data-rv="curator"]').input_value() == "carol"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.locator("#queue").screenshot(path=str(ARTIFACTS / "review-queue.png"))

    with pg.expect_download() as download_info:
        pg.locator('[data-rv="export"]').click()
    exported = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(exported)
    assert exported.name.startswith("envision-decisions-") and exported.suffix == ".json"
    assert "scrapy review import " + exported.name in pg.locator(".rv-count").text_content()
    doc = json.loads(exported.read_text())
    assert {(d["source_id"], d["decision"], d["curator"]) for d in doc["decisions"]} == {
        ("1", "reject", "carol"), ("2", "accept", "carol")}

    result = import_file(tmp_path, exported)
    assert result.returncode == 0, result.stderr[-3000:]
    decisions = Ledger(data).read()
    assert [(d.key, d.decision, d.curator, d.code, d.reason, d.origin) for d in decisions[1:]] == [
        ("zenodo:1", "reject", "carol", "not-eye", "intracoronary OCT, not the eye", "page"),
        ("zenodo:2", "accept", "carol", None, "colour fundus photographs", "page")]
    assert decisions[1].prob_eye_imaging == 0.97 and decisions[1].model_label == "EYE_IMAGING"
    review = Review(decisions, json.loads((results / "duplicates.json").read_text())["groups"])
    assert review.standing("datacite:10.5281/zenodo.2").decision == "accept", "its duplicate follows"
    ledger_bytes = Ledger(data).path.read_bytes()
    assert import_file(tmp_path, exported).returncode == 0
    assert Ledger(data).path.read_bytes() == ledger_bytes, "importing the same file twice changes nothing"

    # the page the import rewrote shows the decisions; the browser forgets the imported choices
    pg.reload()
    pg.wait_for_selector("html[data-ready='1']", timeout=30_000)
    assert pg.locator("#review-bar").get_attribute("data-pending") == "0"
    assert keys(pg, "queue") == ["zenodo:3"] and pg.locator(".card.queue .card-v").text_content() == "1"
    assert keys(pg, "rejected") == ["zenodo:1"]
    rejected = pg.locator('#rejected tr[data-key="zenodo:1"]')
    assert rejected.locator(".rv-reason").text_content() == "not-eye: intracoronary OCT, not the eye"
    rejected.locator(".c-arch").click()
    details = pg.locator("#rejected tr.details").text_content()
    assert "Stands: rejected by carol" in details and "The model says EYE_IMAGING, P(eye) 0.970" in details
    assert "zenodo:1" not in keys(pg, "eye") and "zenodo:2" in keys(pg, "eye")
    pg.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)

    # dave's accept of zenodo:5 was a mistake: carol withdraws it on the page (offered only where a
    # decision was recorded on the record itself), exports, imports: one more line, nothing stands
    pg.locator('#queue tr[data-key="zenodo:3"] button.rv-do-accept').click()
    offered = pg.locator('#queue tr[data-key="zenodo:3"] + tr.details select.rv-decision option')
    assert offered.evaluate_all("os => os.map(o => o.value)") == ["accept", "reject", "unsure"]
    pg.locator('#eye tr[data-key="zenodo:5"] button.rv-do-accept').click()
    form = pg.locator('#eye tr[data-key="zenodo:5"] + tr.details form.rv-form')
    form.locator("select.rv-decision").select_option("withdraw")
    form.locator("input.rv-text").fill("accepted by mistake")
    form.locator("button.rv-save").click()
    assert "withdrawn" in pg.locator('#eye tr[data-key="zenodo:5"] .rv').text_content()
    with pg.expect_download() as download_info:
        pg.locator('[data-rv="export"]').click()
    second = tmp_path / "second.json"
    download_info.value.save_as(second)
    result = import_file(tmp_path, second)
    assert result.returncode == 0, result.stderr[-3000:]
    last = Ledger(data).read()[-1]
    assert (last.key, last.decision, last.curator, last.reason) == ("zenodo:5", "withdraw", "carol",
                                                                    "accepted by mistake")
    assert Review(Ledger(data).read()).standing("zenodo:5") is None
    pg.reload()
    pg.wait_for_selector("html[data-ready='1']", timeout=30_000)
    assert "zenodo:5" in keys(pg, "queue"), "it waits for a curator again"
    assert pg.locator('#eye tr[data-key="zenodo:5"]').get_attribute("data-decision") in (None, "")
    ctx.close()
    assert not errors, errors
