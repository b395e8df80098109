"""The recall check: how much of the reference catalogue the pipeline finds, labels,
downloads and posts, and why not, every week.

For every catalogue entry whose source has saved records (a source never crawled is
``not_checked`` and left out of the figures), :func:`check` says

* whether a saved record matched it (:mod:`.match`: by DOI, source + id, URL or title),
  the terms that found that record, its label and ``prob_eye_imaging``, whether it is a
  duplicate of another record (and which one downloads and posts use), whether its files
  were downloaded and whether it was posted;
* its **outcome**: ``eye_imaging``, ``negative``, ``unclassified``, ``not_found``,
  ``filtered_non_dataset`` (the catalogue says the source types it as something else
  than a dataset: a Kaggle competition, a Figshare collection; the searches ask for
  datasets only), or ``not_checked``;
* **why not** downloaded or posted, as a list of ``{"reason", "detail"}``: ``not_found``
  (with the title words no term covers, the terms that should have found it and a
  suggested term), ``filtered_non_dataset``, ``negative`` (the record goes to the review
  queue), ``unclassified``, ``restricted`` (access restricted, embargoed, closed or
  metadata only), ``below_threshold``, ``duplicate``, ``download_pending``,
  ``not_downloaded``, ``not_posted``; plus ``identifier_suspect`` and
  ``found_elsewhere`` notes.

It writes ``results/recall.json`` (every entry, the summary, the review queue, the
search terms' contributions), the run's figures ``data/runs/{run_id}/recall.json``
(read by the run summary) and a history snapshot ``data/recall/history/{run_id}.json``.
A run is **unhealthy** when an entry the previous check found is not found now, or an
entry that was EYE_IMAGING is not any more (entries of both checks only: a catalogue
edit is not a drop).

The review queue (``review_queue`` in ``results/recall.json``) is the contract with the
curator ledger (``scrapy review``): one item per record, ``{"key", "source",
"source_id", "reason": "recall-negative", "detail", "label", "prob_eye_imaging",
"catalogue": {"key", "name", "modality", "origin", "line"}, "run_id"}``; see docs/recall.md.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from envision_spiders.review import Review
from envision_spiders.storage import atomic_write_json, iter_records, read_json, safe_id
from envision_spiders.textutil import parse_datetime, utcnow_iso

from .catalogue import Catalogue, Entry
from .match import Index, Match, View, view_of
from .terms import contributions, coverage, idle_terms

logger = logging.getLogger(__name__)

RECALL_VERSION = 1
REVIEW_QUEUE_VERSION = 1
RESULTS_NAME = "recall.json"
HISTORY_DIR = ("recall", "history")
HISTORY_KEPT = 26  # half a year of weekly runs
NOT_DOWNLOADABLE = {"restricted", "embargoed", "closed", "metadata-only"}
OUTCOMES = ("eye_imaging", "negative", "unclassified", "not_found", "filtered_non_dataset", "not_checked")


# ------------------------------------------------------------------ inputs
def load_views(data_dir: Path) -> list[View]:
    """A small view of every saved record of every source."""
    views = []
    folder = data_dir / "metadata"
    for source in sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        for _, record in iter_records(data_dir, source):
            v = view_of(record)
            if v is not None:
                views.append(v)
    return views


def canonical_of(results_dir: Path) -> dict[str, str]:
    """key -> its group's canonical key, for records that are duplicates of another."""
    from envision_spiders.duplicates import read_duplicate_groups

    out = {}
    for g in read_duplicate_groups(results_dir):
        for key in g["members"]:
            if key != g["canonical"]:
                out[key] = g["canonical"]
    return out


def posted_keys(data_dir: Path) -> set[str]:
    """Records some portal accepted (``data/portal/posted.json``, any portal)."""
    data = read_json(data_dir / "portal" / "posted.json") if (data_dir / "portal" / "posted.json").exists() else None
    out: set[str] = set()
    portals = data.get("portals") if isinstance(data, Mapping) else None
    for portal in portals.values() if isinstance(portals, Mapping) else []:
        datasets = portal.get("datasets") if isinstance(portal, Mapping) else None
        for entry in datasets.values() if isinstance(datasets, Mapping) else []:
            if isinstance(entry, Mapping) and entry.get("source") and entry.get("source_id") not in (None, ""):
                out.add(f"{entry['source']}:{entry['source_id']}")
    return out


# ------------------------------------------------------------------ one entry
def _brief(v: View | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"key": v.key, "source": v.source, "source_id": v.source_id, "title": v.title, "doi": v.doi}


def _why(reason: str, detail: str) -> dict[str, str]:
    return {"reason": reason, "detail": detail}


def assess(entry: Entry, m: Match, *, crawled: set[str], terms: list[str], views: Mapping[str, View],
           canonical: Mapping[str, str], downloads: Mapping[str, str], posted: set[str],
           download_threshold: float, post_threshold: float, review: Review | None = None,
           post_requires_review: bool = False) -> dict[str, Any]:
    """The recall row of one entry (see the module doc); ``review``: the curators'
    decisions (a rejection says why not, an accept counts as EYE_IMAGING for downloads and
    posts, and with ``post_requires_review`` a record nobody accepted waits for one)."""
    row: dict[str, Any] = {"entry": entry.as_dict(), "checked": entry.source in crawled, "found": m.record is not None,
                           "matched_by": m.by, "record": _brief(m.record), "also": [v.key for v in m.also],
                           "elsewhere": [v.key for v in m.elsewhere], "identifier_suspect": _brief(m.suspect),
                           "title_differs": m.title_differs, "terms": [], "found_by": [], "label": None,
                           "prob_eye_imaging": None, "duplicate_of": None, "downloaded": None, "posted": False,
                           "why_not": [], "coverage": None}
    why = row["why_not"]
    if m.suspect is not None:
        why.append(_why("identifier_suspect", f"the catalogue's identifier names {m.suspect.key} "
                        f"({m.suspect.title!r}), whose title does not fit; matched by title instead"))
    if not row["checked"] and m.record is None:
        row["outcome"] = "not_checked"
        why.append(_why("not_checked", f"no saved {entry.source} records: the source was not crawled"))
        return row
    row["checked"] = True
    if m.record is None:
        row["coverage"] = coverage(entry, terms)
        if not entry.is_dataset_type:
            row["outcome"] = "filtered_non_dataset"
            why.append(_why("filtered_non_dataset", f"{entry.source} lists it as a {entry.source_type}; the "
                            f"{entry.source} search asks for datasets only"))
        else:
            row["outcome"] = "not_found"
            c = row["coverage"]
            detail = "no saved record matches its DOI, id, URL or title"
            if c["matching_terms"]:
                detail += f"; the terms {', '.join(repr(t) for t in c['matching_terms'][:3])} have all their words in its title"
            if c["uncovered_words"]:
                detail += f"; no term holds {', '.join(c['uncovered_words'][:6])}"
            if c["suggested_term"]:
                detail += f"; a term that would find it: {c['suggested_term']!r}"
            why.append(_why("not_found", detail))
        if m.elsewhere:
            why.append(_why("seen_elsewhere", "titles that look like it in other sources: "
                            + ", ".join(v.key for v in m.elsewhere[:5])))
        return row
    rec = m.record
    row.update(terms=rec.terms, found_by=rec.found_by, label=rec.label, prob_eye_imaging=rec.prob)
    if rec.source != entry.source:
        why.append(_why("found_elsewhere", f"found through {rec.source} ({rec.key}), not as a {entry.source} record"))
    # a DataCite copy may be the one matched while the hosting record is canonical
    key = canonical.get(rec.key, rec.key)
    row["duplicate_of"] = key if key != rec.key else None
    target = views.get(key, rec)
    row["downloaded"] = downloads.get(key) or downloads.get(rec.key)
    row["posted"] = key in posted or rec.key in posted
    decision = review.standing(key) if review is not None else None
    row["review"] = decision.decision if decision is not None else None
    if rec.label == "EYE_IMAGING":
        row["outcome"] = "eye_imaging"
    elif rec.label == "NEGATIVE":
        row["outcome"] = "negative"
        then = (f"{decision.describe()}" if decision is not None and decision.decision != "unsure"
                else "queued for review")
        why.append(_why("negative", f"classified NEGATIVE (prob_eye_imaging {rec.prob:.2f}); {then}"
                        if rec.prob is not None else f"classified NEGATIVE; {then}"))
    else:
        row["outcome"] = "unclassified"
        why.append(_why("unclassified", "not classified yet: run scrapy classify"))
    if row["duplicate_of"]:
        why.append(_why("duplicate", f"a duplicate of {key}: downloads and posts use that record"
                        + (f" (labelled {target.label})" if target.label != rec.label else "")))
    access = (target.access_type or "").lower()
    if access in NOT_DOWNLOADABLE:
        why.append(_why("restricted", f"access is {access}: its files cannot be downloaded"))
    if row["review"] == "reject":
        why.append(_why("rejected", f"{decision.describe()}: never downloaded or posted"))
        return row
    accepted = row["review"] == "accept"
    eye = target.label == "EYE_IMAGING" or accepted
    p = target.prob if target.prob is not None else 0.0
    if accepted:  # the curator's accept passes the gate whatever the probability
        p = 1.0
    if row["downloaded"] != "done" and eye and access not in NOT_DOWNLOADABLE:
        if p < download_threshold:
            why.append(_why("below_threshold", f"prob_eye_imaging {p:.2f} is below DOWNLOAD_THRESHOLD "
                            f"{download_threshold:.2f}"))
        elif row["downloaded"] in ("queued", "partial"):
            why.append(_why("download_pending", f"download {row['downloaded']}: it finishes in a later run"))
        elif row["downloaded"] == "skipped":
            why.append(_why("not_downloaded", "the download step skipped it (see its manifest)"))
        else:
            why.append(_why("not_downloaded", "no download yet: run scrapy download"))
    if not row["posted"] and eye:
        if post_requires_review and not accepted:
            why.append(_why("awaiting_review", "waiting for a curator's accept (POST_REQUIRES_REVIEW): "
                            "scrapy review, or the review page"))
        elif p < post_threshold:
            if p >= download_threshold or not any(w["reason"] == "below_threshold" for w in why):
                why.append(_why("below_threshold", f"prob_eye_imaging {p:.2f} is below POST_THRESHOLD {post_threshold:.2f}"))
        else:
            why.append(_why("not_posted", "not posted: PORTAL_URL unset, or the post step has not run or failed"))
    return row


def review_item(row: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The review-queue item of a found-but-NEGATIVE entry (the contract in the module doc)."""
    rec, entry = row["record"], row["entry"]
    p = row["prob_eye_imaging"]
    return {
        "key": rec["key"], "source": rec["source"], "source_id": rec["source_id"], "reason": "recall-negative",
        "detail": f"catalogue entry {entry['name']!r} ({entry['modality'] or 'eye imaging'}) was found but classified "
                  f"NEGATIVE" + (f" (prob_eye_imaging {p:.2f})" if isinstance(p, float) else ""),
        "label": row["label"], "prob_eye_imaging": p,
        "catalogue": {k: entry[k] for k in ("key", "name", "modality", "origin", "line")},
        "run_id": run_id,
    }


# ------------------------------------------------------------------ history
def history_folder(data_dir: Path) -> Path:
    return data_dir.joinpath(*HISTORY_DIR)


def read_history(data_dir: Path, run_id: str) -> list[dict[str, Any]]:
    """Snapshots of other runs, newest first (by ``generated_at``)."""
    folder = history_folder(data_dir)
    out = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        data = read_json(path)
        if not isinstance(data, dict) or data.get("run_id") == run_id:
            continue
        stamp = parse_datetime(data.get("generated_at"))
        if stamp is not None:
            out.append((stamp, str(data.get("run_id")), data))
    return [d for _, _, d in sorted(out, key=lambda t: (t[0], t[1]), reverse=True)]


def prune_history(data_dir: Path, keep: int = HISTORY_KEPT) -> None:
    folder = history_folder(data_dir)
    dated = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        data = read_json(path)
        stamp = parse_datetime(data.get("generated_at")) if isinstance(data, dict) else None
        dated.append((stamp.timestamp() if stamp else 0.0, path.name, path))
    for _, _, path in sorted(dated)[:-keep] if len(dated) > keep else []:
        path.unlink(missing_ok=True)


def drops(rows: Iterable[Mapping[str, Any]], previous: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Entries found (or EYE_IMAGING) in the previous check and not now."""
    before = previous.get("entries") if isinstance(previous, Mapping) else None
    lost, relabelled = [], []
    for row in rows:
        key = row["entry"]["key"]
        old = before.get(key) if isinstance(before, Mapping) else None
        if not isinstance(old, Mapping) or row["outcome"] == "not_checked" or old.get("outcome") == "not_checked":
            continue
        if old.get("found") and not row["found"]:
            lost.append(key)
        elif old.get("outcome") == "eye_imaging" and row["found"] and row["outcome"] != "eye_imaging":
            relabelled.append(key)
    return {"lost": lost, "relabelled": relabelled}


# ------------------------------------------------------------------ the check
def summary_line(s: Mapping[str, Any]) -> str:
    return f"recall of the reference catalogue: {s['found']}/{s['checked']} found, {s['eye_imaging']} EYE_IMAGING"


def check(data_dir: str | Path, results_dir: str | Path, catalogue: Catalogue, terms: list[str], *,
          run_id: str, download_threshold: float = 0.80, post_threshold: float | None = None,
          views: list[View] | None = None, post_requires_review: bool = True) -> dict[str, Any]:
    """Run the check and return what ``results/recall.json`` holds (writes nothing)."""
    from envision_spiders.report.gather import download_states

    data_dir, results_dir = Path(data_dir), Path(results_dir)
    post_threshold = download_threshold if post_threshold is None else post_threshold
    views = load_views(data_dir) if views is None else views
    crawled = {v.source for v in views}
    by_key = {v.key: v for v in views}
    index = Index(v for v in views if v.source != "nei")
    canonical = canonical_of(results_dir)
    downloads, _ = download_states(data_dir)
    posted = posted_keys(data_dir)
    review = Review.load(data_dir, results_dir)
    rows = [assess(e, index.match(e), crawled=crawled, terms=terms, views=by_key, canonical=canonical,
                   downloads=downloads, posted=posted, download_threshold=download_threshold,
                   post_threshold=post_threshold, review=review, post_requires_review=post_requires_review)
            for e in catalogue.entries]
    outcomes = Counter(r["outcome"] for r in rows)
    reasons = Counter(w["reason"] for r in rows if r["checked"] for w in r["why_not"])
    checked = [r for r in rows if r["outcome"] != "not_checked"]
    summary = {
        "entries": len(rows),
        "checked": len(checked),
        "found": sum(r["found"] for r in checked),
        "eye_imaging": outcomes["eye_imaging"],
        "negative": outcomes["negative"],
        "unclassified": outcomes["unclassified"],
        "not_found": outcomes["not_found"],
        "filtered_non_dataset": outcomes["filtered_non_dataset"],
        "not_checked": outcomes["not_checked"],
        "downloaded": sum(r["downloaded"] == "done" for r in checked),
        "posted": sum(r["posted"] for r in checked),
        "duplicates": sum(bool(r["duplicate_of"]) for r in checked),
        "restricted": reasons["restricted"],
        # entries whose record no search term found, only DataCite's funder search
        "found_only_by_funder": sum(r["found"] and "funder" in r["found_by"] and not r["terms"] for r in checked),
        "by_source": {},
        "why_not": dict(sorted(reasons.items())),
    }
    for source in sorted({r["entry"]["source"] for r in rows}):
        mine = [r for r in checked if r["entry"]["source"] == source]
        summary["by_source"][source] = {"checked": len(mine), "found": sum(r["found"] for r in mine),
                                        "eye_imaging": sum(r["outcome"] == "eye_imaging" for r in mine)}
    history = read_history(data_dir, run_id)
    previous = history[0] if history else None
    dropped = drops(rows, previous)
    term_rows = contributions(views, terms)
    idle = idle_terms(term_rows, history)
    problems = []
    if dropped["lost"]:
        problems.append(f"recall dropped: {len(dropped['lost'])} catalogue entries found by the check of run "
                        f"{previous['run_id']} are not found now: {', '.join(dropped['lost'][:5])}")
    if dropped["relabelled"]:
        problems.append(f"recall dropped: {len(dropped['relabelled'])} catalogue entries EYE_IMAGING in run "
                        f"{previous['run_id']} are not now: {', '.join(dropped['relabelled'][:5])}")
    return {
        "version": RECALL_VERSION,
        "generated_at": utcnow_iso(),
        "run_id": run_id,
        "catalogue": {"files": catalogue.files, "mode": catalogue.mode, "entries": len(catalogue.entries),
                      "problems": catalogue.problems},
        "summary": summary,
        "summary_line": summary_line(summary),
        "previous": {"run_id": previous.get("run_id"), "summary": previous.get("summary")} if previous else None,
        "drops": dropped,
        "healthy": not problems,
        "problems": problems,
        "entries": rows,
        "review_queue_version": REVIEW_QUEUE_VERSION,
        # a record a curator accepted or rejected waits no more
        "review_queue": [review_item(r, run_id) for r in rows
                         if r["outcome"] == "negative" and r.get("review") not in ("accept", "reject")],
        "terms": {
            "runs_for_idle": len(history) + 1,
            "contributions": term_rows,
            "idle": idle,
            "only_negative": sorted(t for t, r in term_rows.items()
                                    if r["unique"] and not r["unique_eye_imaging"] and not r.get("retired")),
        },
    }


def write(result: Mapping[str, Any], data_dir: str | Path, results_dir: str | Path) -> Path:
    """``results/recall.json``, the run's figures and the history snapshot (atomic)."""
    data_dir, results_dir = Path(data_dir), Path(results_dir)
    path = results_dir / RESULTS_NAME
    atomic_write_json(path, result)
    run_id = result["run_id"]
    atomic_write_json(data_dir / "runs" / run_id / RESULTS_NAME, {
        "run_id": run_id, "generated_at": result["generated_at"], "summary": result["summary"],
        "summary_line": result["summary_line"], "healthy": result["healthy"], "problems": result["problems"],
        "review_queue": len(result["review_queue"]), "idle_terms": sorted(result["terms"]["idle"]),
        "catalogue_problems": len(result["catalogue"]["problems"]),
    })
    atomic_write_json(history_folder(data_dir) / f"{safe_id(run_id)}.json", {
        "run_id": run_id, "generated_at": result["generated_at"], "summary": result["summary"],
        "entries": {r["entry"]["key"]: {"found": r["found"], "outcome": r["outcome"],
                                        "record": (r["record"] or {}).get("key")} for r in result["entries"]},
        "terms": {t: {k: v for k, v in row.items()} for t, row in result["terms"]["contributions"].items()},
    })
    prune_history(data_dir)
    return path


def run_figures(run_folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The recall section of the run summary and its problems, from the run's
    ``recall.json`` (None when this run had no recall step)."""
    data = read_json(run_folder / RESULTS_NAME) if (run_folder / RESULTS_NAME).exists() else None
    if not isinstance(data, Mapping) or not isinstance(data.get("summary"), Mapping):
        return None, []
    section = {k: data.get(k) for k in ("summary_line", "summary", "review_queue", "idle_terms", "catalogue_problems")}
    return section, [p for p in data.get("problems") or [] if isinstance(p, str)]  # each says "recall dropped: …"


def log_result(result: Mapping[str, Any]) -> None:
    for p in result["catalogue"]["problems"]:
        logger.warning("recall catalogue %s line %s: %s", p["file"], p["line"], p["problem"])
    s = result["summary"]
    logger.info("%s (%d not found, %d filtered as non-datasets, %d NEGATIVE -> review queue, %d downloaded, "
                "%d posted; %d found only by the funder search; %d entries of sources not crawled)",
                result["summary_line"], s["not_found"], s["filtered_non_dataset"], s["negative"], s["downloaded"],
                s["posted"], s.get("found_only_by_funder", 0), s["not_checked"])
    for row in result["entries"]:
        if row["outcome"] in ("not_found", "filtered_non_dataset", "negative"):
            logger.info("recall: %s [%s]: %s", row["entry"]["name"], row["outcome"],
                        "; ".join(w["detail"] for w in row["why_not"] if w["reason"] in ("not_found", "filtered_non_dataset", "negative")))
    idle = result["terms"]["idle"]
    if idle:
        logger.warning("search terms that found no record of their own for %d runs or more: %s",
                       min(idle.values()), ", ".join(sorted(idle)))
    for problem in result["problems"]:
        logger.error("RECALL: %s", problem)
