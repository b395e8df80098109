"""``results/``: what curators and the portal read, rebuilt from every record on disk.

* ``{source}_all_results.json``: every saved record of the source (whatever this run
  touched: records of earlier runs stay), in the original tool's classified-record
  format (:data:`envision_spiders.items.RESULT_FIELDS`) plus ``model_id``,
  ``classified_at``, ``publication_year``, ``prob_text`` (the text model alone),
  ``evidence`` (the label's reasons: ``{"supports", "reason"}``, those for the label first),
  ``disagreement`` (text and files point different ways), ``duplicate_of`` and the curators' word
  (:mod:`envision_spiders.review`): ``review`` (the decision standing for the record:
  ``decision``, ``reason``, ``code``, ``curator``, ``decided_at``, ``id``, ``on`` — the
  record it was made on, itself or a duplicate —, ``earlier`` decisions, and the
  ``model_id`` / ``prob_eye_imaging`` it overrode; null when none), ``label_source``
  (``curator`` when an accept or a reject made ``label``, else ``model``) and
  ``model_label`` (the model's own label, whatever the curator decided);
* ``{source}_eye_imaging.json``: its EYE_IMAGING records (by the label that stands: a
  curator's accept adds a record, a reject removes it), most probable first, then
  largest first;
* ``duplicates.json``: groups of records that are the same dataset across sources
  (:mod:`envision_spiders.duplicates`); every record that is not its group's canonical
  record has ``duplicate_of`` = the canonical record's ``{source, source_id}``.

Every file is written atomically, and the results never shrink: if the records of a
source on disk are fewer than ``{source}_all_results.json`` already lists (a data folder
that moved, a disk that failed), that source's files are kept, an error says why, and
``envision/results/kept`` counts it (the same for ``duplicates.json`` and all records).
A source whose folder is missing altogether keeps its files untouched. The same pass
links NEI projects and the datasets that cite them (``nei_projects`` /
``linked_datasets`` in the records, ``grants.json``: :mod:`envision_spiders.grants`).
A summary (records per label and source, the EYE_IMAGING confidence split) goes to
the log and to ``data/runs/{run_id}/results/summary.json``.

``confidence`` is the model's probability of the label shown; ``size_mb`` is
``total_size_bytes`` in MiB (2^20 bytes), rounded to 0.01; records not classified yet
have ``label`` null.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envision_spiders.duplicates import duplicate_of, find_duplicates, record_key
from envision_spiders.grants import GrantLinker
from envision_spiders.items import RESULT_FIELDS
from envision_spiders.review import Ledger, Review, effective_label, review_field
from envision_spiders.storage import atomic_write_json, iter_records, read_json
from envision_spiders.textutil import utcnow_iso

logger = logging.getLogger(__name__)

EXTRA_RESULT_FIELDS = ("publication_year", "model_id", "classified_at", "prob_text", "disagreement", "evidence",
                       "duplicate_of", "model_label", "label_source", "review")
# Only these fields of each record are kept in memory for the duplicate search.
_DUPLICATE_FIELDS = ("source", "source_id", "doi", "title", "description", "related_identifiers", "dates")
_DUPLICATE_EXTRA = ("hosting_repository", "conceptrecid", "conceptdoi")
CONFIDENCE_BANDS = (("ge_0.95", 0.95, 1.01), ("0.80_to_0.95", 0.80, 0.95), ("lt_0.80", 0.0, 0.80))

# One results writer at a time in a process (seven spiders of `crawl all` close apart).
_LOCK = threading.Lock()


def size_mb(total_size_bytes: Any) -> float | None:
    if isinstance(total_size_bytes, bool) or not isinstance(total_size_bytes, (int, float)) or total_size_bytes < 0:
        return None
    return round(total_size_bytes / 2**20, 2)


def classified_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A saved record in the classified-record format (``duplicate_of`` is filled in once
    every source has been read)."""
    c = record.get("classification") if isinstance(record.get("classification"), Mapping) else {}
    values = {
        **{k: record.get(k) for k in RESULT_FIELDS},
        "label": c.get("label"),
        "confidence": c.get("confidence"),
        "prob_eye_imaging": c.get("prob_eye_imaging"),
        "prob_negative": c.get("prob_negative"),
        "size_mb": size_mb(record.get("total_size_bytes")),
        "publication_year": record.get("publication_year"),
        "model_id": c.get("model_id"),
        "classified_at": c.get("classified_at"),
        "prob_text": c.get("prob_text"),
        "disagreement": c.get("disagreement") is True,
        "evidence": [e for e in c.get("evidence") or [] if isinstance(e, Mapping)] if isinstance(c.get("evidence"), list) else [],
        "duplicate_of": None,
        "model_label": c.get("label"),
        "label_source": "model" if c.get("label") else None,
        "review": None,
    }
    for k in ("keywords", "file_types", "file_names", "external_links", "related_dois"):
        if values[k] is None:
            values[k] = []
    for k in ("file_count", "img_count", "medical_count", "archive_count", "genomics_count"):
        if values[k] is None:
            values[k] = 0
    return values


def apply_review(row: dict[str, Any], review: Review) -> None:
    """The curators' decision standing for a results record: ``review``, and the label
    that stands (``label``, ``label_source``; the model's stays in ``model_label``)."""
    key = record_key(row)
    decision = review.standing(key)
    row["review"] = review_field(decision, key, review)
    row["label"], row["label_source"] = effective_label(row["model_label"], decision)
    if row["label_source"] == "curator":
        p_eye, p_neg = row.get("prob_eye_imaging"), row.get("prob_negative")
        row["confidence"] = p_eye if row["label"] == "EYE_IMAGING" else p_neg


def _order(row: Mapping[str, Any]) -> tuple:
    p = row.get("prob_eye_imaging")
    return (p is None, -(p or 0.0), -(row.get("size_mb") or 0.0), str(row.get("source_id")))


def _duplicate_view(record: Mapping[str, Any]) -> dict[str, Any]:
    view = {k: record.get(k) for k in _DUPLICATE_FIELDS}
    extra = record.get("extra") if isinstance(record.get("extra"), Mapping) else {}
    view["extra"] = {k: extra[k] for k in _DUPLICATE_EXTRA if k in extra}
    return view


def summary_path(data_dir: str | Path, run_id: str) -> Path:
    """``data/runs/{run_id}/results/summary.json``: in its own folder, apart from the
    spiders' ``data/runs/{run_id}/{spider}.json``."""
    return Path(data_dir) / "runs" / run_id / "results" / "summary.json"


def sources_on_disk(data_dir: str | Path) -> list[str]:
    folder = Path(data_dir) / "metadata"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _listed(path: Path) -> int:
    """How many records a results file covers now (0 when missing or unreadable)."""
    data = read_json(path) if path.exists() else None
    if isinstance(data, dict) and isinstance(data.get("records"), int):
        return data["records"]  # duplicates.json
    return len(data) if isinstance(data, list) else 0


def _shrinks(path: Path, count: int, stats) -> bool:
    """True (and an error logged) when ``path`` covers more records than ``count``."""
    before = _listed(path)
    if count >= before:
        return False
    logger.error("Not rewriting %s: it covers %d records and only %d are on disk now (a moved or damaged "
                 "data folder?). Check DATA_DIR; the file is kept as it was.", path, before, count)
    if stats is not None:
        stats.inc_value("envision/results/kept")
    return True


def write_results(data_dir: str | Path, results_dir: str | Path, run_id: str | None = None,
                  stats=None) -> dict[str, Any]:
    """Rebuild every results file from the records under ``data_dir`` (see module doc)
    and return the summary."""
    with _LOCK:
        return _write_results(Path(data_dir), Path(results_dir), run_id, stats)


def _write_results(data_dir: Path, results_dir: Path, run_id: str | None, stats) -> dict[str, Any]:
    results_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    views: list[dict] = []
    grants = GrantLinker()  # NEI projects and the datasets citing them (envision_spiders.grants)
    for source in sources_on_disk(data_dir):
        rows[source] = []
        for path, record in iter_records(data_dir, source):
            if not record.get("source") or record.get("source_id") in (None, ""):
                continue
            rows[source].append(classified_record(record))
            views.append(_duplicate_view(record))
            grants.add(path, record)
    grant_figures = grants.finish(results_dir, stats)
    groups = find_duplicates(views)
    duplicates = duplicate_of(groups)
    review = Review(Ledger(data_dir).read(), groups)
    if not _shrinks(results_dir / "duplicates.json", len(views), stats):
        atomic_write_json(results_dir / "duplicates.json",
                          {"generated_at": utcnow_iso(), "records": len(views), "groups": groups})
    summary: dict[str, Any] = {"run_id": run_id, "generated_at": utcnow_iso(), "sources": {},
                               "eye_imaging_confidence": dict.fromkeys((b[0] for b in CONFIDENCE_BANDS), 0),
                               "duplicate_groups": len(groups), "duplicates": len(duplicates),
                               "review": {"decisions": len(review), "accept": 0, "reject": 0, "unsure": 0},
                               "grants": grant_figures}
    totals: Counter = Counter()
    for source, source_rows in rows.items():
        for row in source_rows:
            canonical = duplicates.get(record_key(row))
            if canonical:
                source_, _, id_ = canonical.partition(":")
                row["duplicate_of"] = {"source": source_, "source_id": id_}
            apply_review(row, review)
            if row["review"]:
                summary["review"][row["review"]["decision"]] += 1
        source_rows.sort(key=_order)
        eye = [r for r in source_rows if r["label"] == "EYE_IMAGING"]
        # the EYE_IMAGING list may shrink (a better model, a corrected record); the list
        # of every record may not
        if not _shrinks(results_dir / f"{source}_all_results.json", len(source_rows), stats):
            atomic_write_json(results_dir / f"{source}_all_results.json", source_rows)
            atomic_write_json(results_dir / f"{source}_eye_imaging.json", eye)
        labels = Counter(r["label"] or "unclassified" for r in source_rows)
        summary["sources"][source] = {
            "records": len(source_rows),
            "EYE_IMAGING": labels["EYE_IMAGING"],
            "NEGATIVE": labels["NEGATIVE"],
            "unclassified": labels["unclassified"],
            "duplicates": sum(1 for r in source_rows if r["duplicate_of"]),
        }
        totals.update(labels)
        for r in eye:
            p = r["prob_eye_imaging"] or 0.0
            for name, lo, hi in CONFIDENCE_BANDS:
                if lo <= p < hi:
                    summary["eye_imaging_confidence"][name] += 1
    summary["totals"] = {"records": sum(totals.values()), "EYE_IMAGING": totals["EYE_IMAGING"],
                         "NEGATIVE": totals["NEGATIVE"], "unclassified": totals["unclassified"]}
    _log(summary)
    if run_id:
        path = summary_path(data_dir, run_id)
        try:
            atomic_write_json(path, summary)
        except OSError as exc:
            logger.error("Cannot write the results summary %s: %s", path, exc)
    return summary


def _log(summary: dict[str, Any]) -> None:
    for source, s in summary["sources"].items():
        logger.info("results %s: %d records, %d EYE_IMAGING, %d NEGATIVE, %d unclassified, %d duplicates of "
                    "another record", source, s["records"], s["EYE_IMAGING"], s["NEGATIVE"], s["unclassified"],
                    s["duplicates"])
    t, c = summary["totals"], summary["eye_imaging_confidence"]
    logger.info("results: %d records, %d EYE_IMAGING (confidence >= 0.95: %d, 0.80-0.95: %d, < 0.80: %d), "
                "%d NEGATIVE, %d unclassified; %d duplicate groups", t["records"], t["EYE_IMAGING"],
                c["ge_0.95"], c["0.80_to_0.95"], c["lt_0.80"], t["NEGATIVE"], t["unclassified"],
                summary["duplicate_groups"])
    r = summary["review"]
    if r["decisions"]:
        logger.info("results: curators' decisions (%d in the ledger) stand for %d records: %d accepted, %d rejected, "
                    "%d unsure", r["decisions"], r["accept"] + r["reject"] + r["unsure"], r["accept"], r["reject"],
                    r["unsure"])
    if t["unclassified"]:
        logger.warning("%d records have no label yet: run `scrapy classify`", t["unclassified"])


def run_id_from(settings) -> str:
    from envision_spiders.extensions.runsummary import new_run_id

    return settings.get("RUN_ID") or new_run_id()
