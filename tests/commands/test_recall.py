"""The recall check on records saved on disk: matching by DOI, id, URL and title, every
outcome and reason, the review queue, drops between runs, terms that earn their place,
and scrapy recall with the run summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from envision_spiders.recall import check as recall
from envision_spiders.recall.catalogue import Entry, load_catalogue, parse_catalogue
from envision_spiders.recall.match import Index, View, url_key, view_of
from envision_spiders.recall.terms import contributions, coverage, idle_terms, suggest_term
from envision_spiders.storage import atomic_write_json, record_path
from tests.conftest import ROOT

HEADER = "name,source,id,doi,url,title,aliases,modality,id_confidence,source_type,listed_in,reason"
CATALOGUE = "\n".join([
    HEADER,
    "Alpha,figshare,100,10.6084/m9.figshare.100,,Alpha fundus set,,fundus,sure,,x,y",
    "Bravo,figshare,200,10.6084/m9.figshare.200,,Bravo OCT scans,,oct,sure,,x,y",
    "Charlie,zenodo,300,,,Charlie OCT volumes,,oct,likely,,x,y",
    "Delta,kaggle,,,https://www.kaggle.com/datasets/own/delta,Delta set,,fundus,none,,x,y",
    "Echo,kaggle,,,,Echo retina scans,,fundus,none,,x,y",
    "Foxtrot,zenodo,400,,,Foxtrot cornea images,,anterior,likely,,x,y",
    "Golf,kaggle,,,,Golf HRF fundus set,HRF Golf,fundus,none,,x,y",
    "Hotel,kaggle,hotel-comp,,,Hotel retinal challenge,,fundus,sure,competition,x,y",
    "India,dryad,,,,India retinal photographs,,fundus,none,,x,y",
    "Juliet,datacite,10.5281/zenodo.500,,,Juliet fundus photographs,,fundus,sure,,x,y",
    "Kilo,kaggle,own/kilo,,,Kilo OCT images,,oct,sure,,x,y",
]) + "\n"
TERMS = ["fundus image dataset", "retinal OCT", "glaucoma dataset", "HRF"]


def save(data_dir: Path, source: str, source_id: str, title: str, *, label: str | None = "EYE_IMAGING",
         p: float = 0.97, terms: list[str] | None = None, **fields) -> dict:
    record = {"source": source, "source_id": source_id, "title": title, "description": "", "doi": None, "url": None,
              "access_type": "open", "resource_type": "dataset", "extra": {},
              "provenance": {"search_terms": terms if terms is not None else ["fundus image dataset"]},
              "classification": None if label is None else {"label": label, "prob_eye_imaging": p,
                                                              "prob_negative": round(1 - p, 4), "confidence": p}}
    record.update(fields)
    atomic_write_json(record_path(data_dir, source, source_id), record)
    return record


def corpus(tmp_path: Path) -> tuple[Path, Path]:
    data, results = tmp_path / "data", tmp_path / "results"
    save(data, "figshare", "100", "Alpha fundus set", doi="10.6084/m9.figshare.100.v2")
    save(data, "datacite", "10.6084/m9.figshare.100.v2", "Alpha fundus set", terms=["retinal OCT"])
    save(data, "datacite", "10.6084/m9.figshare.200", "Bravo OCT scans", terms=["retinal OCT"])
    save(data, "zenodo", "300", "Charlie OCT volumes of glaucoma", label="NEGATIVE", p=0.31, terms=["glaucoma dataset"])
    save(data, "kaggle", "own/delta", "Something else entirely", url="https://www.kaggle.com/own/delta",
         access_type="restricted")
    save(data, "kaggle", "x/echo", "Echo Retina Scans (resized)", p=0.7)
    save(data, "zenodo", "400", "Coronary OCT pullbacks", label="NEGATIVE", p=0.02)
    save(data, "zenodo", "401", "Foxtrot cornea images, version 2")
    save(data, "datacite", "10.5281/zenodo.500", "Juliet fundus photographs", p=0.9)
    save(data, "zenodo", "500", "Juliet fundus photographs", p=0.92, doi="10.5281/zenodo.500")
    save(data, "kaggle", "own/kilo", "Kilo OCT images", label=None, terms=[])
    atomic_write_json(results / "duplicates.json", {"records": 11, "groups": [
        {"canonical": "figshare:100", "members": [{"key": "figshare:100"}, {"key": "datacite:10.6084/m9.figshare.100.v2"}]},
        {"canonical": "zenodo:500", "members": [{"key": "zenodo:500"}, {"key": "datacite:10.5281/zenodo.500"}]},
    ]})
    atomic_write_json(data / "downloads" / "figshare" / "100" / "manifest.json",
                      {"source": "figshare", "source_id": "100", "status": "complete", "totals": {}})
    atomic_write_json(data / "downloads" / ".queue" / "zenodo" / "500.json", {"source": "zenodo", "source_id": "500"})
    atomic_write_json(data / "portal" / "posted.json", {"version": 1, "portals": {"https://portal.example.org": {
        "datasets": {"https://doi.org/10.6084/m9.figshare.100": {"source": "figshare", "source_id": "100"}}}}})
    return data, results


def run_check(data: Path, results: Path, run_id: str = "r1", catalogue_text: str = CATALOGUE):
    entries, problems = parse_catalogue(catalogue_text, "test.csv")
    assert problems == []
    from envision_spiders.recall.catalogue import Catalogue

    return recall.check(data, results, Catalogue(entries=entries, files=["test.csv"]), TERMS, run_id=run_id)


def rows_by_name(result) -> dict:
    return {r["entry"]["name"]: r for r in result["entries"]}


def reasons(row) -> list[str]:
    return [w["reason"] for w in row["why_not"]]


def test_every_outcome_and_reason(tmp_path):
    data, results = corpus(tmp_path)
    result = run_check(data, results)
    rows = rows_by_name(result)

    alpha = rows["Alpha"]  # by DOI (Figshare's .vN set aside), own source first, the DataCite copy also
    assert (alpha["matched_by"], alpha["record"]["key"], alpha["outcome"]) == ("doi", "figshare:100", "eye_imaging")
    assert alpha["also"] == ["datacite:10.6084/m9.figshare.100.v2"]
    assert alpha["downloaded"] == "done" and alpha["posted"] is True and alpha["why_not"] == []
    assert alpha["terms"] == ["fundus image dataset"] and alpha["prob_eye_imaging"] == 0.97

    bravo = rows["Bravo"]  # only DataCite has it
    assert bravo["record"]["key"] == "datacite:10.6084/m9.figshare.200" and "found_elsewhere" in reasons(bravo)

    charlie = rows["Charlie"]  # a likely id whose record's title fits
    assert (charlie["matched_by"], charlie["outcome"]) == ("source_id", "negative")
    assert reasons(charlie) == ["negative"]

    delta = rows["Delta"]  # a URL without an identifier is trusted even with another title
    assert delta["matched_by"] == "url" and delta["record"]["key"] == "kaggle:own/delta"
    assert "restricted" in reasons(delta) and "not_downloaded" not in reasons(delta)

    echo = rows["Echo"]
    assert echo["matched_by"] == "title" and "below_threshold" in reasons(echo)

    foxtrot = rows["Foxtrot"]  # the likely id names an unrelated record: suspect, then the title
    assert foxtrot["identifier_suspect"]["key"] == "zenodo:400"
    assert (foxtrot["matched_by"], foxtrot["record"]["key"]) == ("title", "zenodo:401")
    assert reasons(foxtrot)[0] == "identifier_suspect"

    golf = rows["Golf"]
    assert golf["outcome"] == "not_found" and not golf["found"]
    assert golf["coverage"]["uncovered_words"] == ["golf"]
    assert golf["coverage"]["matching_terms"] == ["HRF"]  # all its words are in the title: it should have been found
    assert golf["coverage"]["suggested_term"] == "Golf fundus"
    assert "a term that would find it: 'Golf fundus'" in golf["why_not"][0]["detail"]

    assert rows["Hotel"]["outcome"] == "filtered_non_dataset"
    assert "lists it as a competition" in rows["Hotel"]["why_not"][0]["detail"]
    assert rows["India"]["outcome"] == "not_checked" and not rows["India"]["checked"]

    juliet = rows["Juliet"]  # the DataCite record matched; the Zenodo record is canonical and queued
    assert juliet["record"]["key"] == "datacite:10.5281/zenodo.500" and juliet["duplicate_of"] == "zenodo:500"
    assert juliet["downloaded"] == "queued" and {"duplicate", "download_pending", "awaiting_review"} <= set(reasons(juliet))

    kilo = rows["Kilo"]
    assert kilo["outcome"] == "unclassified" and kilo["terms"] == []

    s = result["summary"]
    assert (s["entries"], s["checked"], s["found"], s["eye_imaging"]) == (11, 10, 8, 6)
    assert (s["negative"], s["unclassified"], s["not_found"], s["filtered_non_dataset"], s["not_checked"]) == (1, 1, 1, 1, 1)
    assert (s["downloaded"], s["posted"], s["duplicates"], s["restricted"]) == (1, 1, 1, 1)
    assert result["summary_line"] == "recall of the reference catalogue: 8/10 found, 6 EYE_IMAGING"
    assert result["healthy"] and result["previous"] is None


def test_found_but_negative_records_go_to_the_review_queue(tmp_path):
    data, results = corpus(tmp_path)
    result = run_check(data, results, run_id="week-7")
    assert result["review_queue_version"] == 1
    (item,) = result["review_queue"]
    assert item == {
        "key": "zenodo:300", "source": "zenodo", "source_id": "300", "reason": "recall-negative",
        "detail": "catalogue entry 'Charlie' (oct) was found but classified NEGATIVE (prob_eye_imaging 0.31)",
        "label": "NEGATIVE", "prob_eye_imaging": 0.31,
        "catalogue": {"key": "zenodo:300", "name": "Charlie", "modality": "oct", "origin": "test.csv", "line": 4},
        "run_id": "week-7",
    }


def test_a_drop_from_one_run_to_the_next_makes_the_run_unhealthy(tmp_path):
    data, results = corpus(tmp_path)
    first = run_check(data, results, "r1")
    recall.write(first, data, results)
    record_path(data, "kaggle", "x/echo").unlink()  # Echo is not found any more
    save(data, "figshare", "100", "Alpha fundus set", doi="10.6084/m9.figshare.100.v2", label="NEGATIVE", p=0.2)
    second = run_check(data, results, "r2")
    assert second["drops"] == {"lost": ["kaggle:title:echo retina scans"], "relabelled": ["figshare:100"]}
    assert not second["healthy"] and len(second["problems"]) == 2
    assert "found by the check of run r1 are not found now: kaggle:title:echo retina scans" in second["problems"][0]
    assert second["previous"]["run_id"] == "r1"
    # an entry the catalogue no longer has is not a drop
    third = run_check(data, results, "r3", CATALOGUE.replace("Echo,kaggle,,,,Echo retina scans,,fundus,none,,x,y\n", ""))
    assert third["drops"]["lost"] == []


def test_write_keeps_results_run_figures_and_history(tmp_path):
    data, results = corpus(tmp_path)
    result = run_check(data, results, "r1")
    path = recall.write(result, data, results)
    assert json.loads(path.read_text())["summary_line"] == result["summary_line"]
    figures = json.loads((data / "runs" / "r1" / "recall.json").read_text())
    assert figures["healthy"] and figures["review_queue"] == 1 and figures["summary"]["found"] == 8
    snap = json.loads((data / "recall" / "history" / "r1.json").read_text())
    assert snap["entries"]["figshare:100"] == {"found": True, "outcome": "eye_imaging", "record": "figshare:100"}
    for i in range(30):
        recall.write({**result, "run_id": f"r{i + 2}", "generated_at": f"2027-01-{1 + i % 28:02d}T00:00:{i:02d}Z"},
                     data, results)
    assert len(list((data / "recall" / "history").glob("*.json"))) == recall.HISTORY_KEPT


def test_terms_that_earn_their_place():
    def v(key, terms, label="EYE_IMAGING", found_by=()):
        return View(key=key, source=key.split(":")[0], source_id=key.split(":")[1], title="", words=(), doi=None,
                    url=None, resource_type=None, access_type=None, label=label, prob=None, terms=list(terms),
                    found_by=list(found_by))

    views = [v("a:1", ["t1"]), v("a:2", ["t1", "t2"]), v("a:3", ["t2"], found_by=["funder"]), v("a:4", ["t4"], "NEGATIVE"),
             v("a:5", ["old"])]
    rows = contributions(views, ["t1", "t2", "t3", "t4"])
    assert rows["t1"] == {"found": 2, "unique": 1, "unique_eye_imaging": 1, "unique_keys": ["a:1"]}
    assert rows["t2"]["unique"] == 0 and rows["t2"]["found"] == 2  # a:3 came by the funder channel too
    assert rows["t3"]["found"] == 0 and rows["old"]["retired"] is True
    history = [{"terms": {"t2": {"unique": 0}, "t1": {"unique": 0}}}, {"terms": {"t2": {"unique": 0}}}]
    assert idle_terms(rows, history) == {"t2": 3}  # t3 is new: one snapshot only; t1 has a unique record now
    assert idle_terms(rows, history[:1]) == {}


def test_terms_appear_in_the_result_and_the_history(tmp_path):
    data, results = corpus(tmp_path)
    for run in ("r1", "r2"):
        recall.write(run_check(data, results, run), data, results)
    third = run_check(data, results, "r3")
    terms = third["terms"]
    assert terms["contributions"]["glaucoma dataset"]["unique_keys"] == ["zenodo:300"]
    assert terms["idle"] == {"HRF": 3}  # no record of its own in any of the three checks
    assert "glaucoma dataset" in terms["only_negative"]  # its one record of its own is NEGATIVE


@pytest.mark.parametrize("title, aliases, suggestion", [
    ("PAPILA: Dataset with fundus images and clinical data", (), "PAPILA"),
    ("High-Resolution Fundus (HRF) Image Database", (), "Fundus HRF"),
    ("Chákṣu: A glaucoma specific fundus image database", (), "Chákṣu fundus"),
    ("Retina Blood Vessel", (), "Retina Blood"),
    ("Ocular Disease Recognition", ("ODIR-5K",), "ODIR-5K"),
    ("Eye_diseases_classification", (), "Eye diseases"),
    ("Glaucoma Datasets", (), None),  # every word covered and a term matches it
])
def test_suggested_terms(title, aliases, suggestion):
    terms = ["fundus image dataset", "retinal vessel segmentation", "glaucoma dataset", "retina scan"]
    entry = Entry(name=title, source="kaggle", title=title, aliases=aliases)
    term = suggest_term(entry, terms)
    assert term == suggestion
    if term:  # it would find the entry: every word of it is in the title or an alias
        from envision_spiders.recall.catalogue import title_tokens

        assert set(title_tokens(term)) <= set(title_tokens(" ".join([title, *aliases])))
        assert " ".join(title_tokens(term)) not in {" ".join(title_tokens(t)) for t in terms}
    assert coverage(entry, terms)["suggested_term"] == term


@pytest.mark.parametrize("a, b", [
    ("https://www.kaggle.com/datasets/Own/Slug/", "http://kaggle.com/own/slug?select=x"),
    ("https://zenodo.org/record/12", "https://zenodo.org/records/12"),
    ("https://doi.org/10.6084/M9.FIGSHARE.7.v3", "doi:10.6084/m9.figshare.7"),
])
def test_urls_in_one_form(a, b):
    assert url_key(a) == (b if b.startswith("doi:") else url_key(b))


def test_odd_saved_records_are_skipped_or_read_tolerantly():
    assert view_of({"source": "zenodo"}) is None and view_of({"source_id": "1"}) is None
    v = view_of({"source": "zenodo", "source_id": 5, "title": 7, "classification": "junk", "provenance": ["x"],
                 "extra": {"conceptrecid": 4}})
    assert (v.key, v.title, v.label, v.terms, v.concept) == ("zenodo:5", "", None, [], "4")
    # a Zenodo entry naming the concept record finds the version
    entry = Entry(name="x", source="zenodo", id="4", id_confidence="sure")
    assert Index([v]).match(entry).record is v


def test_the_shipped_catalogue_matches_real_shaped_records(tmp_path):
    """A record shaped like each source's real one, for a few shipped entries."""
    data = tmp_path / "data"
    save(data, "kaggle", "paultimothymooney/kermany2018", "Retinal OCT Images (optical coherence tomography)",
         url="https://www.kaggle.com/paultimothymooney/kermany2018", terms=["retinal OCT"])
    save(data, "datacite", "10.17632/rscbjbr9sj.2",
         "Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images for Classification",
         doi="10.17632/rscbjbr9sj.2", label="NEGATIVE", p=0.4, terms=["optical coherence tomography eye"])
    save(data, "kaggle", "someone/chase-db1", "CHASE_DB1 retinal vessel dataset", terms=["CHASE_DB1"])
    result = recall.check(data, tmp_path / "results", load_catalogue(), TERMS, run_id="r")
    rows = {r["entry"]["key"]: r for r in result["entries"]}
    assert rows["kaggle:paultimothymooney/kermany2018"]["matched_by"] == "source_id"
    assert rows["datacite:10.17632/rscbjbr9sj.2"]["outcome"] == "negative"
    assert rows["kaggle:title:chase db1"]["record"]["key"] == "kaggle:someone/chase-db1"
    assert rows["zenodo:5793241"]["outcome"] == "not_checked"  # no Zenodo record saved: not crawled
    assert result["summary"]["checked"] == sum(e.source in ("kaggle", "datacite") for e in load_catalogue().entries)


def test_scrapy_recall_and_the_run_summary(tmp_path):
    data, results = corpus(tmp_path)
    mine = tmp_path / "mine.csv"
    mine.write_text(CATALOGUE, encoding="utf-8")
    env = {"DATA_DIR": str(data), "RESULTS_DIR": str(results), "RECALL_CATALOGUE": str(mine),
           "RECALL_CATALOGUE_MODE": "replace", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}

    def scrapy(*args, run_id):
        return subprocess.run([sys.executable, "-m", "scrapy", *args], cwd=ROOT, env={**env, "RUN_ID": run_id},
                              capture_output=True, text=True, timeout=120)

    first = scrapy("recall", run_id="r1")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "recall of the reference catalogue: 8/10 found, 6 EYE_IMAGING" in first.stdout
    assert "recall: Golf [not_found]" in first.stderr
    record_path(data, "kaggle", "x/echo").unlink()
    second = scrapy("recall", run_id="r2")
    assert second.returncode == 3, second.stderr[-2000:]  # unhealthy: the run goes on and ends non-zero
    assert "RECALL: recall dropped" in second.stderr
    health = subprocess.run([sys.executable, "-m", "envision_spiders.runhealth", "--data-dir", str(data), "--run-id", "r2",
                             "--step", "recall=3"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    summary = json.loads((data / "runs" / "r2" / "summary.json").read_text())
    assert summary["recall"]["summary_line"] == "recall of the reference catalogue: 7/10 found, 5 EYE_IMAGING"
    assert any("recall dropped" in p for p in summary["problems"]) and health.returncode == 1
    assert "recall of the reference catalogue: 7/10 found, 5 EYE_IMAGING" in health.stderr
    bad = scrapy("recall", "--mode", "add", "--catalogue", str(tmp_path / "nope.csv"), "--check-catalogue", run_id="r3")
    assert bad.returncode == 1 and "cannot be read" in bad.stdout
