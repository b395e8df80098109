"""Cross-source duplicates: each rule on the real sample shapes, canonical choice, scale."""

from __future__ import annotations

import copy
import random
import time

from itemadapter import ItemAdapter

from envision_spiders import duplicates
from envision_spiders.duplicates import duplicate_of, find_duplicates, near_duplicate_pairs, record_key
from envision_spiders.spiders.datacite import DataCiteSpider
from envision_spiders.spiders.zenodo import ZenodoSpider
from envision_spiders.mapping.zenodo import map_files

from tests.conftest import make_spider, sample


def as_record(item) -> dict:
    return ItemAdapter(item).asdict()


def datacite_record(tmp_path, data: dict) -> dict:
    spider = make_spider(DataCiteSpider, tmp_path, DATACITE_API_URL="https://api.datacite.org")
    (item,) = spider.handle_hit(data, "sample")
    return as_record(item)


def zenodo_record(tmp_path, hit: dict) -> dict:
    spider = make_spider(ZenodoSpider, tmp_path, ZENODO_API_URL="https://zenodo.org/api")
    return as_record(spider.record_item(hit, map_files(hit.get("files"), lambda key: f"https://zenodo.org/f/{key}")))


def figshare_record(article_id: str, doi: str, title: str, description: str = "") -> dict:
    """A record as the Figshare spider maps an article (source id = article id, the
    version's DOI, ``extra.doi_unversioned``)."""
    return {"source": "figshare", "source_id": article_id, "doi": doi, "title": title, "description": description,
            "related_identifiers": [], "extra": {"doi_unversioned": doi.rsplit(".v", 1)[0], "version": 4},
            "dates": {"published": "2015-06-01T00:00:00Z"}}


def groups_by_key(groups) -> dict[str, dict]:
    return {m["key"]: g for g in groups for m in g["members"]}


def test_datacite_record_of_a_figshare_doi_joins_the_figshare_record(tmp_path):
    dc = datacite_record(tmp_path, sample("datacite/doi_10.6084-m9.figshare.1449060_2026-07.json")["data"])
    assert dc["extra"]["hosting_repository"] == "figshare" and dc["doi"] == "10.6084/m9.figshare.1449060"
    # the Figshare API gives the version's DOI; DataCite indexes the unversioned one
    fs = figshare_record("1449060", "10.6084/m9.figshare.1449060.v4", dc["title"])
    other = figshare_record("123456", "10.6084/m9.figshare.123456.v1", "Another article")
    (group,) = find_duplicates([dc, fs, other], near_duplicates=False)
    assert group["rules"] == ["figshare-version"]
    assert group["canonical"] == "figshare:1449060"  # the hosting repository over DataCite
    assert duplicate_of([group]) == {f"datacite:{dc['source_id']}": "figshare:1449060"}
    # same DOI on both sides: the DataCite record is the hosted one
    same = figshare_record("1449060", "10.6084/m9.figshare.1449060", dc["title"])
    (group,) = find_duplicates([dc, same], near_duplicates=False)
    assert group["rules"] == ["datacite-hosting"] and group["canonical"] == "figshare:1449060"


def test_figshare_versions_are_one_dataset():
    v1 = figshare_record("9", "10.6084/m9.figshare.9.v1", "Fundus images")
    v2 = {**figshare_record("9", "10.6084/m9.figshare.9.v2", "Fundus images"), "source": "datacite",
          "source_id": "10.6084/m9.figshare.9.v2", "extra": {"hosting_repository": "figshare"}}
    unrelated = figshare_record("90", "10.6084/m9.figshare.90.v1", "Other")
    (group,) = find_duplicates([v1, v2, unrelated], near_duplicates=False)
    assert {m["key"] for m in group["members"]} == {"figshare:9", "datacite:10.6084/m9.figshare.9.v2"}
    assert group["rules"] == ["figshare-version"]


def test_zenodo_versions_of_one_concept_and_the_concept_doi_in_datacite(tmp_path):
    hit = sample("zenodo/record_8173303_2026-07.json")
    v1 = zenodo_record(tmp_path, hit)
    assert v1["extra"]["conceptrecid"] == "8173302" and v1["extra"]["conceptdoi"] == "10.5281/zenodo.8173302"
    newer = copy.deepcopy(hit)
    newer.update(id=9000001, doi="10.5281/zenodo.9000001", created="2025-01-01T00:00:00+00:00")
    newer["metadata"] = {**newer["metadata"], "doi": "10.5281/zenodo.9000001", "publication_date": "2025-01-01"}
    v2 = zenodo_record(tmp_path, newer)
    (group,) = find_duplicates([v1, v2], near_duplicates=False)
    assert group["rules"] == ["zenodo-concept"]
    assert group["canonical"] == "zenodo:9000001"  # the latest version
    concept = {"source": "datacite", "source_id": "10.5281/zenodo.8173302", "doi": "10.5281/zenodo.8173302",
               "title": v1["title"], "extra": {"hosting_repository": "zenodo"}}
    version = {"source": "datacite", "source_id": "10.5281/zenodo.8173303", "doi": "10.5281/zenodo.8173303",
               "title": v1["title"], "extra": {"hosting_repository": "zenodo"}}
    (group,) = find_duplicates([concept, version, v1, v2], near_duplicates=False)
    assert len(group["members"]) == 4 and group["canonical"] == "zenodo:9000001"
    assert set(group["rules"]) == {"zenodo-concept", "datacite-hosting"}
    assert [m["source"] for m in group["members"]] == ["zenodo", "zenodo", "datacite", "datacite"]


def test_version_and_identity_relations_join_and_other_relations_do_not():
    def rec(source, doi, *relations):
        return {"source": source, "source_id": doi, "doi": doi, "title": doi,
                "related_identifiers": [{"identifier": f"https://doi.org/{t}", "relation": r, "scheme": "doi"}
                                        for r, t in relations]}

    dryad = rec("dryad", "10.5061/dryad.8515")
    mirror = rec("datacite", "10.1234/mirror.1", ("IsIdenticalTo", "10.5061/dryad.8515"))
    old = rec("datacite", "10.1234/old.1", ("HasVersion", "10.1234/new.2"))
    new = rec("osf", "10.1234/new.2")
    sibling = rec("datacite", "10.1234/new.3", ("IsVersionOf", "10.1234/concept"))
    sibling2 = rec("datacite", "10.1234/new.4", ("isversionof", "10.1234/concept"))
    paper = rec("datacite", "10.1234/paper", ("IsSupplementTo", "10.5061/dryad.8515"), ("References", "10.1234/new.2"))
    groups = groups_by_key(find_duplicates([dryad, mirror, old, new, sibling, sibling2, paper], near_duplicates=False))
    assert groups["dryad:10.5061/dryad.8515"]["rules"] == ["relation:IsIdenticalTo"]
    assert groups["dryad:10.5061/dryad.8515"]["canonical"] == "dryad:10.5061/dryad.8515"
    assert groups["osf:10.1234/new.2"]["rules"] == ["relation:HasVersion"]
    # two versions of a concept that is not itself a record; relation names in any case
    assert groups["datacite:10.1234/new.3"]["rules"] == ["relation:IsVersionOf"]
    assert "datacite:10.1234/new.4" in {m["key"] for m in groups["datacite:10.1234/new.3"]["members"]}
    assert "datacite:10.1234/paper" not in groups


def test_equal_dois_written_differently_are_one_dataset():
    a = {"source": "dryad", "source_id": "doi:10.5061/dryad.x1", "doi": "doi:10.5061/DRYAD.X1", "title": "a"}
    b = {"source": "datacite", "source_id": "10.5061/dryad.x1", "doi": "https://doi.org/10.5061/dryad.x1",
         "title": "b", "extra": {"hosting_repository": "dryad"}}
    c = {"source": "datacite", "source_id": "10.5061/dryad.x2", "doi": "10.5061/dryad.x2", "title": "c"}
    (group,) = find_duplicates([a, b, c], near_duplicates=False)
    assert group["rules"] == ["datacite-hosting"] and group["canonical"] == "dryad:doi:10.5061/dryad.x1"


def test_kaggle_reupload_is_a_near_duplicate_of_the_original(tmp_path):
    original = zenodo_record(tmp_path, sample("zenodo/record_8173303_2026-07.json"))
    kaggle = {"source": "kaggle", "source_id": "someone/copy", "doi": None, "title": original["title"],
              "description": original["description"] + " Re-uploaded here for convenience.",
              "extra": {"owner": "someone", "slug": "copy"}, "external_links": []}
    (group,) = find_duplicates([original, kaggle])
    assert group["rules"] == ["near-duplicate"] and group["canonical"] == record_key(original)
    assert group["links"][0]["jaccard"] >= 0.6
    # a text shared by records of the same source (a series, versions) is not enough
    twin = {**original, "source_id": "123", "extra": {}, "doi": None}
    assert find_duplicates([original, twin]) == []


def test_series_with_different_numbers_in_their_titles_are_not_near_duplicates():
    text = ("SuperDARN radar data in netCDF format. These files were produced from the raw radar "
            "data with the standard processing chain and contain gridded line-of-sight velocities "
            "for every radar of the network during the month given in the title.")
    a = {"source": "zenodo", "source_id": "1", "title": "SuperDARN data (2012-Oct)", "description": text}
    b = {"source": "kaggle", "source_id": "x/y", "title": "SuperDARN data (2013-Oct)", "description": text}
    c = {"source": "kaggle", "source_id": "x/z", "title": "SuperDARN data (2012-Oct)", "description": text}
    assert list(near_duplicate_pairs([a, b])) == []
    (group,) = find_duplicates([a, b, c])
    assert {m["key"] for m in group["members"]} == {"zenodo:1", "kaggle:x/z"}


def test_short_or_different_texts_are_not_near_duplicates():
    a = {"source": "zenodo", "source_id": "1", "title": "Dataset", "description": "Images."}
    b = {"source": "kaggle", "source_id": "k", "title": "Dataset", "description": "Images."}
    c = {"source": "figshare", "source_id": "2", "title": "Fundus photographs of 300 glaucoma patients",
         "description": "Colour fundus photographs taken with a Topcon camera, graded by two ophthalmologists."}
    d = {"source": "kaggle", "source_id": "k2", "title": "Chest X-rays of 300 pneumonia patients",
         "description": "Frontal chest radiographs from a children's hospital, graded by two radiologists."}
    assert find_duplicates([a, b, c, d]) == []


def test_templated_records_of_different_datasets_are_not_near_duplicates():
    template = ("Optical coherence tomography pullbacks of coronary arteries from {n} patients undergoing "
                "PCI, with stent annotations, acquired at three hospitals between 2015 and 2019 and "
                "labelled by two cardiologists.")
    a = {"source": "zenodo", "source_id": "1", "title": "Intravascular OCT pullbacks", "description": template.format(n="1,250")}
    b = {"source": "figshare", "source_id": "2", "title": "Intravascular OCT pullbacks", "description": template.format(n="80")}
    mirror = {**a, "source": "kaggle", "source_id": "u/copy", "description": a["description"] + " Mirrored in 2021."}
    assert list(near_duplicate_pairs([a, b])) == []  # 0.86 Jaccard, other counts
    (group,) = find_duplicates([a, b, mirror])  # a copy may add a number, not change one
    assert {m["key"] for m in group["members"]} == {"zenodo:1", "kaggle:u/copy"}


def test_a_text_shared_by_a_large_family_is_left_to_the_identifier_rules(monkeypatch, caplog):
    monkeypatch.setattr(duplicates, "MAX_CANDIDATES", 5)
    boiler = ("Monthly export of the station network in netCDF format with gridded velocities for every "
              "radar of the network and the quality flags of the standard processing chain.")
    family = [{"source": ["zenodo", "figshare", "kaggle"][i % 3], "source_id": str(i), "title": "Radar export",
               "description": boiler} for i in range(40)]
    original = {"source": "zenodo", "source_id": "o", "title": "Fundus photographs of glaucoma patients",
                "description": "Colour fundus photographs of both eyes of glaucoma patients and controls, taken "
                               "with one camera and graded by two ophthalmologists for cup-to-disc ratio."}
    copy_ = {**original, "source": "kaggle", "source_id": "u/c"}
    skipped: list[int] = []
    pairs = list(near_duplicate_pairs([*family, original, copy_], skipped=skipped))
    assert len(skipped) == 40 - 6  # the first six fill the index up to the cap; the rest are skipped
    assert (40, 41) in {(i, j) for i, j, _ in pairs}  # the mirror is still found
    with caplog.at_level("INFO", logger="envision_spiders.duplicates"):
        groups = find_duplicates([*family, original, copy_])
    assert any("left to the identifier rules" in r.getMessage() for r in caplog.records)
    assert max(len(g["members"]) for g in groups) <= 6


def test_pairs_already_in_one_group_are_not_compared_again():
    text = ("Colour fundus photographs of both eyes of glaucoma patients and controls, taken with one "
            "camera and graded by two ophthalmologists for cup-to-disc ratio.")
    records = [{"source": s, "source_id": s, "title": "Fundus", "description": text}
               for s in ("zenodo", "figshare", "kaggle", "osf")]
    asked = []
    all_pairs = list(near_duplicate_pairs(records))
    some = list(near_duplicate_pairs(records, joined=lambda i, j: asked.append((i, j)) or True))
    assert len(all_pairs) == 6 and some == [] and len(asked) == 6


WORDS = [f"w{i}" for i in range(5000)]


def generated_records(n: int, planted: int, seed: int = 7) -> tuple[list[dict], set[frozenset]]:
    """``n`` records of random text over the sources, plus ``planted`` Kaggle copies of
    random originals with about 5 % of the words changed."""
    rng = random.Random(seed)
    sources = ["zenodo", "figshare", "dryad", "osf", "datacite"]
    records = []
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(40, 160))
        records.append({"source": sources[i % len(sources)], "source_id": str(i), "doi": f"10.1/{i}",
                        "title": " ".join(rng.choices(WORDS, k=6)), "description": " ".join(words)})
    expected = set()
    for j, original in enumerate(rng.sample(records, planted)):
        words = original["description"].split()
        for k in rng.sample(range(len(words)), max(1, len(words) // 20)):
            words[k] = rng.choice(WORDS)
        copy_ = {"source": "kaggle", "source_id": f"user/copy-{j}", "doi": None, "title": original["title"],
                 "description": " ".join(words), "extra": {"owner": "user", "slug": f"copy-{j}"}}
        records.append(copy_)
        expected.add(frozenset({record_key(original), record_key(copy_)}))
    return records, expected


def test_near_duplicates_among_thousands_of_generated_records():
    records, expected = generated_records(4000, planted=60)
    started = time.perf_counter()
    groups = find_duplicates(records)
    elapsed = time.perf_counter() - started
    found = {frozenset(m["key"] for m in g["members"]) for g in groups}
    assert found == expected
    assert all(g["rules"] == ["near-duplicate"] and g["canonical"].split(":")[0] != "kaggle" for g in groups)
    # measured, not asserted (bench/duplicates_bench.py measures 40,000 records)
    print(f"\nfind_duplicates on {len(records)} generated records: {elapsed:.2f} s")
