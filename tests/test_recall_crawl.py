"""The recall check after real crawls of the local API server and a real classify step:
a curator's catalogue with entries the crawl finds, and entries missed for each reason."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from envision_spiders.localapi import zenodo
from tests.conftest import ROOT, crawl_env, run_crawl, saved_records

HEADER = "name,source,id,doi,url,title,aliases,modality,id_confidence,source_type,listed_in,reason"


@pytest.mark.slow
def test_recall_after_a_crawl_and_classify(tmp_path, api, classifier_models):
    api.generate("zenodo", 40, seed=5)
    api.generate("kaggle", 30, seed=6)
    api.generate("datacite", 30, seed=7)
    env = {"CLASSIFIER_MODELS_DIR": str(classifier_models)}
    for spider in ("zenodo", "kaggle", "datacite"):
        result = run_crawl(api, spider, tmp_path, **env)
        assert result.returncode == 0, result.stderr[-2000:]
    base = crawl_env(api, tmp_path, **env)
    classify = subprocess.run([sys.executable, "-m", "scrapy", "classify"], cwd=ROOT, env=base, capture_output=True,
                              text=True, timeout=600)
    assert classify.returncode == 0, classify.stderr[-2000:]

    z, k, d = (saved_records(tmp_path, s) for s in ("zenodo", "kaggle", "datacite"))
    label = lambda r: (r.get("classification") or {}).get("label")  # noqa: E731
    eye = next(r for r in k.values() if label(r) == "EYE_IMAGING")
    restricted = next(r for r in z.values() if r.get("access_type") == "restricted")
    by_doi = next(r for r in d.values() if r.get("doi"))
    negative = next(r for r in (*z.values(), *d.values()) if label(r) == "NEGATIVE" and r not in (restricted, by_doi))
    st = zenodo.state_of(api.state)
    publication = next(rid for rid, rec in st.records.items() if rec["metadata"]["resource_type"]["type"] == "publication")
    assert str(publication) not in z, "the dataset search must not return a publication"

    catalogue = tmp_path / "mine.csv"
    catalogue.write_text("\n".join([
        HEADER,
        f'Eye,kaggle,{eye["source_id"]},,,"{eye["title"]}",,fundus,sure,,test,found',
        f'Negative,{negative["source"]},{negative["source_id"]},,,"{negative["title"]}",,oct,sure,,test,negative',
        f'Restricted,zenodo,{restricted["source_id"]},,,"{restricted["title"]}",,oct,sure,,test,restricted',
        f'By DOI,datacite,,{by_doi["doi"]},,"{by_doi["title"]}",,oct,sure,,test,doi',
        f"Publication,zenodo,{publication},,,Some retinal publication,,fundus,sure,publication,test,filtered",
        "Missing,kaggle,,,,Zyxwv ocular archive of nothing,,fundus,none,,test,missing",
        "Uncrawled,dryad,,,,Dryad retinal photographs,,fundus,none,,test,not crawled",
    ]) + "\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "scrapy", "recall"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**base, "RECALL_CATALOGUE": str(catalogue), "RECALL_CATALOGUE_MODE": "replace", "RUN_ID": "r1"})
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads((tmp_path / "results" / "recall.json").read_text())
    rows = {r["entry"]["name"]: r for r in out["entries"]}
    assert (rows["Eye"]["outcome"], rows["Eye"]["matched_by"]) == ("eye_imaging", "source_id")
    assert rows["Eye"]["terms"] == eye["provenance"]["search_terms"] and rows["Eye"]["terms"]
    assert rows["Negative"]["outcome"] == "negative"
    assert [i["key"] for i in out["review_queue"]] == [f'{negative["source"]}:{negative["source_id"]}']
    assert "restricted" in [w["reason"] for w in rows["Restricted"]["why_not"]]
    assert rows["By DOI"]["matched_by"] == "doi" and rows["By DOI"]["found"]
    assert rows["Publication"]["outcome"] == "filtered_non_dataset"
    assert rows["Missing"]["outcome"] == "not_found" and rows["Missing"]["coverage"]["suggested_term"]
    assert rows["Uncrawled"]["outcome"] == "not_checked"
    assert out["summary"]["checked"] == 6 and out["summary"]["found"] == 4
    assert "recall of the reference catalogue: 4/6 found" in run.stdout
    figures = json.loads((tmp_path / "runs" / "r1" / "recall.json").read_text())
    assert figures["healthy"] and figures["review_queue"] == 1
