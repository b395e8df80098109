"""Datasets by grant: NEI projects and the datasets citing them, linked both ways over the
saved records by each results rebuild, and kept when a spider saves a record again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from envision_spiders.funding import funding_references
from envision_spiders.grants import GrantLinker, link_grants
from envision_spiders.items import DatasetItem
from envision_spiders.results import write_results
from envision_spiders.spiders.zenodo import ZenodoSpider
from envision_spiders.storage import atomic_write_json, iter_records, record_path
from pipelines.persist import PersistPipeline

from tests.conftest import make_spider

DATACITE = dict(funder_name="funderName", funder_identifier="funderIdentifier", award_number="awardNumber",
                award_title="awardTitle")


def funding(*numbers: str, funder: str = "National Eye Institute") -> list[dict]:
    entries, problems = funding_references([{"funderName": funder, "awardNumber": n} for n in numbers], "t:1", **DATACITE)
    assert problems == []
    return entries


def save(data: Path, source: str, source_id: str, **fields) -> Path:
    record = {"source": source, "source_id": source_id, "title": f"{source} {source_id}", **fields}
    path = record_path(data, source, source_id)
    atomic_write_json(path, record)
    return path


def load(data: Path, source: str, source_id: str) -> dict:
    return json.loads(record_path(data, source, source_id).read_text())


@pytest.fixture
def data(tmp_path) -> Path:
    d = tmp_path / "data"
    save(d, "nei", "R01EY012345", title="Imaging the optic nerve head", url="https://reporter.nih.gov/project-details/1")
    save(d, "nei", "R21EY000777", title="Slit lamp photography")
    save(d, "datacite", "10.1/a", funding=funding("5R01EY012345-03"),
         classification={"label": "EYE_IMAGING", "prob_eye_imaging": 0.95})
    save(d, "dryad", "10.5061/dryad.b", funding=funding("EY012345"), classification={"label": "NEGATIVE", "prob_eye_imaging": 0.2})
    save(d, "zenodo", "3", funding=funding("R01EY099999", "P30EY001583"))
    save(d, "figshare", "4", funding=funding("DEB-1354996", funder="National Science Foundation"))
    save(d, "kaggle", "o/s")  # no funding field at all
    return d


def test_links_both_ways(data, tmp_path):
    figures = link_grants(
        [(p, r) for s in ("nei", "datacite", "dryad", "zenodo", "figshare", "kaggle") for p, r in iter_records(data, s)],
        tmp_path / "results")
    assert load(data, "datacite", "10.1/a")["nei_projects"] == ["R01EY012345"]
    assert load(data, "dryad", "10.5061/dryad.b")["nei_projects"] == ["R01EY012345"]  # a bare serial finds the project
    assert load(data, "zenodo", "3")["nei_projects"] == ["R01EY099999", "P30EY001583"]  # cited, not saved: as written
    assert "nei_projects" not in load(data, "figshare", "4") and "nei_projects" not in load(data, "kaggle", "o/s")
    assert load(data, "nei", "R01EY012345")["linked_datasets"] == [
        {"source": "datacite", "source_id": "10.1/a"}, {"source": "dryad", "source_id": "10.5061/dryad.b"}]
    assert "linked_datasets" not in load(data, "nei", "R21EY000777")
    assert figures == {"nei_projects": 2, "projects_with_datasets": 1, "datasets_citing_nei": 3, "datasets_linked": 2,
                       "records_rewritten": 4, "write_errors": 0}
    grants = json.loads((tmp_path / "results" / "grants.json").read_text())
    (project,) = grants["projects"]
    assert project["core_project_num"] == "R01EY012345" and project["title"] == "Imaging the optic nerve head"
    assert [(d["key"], d["label"], d["prob_eye_imaging"]) for d in project["datasets"]] == [
        ("datacite:10.1/a", "EYE_IMAGING", 0.95), ("dryad:10.5061/dryad.b", "NEGATIVE", 0.2)]
    assert [a["award"] for a in grants["cited_but_not_saved"]] == ["P30EY001583", "R01EY099999"]


def test_a_second_pass_rewrites_nothing_and_a_dropped_citation_is_undone(data, tmp_path):
    records = lambda: [(p, r) for s in ("nei", "datacite", "dryad", "zenodo") for p, r in iter_records(data, s)]  # noqa: E731
    link_grants(records())
    stamps = {p: os.stat(p).st_mtime_ns for p, _ in records()}
    assert link_grants(records())["records_rewritten"] == 0
    assert stamps == {p: os.stat(p).st_mtime_ns for p, _ in records()}
    rec = load(data, "datacite", "10.1/a")
    rec["funding"] = []
    atomic_write_json(record_path(data, "datacite", "10.1/a"), rec)
    link_grants(records())
    assert load(data, "datacite", "10.1/a")["nei_projects"] == []
    assert load(data, "nei", "R01EY012345")["linked_datasets"] == [{"source": "dryad", "source_id": "10.5061/dryad.b"}]


def test_a_record_a_crawl_changed_meanwhile_is_left_for_the_next_pass(data):
    linker = GrantLinker()
    for source in ("nei", "datacite"):
        for path, record in iter_records(data, source):
            linker.add(path, record)
    save(data, "datacite", "10.1/a", funding=funding("R01EY055555"))  # a crawl rewrote it with other funding
    linker.finish()
    assert "nei_projects" not in load(data, "datacite", "10.1/a")


def test_results_rebuild_links_and_a_spider_save_keeps_the_links(data, tmp_path):
    summary = write_results(data, tmp_path / "results", "run-1")
    assert summary["grants"]["projects_with_datasets"] == 1
    assert (tmp_path / "results" / "grants.json").exists()
    # the Zenodo spider saves record 3 again: the links a rebuild added stay
    spider = make_spider(ZenodoSpider, data)
    persist = PersistPipeline.from_crawler(spider.crawler)
    item = DatasetItem(source="zenodo", source_id="3", title="zenodo 3", funding=funding("R01EY099999", "P30EY001583"))
    item.provenance = {"search_terms": ["retinal OCT"]}
    persist.process_item(item)
    assert load(data, "zenodo", "3")["nei_projects"] == ["R01EY099999", "P30EY001583"]


def test_odd_records_never_break_the_links(tmp_path):
    data = tmp_path / "data"
    save(data, "nei", "not-a-grant")
    save(data, "datacite", "10.1/x", funding="R01EY012345")  # not a list
    save(data, "datacite", "10.1/y", funding=[None, {"award_number": "5R01EY012345-03"}, {"nih_awards": "junk"}])
    save(data, "nei", "R01EY012345")
    figures = link_grants([(p, r) for s in ("nei", "datacite") for p, r in iter_records(data, s)])
    assert load(data, "datacite", "10.1/y")["nei_projects"] == ["R01EY012345"]  # read back from the award number
    assert figures["nei_projects"] == 1 and figures["write_errors"] == 0
