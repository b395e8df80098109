"""The funnel of the records, in one line the run summary, the log and the review page
share::

    funnel: 1,204 found → 212 EYE_IMAGING → 160 confident (P ≥ 0.80) → 131 canonical → 118 downloaded / 131 posted

Each figure counts records of the one before it, read from the same files:

* found: every record of the results (``results/{source}_all_results.json``: every
  record saved on disk, classified or not);
* EYE_IMAGING: of those, the ones labelled EYE_IMAGING;
* confident: of those, ``prob_eye_imaging`` at or above the download threshold;
* canonical: of those, the ones that are no duplicate of another record (and whose text
  and files do not disagree): the records ``scrapy download`` and ``scrapy post`` select
  before any curator's decision (:func:`envision_spiders.selection.select_rows` decides,
  here as there; with ``POST_REQUIRES_REVIEW`` only the accepted ones are posted);
* downloaded: of those, the ones whose files are all on disk and verified (their
  ``manifest.json`` says ``complete``);
* posted: of those, the ones the portal accepted (``data/portal/posted.json``; the
  portal of ``PORTAL_URL`` when it is set, else any).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from envision_spiders.downloads.queue import EYE_IMAGING, classification_of, read_results
from envision_spiders.selection import AWAITING_REVIEW, DUPLICATE, Selection, select_rows
from envision_spiders.storage import read_json, safe_id


@dataclass
class Funnel:
    threshold: float
    found: int = 0
    eye_imaging: int = 0
    confident: int = 0
    canonical: int = 0
    downloaded: int = 0
    posted: int = 0

    def line(self) -> str:
        return (f"funnel: {self.found:,} found → {self.eye_imaging:,} EYE_IMAGING → {self.confident:,} confident "
                f"(P ≥ {self.threshold:.2f}) → {self.canonical:,} canonical → {self.downloaded:,} downloaded / "
                f"{self.posted:,} posted")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FunnelCounter:
    """Counts rows as a reader goes through the results (the review page reads them
    once for everything it shows), then the downloads and posts of the canonical ones."""

    threshold: float
    found: int = 0
    eye_imaging: int = 0
    selection: Selection = field(init=False)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.selection = Selection(self.threshold)

    def add(self, source: str, row: Mapping[str, Any]) -> None:
        key = (str(row.get("source") or source), str(row.get("source_id")))
        if key in self._seen or row.get("source_id") in (None, ""):
            return
        self._seen.add(key)
        self.found += 1
        if classification_of(row)[0] == EYE_IMAGING:
            self.eye_imaging += 1
            select_rows([(source, dict(row))], self.threshold, self.selection)

    def finish(self, data_dir: str | Path, portal_url: str | None = None) -> Funnel:
        """The funnel; ``portal_url`` defaults to ``PORTAL_URL`` (environment or .env)."""
        canonical = list(self.selection.rows)
        counts = self.selection.counts
        posted = posted_records(Path(data_dir), portal_url if portal_url is not None else os.environ.get("PORTAL_URL"))
        return Funnel(
            threshold=self.threshold,
            found=self.found,
            eye_imaging=self.eye_imaging,
            confident=counts["selected"] + counts[DUPLICATE] + counts[AWAITING_REVIEW],
            canonical=len(canonical),
            downloaded=sum(1 for s, i in canonical if _complete(Path(data_dir), s, i)),
            posted=sum(1 for key in canonical if key in posted),
        )


def _complete(data_dir: Path, source: str, source_id: str) -> bool:
    manifest = read_json(data_dir / "downloads" / safe_id(source) / safe_id(source_id) / "manifest.json")
    return isinstance(manifest, Mapping) and manifest.get("status") == "complete"


def posted_records(data_dir: Path, portal_url: str | None = None) -> set[tuple[str, str]]:
    """The records a portal accepted, as ``(source, source_id)``."""
    from envision_spiders.portal.state import STATE_NAME, portal_key

    state = read_json(data_dir / "portal" / STATE_NAME) if (data_dir / "portal" / STATE_NAME).exists() else None
    portals = state.get("portals") if isinstance(state, Mapping) else None
    out: set[tuple[str, str]] = set()
    wanted = portal_key(portal_url) if portal_url else None
    for name, portal in (portals or {}).items():
        if wanted and name != wanted or not isinstance(portal, Mapping):
            continue
        for entry in (portal.get("datasets") or {}).values():
            if isinstance(entry, Mapping) and entry.get("source") and entry.get("source_id") is not None:
                out.add((str(entry["source"]), str(entry["source_id"])))
    return out


def results_sources(results_dir: Path) -> list[str]:
    return sorted(p.name[: -len("_all_results.json")] for p in results_dir.glob("*_all_results.json")
                  if p.name != "_all_results.json")


def funnel(data_dir: str | Path, results_dir: str | Path, threshold: float, portal_url: str | None = None,
           sources: Iterable[str] | None = None) -> Funnel:
    """The funnel of the results on disk (see the module doc)."""
    results_dir = Path(results_dir)
    counter = FunnelCounter(threshold)
    for source in sources if sources is not None else results_sources(results_dir):
        for row in read_results(results_dir / f"{source}_all_results.json"):
            counter.add(source, row)
    return counter.finish(data_dir, portal_url)
