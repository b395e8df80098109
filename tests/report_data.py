"""Results, saved records, run summaries and downloads on disk for the report's tests and
``bench/report_page.py``, in the formats the classify, crawl and download steps write."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from envision_spiders.storage import atomic_write_json, record_path, safe_id

SOURCES = ("zenodo", "figshare", "dryad", "osf", "datacite", "kaggle", "nei")


def result(source: str, source_id: str, *, label: str | None, p: float | None, title: str = "A dataset",
           file_names: list[str] | None = None, file_types: list[str] | None = None, license: Any = "cc-by-4.0",
           access: Any = "open", size_mb: float | None = 12.5, duplicate_of: Any = None, doi: str | None = None,
           url: str | None = None, description: str = "", keywords: list[str] | None = None,
           archive_count: int = 0, **extra: Any) -> dict[str, Any]:
    """A record in the classified-record format of results/."""
    names = list(file_names or [])
    from envision_spiders.filetypes import file_extension

    types = file_types if file_types is not None else sorted({file_extension(n) for n in names} - {""})
    return {
        "source": source, "source_id": source_id, "doi": doi,
        "url": url if url is not None else f"https://{source}.example.org/records/{source_id}",
        "label": label, "confidence": (p if label == "EYE_IMAGING" else (1 - p if p is not None else None)),
        "prob_eye_imaging": p, "prob_negative": (1 - p if p is not None else None),
        "title": title, "description": description, "keywords": keywords or [], "access_type": access,
        "license": license, "file_types": types, "file_names": names, "file_count": len(names),
        "img_count": 0, "medical_count": 0, "archive_count": archive_count, "genomics_count": 0,
        "size_mb": size_mb, "external_links": [], "related_dois": [], "duplicate_of": duplicate_of, **extra,
    }


def archive(name: str, extensions: dict[str, int], sample: list[str] | None = None, *, listed: bool = True,
            complete: bool = True, fmt: str = "zip", reason: str | None = None) -> dict[str, Any]:
    """An ``archives`` entry of a saved record, as the archive peek writes it."""
    return {
        "name": name, "url": f"https://files.example.org/{name}", "format": fmt, "listable": listed,
        "listed": listed, "complete": complete,
        "member_count": sum(extensions.values()) if listed else None,
        "members_sample": sample or [], "extension_counts": extensions if listed else {},
        "reason": reason,
    }


def write_results(results_dir: Path, records: list[dict[str, Any]], *, eye_only: tuple[str, ...] = ()) -> None:
    """``{source}_all_results.json`` and ``{source}_eye_imaging.json`` per source (only the
    latter for sources in ``eye_only``)."""
    by_source: dict[str, list] = defaultdict(list)
    for r in records:
        by_source[r["source"]].append(r)
    results_dir.mkdir(parents=True, exist_ok=True)
    for source, rows in by_source.items():
        if source not in eye_only:
            (results_dir / f"{source}_all_results.json").write_text(json.dumps(rows), encoding="utf-8")
        eye = [r for r in rows if r["label"] == "EYE_IMAGING"]
        (results_dir / f"{source}_eye_imaging.json").write_text(json.dumps(eye), encoding="utf-8")


def write_saved(data_dir: Path, source: str, source_id: str, archives: list[dict[str, Any]], **fields: Any) -> None:
    # a plain write: tens of thousands of fsyncs would make the 50,000-record set slow to build
    path = record_path(data_dir, source, source_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": source, "source_id": source_id, "archives": archives,
                                "provenance": {"harvested_at": "2026-07-01T00:00:00Z"}, **fields}), encoding="utf-8")


def write_duplicates(results_dir: Path, groups: list[tuple[str, list[str], str]]) -> None:
    """duplicates.json from (canonical key, member keys, rule) triples."""
    out = []
    for canonical, members, rule in groups:
        out.append({
            "canonical": canonical,
            "members": [{"key": k, "source": k.split(":", 1)[0], "source_id": k.split(":", 1)[1], "doi": None,
                         "title": f"title of {k}"} for k in members],
            "rules": [rule], "links": [],
        })
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "duplicates.json").write_text(json.dumps({"generated_at": "2026-07-01T00:00:00Z",
                                                             "records": 0, "groups": out}), encoding="utf-8")


def write_run(data_dir: Path, run_id: str, spider: str, **figures: Any) -> None:
    summary = {"spider": spider, "run_id": run_id, "mode": "full", "finish_reason": "finished",
               "started_at": "2026-07-01T00:00:00Z", "finished_at": "2026-07-01T01:00:00Z", "elapsed_seconds": 60.0,
               "hits": 0, "unique_records": 0, "new": 0, "changed": 0, "unchanged": 0, "failures": 0,
               "healthy": True, "problems": []}
    summary.update(figures)
    atomic_write_json(data_dir / "runs" / run_id / f"{spider}.json", summary)


def write_manifest(data_dir: Path, source: str, source_id: str, status: str, *, failed: int = 0,
                   bytes_on_disk: int = 0) -> None:
    atomic_write_json(data_dir / "downloads" / safe_id(source) / safe_id(source_id) / "manifest.json", {
        "manifest_version": 1, "source": source, "source_id": source_id, "status": status,
        "totals": {"files": 1, "downloaded": int(status == "complete"), "failed": failed, "skipped": 0,
                   "pending": 0, "bytes_on_disk": bytes_on_disk}, "files": [],
    })


def write_queued(data_dir: Path, source: str, source_id: str) -> None:
    atomic_write_json(data_dir / "downloads" / ".queue" / safe_id(source) / f"{safe_id(source_id)}.json", {
        "source": source, "source_id": source_id, "label": "EYE_IMAGING", "prob_eye_imaging": 0.9,
        "threshold": 0.8, "queued_at": "2026-07-01T00:00:00Z", "origin": "results"})


# ------------------------------------------------------------------ a large generated set
WORDS = ("retinal fundus photographs diabetic retinopathy grading optical coherence tomography macular "
         "glaucoma cornea slit lamp anterior segment keratoconus myopia choroid vessels segmentation dataset "
         "images patients cohort study annotations deep learning screening clinic hospital volumes scans "
         "mouse zebrafish gene expression sequencing ecology climate soil rainfall survey interviews").split()
IMAGE_SETS = (
    ({".png": 1200, ".csv": 2}, "fundus/train/img_{:05d}.png", "Fundus"),
    ({".jpg": 800, ".json": 1}, "slit_lamp/eye_{:05d}.jpg", "Slit lamp"),
    ({".tif": 300}, "oct/bscan_{:04d}.tif", "OCT B-scans"),
    ({".e2e": 40, ".xml": 40}, "spectralis/pat{:03d}.e2e", "Spectralis exports"),
    ({".dcm": 500}, "dicom/IM{:05d}.dcm", "DICOM"),
    ({".csv": 10, ".txt": 2}, "tables/t{:02d}.csv", "tables"),
)
LICENSES = ("cc-by-4.0", "CC0-1.0", "https://creativecommons.org/licenses/by-nc/4.0/", "MIT", "CC BY 4.0", None,
            "Other (specified in description)")
ACCESS = ("open", "open", "open", "restricted", "embargoed", None)


def generate(root: Path, n: int, *, seed: int = 7, eye_share: float = 0.5, borderline_share: float = 0.2,
             duplicate_share: float = 0.05, saved_share: float = 1.0) -> dict[str, int]:
    """``n`` records spread over the seven sources under ``root/data`` and
    ``root/results``: about ``eye_share`` EYE_IMAGING, ``borderline_share`` NEGATIVE in
    0.3-0.8, the rest clear NEGATIVE; duplicates of Zenodo records on DataCite; saved
    records with archive listings for ``saved_share`` of the table rows; a crawl run,
    some downloads and a queue. Returns the counts the page should show."""
    rng = random.Random(seed)
    data_dir, results_dir = root / "data", root / "results"
    records, groups = [], []
    counts = {"records": n, "EYE_IMAGING": 0, "NEGATIVE": 0, "borderline": 0}
    zenodo_eye: list[str] = []
    for i in range(n):
        source = SOURCES[i % len(SOURCES)]
        sid = f"{i:07d}" if source != "datacite" else f"10.5281/example.{i}"
        roll = rng.random()
        if roll < eye_share:
            label, p = "EYE_IMAGING", round(rng.uniform(0.5, 1.0) ** 0.3, 4)
        elif roll < eye_share + borderline_share:
            label, p = "NEGATIVE", round(rng.uniform(0.3, 0.8), 4)
        else:
            label, p = "NEGATIVE", round(rng.random() ** 4 * 0.3, 4)
        counts[label] += 1
        counts["borderline"] += label == "NEGATIVE" and 0.3 <= p <= 0.8
        exts, pattern, what = IMAGE_SETS[rng.randrange(len(IMAGE_SETS))]
        words = rng.sample(WORDS, 9)
        title = f"{what}: " + " ".join(words[:6]).capitalize() + f" ({i})"
        names = [pattern.format(k) for k in range(rng.randint(1, 6))] + ["README.md", "data.zip"]
        dup = None
        if source == "datacite" and zenodo_eye and label == "EYE_IMAGING" and rng.random() < duplicate_share * 7:
            target = zenodo_eye.pop()
            dup = {"source": "zenodo", "source_id": target}
            groups.append((f"zenodo:{target}", [f"zenodo:{target}", f"datacite:{sid}"], "doi"))
        if source == "zenodo" and label == "EYE_IMAGING":
            zenodo_eye.append(sid)
        records.append(result(
            source, sid, label=label, p=p, title=title, file_names=names,
            file_types=sorted(set(exts) | {".md", ".zip"}), license=LICENSES[i % len(LICENSES)],
            access=ACCESS[i % len(ACCESS)], size_mb=round(rng.lognormvariate(5, 2), 2), duplicate_of=dup,
            doi=f"10.5281/zenodo.{i}" if source in ("zenodo", "datacite") else None,
            description=" ".join(rng.choice(WORDS) for _ in range(60)), keywords=words[6:], archive_count=1,
        ))
        if (label == "EYE_IMAGING" or 0.3 <= p <= 0.8) and rng.random() < saved_share:
            sample = [pattern.format(k) for k in range(6)]
            write_saved(data_dir, source, sid, [archive("data.zip", dict(exts), sample)])
    write_results(results_dir, records)
    write_duplicates(results_dir, groups)
    counts["duplicates"] = len(groups)
    run_id = "20260701T000000Z"
    for source in SOURCES:
        write_run(data_dir, run_id, source, hits=n // 7 * 3, unique_records=n // 7, new=n // 70, changed=n // 140,
                  unchanged=n // 7 - n // 70 - n // 140)
    eye = [r for r in records if r["label"] == "EYE_IMAGING"]
    for r in eye[:50]:
        write_manifest(data_dir, r["source"], r["source_id"], "complete", bytes_on_disk=10**8)
    for r in eye[50:80]:
        write_queued(data_dir, r["source"], r["source_id"])
    return counts
