"""Two sections of the review page: the recall of the reference catalogue, and the NEI
projects with the datasets that cite them.

Read from ``results/recall.json`` (``scrapy recall``) and ``results/grants.json`` (every
results rebuild); a missing or odd file shows a line saying how to get it, never an
error. Static HTML (a catalogue of a few hundred entries needs no paging script), every
text escaped, links only to http(s) URLs.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envision_spiders.storage import read_json
from envision_spiders.textutil import safe_url

logger = logging.getLogger(__name__)

OUTCOME_LABELS = {
    "eye_imaging": ("found, EYE_IMAGING", "ok"),
    "negative": ("found, NEGATIVE → review", "bad"),
    "unclassified": ("found, not classified", ""),
    "not_found": ("not found", "bad"),
    "filtered_non_dataset": ("filtered: not a dataset", "bad"),
    "not_checked": ("source not crawled", ""),
}
OUTCOME_ORDER = ("not_found", "filtered_non_dataset", "negative", "unclassified", "eye_imaging", "not_checked")
TERMS_SHOWN = 12


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _link(url: Any, text: str) -> str:
    u = safe_url(url)
    return f'<a href="{esc(u)}" rel="noopener noreferrer">{esc(text)}</a>' if u else esc(text)


def read_extras(results_dir: str | Path) -> dict[str, Any]:
    """``{"recall": …, "grants": …}`` from the results folder (None where missing or odd)."""
    out: dict[str, Any] = {}
    for name in ("recall", "grants"):
        path = Path(results_dir) / f"{name}.json"
        data = read_json(path) if path.is_file() else None
        out[name] = data if isinstance(data, Mapping) else None
    return out


def _record_url(rec: Mapping[str, Any] | None) -> str:
    if not isinstance(rec, Mapping):
        return ""
    doi = rec.get("doi")
    return f"https://doi.org/{doi}" if isinstance(doi, str) and doi.startswith("10.") else ""


def recall_section(recall: Mapping[str, Any] | None) -> str:
    if not recall or not isinstance(recall.get("summary"), Mapping) or not isinstance(recall.get("entries"), list):
        return ('<section class="panel crawl" id="recall"><h2>Recall of the reference catalogue</h2>'
                '<p class="empty">No recall check yet: run <code>scrapy recall</code> (a step of '
                '<code>./automation.sh</code>).</p></section>')
    s = recall["summary"]
    head = [f'<p class="sub">{esc(recall.get("summary_line", ""))} · {s.get("downloaded", 0)} downloaded · '
            f'{s.get("posted", 0)} posted · {s.get("found_only_by_funder", 0)} found only by the funder search · '
            f'{s.get("not_checked", 0)} entries of sources not crawled · '
            f'catalogue: {esc(", ".join(recall.get("catalogue", {}).get("files") or []))}</p>']
    if not recall.get("healthy", True):
        head.append('<p class="bad">' + "<br>".join(esc(p) for p in recall.get("problems") or []) + "</p>")
    by_source = s.get("by_source") or {}
    if by_source:
        head.append('<div class="scroll"><table class="static"><thead><tr><th>Source</th><th class=r>Checked</th>'
                    '<th class=r>Found</th><th class=r>EYE_IMAGING</th></tr></thead><tbody>'
                    + "".join(f"<tr><td>{esc(src)}</td><td class=r>{esc(v.get('checked', 0))}</td>"
                              f"<td class=r>{esc(v.get('found', 0))}</td><td class=r>{esc(v.get('eye_imaging', 0))}</td></tr>"
                              for src, v in sorted(by_source.items()) if isinstance(v, Mapping))
                    + "</tbody></table></div>")
    rows = []
    entries = [r for r in recall["entries"] if isinstance(r, Mapping) and isinstance(r.get("entry"), Mapping)]
    entries.sort(key=lambda r: (OUTCOME_ORDER.index(r.get("outcome")) if r.get("outcome") in OUTCOME_ORDER else 9,
                                str(r["entry"].get("name"))))
    for r in entries:
        e = r["entry"]
        label, cls = OUTCOME_LABELS.get(r.get("outcome"), (str(r.get("outcome")), ""))
        rec = r.get("record") if isinstance(r.get("record"), Mapping) else None
        found = ""
        if rec:
            found = (_link(_record_url(rec) or e.get("url"), str(rec.get("key")))
                     + f' <span class="muted">by {esc(r.get("matched_by"))}</span>')
        p = r.get("prob_eye_imaging")
        prob = f"{p:.2f}" if isinstance(p, float) else ""
        why = "<br>".join(esc(w.get("detail", "")) for w in r.get("why_not") or [] if isinstance(w, Mapping))
        terms = ", ".join(str(t) for t in r.get("terms") or [])
        if "funder" in (r.get("found_by") or []):
            terms = f"{terms} + funder search" if terms else "funder search only"
        rows.append(
            f"<tr{' class=bad-row' if r.get('outcome') in ('not_found', 'filtered_non_dataset', 'negative') else ''}>"
            f"<td>{_link(e.get('url'), str(e.get('name')))}<br><span class=muted>{esc(e.get('source'))}"
            f"{' · ' + esc(e.get('modality')) if e.get('modality') else ''} · id {esc(e.get('id_confidence'))}</span></td>"
            f"<td class='{cls}'>{esc(label)}</td><td>{found}</td><td>{esc(terms)}</td><td class=r>{prob}</td>"
            f"<td>{esc(r.get('duplicate_of') or '')}</td><td>{esc(r.get('downloaded') or '')}</td>"
            f"<td>{'✓' if r.get('posted') else ''}</td><td>{why}</td></tr>")
    table = ('<div class="scroll"><table class="static"><thead><tr><th>Dataset</th><th>Outcome</th><th>Record</th>'
             '<th>Found by</th><th class=r>P(eye)</th><th>Duplicate of</th><th>Download</th><th>Posted</th>'
             '<th>Why not</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table></div>")
    return ('<section class="panel crawl" id="recall"><h2>Recall of the reference catalogue</h2>'
            + "".join(head) + table + _terms_block(recall.get("terms")) + _catalogue_problems(recall) + "</section>")


def _terms_block(terms: Any) -> str:
    if not isinstance(terms, Mapping) or not isinstance(terms.get("contributions"), Mapping):
        return ""
    rows = [(t, r) for t, r in terms["contributions"].items() if isinstance(r, Mapping)]
    rows.sort(key=lambda tr: (-int(tr[1].get("unique") or 0), tr[0]))
    idle = terms.get("idle") if isinstance(terms.get("idle"), Mapping) else {}
    body = "".join(
        f"<tr><td>{esc(t)}{' <span class=bad>adds nothing for ' + esc(idle[t]) + ' runs</span>' if t in idle else ''}"
        f"{' <span class=muted>(no longer searched)</span>' if r.get('retired') else ''}</td>"
        f"<td class=r>{esc(r.get('found', 0))}</td><td class=r>{esc(r.get('unique', 0))}</td>"
        f"<td class=r>{esc(r.get('unique_eye_imaging', 0))}</td></tr>"
        for t, r in rows[:TERMS_SHOWN] + [tr for tr in rows[TERMS_SHOWN:] if tr[0] in idle])
    note = (f"Records only one term found (no other term, no other channel), over the saved records; "
            f"{len(idle)} terms found no record of their own in each of their last checks.")
    only_negative = [str(t) for t in terms.get("only_negative") or []]
    if only_negative:
        note += f" Terms whose own records are all NEGATIVE: {', '.join(only_negative)}."
    return (f'<h3>Search terms that earn their place</h3><p class="sub">{esc(note)}</p>'
            '<div class="scroll"><table class="static"><thead><tr><th>Term</th><th class=r>Records</th>'
            '<th class=r>Only this term</th><th class=r>… EYE_IMAGING</th></tr></thead><tbody>'
            + body + "</tbody></table></div>")


def _catalogue_problems(recall: Mapping[str, Any]) -> str:
    problems = (recall.get("catalogue") or {}).get("problems") if isinstance(recall.get("catalogue"), Mapping) else None
    if not problems:
        return ""
    items = "".join(f"<li>{esc(p.get('file'))} line {esc(p.get('line'))}: {esc(p.get('problem'))}</li>"
                    for p in problems if isinstance(p, Mapping))
    return f'<h3>Catalogue problems</h3><ul class="sub">{items}</ul>'


def grants_section(grants: Mapping[str, Any] | None) -> str:
    title = "<h2>NEI projects and their datasets</h2>"
    if not grants or not isinstance(grants.get("projects"), list):
        return (f'<section class="panel crawl" id="grants">{title}<p class="empty">No grant links yet: they are '
                'made when results are written after a crawl of RePORTER (spider nei) and of the dataset '
                'sources.</p></section>')
    projects = [p for p in grants["projects"] if isinstance(p, Mapping)]
    sub = (f'<p class="sub">{len(projects)} of {esc(grants.get("nei_projects", 0))} saved NEI projects have datasets; '
           f'{esc(grants.get("datasets_citing_nei", 0))} datasets cite NEI awards.</p>')
    if not projects:
        return f'<section class="panel crawl" id="grants">{title}{sub}</section>'
    rows = []
    for p in projects:
        datasets = [d for d in p.get("datasets") or [] if isinstance(d, Mapping)]
        cells = "<br>".join(
            f"{_link(d.get('url'), str(d.get('title') or d.get('key')))} <span class=muted>{esc(d.get('key'))}</span> "
            f"<span class='{'ok' if d.get('label') == 'EYE_IMAGING' else 'bad' if d.get('label') == 'NEGATIVE' else ''}'>"
            f"{esc(d.get('label') or 'unclassified')}"
            f"{' ' + format(d['prob_eye_imaging'], '.2f') if isinstance(d.get('prob_eye_imaging'), float) else ''}</span>"
            for d in datasets)
        rows.append(f"<tr><td>{_link(p.get('url'), str(p.get('core_project_num')))}</td><td>{esc(p.get('title') or '')}</td>"
                    f"<td>{cells}</td></tr>")
    return (f'<section class="panel crawl" id="grants">{title}{sub}<div class="scroll"><table class="static"><thead>'
            '<tr><th>Project</th><th>Title</th><th>Datasets (label, P(eye))</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div></section>")
