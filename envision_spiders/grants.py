"""Datasets by grant: NEI project records and the datasets that cite them, linked both ways.

Dataset records keep their funding references in ``funding`` (see
:mod:`envision_spiders.funding`); NEI project records (spider ``nei``) are keyed by their
core project number. Each rebuild of ``results/`` (after every crawl and every classify
step) links them over every saved record:

* a dataset **cites** an NIH award when one of its funding entries holds it; it is
  linked to every saved NEI project whose serial (``EY012345``) it cites, whatever the
  activity code it wrote (an R21 that became an R33 keeps its serial), so a bare
  ``EY012345`` finds ``R01EY012345``;
* the dataset record gets ``nei_projects``: the core project numbers of the linked NEI
  projects, plus the NEI awards (institute code ``EY``) it cites that no saved project
  has, as written (a core number, else the serial);
* the NEI project record gets ``linked_datasets``: ``[{source, source_id}]`` of the
  datasets citing it.

Only records whose links changed are rewritten (atomically); just before a write the
record is read again, and left for the next rebuild when a crawl changed its funding
or id meanwhile. ``results/grants.json`` lists every NEI project with datasets (its
title and page, and each dataset with its label and ``prob_eye_imaging``) and the NEI
awards cited by datasets that no saved project has; the review page shows it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envision_spiders.funding import nei_citations, nih_awards, nih_serials
from envision_spiders.storage import atomic_write_json, read_json
from envision_spiders.textutil import utcnow_iso

logger = logging.getLogger(__name__)

GRANTS_NAME = "grants.json"
NEI_SOURCE = "nei"


def _serial_of(core: str) -> str | None:
    awards = nih_awards(core)
    return awards[0]["serial"] if awards else None


@dataclass
class _Dataset:
    path: Path
    source: str
    source_id: str
    serials: frozenset[str]
    cited: list[str]  # NEI awards as written
    current: Any
    title: str
    label: str | None
    prob: float | None
    url: str | None


@dataclass
class GrantLinker:
    """Collects what the links need while ``results`` reads every record, then links."""

    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # core -> facts
    datasets: list[_Dataset] = field(default_factory=list)

    def add(self, path: Path, record: Mapping[str, Any]) -> None:
        source, source_id = record.get("source"), record.get("source_id")
        if not isinstance(source, str) or source_id in (None, ""):
            return
        if source == NEI_SOURCE:
            serial = _serial_of(str(source_id))
            if serial:
                self.projects[str(source_id)] = {"path": path, "serial": serial, "title": record.get("title"),
                                                 "url": record.get("url"), "current": record.get("linked_datasets")}
            return
        serials = frozenset(nih_serials(record.get("funding")))
        if not serials and record.get("nei_projects") in (None, []):
            return  # nothing to link and nothing to undo
        c = record.get("classification") if isinstance(record.get("classification"), Mapping) else {}
        p = c.get("prob_eye_imaging")
        self.datasets.append(_Dataset(
            path=path, source=source, source_id=str(source_id), serials=serials,
            cited=nei_citations(record.get("funding")), current=record.get("nei_projects"),
            title=" ".join(str(record.get("title") or "").split())[:300],
            label=c.get("label") if c.get("label") in ("EYE_IMAGING", "NEGATIVE") else None,
            prob=float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else None,
            url=record.get("url") if isinstance(record.get("url"), str) else None,
        ))

    def links(self) -> tuple[dict[str, list[str]], dict[str, list[dict[str, str]]]]:
        """(dataset key -> nei_projects, project core -> linked_datasets)."""
        by_serial: dict[str, list[str]] = {}
        for core, facts in self.projects.items():
            by_serial.setdefault(facts["serial"], []).append(core)
        datasets: dict[str, list[str]] = {}
        projects: dict[str, list[dict[str, str]]] = {core: [] for core in self.projects}
        for d in self.datasets:
            cores = sorted({core for s in d.serials for core in by_serial.get(s, [])})
            known = {self.projects[c]["serial"] for c in cores}
            unmatched = [a for a in d.cited if _serial_of(a) not in known]
            datasets[f"{d.source}:{d.source_id}"] = cores + [a for a in unmatched if a not in cores]
            for core in cores:
                projects[core].append({"source": d.source, "source_id": d.source_id})
        for linked in projects.values():
            linked.sort(key=lambda x: (x["source"], x["source_id"]))
        return datasets, projects

    def finish(self, results_dir: Path | None = None, stats=None) -> dict[str, Any]:
        """Write the links into the records that changed and ``results/grants.json``;
        returns the figures. Never raises on a record that cannot be written (logged,
        counted as ``envision/grants/write_errors``)."""
        dataset_links, project_links = self.links()
        written = errors = 0
        for d in self.datasets:
            value = dataset_links[f"{d.source}:{d.source_id}"]
            if value != (d.current or []):
                ok = _rewrite(d.path, "nei_projects", value, lambda r, d=d: frozenset(nih_serials(r.get("funding"))) == d.serials)
                written += ok is True
                errors += ok is None
        for core, facts in self.projects.items():
            value = project_links[core]
            if value != (facts["current"] or []):
                ok = _rewrite(facts["path"], "linked_datasets", value, lambda r, core=core: str(r.get("source_id")) == core)
                written += ok is True
                errors += ok is None
        if errors and stats is not None:
            stats.inc_value("envision/grants/write_errors", errors)
        by_key = {f"{d.source}:{d.source_id}": d for d in self.datasets}

        def dataset_row(key: str) -> dict[str, Any]:
            d = by_key[key]
            return {"key": key, "source": d.source, "source_id": d.source_id, "title": d.title, "url": d.url,
                    "label": d.label, "prob_eye_imaging": d.prob}

        projects = [{"core_project_num": core, "title": self.projects[core]["title"], "url": self.projects[core]["url"],
                     "datasets": [dataset_row(f"{x['source']}:{x['source_id']}") for x in linked]}
                    for core, linked in sorted(project_links.items()) if linked]
        unmatched: dict[str, list[str]] = {}
        for key, values in dataset_links.items():
            for award in values:
                if award not in self.projects:
                    unmatched.setdefault(award, []).append(key)
        figures = {
            "nei_projects": len(self.projects),
            "projects_with_datasets": len(projects),
            "datasets_citing_nei": sum(1 for v in dataset_links.values() if v),
            "datasets_linked": len({k for p in projects for k in (d["key"] for d in p["datasets"])}),
            "records_rewritten": written,
            "write_errors": errors,
        }
        if results_dir is not None:
            try:
                atomic_write_json(Path(results_dir) / GRANTS_NAME, {
                    "generated_at": utcnow_iso(), **figures, "projects": projects,
                    "cited_but_not_saved": [{"award": a, "datasets": [dataset_row(k) for k in sorted(ks)]}
                                            for a, ks in sorted(unmatched.items())],
                })
            except OSError as exc:
                logger.error("Cannot write %s: %s", Path(results_dir) / GRANTS_NAME, exc)
        if figures["projects_with_datasets"] or figures["datasets_citing_nei"]:
            logger.info("grants: %d of %d NEI projects have datasets; %d datasets cite NEI awards (%d linked to a saved "
                        "project); %d records updated", figures["projects_with_datasets"], figures["nei_projects"],
                        figures["datasets_citing_nei"], figures["datasets_linked"], written)
        return figures


def _rewrite(path: Path, key: str, value: Any, still_same) -> bool | None:
    """Set ``record[key] = value`` in the file if the record still passes ``still_same``
    (True: written, False: changed by a crawl meanwhile, left for the next rebuild,
    None: could not be written)."""
    record = read_json(path)
    if not isinstance(record, dict) or not still_same(record):
        return False
    record[key] = value
    try:
        atomic_write_json(path, record)
    except OSError as exc:
        logger.error("grants: cannot write %s: %s", path, exc)
        return None
    return True


def link_grants(records: Any, results_dir: Path | None = None, stats=None) -> dict[str, Any]:
    """Link every ``(path, record)`` of ``records`` (see the module doc)."""
    linker = GrantLinker()
    for path, record in records:
        linker.add(path, record)
    return linker.finish(results_dir, stats)
