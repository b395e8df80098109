"""The recall check after real crawls of the local API server and a real classify step:
a curator's catalogue with entries the crawl finds, and entries missed for each reason."""

from __future__ import annotations

import json

import pytest

from localapi import zenodo
from tests.conftest import crawl_env, crawl_in_process, saved_records, scrapy_in_process

HEADER = "name,source,id,doi,url,title,aliases,modality,id_confidence,source_type,listed_in,reason"


@pytest.mark.slow
def test_recall_after_a_crawl_and_classify(tmp_path, api, classifier_models):
    api.generate("zenodo", 40, seed=5)
    api.generate("kaggle", 30, seed=6)
    api.generate("datacite", 30, seed=7)
    env = {"CLASSIFIER_MODELS_DIR": str(classifier_models)}
    for spider in ("zenodo", "kaggle", "datacite"):
        result = crawl_in_process(api, spider, tmp_path, **env)
        assert result.returncode == 0, result.stderr[-2000:]
    base = crawl_env(api, tmp_path, **env)
    classify = scrapy_in_process(["classify"], base)
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
    run = scrapy_in_process(["recall"], {**base, "RECALL_CATALOGUE": str(catalogue), "RECALL_CATALOGUE_MODE": "replace",
                                         "RUN_ID": "r1"})
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


@pytest.mark.slow
def test_recall_with_entries_only_the_funder_search_reaches(tmp_path, api, classifier_models):
    from localapi import datacite as server_dc

    api.generate("datacite", 60, seed=8)
    st = server_dc.state_of(api.state)
    funder_only = [d for d, r in st.records.items() if r["attributes"]["titles"][0]["title"].startswith(
        tuple(t for t, *_ in server_dc.FUNDER_ONLY))]
    assert len(funder_only) == 2
    env = {"CLASSIFIER_MODELS_DIR": str(classifier_models)}
    on, off = tmp_path / "on", tmp_path / "off"
    assert run_crawl(api, "datacite", on, RUN_ID="r1", **env).returncode == 0
    assert run_crawl(api, "datacite", off, DATACITE_FUNDER_SEARCH="0", **env).returncode == 0
    base = crawl_env(api, on, **env)
    classify = subprocess.run([sys.executable, "-m", "scrapy", "classify"], cwd=ROOT, env=base, capture_output=True,
                              text=True, timeout=600)
    assert classify.returncode == 0, classify.stderr[-2000:]
    records = saved_records(on, "datacite")
    assert set(saved_records(off, "datacite")) == set(records) - set(funder_only)
    by_terms = next(r for r in records.values() if r["provenance"]["found_by"] == ["terms"])
    both = next(r for r in records.values() if r["provenance"]["found_by"] == ["terms", "funder"])
    text = next(d for d, r in st.records.items() if r["attributes"]["types"]["resourceTypeGeneral"] == "Text")
    rows = [
        f'By terms,datacite,,{by_terms["doi"]},,"{by_terms["title"]}",,oct,sure,,test,terms',
        f'By both,datacite,,{both["doi"]},,"{both["title"]}",,oct,sure,,test,both',
        *(f'Funder {i},datacite,,{d},,"{records[d]["title"]}",,fundus,sure,,test,funder only'
          for i, d in enumerate(funder_only)),
        f'Report,datacite,,{text},,"{st.records[text]["attributes"]["titles"][0]["title"]}",,oct,sure,text,test,not a dataset',
        "Missing,datacite,,,,Zyxwv ocular archive of nothing,,fundus,none,,test,missing",
    ]
    catalogue = tmp_path / "mine.csv"
    catalogue.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    outs = {}
    for name, folder in (("on", on), ("off", off)):
        run = subprocess.run([sys.executable, "-m", "scrapy", "recall"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300, env={**crawl_env(api, folder, **env), "RECALL_CATALOGUE": str(catalogue),
                                               "RECALL_CATALOGUE_MODE": "replace", "RUN_ID": "r1"})
        assert run.returncode == 0, run.stderr[-2000:]
        outs[name] = {r["entry"]["name"]: r for r in json.loads((folder / "results" / "recall.json").read_text())["entries"]}
        outs[name + "_summary"] = json.loads((folder / "results" / "recall.json").read_text())["summary"]
    rows_on, rows_off = outs["on"], outs["off"]
    for i in range(2):
        row = rows_on[f"Funder {i}"]
        assert row["found"] and row["found_by"] == ["funder"] and row["terms"] == [], "reached only by funder"
        assert row["outcome"] in ("eye_imaging", "negative") and row["label"]
        assert rows_off[f"Funder {i}"]["outcome"] == "not_found", "without the funder search nothing finds it"
    assert rows_on["By terms"]["found_by"] == ["terms"] and rows_on["By terms"]["terms"]
    assert rows_on["By both"]["found_by"] == ["terms", "funder"] and rows_off["By both"]["found"]
    assert rows_on["Report"]["outcome"] == "filtered_non_dataset" and rows_on["Missing"]["outcome"] == "not_found"
    assert {rows_on[n]["outcome"] for n in rows_on} >= {"not_found", "filtered_non_dataset"}
    assert outs["on_summary"]["found_only_by_funder"] == 2 and outs["off_summary"]["found_only_by_funder"] == 0
    # the run summary of the crawl counts what each channel found that the other did not
    crawl = json.loads((on / "runs" / "r1" / "datacite.json").read_text())
    assert crawl["channels"]["funder_only"] == 2 and crawl["channels"]["terms_only"] > 0 and crawl["channels"]["both"] > 0
