"""Posting to the envision portal: bodies, the stand-in's contract, `scrapy post` runs.

The input is built here in the documented formats: saved records under
``data/metadata/{source}/{safe id}.json`` and classified rows in
``results/{source}_eye_imaging.json``. Runs go through ``scrapy post``'s command line as
a curator starts it (in this process: ``scrapy_in_process``), against the portal stand-in
of the local API server.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from localapi import portal as standin
from envision_spiders.portal.body import (
    MAX_FILE_NODES,
    Unpostable,
    build_body,
    concept_doi,
    created_of,
    external_url,
    file_tree,
)
from envision_spiders.storage import atomic_write_json, record_path

from tests.conftest import ROOT, scrapy_in_process

ENDPOINT = r"^/portal/api/discover/dataset/external$"


# ------------------------------------------------------------------ input
def zenodo_record(sid: str = "124", concept: str = "123", **over: Any) -> dict[str, Any]:
    record = {
        "source": "zenodo", "source_id": sid, "doi": f"10.5281/zenodo.{sid}",
        "url": f"https://zenodo.org/records/{sid}",
        "title": "Retinal OCT volumes of diabetic retinopathy", "description": "Spectralis OCT volumes.\nTwo sites.",
        "keywords": ["OCT", "diabetic retinopathy"], "creators": [{"name": "Doe, Jane", "affiliation": "Eye Clinic"}],
        "publication_year": 2023,
        "dates": {"created": "2023-02-01T10:00:00Z", "modified": "2024-01-05T08:00:00Z", "published": "2023-02-03"},
        "license": "cc-by-4.0", "access_type": "open", "resource_type": "dataset",
        "related_identifiers": [{"identifier": f"10.5281/zenodo.{concept}", "relation": "isVersionOf", "scheme": "doi"}],
        "related_dois": [], "external_links": [],
        "files": [{"name": "oct.zip", "size_bytes": 2_000_000, "url": f"https://zenodo.org/api/records/{sid}/files/oct.zip/content",
                   "file_id": "f1", "checksum": "md5:" + "0" * 32},
                  {"name": "README.md", "size_bytes": 900, "url": "https://zenodo.org/x", "file_id": "f2", "checksum": None}],
        "file_names": ["oct.zip", "README.md"], "file_types": [".zip", ".md"], "file_count": 2,
        "total_size_bytes": 2_000_900, "img_count": 0, "medical_count": 0, "archive_count": 1, "genomics_count": 0,
        "archives": [{"name": "oct.zip", "listed": True, "complete": True, "member_count": 3,
                      "members_sample": ["site1/p1.e2e", "site1/p2.e2e", "site2/p3.e2e"], "extension_counts": {".e2e": 3}}],
        "extra": {"conceptrecid": concept, "conceptdoi": f"10.5281/zenodo.{concept}", "version": "v2"},
        "provenance": {"harvested_at": "2026-01-01T00:00:00Z", "search_terms": ["oct"],
                       "source_modified": "2024-01-05T08:00:00Z", "api_url": f"https://zenodo.org/api/records/{sid}"},
    }
    record.update(over)
    return record


def kaggle_record(ref: str = "EyeLab/Fundus-Photos", **over: Any) -> dict[str, Any]:
    record = {
        "source": "kaggle", "source_id": ref, "doi": None, "url": f"https://www.kaggle.com/datasets/{ref}",
        "title": "Fundus photographs for glaucoma screening", "description": "Colour fundus photographs.",
        "keywords": ["glaucoma"], "creators": [{"name": "Eye Lab"}], "publication_year": None,
        "dates": {"modified": "2025-03-01T12:00:00Z"}, "license": "CC0-1.0", "access_type": "open",
        "files": [{"name": f"images/{i:03d}.png", "size_bytes": 1000, "url": None, "file_id": None, "checksum": None}
                  for i in range(5)],
        "file_names": [f"images/{i:03d}.png" for i in range(5)], "file_types": [".png"], "file_count": 5,
        "total_size_bytes": 5000, "img_count": 5, "archives": [],
        "extra": {"ref": ref, "current_version": 3, "view_count": 1234},
        "provenance": {"harvested_at": "2026-01-01T00:00:00Z", "source_modified": "2025-03-01T12:00:00Z"},
    }
    record.update(over)
    return record


def result_row(record: dict[str, Any], prob: float = 0.97, **over: Any) -> dict[str, Any]:
    row = {k: record.get(k) for k in ("source", "source_id", "doi", "url", "title", "description", "keywords",
                                      "access_type", "license", "file_types", "file_names", "file_count", "img_count",
                                      "medical_count", "archive_count", "genomics_count", "external_links", "related_dois")}
    row.update({"label": "EYE_IMAGING", "confidence": prob, "prob_eye_imaging": prob, "prob_negative": 1 - prob,
                "size_mb": round((record.get("total_size_bytes") or 0) / 2**20, 2), "duplicate_of": None})
    row.update(over)
    return row


def save(tmp_path: Path, records: list[dict[str, Any]], rows: list[dict[str, Any]] | None = None) -> None:
    """Records on disk and their results files (one per source, in the order given)."""
    for r in records:
        atomic_write_json(record_path(tmp_path / "data", r["source"], r["source_id"]), r)
    by_source: dict[str, list] = {}
    for row in rows if rows is not None else [result_row(r) for r in records]:
        by_source.setdefault(row["source"], []).append(row)
    for source, source_rows in by_source.items():
        atomic_write_json(tmp_path / "results" / f"{source}_eye_imaging.json", source_rows)


# ------------------------------------------------------------------ running
def env_for(tmp_path: Path, server=None, *, key: str | None = None, url: str | None = None, **extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_KEY", "_SECRET"))}
    # set, even when empty: a curator's .env (loaded by settings.py, never over the
    # environment) must not point a test at a real portal
    # POST_REQUIRES_REVIEW off: these tests are about the model's gate and the portal; the
    # curators' gate has its own tests (test_review_gate.py)
    env.update({"DATA_DIR": str(tmp_path / "data"), "RESULTS_DIR": str(tmp_path / "results"), "POLITENESS_SCALE": "0",
                "PYTHONPATH": str(ROOT), "LOG_LEVEL": "INFO", "PORTAL_URL": "", "PORTAL_API_KEY": "",
                "POST_REQUIRES_REVIEW": "0"})
    if server is not None:
        settings = server.portal_settings()
        env["PORTAL_URL"] = url or settings["PORTAL_URL"]
        env["PORTAL_API_KEY"] = key or settings["PORTAL_API_KEY"]
    env.update({k: str(v) for k, v in extra.items()})
    return env


def post(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return scrapy_in_process(["post", *args], env)


def summary_of(tmp_path: Path, run_id: str) -> dict[str, Any]:
    return json.loads((tmp_path / "data" / "runs" / run_id / "post.json").read_text())


def posted_state(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "data" / "portal" / "posted.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture
def portal(api):
    """The portal stand-in, emptied (the `api` fixture resets the server's state)."""
    return standin.state_of(api.state)


def send(server, body: Any, *, key: str | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    """One POST to the stand-in, as any client would send it."""
    settings = server.portal_settings()
    request = urllib.request.Request(settings["PORTAL_URL"] + "/api/discover/dataset/external",
                                     data=raw if raw is not None else json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "x-api-key": settings["PORTAL_API_KEY"] if key is None else key})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# ------------------------------------------------------------------ bodies
def test_body_identity_dates_and_metadata():
    body = build_body(zenodo_record(), result_row(zenodo_record()))
    p = body.payload
    ok, issues = standin.validate(json.loads(json.dumps(p)))
    assert ok is not None, issues
    # a version of a Zenodo concept: the concept DOI, lower case, so versions update one entry
    assert p["externalUrl"] == "https://doi.org/10.5281/zenodo.123" == body.external_url
    assert p["doi"] == "10.5281/zenodo.124"
    assert p["created"] == "1675382400"  # published 2023-02-03, not the upload nor "now"
    assert p["updated"] == "1704441600"  # modified 2024-01-05T08:00Z
    assert p["versionTitle"] == "v2"
    assert p["PublishedDatasetRegistrationDetails"]["datasetSource"] == "Zenodo"
    assert p["PublishedDatasetRegistrationDetails"]["extractionVersion"]
    meta = p["publishedMetadata"]
    assert set(meta) == {"studyDescription", "readme", "datasetDescription", "datasetStructureDescription", "healthsheet"}
    assert meta["datasetDescription"]["identifier"] == {"identifierValue": "10.5281/zenodo.124", "identifierType": "DOI"}
    assert meta["datasetDescription"]["rights"][0]["rightsName"] == "cc-by-4.0"
    assert any(d["directoryName"] == "retinal_oct" for d in meta["datasetStructureDescription"]["directoryList"])
    assert meta["studyDescription"]["conditionsModule"]["conditionList"] == [{"conditionName": "Diabetic Retinopathy"}]
    assert "Retinal OCT volumes" in meta["readme"] and "(https://doi.org/10.5281/zenodo.124)" in meta["readme"]
    # the archive is a folder of its members
    assert p["files"] == [
        {"label": "oct.zip", "children": [
            {"label": "site1", "children": [{"name": "p1.e2e"}, {"name": "p2.e2e"}]},
            {"label": "site2", "children": [{"name": "p3.e2e"}]}]},
        {"name": "README.md"},
    ]
    assert p["data"]["size"] == 2_000_900 and p["data"]["fileCount"] == 2 and p["data"]["viewCount"] == 0


def test_external_url_rules():
    assert concept_doi({"doi": "10.6084/m9.figshare.555.v3"}) == "10.6084/m9.figshare.555"
    # a Zenodo version seen through DataCite: its IsVersionOf concept
    assert concept_doi({"source": "datacite", "doi": "10.5281/ZENODO.9",
                        "related_identifiers": [{"identifier": "https://doi.org/10.5281/zenodo.8", "relation": "IsVersionOf"}]}) \
        == "10.5281/zenodo.8"
    url, notes = external_url({"doi": "10.1234/ABC#1"})
    assert url == "https://doi.org/10.1234/abc%231" and not notes
    url, notes = external_url(kaggle_record())
    assert url == "https://www.kaggle.com/datasets/eyelab/fundus-photos" and not notes
    url, notes = external_url({"url": "https://Example.org/Data/Set1"})
    assert url == "https://example.org/data/set1" and notes and "case-sensitive" in notes[0]
    with pytest.raises(Unpostable):
        external_url({"url": "ftp://x/y"})
    with pytest.raises(Unpostable):
        build_body(zenodo_record(title="  "))


def test_created_comes_from_the_record_never_now():
    assert created_of({"dates": {"created": "2020-05-01", "published": "2021-01-01"}}) == (1609459200, "published")
    assert created_of({"dates": {"registered": "2019-01-01T00:00:00Z"}}) == (1546300800, "registered")
    assert created_of({"publication_year": 2018, "dates": {"modified": "2024-01-01"}}) == (1514764800, "publication_year")
    assert created_of({"dates": {"modified": "2024-01-01"}}) == (1704067200, "modified")
    with pytest.raises(Unpostable):
        created_of({"dates": {}, "provenance": {"harvested_at": "2026-01-01T00:00:00Z"}})


def test_file_tree_sorted_nested_and_capped():
    a = file_tree({"files": [{"name": "b/2.png"}, {"name": "a.txt"}, {"name": "b/1.png"}]})
    b = file_tree({"files": [{"name": "b/1.png"}, {"name": "a.txt"}, {"name": "b/2.png"}]})
    assert a == b == [{"label": "b", "children": [{"name": "1.png"}, {"name": "2.png"}]}, {"name": "a.txt"}]
    partial = file_tree({"files": [{"name": "x.zip"}], "archives": [
        {"name": "x.zip", "listed": True, "complete": False, "member_count": 500, "members_sample": ["m/1.png"],
         "extension_counts": {".png": 400}}]})
    assert partial[0]["children"][0] == {"label": "m", "children": [{"name": "1.png"}]}
    assert "399 more members" in partial[0]["children"][1]["name"] and "500 members" in partial[0]["children"][1]["name"]
    big = file_tree({"files": [{"name": f"f{i}.png"} for i in range(MAX_FILE_NODES + 50)]})
    assert len(big) == MAX_FILE_NODES + 1 and big[-1]["name"].startswith("… 50 more files")
    ok, issues = standin.validate({**build_body(kaggle_record()).payload, "files": big})
    assert ok is not None, issues


# ------------------------------------------------------------------ the stand-in's contract
def test_stand_in_enforces_the_portal_contract(api, portal):
    good = build_body(kaggle_record()).payload
    assert send(api, good, key="wrong")[0] == 401
    assert send(api, good, key="")[0] == 401
    status, answer = send(api, None, raw=b"{not json")
    assert status == 400 and answer["statusMessage"] == "Invalid JSON body"
    bad = {**good, "created": 1700000000, "files": [{"label": "x"}], "PublishedDatasetRegistrationDetails": {}}
    del bad["title"]
    status, answer = send(api, bad)
    issues = json.loads(answer["statusMessage"])
    assert status == 400
    assert {(".".join(map(str, i["path"])), i["code"]) for i in issues} == {
        ("title", "invalid_type"), ("created", "invalid_type"), ("files.0", "invalid_union"),
        ("PublishedDatasetRegistrationDetails.datasetSource", "invalid_type"),
        ("PublishedDatasetRegistrationDetails.extractionMethod", "invalid_type"),
        ("PublishedDatasetRegistrationDetails.extractionVersion", "invalid_type")}
    assert not portal.datasets
    # created: HTTP 200 with the handler's object; ids overwritten; updated = created; unknown keys dropped
    status, answer = send(api, {**good, "external": True, "id": 99})
    assert (status, answer) == (200, {"statusCode": 201, "statusMessage": "Request submitted"})
    stored = portal.datasets[0]
    assert stored["datasetId"] == stored["canonicalId"] == "external-1"
    assert stored["updated"] == stored["created"] and "id" in stored and stored["id"] == 1
    # matched in lower case against the stored value: a capitalised URL is never found again
    assert send(api, {**good, "externalUrl": good["externalUrl"].upper()}) == (200, {"statusCode": 200, "statusMessage": "Dataset updated"})
    assert len(portal.datasets) == 1 and portal.datasets[0]["externalUrl"] == good["externalUrl"].upper()
    assert send(api, {**good, "externalUrl": good["externalUrl"].upper()})[1]["statusCode"] == 201
    assert len(portal.datasets) == 2
    # parseInt(created) * 1000 that is no date: the database write fails
    assert send(api, {**good, "externalUrl": "https://x.org/1", "created": "soon"})[0] == 500
    assert all(r["key_ok"] is (r["status"] != 401) for r in portal.posts())


# ------------------------------------------------------------------ runs
def test_post_creates_then_updates_and_skips_unchanged(api, portal, tmp_path):
    zen, kag = zenodo_record(), kaggle_record()
    save(tmp_path, [zen, kag])
    result = post(env_for(tmp_path, api, RUN_ID="r1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(portal.posts()) == 2 and all(r["status"] == 200 for r in portal.posts())
    assert [r["answer"]["statusCode"] for r in portal.posts()] == [201, 201]
    urls = sorted(d["externalUrl"] for d in portal.datasets)
    assert urls == ["https://doi.org/10.5281/zenodo.123", "https://www.kaggle.com/datasets/eyelab/fundus-photos"]
    s = summary_of(tmp_path, "r1")
    assert (s["posted"], s["created"], s["updated"], s["failed"], s["ok"]) == (2, 2, 0, 0, True)
    assert "2 posted (2 created, 0 updated)" in result.stderr
    state = posted_state(tmp_path)["portals"][api.portal_settings()["PORTAL_URL"]]["datasets"]
    assert set(state) == set(urls)

    # nothing changed: nothing sent
    result = post(env_for(tmp_path, api, RUN_ID="r2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(portal.posts()) == 2
    assert summary_of(tmp_path, "r2")["unchanged_skipped"] == 2

    # one record changed: it alone is sent, and the portal updates the same dataset
    save(tmp_path, [zenodo_record(title="Retinal OCT volumes of diabetic retinopathy (corrected)"), kag])
    result = post(env_for(tmp_path, api, RUN_ID="r3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(portal.posts()) == 3 and portal.posts()[-1]["answer"]["statusMessage"] == "Dataset updated"
    assert len(portal.datasets) == 2
    assert portal.find("https://doi.org/10.5281/zenodo.123")["title"].endswith("(corrected)")
    s = summary_of(tmp_path, "r3")
    assert (s["posted"], s["created"], s["updated"], s["unchanged_skipped"]) == (1, 0, 1, 1)

    # --force sends everything again: updates, never copies
    result = post(env_for(tmp_path, api, RUN_ID="r4"), "--force")
    assert result.returncode == 0 and summary_of(tmp_path, "r4")["updated"] == 2 and len(portal.datasets) == 2


def test_selection_threshold_duplicates_and_versions(api, portal, tmp_path):
    zen = zenodo_record()
    old_version = zenodo_record(sid="100", title="Retinal OCT volumes (first version)",
                                dates={"published": "2022-05-01", "modified": "2022-05-01"})
    datacite = {**zenodo_record(), "source": "datacite", "source_id": "10.5281/zenodo.124"}
    low = kaggle_record()
    save(tmp_path, [zen, old_version, datacite, low], [
        result_row(zen), result_row(old_version),
        result_row(datacite, duplicate_of={"source": "zenodo", "source_id": "124"}),
        result_row(low, prob=0.5),
    ])
    result = post(env_for(tmp_path, api, RUN_ID="d1"))
    assert result.returncode == 0, result.stderr[-3000:]
    # the DataCite copy is a marked duplicate, the old version lands on the same concept: one post
    assert len(portal.posts()) == 1 and portal.posts()[0]["body"]["doi"] == "10.5281/zenodo.124"
    s = summary_of(tmp_path, "d1")
    assert (s["posted"], s["duplicates_skipped"], s["below_threshold"]) == (1, 2, 1)
    # the newest version is the one posted
    assert portal.posts()[0]["body"]["title"] == zen["title"]
    # a higher POST_THRESHOLD, and --threshold, select fewer
    result = post(env_for(tmp_path, api, RUN_ID="d2", POST_THRESHOLD="0.99"), "--force")
    assert result.returncode == 0 and summary_of(tmp_path, "d2")["posted"] == 0
    result = post(env_for(tmp_path, api, RUN_ID="d3"), "--threshold", "0.4", "--source", "kaggle")
    assert result.returncode == 0 and summary_of(tmp_path, "d3")["created"] == 1


def test_wrong_key_stops_the_run_with_the_portal_message(api, portal, tmp_path):
    save(tmp_path, [zenodo_record(), kaggle_record()])
    result = post(env_for(tmp_path, api, key="not-the-key", RUN_ID="k1"))
    assert result.returncode == 1
    assert "refused the API key (HTTP 401: Unauthorized)" in result.stderr and "PORTAL_API_KEY" in result.stderr
    assert len(portal.posts()) == 1, "the run stops at the first 401"
    s = summary_of(tmp_path, "k1")
    assert s["stopped"] and s["posted"] == 0 and s["not_attempted"] == 1 and not s["ok"]
    assert not posted_state(tmp_path).get("portals", {}).get(api.portal_settings()["PORTAL_URL"], {}).get("datasets")


def test_a_rejected_body_stops_the_run_with_the_issues(api, portal, tmp_path, monkeypatch):
    # a portal whose schema gained a required field: every body is refused with its zod issues
    monkeypatch.setattr(standin, "validate", _validate_with_license)
    save(tmp_path, [zenodo_record(), kaggle_record()])
    result = post(env_for(tmp_path, api, RUN_ID="b1"))
    assert result.returncode == 1
    assert "rejected the body" in result.stderr and "license: Required" in result.stderr
    assert len(portal.posts()) == 1 and not portal.datasets
    assert summary_of(tmp_path, "b1")["stopped"]
    assert not posted_state(tmp_path).get("portals", {}).get(api.portal_settings()["PORTAL_URL"], {}).get("datasets")


_original_validate = standin.validate


def _validate_with_license(body):
    parsed, issues = _original_validate(body)
    if not isinstance(body, dict) or not isinstance(body.get("license"), str):
        issues = issues + [standin._type_issue("string", body.get("license", standin._MISSING), ["license"])]
        parsed = None
    return parsed, issues


def test_server_errors_and_dropped_connections_are_retried(api, portal, tmp_path):
    save(tmp_path, [zenodo_record(), kaggle_record()])
    api.state.add_fault(path=r"/portal/api/discover", kind="status", status=503, count=3)
    api.state.add_fault(path=r"/portal/api/discover", kind="drop", count=1)
    api.state.add_fault(path=r"/portal/api/discover", kind="429", retry_after="1", count=1)
    result = post(env_for(tmp_path, api, RUN_ID="x1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(portal.datasets) == 2
    assert api.state.count(ENDPOINT) == 2 + 5
    s = summary_of(tmp_path, "x1")
    assert (s["created"], s["retries"], s["failed"]) == (2, 5, 0)
    assert "HTTP 503" in result.stderr and "no answer" in result.stderr and "waiting 1.0 s as the portal asks" in result.stderr


def test_a_portal_that_keeps_failing_fails_the_run_and_marks_nothing(api, portal, tmp_path):
    records = [kaggle_record(ref=f"lab/set-{i}") for i in range(5)]
    save(tmp_path, records)
    api.state.add_fault(path=r"/portal/api/discover", kind="status", status=502, count=-1)
    result = post(env_for(tmp_path, api, RUN_ID="f1", RETRY_TIMES="2"))
    assert result.returncode == 1
    s = summary_of(tmp_path, "f1")
    assert (s["failed"], s["not_attempted"], s["posted"]) == (3, 2, 0)
    assert api.state.count(ENDPOINT) == 3 * 3, "each failed record: one try and two retries"
    assert "seems down" in s["stopped"]
    assert not posted_state(tmp_path)["portals"][api.portal_settings()["PORTAL_URL"]]["datasets"]


def test_dry_run_writes_the_bodies_and_sends_nothing(api, portal, tmp_path):
    save(tmp_path, [zenodo_record(), kaggle_record()])
    out = tmp_path / "bodies.json"
    result = post(env_for(tmp_path, RUN_ID="dr1"), "--dry-run", str(out))  # no PORTAL_URL, no key
    assert result.returncode == 0, result.stderr[-3000:]
    bodies = json.loads(out.read_text())
    assert [b["externalUrl"] for b in bodies] == ["https://www.kaggle.com/datasets/eyelab/fundus-photos",
                                                  "https://doi.org/10.5281/zenodo.123"]
    assert all(standin.validate(b)[0] is not None for b in bodies)
    assert not api.state.entries("/portal") and not portal.requests
    assert not (tmp_path / "data" / "portal" / "posted.json").exists()
    s = summary_of(tmp_path, "dr1")
    assert s["dry_run"] and s["would_post"] == 2 and s["posted"] == 0
    # without a file: under DATA_DIR/portal/
    result = post(env_for(tmp_path, RUN_ID="dr2"), "--dry-run")
    assert result.returncode == 0 and (tmp_path / "data" / "portal" / "dry-run-dr2.json").exists()


def test_missing_address_or_key_is_a_clear_error(api, tmp_path):
    save(tmp_path, [kaggle_record()])
    result = post(env_for(tmp_path, RUN_ID="m1"))
    assert result.returncode == 1 and "PORTAL_URL is not set" in result.stderr
    env = env_for(tmp_path, api, RUN_ID="m2")
    env["PORTAL_API_KEY"] = ""
    result = post(env)
    assert result.returncode == 1 and "PORTAL_API_KEY is not set" in result.stderr
    result = post(env_for(tmp_path, api, url=api.base_url + "/nowhere", RUN_ID="m3"))
    assert result.returncode == 1 and "no dataset endpoint" in result.stderr and "check PORTAL_URL" in result.stderr


def test_ids_and_created_are_stable_across_runs(api, portal, tmp_path):
    kag = kaggle_record()
    save(tmp_path, [zenodo_record(), kag])
    first = tmp_path / "one.json"
    assert post(env_for(tmp_path, RUN_ID="s1"), "--dry-run", str(first)).returncode == 0
    # a later harvest of the same records (a new harvested_at), another run id
    save(tmp_path, [zenodo_record(provenance={"harvested_at": "2026-02-01T00:00:00Z",
                                              "source_modified": "2024-01-05T08:00:00Z"}), kag])
    second = tmp_path / "two.json"
    assert post(env_for(tmp_path, RUN_ID="s2"), "--dry-run", str(second)).returncode == 0
    assert json.loads(first.read_text()) == json.loads(second.read_text())
    bodies = {b["externalUrl"]: b for b in json.loads(first.read_text())}
    for b in bodies.values():
        assert b["datasetId"] and b["canonicalId"] and b["datasetId"] != b["canonicalId"]
    # posted, then Kaggle updates the dataset (Kaggle states no creation date): `created`
    # stays the first one sent, `updated` moves
    assert post(env_for(tmp_path, api, RUN_ID="s3")).returncode == 0
    kaggle_url = "https://www.kaggle.com/datasets/eyelab/fundus-photos"
    created = bodies[kaggle_url]["created"]
    save(tmp_path, [kaggle_record(dates={"modified": "2025-09-09T00:00:00Z"},
                                  provenance={"source_modified": "2025-09-09T00:00:00Z"})])
    assert post(env_for(tmp_path, api, RUN_ID="s4"), "--source", "kaggle").returncode == 0
    last = portal.posts()[-1]["body"]
    assert last["externalUrl"] == kaggle_url and last["created"] == created and last["updated"] == "1757376000"
    assert last["datasetId"] == bodies[kaggle_url]["datasetId"]


def test_the_api_key_is_never_logged_or_written(api, portal, tmp_path):
    save(tmp_path, [zenodo_record(), kaggle_record()])
    key = api.portal_settings()["PORTAL_API_KEY"]
    api.state.add_fault(path=r"/portal/api/discover", kind="status", status=500, count=1)
    runs = [post(env_for(tmp_path, api, RUN_ID="a1", LOG_LEVEL="DEBUG")),
            post(env_for(tmp_path, api, RUN_ID="a2", LOG_LEVEL="DEBUG"), "--force", "--dry-run"),
            post(env_for(tmp_path, api, key="wrong-secret-value", RUN_ID="a3", LOG_LEVEL="DEBUG"), "--force")]
    assert [r.returncode for r in runs] == [0, 0, 1]
    assert portal.posts()[-1]["status"] == 401 and portal.posts()[-1]["key_sent"]
    for r in runs:
        for secret in (key, "wrong-secret-value"):
            assert secret not in r.stdout and secret not in r.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "posted.json" for p in files) and any(p.name == "post.json" for p in files)
    for p in files:
        text = p.read_bytes()
        assert key.encode() not in text and b"wrong-secret-value" not in text, p


def _dotenv_portal() -> bool:
    env_file = ROOT / ".env"
    return env_file.exists() and any(
        line.split("=", 1)[0].strip() == "PORTAL_URL" and line.split("=", 1)[1].strip().strip("'\"")
        for line in env_file.read_text().splitlines() if "=" in line and not line.lstrip().startswith("#"))


@pytest.mark.skipif(_dotenv_portal(), reason="this checkout's .env names a portal: automation.sh would post to it")
def test_automation_post_step_is_skipped_without_a_portal(tmp_path):
    env = env_for(tmp_path, RUN_ID="auto1")
    del env["PORTAL_URL"], env["PORTAL_API_KEY"]
    result = subprocess.run([str(ROOT / "automation.sh"), "post"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "PORTAL_URL is not set" in result.stdout and "step skipped" in result.stdout


def test_records_no_longer_selected_are_reported_and_a_broken_state_file_is_kept(api, portal, tmp_path):
    zen, kag = zenodo_record(), kaggle_record()
    save(tmp_path, [zen, kag])
    assert post(env_for(tmp_path, api, RUN_ID="n1")).returncode == 0
    # the Kaggle record was relabelled below the threshold: the portal keeps it, the run says so
    save(tmp_path, [zen, kag], [result_row(zen), result_row(kag, prob=0.3)])
    result = post(env_for(tmp_path, api, RUN_ID="n2"))
    assert result.returncode == 0
    s = summary_of(tmp_path, "n2")
    assert s["no_longer_selected"] == 1 and s["no_longer_selected_datasets"][0]["source_id"] == kag["source_id"]
    assert "no longer selected" in result.stderr
    # a damaged posted.json is moved aside, never overwritten; the records go again as updates
    state_file = tmp_path / "data" / "portal" / "posted.json"
    state_file.write_text('{"portals": {"broken')
    result = post(env_for(tmp_path, api, RUN_ID="n3"))
    assert result.returncode == 0, result.stderr[-2000:]
    aside = list(state_file.parent.glob("posted.json.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_text() == '{"portals": {"broken'
    assert summary_of(tmp_path, "n3")["updated"] == 1 and len(portal.datasets) == 2
    assert json.loads(state_file.read_text())["portals"]


def test_an_answer_that_is_not_the_portals_is_never_taken_as_posted(api, portal, tmp_path):
    save(tmp_path, [kaggle_record()])
    api.state.add_fault(path=r"/portal/api/discover", kind="malformed", count=1)  # HTTP 200, garbage
    result = post(env_for(tmp_path, api, RUN_ID="g1"))
    assert result.returncode == 1 and "is PORTAL_URL the envision portal?" in result.stderr
    assert not posted_state(tmp_path)["portals"][api.portal_settings()["PORTAL_URL"]]["datasets"]
    # the next run sends it again; the portal, which did store it, updates it
    result = post(env_for(tmp_path, api, RUN_ID="g2"))
    assert result.returncode == 0 and summary_of(tmp_path, "g2")["updated"] == 1 and len(portal.datasets) == 1
