"""The local API server's generated corpus carries funding references in each source's
real shape, and some of them cite the generated NEI grants by their core numbers."""

from __future__ import annotations

from envision_spiders.funding import funding_references
from localapi import generate_source
from localapi import datacite, dryad, figshare, nei, zenodo
from localapi.core import ServerState
from localapi.corpus import funding_plan
from tests.conftest import sample

N = 60


def corpus() -> ServerState:
    state = ServerState()
    for source in ("zenodo", "figshare", "dryad", "datacite", "nei"):
        generate_source(state, source, N)
    return state


def read_all(state: ServerState) -> dict[str, list[list[dict]]]:
    """Every generated record's funding, read by each source's field names."""
    out: dict[str, list[list[dict]]] = {}
    for rec in zenodo.state_of(state).records.values():
        entries, problems = funding_references(rec["metadata"].get("grants"), "zenodo", funder_name="funder.name",
                                               funder_identifier="funder.doi", award_number="code", award_title="title")
        assert problems == []
        out.setdefault("zenodo", []).append(entries)
    for art in figshare.state_of(state).articles.values():
        entries, problems = funding_references(art["funding_list"], "figshare", free_text=art["funding"],
                                               funder_name="funder_name", award_number="grant_code", award_title="title")
        assert problems == []
        out.setdefault("figshare", []).append(entries)
    st = dryad.state_of(state)
    for ds in st.datasets.values():
        entries, problems = funding_references(
            dryad.render_dataset(st, ds).get("funders"), "dryad", funder_name="organization",
            funder_identifier="identifier", funder_identifier_type="identifierType", award_number="awardNumber",
            award_title="awardTitle")
        assert problems == []
        out.setdefault("dryad", []).append(entries)
    for rec in datacite.state_of(state).records.values():
        entries, problems = funding_references(
            rec["attributes"]["fundingReferences"], "datacite", funder_name="funderName",
            funder_identifier="funderIdentifier", funder_identifier_type="funderIdentifierType",
            award_number="awardNumber", award_title="awardTitle")
        assert problems == []
        out.setdefault("datacite", []).append(entries)
    return out


def test_each_source_cites_generated_nei_grants_and_other_funders():
    state = corpus()
    cores = {row["core_project_num"] for row in nei.state_of(state).rows.values()}
    for source, records in read_all(state).items():
        funded = [r for r in records if r]
        cited = {a["core_project_num"] or a["serial"] for r in records for e in r for a in e["nih_awards"]}
        assert 0.25 * N < len(funded) < 0.75 * N, source
        assert cited & cores, f"{source} cites none of the generated NEI grants"
        assert cited - {c for c in cited if c in cores or any(c == k[3:] for k in cores)}, \
            f"{source} cites no award the corpus lacks"
        assert any(not e["nei"] for r in records for e in r), f"{source} has no other funder"


def test_the_shapes_are_the_real_ones():
    state = corpus()
    real_dryad = sample("dryad/dataset_versions_2026-07.json")["_embedded"]["stash:versions"][0]["funders"][0]
    st = dryad.state_of(state)
    rendered = [dryad.render_dataset(st, ds) for ds in st.datasets.values()]
    new = [f for r in rendered if r.get("storageSize") is not None for f in r.get("funders") or []]
    old = [r for r in rendered if "storage_size" in r]
    assert new and all(list(f) == list(real_dryad) for f in new)
    assert all(set(f) == {"organization", "awardNumber"} for r in old for f in r.get("funders") or [])
    assert any("funders" not in r for r in old)  # an unfunded 2020 dataset has no funders key
    article = sample("figshare/article_123456_2023-04.json")
    assert {"funding", "funding_list"} <= set(article)  # the real fields, empty in the sample
    for art in figshare.state_of(state).articles.values():
        for f in art["funding_list"]:
            assert set(f) == {"id", "title", "grant_code", "funder_name", "is_user_defined", "url"}
        assert art["funding"] is None or isinstance(art["funding"], str)
    for rec in zenodo.state_of(state).records.values():
        for g in rec["metadata"].get("grants") or []:
            assert set(g) <= {"code", "internal_id", "funder", "title"} and g["internal_id"].endswith("::" + g["code"])
            assert set(g["funder"]) == {"name", "doi", "acronym"}
    schema = {"funderName", "funderIdentifier", "funderIdentifierType", "schemeUri", "awardNumber", "awardUri", "awardTitle"}
    refs = [f for rec in datacite.state_of(state).records.values() for f in rec["attributes"]["fundingReferences"]]
    assert refs and all(set(f) <= schema for f in refs)
    assert any(isinstance(f["awardNumber"], int) for f in refs), "some award numbers come as numbers"


def test_the_plan_is_deterministic_and_per_source():
    assert funding_plan("zenodo", 1, 5) == funding_plan("zenodo", 1, 5)
    plans = {s: [funding_plan(s, 1, i) for i in range(40)] for s in ("zenodo", "figshare")}
    assert plans["zenodo"] != plans["figshare"]
    assert nei.planned_grants(12, 1)[:3] == nei.planned_grants(20, 1)[:3]  # a longer corpus holds the same grants first
