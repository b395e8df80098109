"""Each source's mapping fills ``funding`` from its own fields, on the recorded samples:
Dryad's ``funders`` as recorded (2020 and 2026 shapes); DataCite ``fundingReferences``,
Zenodo ``metadata.grants`` / ``metadata.funding`` and Figshare ``funding_list`` +
``funding`` put into their recorded records in each API's documented shape (the
samples hold empty lists there). Award numbers come out as NIH core project numbers;
funding of the wrong type is read where possible and reported with the record, never
a crash; a spider logs and counts what its mapping reported. Kaggle and OSF carry no
funding field: ``funding`` stays None."""

from __future__ import annotations

import copy
import logging

from envision_spiders.items import DatasetItem
from envision_spiders.mapping import datacite as m_datacite
from envision_spiders.mapping import dryad as m_dryad
from envision_spiders.mapping import figshare as m_figshare
from envision_spiders.mapping import zenodo as m_zenodo
from envision_spiders.spiders.datacite import DataCiteSpider
from tests.conftest import make_spider, sample


def cores(entries) -> list[str | None]:
    return [a["core_project_num"] or a["serial"] for e in entries for a in e["nih_awards"]]


# ------------------------------------------------------------------ DataCite
def datacite_record(refs) -> tuple[str, dict]:
    rec = copy.deepcopy(sample("datacite/doi_10.6084-m9.figshare.1449060_2026-07.json")["data"])
    rec["attributes"]["fundingReferences"] = refs
    return rec["id"], rec


def test_datacite_funding_references_of_schema_4():
    doi, rec = datacite_record([
        {"funderName": "National Eye Institute", "funderIdentifier": "https://doi.org/10.13039/100000053",
         "funderIdentifierType": "Crossref Funder ID", "awardNumber": "5R01EY012345-03",
         "awardUri": "https://reporter.nih.gov/project-details/10000001", "awardTitle": "Imaging the optic nerve"},
        {"funderName": "National Institutes of Health", "funderIdentifier": "https://ror.org/01cwqze88",
         "funderIdentifierType": "ROR", "awardNumber": "NIH/NEI R01 EY 027829"},
        {"funderName": "National Science Foundation", "funderIdentifier": "https://doi.org/10.13039/100000001",
         "funderIdentifierType": "Crossref Funder ID", "awardNumber": 2205650},
    ])
    fields = m_datacite.map_record(doi, rec)
    assert fields["funding_problems"] == []
    nei, nih, nsf = fields["funding"]
    assert (nei["funder_id"], nei["award_number"], nei["award_title"], nei["nei"]) == (
        "10.13039/100000053", "5R01EY012345-03", "Imaging the optic nerve", True)
    assert nei["award_uri"] == "https://reporter.nih.gov/project-details/10000001"
    assert nih["funder_id"] == "https://ror.org/01cwqze88" and nih["nei"], "NIH as funder, NEI by the EY code"
    assert cores([nei, nih]) == ["R01EY012345", "R01EY027829"]
    assert nsf["award_number"] == "2205650" and not nsf["nei"] and nsf["nih_awards"] == []
    # the recorded sample itself: an empty list, no funding and no problem
    assert m_datacite.map_record(*datacite_record([]))["funding"] == []


def test_datacite_funding_of_the_wrong_type_is_read_where_possible_and_reported():
    doi, rec = datacite_record({"funderName": "NEI", "awardNumber": {"value": "R01EY012345"},
                                "awardTitle": "R01EY012345 imaging"})
    fields = m_datacite.map_record(doi, rec)
    (entry,) = fields["funding"]
    assert entry["funder_name"] == "NEI" and cores([entry]) == ["R01EY012345"], "the title still names the award"
    assert all(p.startswith(f"datacite:{doi}: fundingReferences") for p in fields["funding_problems"])
    assert len(fields["funding_problems"]) == 2  # an object, not a list; awardNumber an object, not text
    doi, rec = datacite_record("R01EY012345")
    fields = m_datacite.map_record(doi, rec)
    assert fields["funding"] == [] and "is str, not a list" in fields["funding_problems"][0]


def test_a_spider_logs_and_counts_funding_problems_naming_the_record(tmp_path, caplog):
    spider = make_spider(DataCiteSpider, tmp_path)
    doi, rec = datacite_record([None, {"funderName": "National Eye Institute", "awardNumber": "EY012345"}])
    with caplog.at_level(logging.WARNING):
        (item,) = list(spider.handle_hit(rec, "retinal OCT"))
    assert isinstance(item, DatasetItem) and not hasattr(item, "funding_problems")
    assert cores(item.funding) == ["EY012345"] and item.funding[0]["nei"]
    stats = spider.crawler.stats
    assert stats.get_value("envision/funding/problems") == 1 == stats.get_value("envision/datacite/funding_problems")
    assert f"datacite: funding: datacite:{doi}: fundingReferences[0] is NoneType" in caplog.text


# ------------------------------------------------------------------ Zenodo
def zenodo_record(**metadata) -> dict:
    rec = copy.deepcopy(sample("zenodo/record_8173303_2026-07.json"))
    rec["metadata"].update(metadata)
    return rec


def test_zenodo_legacy_grants_and_inveniordm_funding():
    grants = [{"code": "1R01EY027829-01A1", "internal_id": "10.13039/100000002::1R01EY027829-01A1",
               "funder": {"name": "National Institutes of Health", "doi": "10.13039/100000002", "acronym": "NIH"},
               "title": "Adaptive optics imaging"}]
    funding = [
        # the same award again (kept once), and one only the InvenioRDM field holds
        {"funder": {"id": "01cwqze88", "name": "National Institutes of Health"},
         "award": {"id": "01cwqze88::1R01EY027829-01A1", "number": "1R01EY027829-01A1",
                   "title": {"en": "Adaptive optics imaging"}}},
        {"funder": {"id": "03wkg3b53", "name": "National Eye Institute"},
         "award": {"number": "P30 EY 001583", "title": {"en": "Core grant for vision research"}}},
    ]
    fields = m_zenodo.map_record(zenodo_record(grants=grants, funding=funding), [], "https://zenodo.org")
    assert fields["funding_problems"] == []
    legacy, rdm = fields["funding"]
    assert legacy["funder_id"] == "10.13039/100000002" and legacy["nei"] and cores([legacy]) == ["R01EY027829"]
    assert rdm["funder_id"] == "https://ror.org/03wkg3b53", "a bare ROR id of InvenioRDM"
    assert rdm["award_title"] == "Core grant for vision research" and cores([rdm]) == ["P30EY001583"]
    # the recorded record has neither field
    assert m_zenodo.map_record(zenodo_record(), [], "https://zenodo.org")["funding"] == []


def test_zenodo_grants_of_the_wrong_type_are_reported():
    fields = m_zenodo.map_record(zenodo_record(grants=[{"code": ["R01EY012345"], "funder": "NIH"}, 7]), [],
                                 "https://zenodo.org")
    problems = fields["funding_problems"]
    assert len(problems) == 2 and all(p.startswith("zenodo:8173303: metadata.grants[") for p in problems)
    assert fields["funding"] == [], "an entry with nothing readable is left out"


# ------------------------------------------------------------------ Figshare
def figshare_article(**fields) -> dict:
    art = copy.deepcopy(sample("figshare/article_123456_2023-04.json"))
    art.update(fields)
    return art


def test_figshare_funding_list_and_free_text():
    art = figshare_article(
        funding_list=[{"id": 1, "title": "Retinal imaging in diabetes", "grant_code": "R01 EY 012345",
                       "funder_name": "National Eye Institute", "is_user_defined": 1, "url": ""}],
        funding="Supported by NIH/NEI R01EY012345 and 5P30EY001583-12; NSF DEB-1354996.")
    fields = m_figshare.map_article(art, "https://api.figshare.com/v2")
    assert fields["funding_problems"] == []
    assert cores(fields["funding"]) == ["R01EY012345", "P30EY001583"]
    assert fields["funding"][0]["award_title"] == "Retinal imaging in diabetes"
    assert fields["funding"][1]["statement"].startswith("Supported by NIH/NEI") and fields["funding"][1]["nei"]
    # the recorded article: empty list and null statement
    assert m_figshare.map_article(figshare_article(), "https://api.figshare.com/v2")["funding"] == []
    # a search hit carries neither field: unknown, not "no funding"
    hit = figshare_article()
    del hit["funding_list"], hit["funding"]
    assert m_figshare.map_article(hit, "https://api.figshare.com/v2")["funding"] is None


def test_figshare_free_text_of_the_wrong_type_is_reported():
    fields = m_figshare.map_article(figshare_article(funding={"text": "R01EY012345"}, funding_list="R01EY012345"),
                                    "https://api.figshare.com/v2")
    assert fields["funding"] == []
    assert [p.split(": ", 1)[0] for p in fields["funding_problems"]] == ["figshare:123456"] * 2


# ------------------------------------------------------------------ Dryad
def test_dryad_funders_as_recorded_in_both_shapes():
    version = sample("dryad/dataset_versions_2026-07.json")["_embedded"]["stash:versions"][0]
    fields = m_dryad.map_dataset(version, "https://datadryad.org")
    (nsf,) = fields["funding"]
    assert (nsf["funder_name"], nsf["funder_id"], nsf["award_number"], nsf["nei"]) == (
        "U.S. National Science Foundation", "https://ror.org/021nxhr62", "2205650", False)
    assert fields["funding_problems"] == [] and "funders" not in fields["extra"]
    datasets = sample("dryad/datasets_list_2020-06.json")["_embedded"]["stash:datasets"]
    for d in datasets:
        fields = m_dryad.map_dataset(d, "https://datadryad.org")
        assert [e["award_number"] for e in fields["funding"]] == [f["awardNumber"] for f in d.get("funders") or []]
        assert not any(e["nei"] for e in fields["funding"])


def test_dryad_nei_award_in_several_forms_and_a_bad_entry():
    version = copy.deepcopy(sample("dryad/dataset_versions_2026-07.json")["_embedded"]["stash:versions"][0])
    version["funders"] = [{"organization": "National Eye Institute", "identifierType": "ror",
                           "identifier": "https://ror.org/03wkg3b53", "awardNumber": "R01-EY-12345, EY030000",
                           "awardURI": None, "awardDescription": None, "awardTitle": None, "order": 0},
                          "NIH EY012345"]
    version["identifier"] = "doi:10.5061/dryad.6hdr7sr8z"  # as the search hit the spider maps has it
    fields = m_dryad.map_dataset(version, "https://datadryad.org")
    assert cores(fields["funding"]) == ["R01EY012345", "EY030000", "EY012345"]
    (problem,) = fields["funding_problems"]
    assert problem.startswith("dryad:10.5061/dryad.6hdr7sr8z: funders[1] is text") and "award numbers are kept" in problem


# ------------------------------------------------------------------ Kaggle and OSF
def test_kaggle_and_osf_carry_no_funding_field():
    from envision_spiders.mapping import kaggle as m_kaggle
    from envision_spiders.mapping import osf as m_osf

    hit = sample("kaggle/datasets_list_2021-06.json")[0]
    assert "funding" not in m_kaggle.map_dataset(hit, [], "https://www.kaggle.com/api/v1", "https://www.kaggle.com")
    node = sample("osf/node_detail_2026-02.json")["data"]
    assert "funding" not in m_osf.map_record(node)
    assert DatasetItem(source="kaggle", source_id="a/b").funding is None
