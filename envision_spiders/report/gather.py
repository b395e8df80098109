"""Everything the review page shows, read from the files on disk (nothing typed in).

Inputs, each optional (a fresh install has none of them, and each is read tolerantly:
a missing, unreadable or odd file is logged and counts as empty):

* ``results/{source}_all_results.json`` (every classified record of a source) or, when a
  source has only that, ``results/{source}_eye_imaging.json``;
* ``results/duplicates.json`` (``{"groups": [{"canonical": "src:id", "members": [...],
  "rules": [...]}]}``, or a bare list of groups) and ``duplicate_of`` on records
  (``{"source", "source_id"}`` or ``"src:id"``);
* ``data/metadata/{source}/{id}.json``: the saved record, read only for the rows of the
  two tables, for its peeked ``archives`` (member counts, extension counts, a sample of
  member names);
* ``data/runs/{run_id}/{spider}.json``: crawl summaries (the latest run that has any);
* ``data/downloads/{source}/{id}/manifest.json`` and the queue ``data/downloads/.queue/``;
* ``data/report/snapshots/{run_id}.json``: what earlier reports counted as EYE_IMAGING;
* ``data/review/decisions.jsonl``: the curators' decisions (which ones the page already
  shows, so the browser forgets choices once they are imported); the decision standing
  for each record comes with its results record (``review``, ``label_source``).
* ``results/recall.json`` and ``results/grants.json`` (:mod:`.recallpage`).

The tables: EYE_IMAGING (the label that stands: the model's, or a curator's accept),
"To review" (what waits for a curator, most useful first:
:mod:`envision_spiders.review.pending`), borderline NEGATIVE records, and the records
curators rejected, with their reasons.

"New EYE_IMAGING since the last run": harvest dates cannot say it (``harvested_at`` is
rewritten on every harvest, and a record classified NEGATIVE last week may be
EYE_IMAGING now), and run summaries count new records, not which ones. So each report
keeps a snapshot, ``data/report/snapshots/{run_id}.json``, of the EYE_IMAGING keys it
showed and of its results folder; a record is *new* when it is EYE_IMAGING now and was
not in the newest snapshot of an earlier run of the same results folder (a page
written elsewhere with ``-o`` keeps no snapshot). Regenerating the report of the same run replaces that run's
snapshot and compares with the same earlier one, so ``scrapy report`` may be run any
number of times. With no earlier snapshot (the first report) every EYE_IMAGING record
is new, and the page says so. The run id is the one given, else ``RUN_ID``, else the
newest folder under ``data/runs/``, else the current time.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envision_spiders.addf import SPDX_IDS
from envision_spiders.duplicates import duplicate_key, read_duplicate_groups
from envision_spiders.filetypes import (
    ARCHIVE,
    DEVICE_FORMATS,
    GENOMICS,
    IMAGING,
    MEDICAL,
    category_of_extension,
    file_extension,
)
from envision_spiders.modality import detect_modalities, file_listing
from envision_spiders.funnel import Funnel, FunnelCounter
from envision_spiders.review import Ledger, evidence_of
from envision_spiders.review.pending import BORDERLINE, TIERS, catalogue_negatives, new_since, order, tier_of
from envision_spiders.storage import read_json, record_path, safe_id
from envision_spiders.textutil import parse_datetime, safe_url, strings, utcnow_iso

from .recallpage import read_extras

logger = logging.getLogger(__name__)

EYE_IMAGING = "EYE_IMAGING"
NEGATIVE = "NEGATIVE"
HISTOGRAM_BINS = 20
SNAPSHOT_DIR = ("report", "snapshots")
SNAPSHOTS_KEPT = 26  # half a year of weekly runs
TITLE_MAX = 300
DESCRIPTION_MAX = 320  # enough to judge a borderline record; the page stays ~25 MB at 50,000 records
KEYWORDS_MAX = 12
MEMBERS_SAMPLE = 5

# The modality tags of the page, in display order: (tag, label). Detected by
# ``modality.detect_modalities`` from file types, archive members and names.
MODALITIES = (
    ("fundus", "Fundus"),
    ("oct", "OCT"),
    ("octa", "OCTA"),
    ("anterior", "Cornea / anterior segment"),
    ("device", "Device formats"),
    ("other", "Images, modality not stated"),
)
_MODALITY_OF_KEY = {
    "retinal_photography": "fundus",
    "retinal_oct": "oct",
    "retinal_octa": "octa",
    "anterior_segment_photography": "anterior",
    "dicom_imaging": "device",
    "nifti_volumes": "device",
    "ophthalmic_images": "other",
}
# ophthalmic device and medical volume formats: vendor OCT raw files, DICOM, NIfTI
DEVICE_EXTENSIONS = frozenset(DEVICE_FORMATS) | {".dcm", ".dicom", ".nii", ".nii.gz"}
DOWNLOAD_STATES = ("", "done", "partial", "queued", "skipped")
_CATEGORY_ORDER = {MEDICAL: 0, IMAGING: 1, ARCHIVE: 2, GENOMICS: 4}


# ------------------------------------------------------------------ small helpers
def record_key(source: Any, source_id: Any) -> str:
    return f"{source}:{source_id}"


def _number(value: Any) -> float | None:
    """A finite number, or None (NaN and infinities never reach the page)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _text(value: Any, limit: int) -> str:
    text = " ".join(str(value).split()) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def landing_url(record: Mapping[str, Any]) -> str:
    url = safe_url(record.get("url"))
    if not url and isinstance(record.get("doi"), str) and record["doi"].strip().startswith("10."):
        url = "https://doi.org/" + record["doi"].strip()
    return url


def license_label(value: Any) -> str:
    """A short, comparable licence name: SPDX ids in their usual case, Creative Commons
    and spdx.org URLs as their ids; other texts as given; "not stated" for none."""
    from envision_spiders.mapping.datacite import license_id  # the one URL -> SPDX id mapping

    text = " ".join(str(value).split()) if isinstance(value, (str, int, float)) else ""
    if not text:
        return "not stated"
    if text.lower().startswith(("http://", "https://")):
        text = license_id(text) or text
    key = re.sub(r"[\s_]+", "-", text.lower())
    return SPDX_IDS.get(key, text)


def access_label(value: Any) -> str:
    text = " ".join(str(value).split()).lower() if isinstance(value, str) else ""
    return text or "unknown"


def band(p: float | None, bands: tuple[tuple[str, float, float, str], ...]) -> str:
    """The name of the band ``lo <= p < hi`` that holds ``p`` ("none" for no band)."""
    if p is None:
        return "none"
    for name, lo, hi, _ in bands:
        if lo <= p < hi:
            return name
    return "none"


# (name, lo, hi, label): the confidence filter of each table. EYE_IMAGING as the classify
# step splits it (>= 0.95, 0.80-0.95, < 0.80); borderline by distance from the line.
EYE_BANDS = (("high", 0.95, 1.01, "high (≥ 0.95)"), ("medium", 0.80, 0.95, "medium (0.80–0.95)"),
             ("low", 0.0, 0.80, "low (< 0.80)"))
BORDERLINE_BANDS = (("near", 0.65, 0.81, "near the line (0.65–0.80)"), ("mid", 0.50, 0.65, "0.50–0.65"),
                    ("far", 0.30, 0.50, "0.30–0.50"))


# ------------------------------------------------------------------ reading results
def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a results file ([] when missing or unreadable, logged)."""
    if not path.is_file():
        return []
    data = read_json(path)
    if isinstance(data, Mapping):
        data = data.get("records") if isinstance(data.get("records"), list) else data.get("results")
    if not isinstance(data, list):
        logger.error("report: %s holds no list of records; it is left out of the report", path)
        return []
    return [r for r in data if isinstance(r, dict) and r.get("source_id") not in (None, "")]


def result_sources(results_dir: Path) -> list[str]:
    names: set[str] = set()
    if results_dir.is_dir():
        for p in results_dir.glob("*_all_results.json"):
            names.add(p.name[: -len("_all_results.json")])
        for p in results_dir.glob("*_eye_imaging.json"):
            names.add(p.name[: -len("_eye_imaging.json")])
    return sorted(n for n in names if n)


# ------------------------------------------------------------------ modalities
def modalities(record: Mapping[str, Any], archives: list[Mapping[str, Any]] | None) -> tuple[list[str], str, Counter]:
    """(modality tags, a sentence of evidence, extension counts) of a record, from its
    file names, file types and archive members (``modality.file_listing`` and
    ``modality.detect_modalities``; a results row without saved archive listings counts
    each extension of ``file_types`` that no file name has once, as an archive member)."""
    listing = file_listing(record, archives or [])
    found = detect_modalities(record, listing)
    tags = []
    for m in found:
        tag = _MODALITY_OF_KEY.get(m.key)
        if tag and tag not in tags:
            tags.append(tag)
        if any(ext in DEVICE_EXTENSIONS for ext in m.evidence) and "device" not in tags:
            tags.append("device")
    order = [t for t, _ in MODALITIES]
    tags.sort(key=order.index)
    return tags, "; ".join(m.summary() for m in found), listing.counts


def file_types_shown(counts: Counter, file_types: Iterable[str]) -> list[str]:
    """Extensions of a record for the table: device and image formats first, then
    archives, then the rest, each most common first."""
    exts = {e for e in counts if e} | {e for e in strings(file_types) if e.startswith(".")}

    def order(ext: str) -> tuple:
        return (_CATEGORY_ORDER.get(category_of_extension(ext), 3), -counts.get(ext, 0), ext)

    return sorted(exts, key=order)


def archive_summary(archives: list[Mapping[str, Any]] | None, record: Mapping[str, Any]) -> tuple[str, list[str]]:
    """("2 archives · 12,340 files: .png 12,000, .csv 340; 1 not listed (7z)", sample of
    member names) from the saved record's peeked archives."""
    if not archives:
        n = record.get("archive_count")
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return (f"{n} archive{'s' if n != 1 else ''}, contents not peeked", [])
        return ("", [])
    listed = [a for a in archives if a.get("listed")]
    exts: Counter = Counter()
    members = 0
    partial = False
    sample: list[str] = []
    for a in listed:
        mc = a.get("member_count")
        if isinstance(mc, int) and not isinstance(mc, bool):
            members += mc
        partial = partial or not a.get("complete")
        for ext, n in (a.get("extension_counts") or {}).items():
            if isinstance(n, int) and not isinstance(n, bool):
                exts[ext or "(no extension)"] += n
        for name in strings(a.get("members_sample")):
            if len(sample) < MEMBERS_SAMPLE:
                sample.append(_text(name, 160))
    parts = []
    if listed:
        top = ", ".join(f"{ext} {n:,}" for ext, n in exts.most_common(4))
        more = len(exts) - 4
        parts.append(f"{len(listed)} archive{'s' if len(listed) != 1 else ''} · {'≥' if partial else ''}{members:,} members"
                     + (f": {top}" if top else "") + (f" +{more} types" if more > 0 else ""))
    unlisted = [a for a in archives if not a.get("listed")]
    if unlisted:
        kinds = sorted({str(a.get("format") or file_extension(str(a.get("name") or "")) or "?") for a in unlisted})
        parts.append(f"{len(unlisted)} not listed ({', '.join(kinds[:3])})")
    return "; ".join(parts), sample


# ------------------------------------------------------------------ runs, downloads, snapshots
def run_folders(data_dir: Path) -> list[Path]:
    runs = data_dir / "runs"
    return sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name) if runs.is_dir() else []


def crawl_summaries(data_dir: Path) -> dict[str, Any]:
    """The spider summaries of the newest run that has any, and how many runs exist."""
    folders = run_folders(data_dir)
    for folder in reversed(folders):
        spiders = []
        for path in sorted(folder.glob("*.json")):
            data = read_json(path)
            if isinstance(data, Mapping) and isinstance(data.get("spider"), str):
                spiders.append(data)
        if spiders:
            return {"run_id": folder.name, "runs": len(folders), "spiders": spiders}
    return {"run_id": None, "runs": len(folders), "spiders": []}


def current_run_id(data_dir: Path, run_id: str | None) -> str:
    if run_id:
        return run_id
    if os.environ.get("RUN_ID"):
        return os.environ["RUN_ID"]
    folders = run_folders(data_dir)
    if folders:
        return folders[-1].name
    from envision_spiders.extensions.runsummary import new_run_id

    return new_run_id()


def download_states(data_dir: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """(key -> done | partial | queued | skipped, totals) from the manifests and the queue."""
    root = data_dir / "downloads"
    states: dict[str, str] = {}
    totals = {"done": 0, "partial": 0, "queued": 0, "skipped": 0, "failed_files": 0, "bytes_on_disk": 0}
    if not root.is_dir():
        return states, {**totals, "pending": 0}
    for source_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for entry in sorted(os.scandir(source_dir), key=lambda e: e.name):
            if not entry.is_dir():
                continue
            manifest = read_json(Path(entry.path) / "manifest.json")
            if not isinstance(manifest, Mapping):
                continue
            key = record_key(manifest.get("source") or source_dir.name, manifest.get("source_id") or entry.name)
            status = manifest.get("status")
            t = manifest.get("totals") if isinstance(manifest.get("totals"), Mapping) else {}
            state = {"complete": "done", "incomplete": "partial", "skipped": "skipped"}.get(status)
            if state is None:
                continue
            states[key] = state
            totals[state] += 1
            failed = t.get("failed")
            if isinstance(failed, int) and not isinstance(failed, bool):
                totals["failed_files"] += failed
            on_disk = t.get("bytes_on_disk")
            if isinstance(on_disk, int) and not isinstance(on_disk, bool):
                totals["bytes_on_disk"] += on_disk
    queue = root / ".queue"
    if queue.is_dir():
        for folder in sorted(p for p in queue.iterdir() if p.is_dir()):
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                data = read_json(entry.path)
                if not isinstance(data, Mapping) or not data.get("source") or data.get("source_id") is None:
                    continue
                key = record_key(data["source"], data["source_id"])
                if states.get(key) in (None, "skipped"):
                    if states.get(key) == "skipped":
                        totals["skipped"] -= 1
                    states[key] = "queued"
                    totals["queued"] += 1
    totals["pending"] = totals["partial"] + totals["queued"]
    return states, totals


def snapshot_folder(data_dir: Path) -> Path:
    return data_dir.joinpath(*SNAPSHOT_DIR)


def snapshot_key(results_dir: Path) -> str:
    """How a snapshot names the results folder its page showed."""
    return str(Path(results_dir).resolve())


def previous_snapshot(data_dir: Path, run_id: str, results_dir: Path | None = None) -> dict[str, Any] | None:
    """The newest snapshot (by ``generated_at``) of a run other than ``run_id``, of a
    page of ``results_dir`` (snapshots older than that field count for any)."""
    folder = snapshot_folder(data_dir)
    best = None
    if not folder.is_dir():
        return None
    wanted = snapshot_key(results_dir) if results_dir is not None else None
    for path in folder.glob("*.json"):
        if path.name.startswith("."):
            continue
        data = read_json(path)
        if not isinstance(data, Mapping) or data.get("run_id") == run_id or not isinstance(data.get("eye_imaging"), list):
            continue
        if wanted and data.get("results_dir") not in (None, wanted):
            continue
        stamp = parse_datetime(data.get("generated_at"))
        if stamp is None:
            continue
        order = (stamp, str(data.get("run_id")))  # reports of the same second: the later run id
        if best is None or order > best[0]:
            best = (order, data)
    return dict(best[1]) if best else None


def snapshot_path(data_dir: Path, run_id: str) -> Path:
    return snapshot_folder(data_dir) / f"{safe_id(run_id)}.json"


def prune_snapshots(data_dir: Path, keep: int | None = None) -> None:
    """Keep the newest ``keep`` (default SNAPSHOTS_KEPT) snapshots."""
    keep = keep or SNAPSHOTS_KEPT
    folder = snapshot_folder(data_dir)
    if not folder.is_dir():
        return
    dated = []
    for path in folder.glob("*.json"):
        data = read_json(path)
        stamp = parse_datetime(data.get("generated_at")) if isinstance(data, Mapping) else None
        dated.append((stamp.timestamp() if stamp else 0.0, path.name, path))
    for _, _, path in sorted(dated)[:-keep] if len(dated) > keep else []:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------ the report
@dataclass
class Table:
    """Rows of one table of the page; each row is a dict (see :func:`make_row`)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    folded: int = 0  # duplicates folded into their canonical row


@dataclass
class Report:
    generated_at: str
    run_id: str
    threshold: float
    baseline: dict[str, Any] | None  # {"run_id", "generated_at"} of the snapshot compared with
    sources: dict[str, Counter]  # source -> Counter(EYE_IMAGING=, NEGATIVE=, unclassified=)
    histogram: list[dict[str, int]]  # HISTOGRAM_BINS bins of prob_eye_imaging: {EYE_IMAGING, NEGATIVE}
    eye: Table
    borderline: Table
    queue: Table  # what waits for a curator, most useful first (rows shared with the other tables)
    rejected: Table  # records a curator rejected
    eye_keys: list[str]  # every EYE_IMAGING record (folded or not): the snapshot
    new_keys: set[str]
    modality_counts: Counter  # canonical EYE_IMAGING rows per modality tag (and "none")
    duplicates: dict[str, int]  # groups, records (non-canonical members)
    downloads: dict[str, Any]
    crawl: dict[str, Any]
    funnel: Funnel | None = None  # found -> EYE_IMAGING -> confident -> canonical -> downloaded / posted
    problems: list[str] = field(default_factory=list)  # inputs that could not be read
    review: dict[str, Any] = field(default_factory=dict)  # the ledger: identity, decision ids, counts
    # results/recall.json and results/grants.json (report.recallpage), None where missing
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def totals(self) -> Counter:
        total: Counter = Counter()
        for c in self.sources.values():
            total.update(c)
        return total


REASONS_SHOWN = 6
REASON_MAX = 200


def reasons(evidence: list[Mapping[str, str]]) -> list[list[Any]]:
    """A record's evidence (``review.evidence_of``: odd entries already skipped) as
    ``[[1 for EYE_IMAGING / 0 for NEGATIVE, plain text], ...]`` (texts cut; the page
    escapes them again)."""
    out: list[list[Any]] = []
    for e in evidence:
        text = _text(e["reason"], REASON_MAX)
        if text:
            out.append([1 if e["supports"] == EYE_IMAGING else 0, text])
        if len(out) >= REASONS_SHOWN:
            break
    return out


def make_row(record: Mapping[str, Any], source: str, saved: Mapping[str, Any] | None, download: str) -> dict[str, Any]:
    archives = [a for a in (saved or {}).get("archives") or [] if isinstance(a, Mapping)]
    tags, modality_note, counts = modalities(record, archives)
    summary, sample = archive_summary(archives, record)
    p = _number(record.get("prob_eye_imaging"))
    size = _number(record.get("size_mb"))
    files = record.get("file_count")
    evidence, disagreement = evidence_of(record)
    return {
        "key": record_key(source, record["source_id"]),
        "source": source,
        "source_id": str(record["source_id"]),
        "title": _text(record.get("title"), TITLE_MAX) or "(untitled)",
        "url": landing_url(record),
        "doi": _text(record.get("doi"), 200),
        "p": round(p, 4) if p is not None else None,
        "confidence": round(c, 4) if (c := _number(record.get("confidence"))) is not None else None,
        "modalities": tags,
        "modality_note": _text(modality_note, 600),
        "reasons": reasons(evidence),
        "disagree": disagreement,
        "p_text": round(pt, 4) if (pt := _number(record.get("prob_text"))) is not None else None,
        "file_types": file_types_shown(counts, record.get("file_types") or []),
        "archives": summary,
        "members": sample,
        "size_mb": round(size, 2) if size is not None else None,
        "file_count": files if isinstance(files, int) and not isinstance(files, bool) else None,
        "license": license_label(record.get("license")),
        "access": access_label(record.get("access_type")),
        "duplicate_of": duplicate_key(record.get("duplicate_of")),
        "download": download,
        "description": _text(record.get("description"), DESCRIPTION_MAX),
        "keywords": [_text(k, 60) for k in strings(record.get("keywords"))[:KEYWORDS_MAX]],
        "duplicates": [],  # filled by fold()
        "new": False,
        "model_id": _text(record.get("model_id"), 200),
        "model_label": record.get("model_label") if "model_label" in record else record.get("label"),
        "review": review_of(record),
        "tier": None,  # set for rows that wait for a curator
    }


def review_of(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The decision standing for a results record, as the page shows it."""
    r = record.get("review")
    if not isinstance(r, Mapping) or r.get("decision") not in ("accept", "reject", "unsure"):
        return None
    return {k: _text(r.get(k), 600) for k in ("decision", "reason", "code", "curator", "decided_at", "id", "on")}


def fold(table: Table, groups: list[dict[str, Any]], urls: dict[str, str], titles: dict[str, str]) -> None:
    """Fold duplicates into their canonical row when that row is in the same table; every
    row lists the other members of its group (key, landing page, title)."""
    group_of: dict[str, dict[str, Any]] = {}
    for g in groups:
        for key in g["members"]:
            group_of.setdefault(key, g)
    present = {r["key"] for r in table.rows}
    kept = []
    for row in table.rows:
        canonical = row["duplicate_of"] or (group_of[row["key"]]["canonical"] if row["key"] in group_of else None)
        if canonical and canonical != row["key"] and canonical in present:
            table.folded += 1
            continue
        g = group_of.get(row["key"])
        if g is None and row["duplicate_of"]:
            g = {"members": [row["duplicate_of"], row["key"]], "canonical": row["duplicate_of"], "rules": []}
        if g:
            row["duplicates"] = [
                {"key": k, "url": urls.get(k, ""), "title": _text(titles.get(k) or g.get("titles", {}).get(k), 160),
                 "canonical": k == g["canonical"]}
                for k in g["members"] if k != row["key"]
            ]
            row["duplicate_rules"] = list(g.get("rules") or [])
        kept.append(row)
    table.rows = kept


def gather(data_dir: str | Path, results_dir: str | Path, *, run_id: str | None = None,
           threshold: float = 0.80, generated_at: str | None = None) -> Report:
    """Read every input (see the module doc) into a :class:`Report`."""
    data_dir, results_dir = Path(data_dir), Path(results_dir)
    run = current_run_id(data_dir, run_id)
    groups = read_duplicate_groups(results_dir)
    in_groups = {k for g in groups for k in g["members"]}
    states, download_totals = download_states(data_dir)
    baseline = previous_snapshot(data_dir, run, results_dir)
    before = set(strings(baseline.get("eye_imaging"))) if baseline else None

    sources: dict[str, Counter] = {}
    histogram = [Counter() for _ in range(HISTOGRAM_BINS)]
    eye, borderline, rejected, waiting_only = Table(), Table(), Table(), Table()
    extras = read_extras(results_dir)
    known = catalogue_negatives(extras.get("recall"))
    urls: dict[str, str] = {}
    titles: dict[str, str] = {}
    duplicates_marked: set[str] = set()
    canonicals: set[str] = set()
    eye_keys: list[str] = []
    seen: set[str] = set()
    problems: list[str] = []
    counter = FunnelCounter(threshold)
    lo, hi = BORDERLINE
    for name in result_sources(results_dir):
        path = results_dir / f"{name}_all_results.json"
        complete = path.is_file()
        records = read_records(path if complete else results_dir / f"{name}_eye_imaging.json")
        if not complete:
            problems.append(f"{name}: no {path.name}; only its EYE_IMAGING records are counted")
        counts = sources.setdefault(name, Counter())
        for record in records:
            source = str(record.get("source") or name)
            key = record_key(source, record["source_id"])
            if key in seen:
                continue
            seen.add(key)
            counter.add(source, record)
            label = record.get("label") if record.get("label") in (EYE_IMAGING, NEGATIVE) else "unclassified"
            counts[label] += 1
            p = _number(record.get("prob_eye_imaging"))
            if p is not None and label != "unclassified":
                histogram[min(HISTOGRAM_BINS - 1, max(0, int(p * HISTOGRAM_BINS)))][label] += 1
            canonical = duplicate_key(record.get("duplicate_of"))
            if canonical:
                duplicates_marked.add(key)
                canonicals.add(canonical)
            if key in in_groups:
                urls[key] = landing_url(record)
                titles[key] = _text(record.get("title"), TITLE_MAX)
            target = None
            decision = (record.get("review") or {}).get("decision") if isinstance(record.get("review"), Mapping) else None
            model_label = record.get("model_label") if "model_label" in record else label
            if label == EYE_IMAGING:
                eye_keys.append(key)
            if decision == "reject":
                target = rejected
            elif label == EYE_IMAGING:
                target = eye
            elif model_label == NEGATIVE and p is not None and lo <= p <= hi:
                target = borderline
            elif decision != "accept" and (evidence_of(record)[1] or key in known):
                target = waiting_only  # waits for a curator, in no other table
            if target is not None:
                saved = read_json(record_path(data_dir, safe_id(source), str(record["source_id"])))
                target.rows.append(make_row(record, source, saved if isinstance(saved, Mapping) else None,
                                            states.get(key, "")))
        del records
    for table in (eye, borderline, rejected, waiting_only):
        fold(table, groups, urls, titles)
    for row in eye.rows:
        # new: neither the record nor a duplicate of it was EYE_IMAGING in the last report
        row["new"] = new_since([row["key"], *(d["key"] for d in row["duplicates"])], before)
    queue = Table()
    for row in eye.rows + borderline.rows + waiting_only.rows:
        view = {**row, "prob_eye_imaging": row["p"], "disagreement": row["disagree"]}
        row["tier"] = tier_of(view, (row["review"] or {}).get("decision"), row["new"], row["key"] in known)
        if row["tier"] is not None:
            queue.rows.append(row)
    queue.rows.sort(key=lambda r: order(r["tier"], {"prob_eye_imaging": r["p"], "source": r["source"],
                                                    "source_id": r["source_id"]}))
    rejected.rows.sort(key=lambda r: (r["review"] or {}).get("decided_at") or "", reverse=True)
    ledger = Ledger(data_dir)
    decisions = ledger.read()
    modality_counts: Counter = Counter()
    for row in eye.rows:
        modality_counts.update(row["modalities"] or ["none"])
    duplicate_records = {k for g in groups for k in g["members"] if k != g["canonical"]} | duplicates_marked
    return Report(
        generated_at=generated_at or utcnow_iso(),
        run_id=run,
        threshold=threshold,
        baseline={"run_id": baseline.get("run_id"), "generated_at": baseline.get("generated_at")} if baseline else None,
        sources=sources,
        histogram=[{EYE_IMAGING: b[EYE_IMAGING], NEGATIVE: b[NEGATIVE]} for b in histogram],
        eye=eye,
        borderline=borderline,
        queue=queue,
        rejected=rejected,
        eye_keys=eye_keys,
        new_keys={r["key"] for r in eye.rows if r["new"]},
        modality_counts=modality_counts,
        duplicates={"groups": len(groups) or len(canonicals), "records": len(duplicate_records)},
        downloads=download_totals,
        crawl=crawl_summaries(data_dir),
        funnel=counter.finish(data_dir),
        problems=problems + ([f"{ledger.path}: {len(ledger.damaged)} damaged lines skipped"] if ledger.damaged else []),
        review={"ledger": ledger.identity, "known": [d.id for d in decisions], "decisions": len(decisions),
                "standing": Counter(r["review"]["decision"] for t in (eye, borderline, rejected, waiting_only)
                                    for r in t.rows if r["review"]),
                "tiers": list(TIERS)},
        extras=extras,
    )
