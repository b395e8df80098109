"""Funding references: NIH award numbers normalised to core project numbers, funder ids,
the NEI test, and bad input reported with the record it came from (never a crash).

The shapes are the real ones each source uses, taken from the recorded samples where
they carry funding (Dryad ``funders`` in both eras, RePORTER's ``project_num``), and
from the sources' documented field names otherwise (their samples hold empty lists).
"""

from __future__ import annotations

import pytest

from envision_spiders.funding import (
    NEI_FUNDER_ID,
    core_project_num,
    funder_id,
    funding_references,
    is_nei_funder,
    nih_awards,
    nih_cores,
    nih_serials,
)
from tests.conftest import sample

# the field names of each source's funding objects, as its API names them
DATACITE = dict(funder_name="funderName", funder_identifier="funderIdentifier",
                funder_identifier_type="funderIdentifierType", award_number="awardNumber",
                award_title="awardTitle", award_uri="awardUri")
ZENODO = dict(funder_name="funder.name", funder_identifier="funder.doi", award_number="code", award_title="title",
              award_uri="url")
FIGSHARE = dict(funder_name="funder_name", award_number="grant_code", award_title="title", award_uri="url")
DRYAD = dict(funder_name="organization", funder_identifier="identifier", funder_identifier_type="identifierType",
             award_number="awardNumber", award_title="awardTitle", award_uri="awardURI")


@pytest.mark.parametrize("text, core", [
    ("5R01EY012345-03", "R01EY012345"),
    ("1R01EY027829-01A1", "R01EY027829"),
    ("R01EY012345", "R01EY012345"),
    ("R01 EY 012345", "R01EY012345"),
    ("R01-EY-12345", "R01EY012345"),
    ("NIH/NEI R01EY012345", "R01EY012345"),
    ("nih grant r01ey012345", "R01EY012345"),
    ("U10 EY014231", "U10EY014231"),
    ("P30-EY001583", "P30EY001583"),
    ("5 K23 EY026985-04", "K23EY026985"),
    ("ZIAEY000380", "ZIAEY000380"),
    ("UL1TR001860", "UL1TR001860"),
])
def test_award_numbers_become_core_project_numbers(text, core):
    assert core_project_num(text) == core
    assert nih_awards(text)[0]["serial"] == core[-8:]


def test_the_real_reporter_project_number_gives_its_core_project_number():
    row = sample("nei/project_record_fy2022.json")
    (award,) = nih_awards(row["project_num"])  # "4U01AA029316-02"
    assert award["core_project_num"] == row["core_project_num"]
    assert award["serial"] == row["project_serial_num"]
    assert award["ic"] == row["project_num_split"]["ic_code"] and award["activity"] == row["activity_code"]


def test_a_bare_institute_serial_keeps_its_serial_only():
    assert nih_awards("EY012345") == [{"core_project_num": None, "serial": "EY012345", "ic": "EY", "activity": None}]
    assert nih_awards("NEI grant EY-12345")[0]["serial"] == "EY012345"
    assert core_project_num("EY012345") is None


def test_several_awards_in_one_text_are_all_found_once():
    awards = nih_awards("Supported by NIH grants R01EY012345, 5R01EY012345-04, P30 EY001583 and EY024321.")
    assert [(a["core_project_num"], a["serial"]) for a in awards] == [
        ("R01EY012345", "EY012345"), ("P30EY001583", "EY001583"), (None, "EY024321")]


@pytest.mark.parametrize("text", [
    "DEB-1354996, DEB-0814544, DEB-0742998, DEB-1555905",  # the real Dryad 2020 award numbers (NSF)
    "2205650",  # the real Dryad 2026 award number (NSF)
    "H2020-MSCA-IF-2017-798083",  # an EU grant
    "EY 2019",  # a year, not a serial
    "KEY123456",  # no word boundary
    "", None, 12, 3.5, True, ["R01EY012345"], {"awardNumber": "R01EY012345"},
])
def test_what_is_not_an_nih_award_is_none(text):
    assert nih_awards(text) == []
    assert core_project_num(text) is None


@pytest.mark.parametrize("value, kind, expected", [
    ("https://doi.org/10.13039/100000053", None, NEI_FUNDER_ID),
    ("http://dx.doi.org/10.13039/100000053", None, NEI_FUNDER_ID),
    ("10.13039/100000053", "Crossref Funder ID", NEI_FUNDER_ID),
    ("100000053", "Crossref Funder ID", NEI_FUNDER_ID),
    ("100000053", None, "100000053"),  # a bare number without its scheme stays as given
    ("https://ror.org/03wkg3b53", "ror", "https://ror.org/03wkg3b53"),
    ("03wkg3b53", "ROR", "https://ror.org/03wkg3b53"),
    ("https://ror.org/021nxhr62", "ror", "https://ror.org/021nxhr62"),  # the real Dryad sample (NSF)
    ("", None, None), (None, None, None), ({"id": 1}, None, None),
])
def test_funder_ids_in_one_form(value, kind, expected):
    assert funder_id(value, kind) == expected


@pytest.mark.parametrize("name, identifier, nei", [
    ("National Eye Institute", None, True),
    ("NIH/National Eye Institute (NEI)", None, True),
    ("NEI", None, True),
    (None, "https://doi.org/10.13039/100000053", True),
    (None, "https://ror.org/03wkg3b53", True),
    ("National Institutes of Health", "10.13039/100000002", False),
    ("U.S. National Science Foundation", "https://ror.org/021nxhr62", False),
    ("Neighbourhood Energy Initiative", None, False),
])
def test_nei_funder(name, identifier, nei):
    assert is_nei_funder(name, identifier) is nei


def test_dryad_2026_funders_as_recorded():
    version = sample("dryad/dataset_versions_2026-07.json")["_embedded"]["stash:versions"][0]
    entries, problems = funding_references(version["funders"], "dryad:x", field="funders", **DRYAD)
    assert problems == []
    (e,) = entries
    assert e["funder_name"] == "U.S. National Science Foundation"
    assert e["funder_id"] == "https://ror.org/021nxhr62"
    assert e["award_number"] == "2205650" and e["award_title"] is None
    assert e["nih_awards"] == [] and e["nei"] is False


def test_dryad_2020_funders_with_several_awards_in_one_field():
    datasets = sample("dryad/datasets_list_2020-06.json")["_embedded"]["stash:datasets"]
    funded = [d for d in datasets if d.get("funders")]
    assert funded, "the sample carries funders"
    for d in funded:
        entries, problems = funding_references(d["funders"], f"dryad:{d['identifier']}", field="funders", **DRYAD)
        assert problems == []
        assert [e["award_number"] for e in entries] == [f["awardNumber"] for f in d["funders"]]
        assert all(e["nih_awards"] == [] and not e["nei"] for e in entries)
    # no funders (absent in the real list: an unfunded dataset) is no funding, no problem
    unfunded = next(d for d in datasets if d.get("funders") is None)
    assert funding_references(unfunded.get("funders"), "dryad:y", **DRYAD) == ([], [])


def test_empty_funding_fields_of_the_real_samples():
    for doi in sample("datacite/dois_list_page-number_2020.json")["data"]:
        assert funding_references(doi["attributes"]["fundingReferences"], doi["id"], **DATACITE) == ([], [])
    art = sample("figshare/article_123456_2023-04.json")
    assert funding_references(art["funding_list"], "figshare:123456", free_text=art["funding"], **FIGSHARE) == ([], [])
    rec = sample("zenodo/record_8173303_2026-07.json")
    assert funding_references(rec["metadata"].get("grants"), "zenodo:8173303", **ZENODO) == ([], [])


def test_each_source_shape_with_an_nei_award():
    datacite = [{"funderName": "National Eye Institute", "funderIdentifier": "https://doi.org/10.13039/100000053",
                 "funderIdentifierType": "Crossref Funder ID", "awardNumber": "5R01EY012345-03",
                 "awardUri": "https://reporter.nih.gov/project-details/10000001", "awardTitle": "Retinal imaging"}]
    zenodo = [{"code": "1R01EY027829-01A1", "internal_id": "10.13039/100000002::1R01EY027829-01A1",
               "funder": {"name": "National Institutes of Health", "doi": "10.13039/100000002", "acronym": "NIH"},
               "title": "Adaptive optics imaging", "program": "NEI"}]
    figshare = [{"id": 7, "title": "Imaging of the optic nerve", "grant_code": "R01 EY 012345",
                 "funder_name": "National Eye Institute", "is_user_defined": 1, "url": ""}]
    dryad = [{"organization": "National Eye Institute", "identifierType": "ror",
              "identifier": "https://ror.org/03wkg3b53", "awardNumber": "EY012345", "awardURI": None,
              "awardDescription": None, "awardTitle": None, "order": 0}]
    dc, _ = funding_references(datacite, "datacite:10.1/x", **DATACITE)
    ze, _ = funding_references(zenodo, "zenodo:1", **ZENODO)
    fi, _ = funding_references(figshare, "figshare:1", **FIGSHARE)
    dr, _ = funding_references(dryad, "dryad:1", **DRYAD)
    assert dc[0]["funder_id"] == NEI_FUNDER_ID and dc[0]["nih_awards"][0]["core_project_num"] == "R01EY012345"
    assert ze[0]["funder_id"] == "10.13039/100000002" and ze[0]["nei"]  # NIH as funder, NEI by the EY code
    assert ze[0]["nih_awards"][0]["core_project_num"] == "R01EY027829"
    assert fi[0]["nih_awards"][0]["core_project_num"] == "R01EY012345" and fi[0]["award_title"] == "Imaging of the optic nerve"
    assert dr[0]["nih_awards"] == [{"core_project_num": None, "serial": "EY012345", "ic": "EY", "activity": None}]
    assert all(e[0]["nei"] for e in (dc, ze, fi, dr))
    assert nih_serials(dc + fi + dr) == {"EY012345"} and nih_cores(dc + fi + dr) == {"R01EY012345"}


def test_figshare_free_text_funding_adds_awards_not_already_listed():
    listed = [{"id": 7, "title": "x", "grant_code": "R01EY012345", "funder_name": "NEI", "is_user_defined": 1, "url": ""}]
    entries, problems = funding_references(listed, "figshare:9", free_text="NIH/NEI R01EY012345 and P30EY001583; NSF DEB-1354996",
                                           **FIGSHARE)
    assert problems == []
    assert [e["award_number"] for e in entries] == ["R01EY012345", "P30EY001583"]
    assert entries[1]["statement"].startswith("NIH/NEI") and entries[1]["nei"]


@pytest.mark.parametrize("raw, problem", [
    ("R01EY012345", "is str, not a list"),
    (12, "is int, not a list"),
    ([None], "funding[0] is NoneType, not an object"),
    ([["R01EY012345"]], "funding[0] is list, not an object"),
    ([{"awardNumber": {"value": "R01EY012345"}, "funderName": "NEI"}], "funding[0].awardNumber is dict, not text"),
    ([{"awardNumber": ["R01EY012345"], "funderName": "NEI"}], "funding[0].awardNumber is list, not text"),
])
def test_wrong_types_are_reported_with_their_record_and_never_raise(raw, problem):
    entries, problems = funding_references(raw, "datacite:10.5061/dryad.abc", **DATACITE)
    assert len(problems) == 1 and problems[0].startswith("datacite:10.5061/dryad.abc: ") and problem in problems[0]
    if isinstance(raw, list) and isinstance(raw[0], dict):
        assert entries[0]["funder_name"] == "NEI" and entries[0]["award_number"] is None  # the rest is kept


def test_readable_wrong_types_are_read():
    # an object instead of a list, a number instead of text, text instead of an object
    entries, problems = funding_references({"funderName": "NEI", "awardNumber": "R01EY012345"}, "r:1", **DATACITE)
    assert entries[0]["nih_awards"][0]["core_project_num"] == "R01EY012345" and "object, not a list" in problems[0]
    entries, problems = funding_references([{"funderName": "NSF", "awardNumber": 2205650}], "r:2", **DATACITE)
    assert entries[0]["award_number"] == "2205650" and problems == []
    entries, problems = funding_references(["R01EY012345"], "r:3", **DATACITE)
    assert entries[0]["nih_awards"][0]["serial"] == "EY012345" and "is text" in problems[0]
    entries, problems = funding_references([], "r:4", free_text={"x": 1}, **FIGSHARE)
    assert entries == [] and "free-text funding is dict" in problems[0]


def test_saved_funding_is_read_back_even_without_normalised_awards():
    # a hand-edited record: only award numbers
    assert nih_cores([{"award_number": "5R01EY012345-03"}, "junk", {"award_number": None}]) == {"R01EY012345"}
    assert nih_serials("not a list") == set()
