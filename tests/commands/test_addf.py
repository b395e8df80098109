"""ADDF export: both documents validate against the AI-READI v0.1.0 schemas, fields
come from the record (identifier, titles, creators, year, dates, types, description,
subjects with MeSH ids, access, rights, publisher, size, MIME formats, related
identifiers), modalities from file types and archive members; ``scrapy export-addf``."""

from __future__ import annotations

import json

import pytest

from envision_spiders.modality import detect_modalities
from envision_spiders.addf import (
    DD_SCHEMA,
    DSD_SCHEMA,
    build,
    description_schema,
    formats,
    mesh_term,
    structure_schema,
    validate,
)
from envision_spiders.storage import atomic_write_json, record_path
from tests.conftest import crawl_env, scrapy_in_process

FULL = {
    "source": "zenodo",
    "source_id": "7834392",
    "doi": "https://doi.org/10.5281/ZENODO.7834392",
    "url": "https://zenodo.org/records/7834392",
    "title": "Retinal OCT volumes and fundus photographs in diabetic retinopathy",
    "description": "Spectralis volumes and colour fundus photographs.",
    "keywords": ["Optical Coherence Tomography", "fundus", "Diabetic Retinopathy", "deep learning"],
    "creators": [
        {"name": "Doe, Jane", "orcid": "https://orcid.org/0000-0002-1825-0097", "affiliation": "University of X"},
        {"name": "Retina Lab", "name_type": "organizational"},
        {"name": "Doe, Jane", "orcid": "0000-0002-1825-0097", "affiliation": "University of X"},
    ],
    "publication_year": 2023,
    "dates": {"created": "2023-04-17T10:00:00+00:00", "published": "2023-04-18", "modified": "2024-01-02T00:00:00Z"},
    "license": "cc-by-4.0",
    "access_type": "open",
    "resource_type": "dataset",
    "related_identifiers": [
        {"identifier": "10.1000/journal.1", "relation": "isSupplementTo", "scheme": "doi"},
        {"identifier": "https://github.com/lab/code", "relation": "isDocumentedBy", "scheme": "url"},
        {"identifier": "12345678", "relation": "cites", "scheme": "pmid"},
        {"identifier": "10.5281/zenodo.7834392", "relation": "isIdenticalTo", "scheme": "doi"},
    ],
    "related_dois": ["10.1000/journal.1", "10.1000/other.2"],
    "external_links": ["https://example.org/protocol"],
    "files": [{"name": "spectralis/p001.e2e"}, {"name": "topcon/p002.fds"}, {"name": "photos.zip"}],
    "file_names": ["spectralis/p001.e2e", "topcon/p002.fds", "photos.zip"],
    "file_types": [".dcm", ".e2e", ".fds", ".nii.gz", ".png", ".zip"],
    "file_count": 3,
    "total_size_bytes": 7_000_000_000,
    "archives": [{"name": "photos.zip", "listed": True, "extension_counts": {".png": 120, ".dcm": 4, ".nii.gz": 2},
                  "members_sample": ["fundus/left/0001.png", "dicom/0001.dcm"]}],
    "extra": {"version": "2"},
}


def test_full_record_validates_and_maps_fields():
    docs = build(FULL, {"label": "EYE_IMAGING", "prob_eye_imaging": 0.97})
    assert docs.errors == []
    d = docs.description
    assert d["schema"] == DD_SCHEMA
    assert d["identifier"] == {"identifierValue": "10.5281/zenodo.7834392", "identifierType": "DOI"}
    assert d["alternateIdentifier"] == [{"alternateIdentifierValue": FULL["url"], "alternateIdentifierType": "URL"}]
    assert d["title"] == [{"titleValue": FULL["title"]}]
    assert d["version"] == "2" and d["publicationYear"] == "2023"
    assert d["creator"][0]["nameIdentifier"][0]["nameIdentifierValue"] == "https://orcid.org/0000-0002-1825-0097"
    assert d["creator"][0]["affiliation"] == [{"affiliationName": "University of X"}]
    assert d["creator"][1] == {"creatorName": "Retina Lab", "nameType": "Organizational"}
    assert len(d["creator"]) == 2  # the repeated creator once
    assert {(x["dateType"], x["dateValue"]) for x in d["date"]} == {
        ("Created", "2023-04-17"), ("Issued", "2023-04-18"), ("Updated", "2024-01-02")}
    assert d["resourceType"] == {"resourceTypeValue": "Dataset", "resourceTypeGeneral": "Dataset"}
    assert d["description"] == [{"descriptionValue": FULL["description"], "descriptionType": "Abstract"}]
    subjects = {s["subjectValue"]: s.get("subjectIdentifier", {}).get("classificationCode") for s in d["subject"]}
    assert subjects["Optical Coherence Tomography"] == "D041623"
    assert subjects["fundus"] == "D005654" and subjects["Diabetic Retinopathy"] == "D003930"
    assert subjects["deep learning"] is None
    assert subjects["Retina"] == "D012160"  # named by the title, carried by no keyword
    oct_subject = next(s for s in d["subject"] if s["subjectValue"] == "Optical Coherence Tomography")
    assert oct_subject["subjectIdentifier"] == {"classificationCode": "D041623", "subjectScheme": "MeSH",
                                                "schemeURI": "https://id.nlm.nih.gov/mesh/",
                                                "valueURI": "https://id.nlm.nih.gov/mesh/D041623"}
    assert d["accessType"] == "PublicOnScreenAccessAndDownload"
    assert "url" not in d["accessDetails"] and FULL["url"] in d["accessDetails"]["description"]
    assert d["rights"] == [{"rightsName": "cc-by-4.0", "rightsIdentifier": {
        "rightsIdentifierValue": "CC-BY-4.0", "rightsIdentifierScheme": "SPDX", "schemeURI": "https://spdx.org/licenses/"}}]
    assert d["publisher"] == {"publisherName": "Zenodo"}
    assert d["managingOrganization"] == {"name": "University of X"}
    assert d["size"] == ["7000000000 bytes", "3 files"]
    assert d["format"] == ["application/dicom", "application/octet-stream", "application/zip", "image/png"]
    related = [(r["relatedIdentifierValue"], r["relatedIdentifierType"], r["relationType"]) for r in d["relatedIdentifier"]]
    assert related == [
        ("10.1000/journal.1", "DOI", "IsSupplementTo"),
        ("https://github.com/lab/code", "URL", "IsDocumentedBy"),
        ("12345678", "PMID", "Cites"),
        ("10.1000/other.2", "DOI", "References"),
        ("https://example.org/protocol", "URL", "References"),
    ]
    assert set(docs.placeholders) == {"datasetDeIdentLevel", "datasetConsent", "language"}


def test_structure_lists_modalities_from_files_and_archive_members():
    docs = build(FULL, manifest={"status": "complete"})
    s = docs.structure
    assert s["schema"] == DSD_SCHEMA and docs.errors == []
    dirs = {d["directoryName"]: d for d in s["directoryList"]}
    assert list(dirs) == ["retinal_oct", "retinal_photography", "dicom_imaging", "nifti_volumes"]
    assert all(d["directoryType"] == "dataType" for d in dirs.values())
    assert "Heidelberg" in dirs["retinal_oct"]["directoryDescription"] and "Topcon" in dirs["retinal_oct"]["directoryDescription"]
    assert dirs["retinal_oct"]["relatedTerm"][0]["relatedTermIdentifier"][0]["relatedTermClassificationCode"] == "D041623"
    assert "120 .png" in dirs["retinal_photography"]["directoryDescription"]
    assert dirs["retinal_photography"]["relatedTerm"][0]["relatedTermIdentifier"][0]["relatedTermClassificationCode"] == "D005654"
    assert dirs["dicom_imaging"]["relatedStandard"][0]["standardName"] == "DICOM"
    assert dirs["nifti_volumes"]["relatedStandard"][0]["standardName"] == "NIfTI-1"
    assert [f["metadataFileName"] for f in s["metadataFileList"]] == [
        "dataset_description.json", "dataset_structure_description.json", "manifest.json"]


def test_minimal_record_still_validates_with_placeholders():
    record = {"source": "kaggle", "source_id": "owner/slug", "url": "https://www.kaggle.com/owner/retina-oct",
              "title": "", "access_type": "open", "file_names": ["train/001.jpeg"], "file_types": [".jpeg"],
              "provenance": {"harvested_at": "2026-05-01T00:00:00Z"}}
    docs = build(record)
    assert docs.errors == []
    d = docs.description
    assert d["identifier"] == {"identifierValue": record["url"], "identifierType": "URL"}
    assert d["title"] == [{"titleValue": "kaggle record owner/slug"}]
    assert d["creator"] == [{"creatorName": "(:unav)", "nameType": "Organizational"}]
    assert d["publicationYear"] == "2026" and d["rights"] == []
    assert d["accessType"] == "PublicDownloadSelfAttestationRequired"
    assert d["accessDetails"]["url"] == record["url"]  # passes the schema's URL pattern
    assert {"version", "creator", "publicationYear", "managingOrganization", "datasetDeIdentLevel"} <= set(docs.placeholders)
    assert [x["directoryName"] for x in docs.structure["directoryList"]] == ["ophthalmic_images"]
    no_url = build({"source": "nei", "source_id": "123", "title": "A grant", "access_type": "weird"})
    assert no_url.errors == [] and no_url.description["identifier"]["identifierType"] == "Other"
    assert no_url.description["accessType"] == "Other" and no_url.structure["directoryList"] == []


def test_validators_reject_what_the_schemas_forbid():
    docs = build(FULL)
    bad = dict(docs.description, publicationYear=2023, accessType="RestrictedAccess", extra_field=1)
    bad.pop("rights")
    errors = validate(bad, description_schema())
    assert any(e.startswith("publicationYear") for e in errors)
    assert any(e.startswith("accessType") for e in errors)
    assert any("'rights' is a required property" in e for e in errors)
    assert any("extra_field" in e for e in errors)
    structure = json.loads(json.dumps(docs.structure))
    structure["directoryList"][0].pop("directoryDescription")
    structure["directoryList"][1]["directoryType"] = "folder"
    structure["metadataFileList"][0].pop("metadataFileDescription")
    errors = validate(structure, structure_schema())
    assert any("directoryDescription" in e for e in errors)
    assert any(e.startswith("directoryList/1/directoryType") for e in errors)
    assert any("metadataFileDescription" in e for e in errors)


@pytest.mark.parametrize(
    "text,ui",
    [("OCT", "D041623"), ("OCT-A imaging", "D041623"), ("optical coherence tomography", "D041623"),
     ("colour fundus photographs", "D005654"), ("Diabetic retinopathy grading", "D003930"),
     ("age-related macular degeneration (AMD)", "D008268"), ("glaucoma", "D005901"), ("keratoconus cornea", "D003315"),
     ("retinal vessels", "D012160"), ("retinopathy of prematurity", "D012164"), ("ophthalmology", "D009885"),
     ("pizza", None), ("doctoral thesis", None)],
)
def test_mesh_table(text, ui):
    term = mesh_term(text)
    assert (term.ui if term else None) == ui


def test_formats_are_mime_types():
    assert formats([".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".csv", ".tar.gz", ".e2e", ""]) == [
        "application/dicom", "application/gzip", "application/octet-stream", "image/jpeg", "image/tiff", "text/csv"]


def test_octa_and_anterior_segment_detection():
    octa = detect_modalities({"title": "OCTA of the macula", "file_names": ["angio/001.png"]})
    assert [m.key for m in octa] == ["retinal_octa"]
    slit = detect_modalities({"title": "Slit-lamp photographs of corneal ulcers", "file_names": ["a.jpg"]})
    assert [m.key for m in slit] == ["anterior_segment_photography"] and slit[0].terms[0][1] == "cornea"
    structure = build({"title": "Slit-lamp photographs of corneal ulcers", "file_names": ["a.jpg"]}).structure
    assert structure["directoryList"][0]["relatedTerm"][0]["relatedTermIdentifier"][0][
        "relatedTermClassificationCode"] == "D003315"
    members = detect_modalities({"title": "Eye data", "file_names": ["x.zip"],
                                 "archives": [{"extension_counts": {".vol": 10}, "members_sample": ["a.vol"]}]})
    assert [m.key for m in members] == ["retinal_oct"] and members[0].evidence[".vol"] == 10


def test_export_addf_command(tmp_path):
    data_dir, results = tmp_path / "data", tmp_path / "results"
    results.mkdir()
    atomic_write_json(record_path(data_dir, "dryad", "doi:10.5061/dryad.abc"),
                      {**FULL, "source": "dryad", "source_id": "doi:10.5061/dryad.abc", "doi": "doi:10.5061/dryad.abc"})
    rows = [
        {"source": "dryad", "source_id": "doi:10.5061/dryad.abc", "label": "EYE_IMAGING", "prob_eye_imaging": 0.93},
        {"source": "dryad", "source_id": "doi:10.5061/dryad.low", "label": "EYE_IMAGING", "prob_eye_imaging": 0.4},
        {"source": "dryad", "source_id": "doi:10.5061/dryad.gone", "label": "EYE_IMAGING", "prob_eye_imaging": 0.99},
    ]
    (results / "dryad_eye_imaging.json").write_text(json.dumps(rows))
    env = crawl_env(None, data_dir, RESULTS_DIR=str(results))
    out = tmp_path / "addf"
    result = scrapy_in_process(["export-addf", "-o", str(out)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    folders = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*"))
    assert folders == ["dryad/doi_10.5061_dryad.abc"]
    folder = out / folders[0]
    description = json.loads((folder / "dataset_description.json").read_text())
    structure = json.loads((folder / "dataset_structure_description.json").read_text())
    assert validate(description, description_schema()) == [] and validate(structure, structure_schema()) == []
    assert description["identifier"] == {"identifierValue": "10.5061/dryad.abc", "identifierType": "DOI"}
    assert description["publisher"] == {"publisherName": "Dryad"}
    notes = json.loads((folder / "addf-notes.json").read_text())
    assert notes["errors"] == [] and "datasetConsent" in notes["placeholders"]
    assert "dryad.gone has no saved record" in result.stderr
    assert not (data_dir / "downloads").exists()  # an export queues nothing
