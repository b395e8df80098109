"""The review page: one self-contained HTML file built from a :class:`~.gather.Report`.

* Figures, the crawl table and the three charts are rendered here, as HTML and inline
  SVG (hand-written: three bar charts do not justify a charting library, and static SVG
  shows even with scripts off, prints, and is covered by unit tests). Every text from a
  record or a file passes through ``html.escape``; no record text reaches an attribute
  other than ``data-*`` values, which are escaped too.
* The table rows are embedded once as compact JSON in a ``<script
  type="application/json">`` block (``<``, ``>``, ``&``, U+2028 and U+2029 escaped, so
  no title can close the block) and rendered a page at a time by ``assets/report.js``
  with ``textContent`` only: 50,000 records never become 50,000 DOM rows.
* A Content-Security-Policy allows only this page's own script and style (by SHA-256),
  no network, no inline event handlers: a hostile string that slipped through would
  still not run or load anything.
* Curators decide on the page (accept / reject / unsure, a reason and a reason code);
  the page stays static: the choices are kept in the browser (``localStorage``, under
  the ledger's identity) and exported as one decisions file, which ``scrapy review
  import`` records (:mod:`envision_spiders.review.importing`). Choices the ledger
  already holds (their ids are embedded) are forgotten by the browser.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections import Counter
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from envision_spiders.review import REASON_CODES
from envision_spiders.review.importing import FORMAT, VERSION
from envision_spiders.textutil import parse_datetime, strings

from .gather import (
    BORDERLINE,
    BORDERLINE_BANDS,
    DOWNLOAD_STATES,
    EYE_BANDS,
    EYE_IMAGING,
    HISTOGRAM_BINS,
    MODALITIES,
    NEGATIVE,
    Report,
    band,
)
from .recallpage import grants_section, recall_section

# Row fields in the embedded JSON, in order (report.js reads them by these positions).
ROW_FIELDS = ("source", "source_id", "title", "url", "doi", "p", "confidence", "modalities", "file_types",
              "archives", "size_mb", "license", "access", "duplicates", "duplicate_of", "new", "download",
              "description", "keywords", "file_count", "members", "modality_note", "rules", "band", "review",
              "model_label", "model_id", "reasons", "disagree", "p_text")
DECISION_FIELDS = ("decision", "reason", "code", "curator", "decided_at", "id", "on")
LABEL_COLOURS = {EYE_IMAGING: "eye", NEGATIVE: "neg", "unclassified": "unc"}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    return resources.files("envision_spiders.report").joinpath("assets", name).read_text(encoding="utf-8")


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def embed_json(obj: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def n(value: int | float) -> str:
    return f"{value:,}"


def whole(value: Any) -> int:
    """An int from a summary field, 0 for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def healthy(summary: dict) -> bool:
    """A spider's run is healthy unless its summary says otherwise or lists problems."""
    return summary.get("healthy") is not False and not strings(summary.get("problems"))


def human_bytes(size: float | None) -> str:
    if not size:
        return "0 B"
    units = ("B", "KB", "MB", "GB", "TB", "PB")
    i = min(len(units) - 1, int(math.log(size, 1024))) if size >= 1 else 0
    return f"{size / 1024**i:.1f} {units[i]}" if i else f"{int(size)} B"


def when(value: Any) -> str:
    dt = parse_datetime(value)
    return dt.strftime("%d %b %Y, %H:%M UTC") if isinstance(dt, datetime) else str(value or "")


# ------------------------------------------------------------------ the embedded rows
def payload(report: Report) -> dict[str, Any]:
    # every row of every table (the queue's come mostly from the two first; sets only)
    rows = report.eye.rows + report.borderline.rows + report.rejected.rows + report.queue.rows
    sources = sorted(set(report.sources) | {r["source"] for r in rows})
    licenses = sorted({r["license"] for r in rows}, key=lambda s: (s == "not stated", s.lower()))
    access = sorted({r["access"] for r in rows}, key=lambda s: (s == "unknown", s))
    src_i = {s: i for i, s in enumerate(sources)}
    lic_i = {s: i for i, s in enumerate(licenses)}
    acc_i = {s: i for i, s in enumerate(access)}
    mod_bit = {t: 1 << i for i, (t, _) in enumerate(MODALITIES)}
    dl_i = {s: i for i, s in enumerate(DOWNLOAD_STATES)}
    models = sorted({r.get("model_id") or "" for r in rows})
    model_i = {m: i for i, m in enumerate(models)}

    def pack(row: dict[str, Any], bands: tuple | None) -> list[Any]:
        bands_i = {b[0]: i for i, b in enumerate(bands or ())}
        review = row.get("review")
        return [
            src_i[row["source"]], row["source_id"], row["title"], row["url"], row["doi"], row["p"],
            row["confidence"], sum(mod_bit[t] for t in row["modalities"]), " ".join(row["file_types"]),
            row["archives"], row["size_mb"], lic_i[row["license"]], acc_i[row["access"]],
            [[d["key"], d["url"], d["title"], 1 if d["canonical"] else 0] for d in row["duplicates"]],
            row["duplicate_of"] or "", 1 if row["new"] else 0, dl_i.get(row["download"], 0), row["description"],
            ", ".join(row["keywords"]), row["file_count"], row["members"], row["modality_note"],
            ", ".join(row.get("duplicate_rules") or []),
            row["tier"] if bands is None else bands_i.get(band(row["p"], bands), -1),
            [review.get(k) or "" for k in DECISION_FIELDS] if review else 0, row.get("model_label") or "",
            model_i[row.get("model_id") or ""], row["reasons"], 1 if row["disagree"] else 0, row["p_text"],
        ]

    def bands_of(bands: tuple) -> list[dict[str, Any]]:
        return [{"name": name, "label": label} for name, _, _, label in bands]

    return {
        "fields": ROW_FIELDS,
        "sources": sources,
        "licenses": licenses,
        "access": access,
        "modalities": [{"tag": t, "label": label} for t, label in MODALITIES],
        "downloadStates": DOWNLOAD_STATES,
        "models": models,
        "baseline": report.baseline,
        "tables": {
            "eye": {"rows": [pack(r, EYE_BANDS) for r in report.eye.rows], "bands": bands_of(EYE_BANDS),
                    "folded": report.eye.folded},
            "borderline": {"rows": [pack(r, BORDERLINE_BANDS) for r in report.borderline.rows],
                           "bands": bands_of(BORDERLINE_BANDS), "folded": report.borderline.folded},
            "queue": queue_payload(report, pack),
            "rejected": {"rows": [pack(r, EYE_BANDS) for r in report.rejected.rows], "bands": bands_of(EYE_BANDS),
                         "folded": report.rejected.folded},
        },
        "review": {
            "ledger": report.review.get("ledger") or "", "known": report.review.get("known") or [],
            "codes": [{"code": k, "label": v} for k, v in REASON_CODES.items()],
            "format": FORMAT, "version": VERSION, "run_id": report.run_id, "generated_at": report.generated_at,
        },
    }


def queue_payload(report: Report, pack) -> dict[str, Any]:
    """The "To review" table: most of its rows are rows of the EYE_IMAGING and borderline
    tables, embedded once and named here by ``[table, index]`` (50,000 records must not
    weigh twice); records waiting only because their text and files disagree are in no
    other table and come with their own rows (``["queue", index]``). Its "bands" are its
    tiers: why a record waits."""
    where = {id(r): ("eye", i) for i, r in enumerate(report.eye.rows)}
    where.update({id(r): ("borderline", i) for i, r in enumerate(report.borderline.rows)})
    own, refs = [], []
    for r in report.queue.rows:
        if id(r) in where:
            refs.append(list(where[id(r)]))
        else:
            refs.append(["queue", len(own)])
            own.append(pack(r, None))
    return {"rows": own, "refs": refs, "tiers": [r["tier"] for r in report.queue.rows],
            "bands": [{"name": str(i), "label": t} for i, t in enumerate(report.review.get("tiers") or [])],
            "folded": 0}


# ------------------------------------------------------------------ charts (inline SVG)
def source_chart(report: Report) -> str:
    """Horizontal stacked bars: records per source, EYE_IMAGING / NEGATIVE / unclassified."""
    rows = sorted(report.sources.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    if not rows:
        return '<p class="empty">No results yet.</p>'
    label_w, bar_w, num_w, row_h = 86, 300, 128, 30
    width, height = label_w + bar_w + num_w, row_h * len(rows) + 8
    top = max(sum(c.values()) for _, c in rows) or 1
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="Records per source and label">']
    for i, (source, c) in enumerate(rows):
        y = 4 + i * row_h
        total = sum(c.values())
        out.append(f'<g class="bar-row" data-filter="source" data-value="{esc(source)}" tabindex="0" role="button">'
                   f'<title>{esc(source)}: {n(c[EYE_IMAGING])} EYE_IMAGING, {n(c[NEGATIVE])} NEGATIVE, '
                   f'{n(c["unclassified"])} unclassified (click to filter the table)</title>'
                   f'<rect class="hit" x="0" y="{y}" width="{width}" height="{row_h - 2}"/>'
                   f'<text class="lab" x="{label_w - 8}" y="{y + row_h / 2 + 1}" text-anchor="end">{esc(source)}</text>')
        x = float(label_w)
        for label in (EYE_IMAGING, NEGATIVE, "unclassified"):
            if not c[label]:
                continue
            w = max(2.0, bar_w * c[label] / top)
            out.append(f'<rect class="seg {LABEL_COLOURS[label]}" x="{x:.1f}" y="{y + 5}" width="{w:.1f}" '
                       f'height="{row_h - 12}" rx="2"/>')
            x += w
        out.append(f'<text class="num" x="{x + 6:.1f}" y="{y + row_h / 2 + 1}">'
                   f'<tspan class="eye-t">{n(c[EYE_IMAGING])}</tspan> / {n(total)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def histogram_chart(report: Report) -> str:
    """prob_eye_imaging in HISTOGRAM_BINS bins, EYE_IMAGING stacked on NEGATIVE, on a log
    scale (most records sit near 0 or 1; the borderline middle would vanish on a linear
    one); the borderline range shaded and the download threshold marked."""
    bins = report.histogram
    if not any(b[EYE_IMAGING] or b[NEGATIVE] for b in bins):
        return '<p class="empty">No classified records yet.</p>'
    left, right, top_pad, bottom = 40, 10, 22, 34
    plot_w, plot_h = 470, 170
    width, height = left + plot_w + right, top_pad + plot_h + bottom
    peak = max(b[EYE_IMAGING] + b[NEGATIVE] for b in bins)
    scale_top = math.log10(peak + 1)

    def y_of(count: float) -> float:
        return top_pad + plot_h - (plot_h * math.log10(count + 1) / scale_top if scale_top else 0)

    def x_of(p: float) -> float:
        return left + plot_w * p

    lo, hi = BORDERLINE
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="Histogram of prob_eye_imaging">',
           f'<rect class="band-bg" x="{x_of(lo):.1f}" y="{top_pad}" width="{x_of(hi) - x_of(lo):.1f}" height="{plot_h}"/>',
           f'<text class="band-t" x="{(x_of(lo) + x_of(hi)) / 2:.1f}" y="{top_pad - 8}" text-anchor="middle">'
           f'borderline {lo:.1f}–{hi:.1f}</text>']
    # y grid on powers of ten
    k = 0
    while 10**k <= peak:
        y = y_of(10**k)
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{left - 5}" y="{y + 3:.1f}" text-anchor="end">{n(10**k)}</text>')
        k += 1
    step = plot_w / HISTOGRAM_BINS
    for i, b in enumerate(bins):
        x = left + i * step + 1
        neg, eye = b[NEGATIVE], b[EYE_IMAGING]
        if not neg and not eye:
            continue
        lo_p, hi_p = i / HISTOGRAM_BINS, (i + 1) / HISTOGRAM_BINS
        y_total, y_neg = y_of(neg + eye), y_of(neg)
        out.append(f'<g><title>P(eye) {lo_p:.2f}–{hi_p:.2f}: {n(eye)} EYE_IMAGING, {n(neg)} NEGATIVE</title>'
                   f'<rect class="hit" x="{x - 1:.1f}" y="{top_pad}" width="{step:.1f}" height="{plot_h}"/>')
        if neg:
            out.append(f'<rect class="seg neg" x="{x:.1f}" y="{y_neg:.1f}" width="{step - 2:.1f}" '
                       f'height="{top_pad + plot_h - y_neg:.1f}"/>')
        if eye:
            out.append(f'<rect class="seg eye" x="{x:.1f}" y="{y_total:.1f}" width="{step - 2:.1f}" '
                       f'height="{y_neg - y_total:.1f}"/>')
        out.append("</g>")
    t = x_of(report.threshold)
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h}"/>')
    for p in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
        out.append(f'<text class="tick" x="{x_of(p):.1f}" y="{top_pad + plot_h + 14}" text-anchor="middle">{p:.1f}</text>')
    out.append(f'<line class="threshold" x1="{t:.1f}" x2="{t:.1f}" y1="{top_pad - 14}" y2="{top_pad + plot_h}"/>'
               f'<text class="thr-t" x="{t + 4:.1f}" y="{top_pad - 8}">download ≥ {report.threshold:.2f}</text>'
               f'<text class="axis-t" x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">'
               f'prob_eye_imaging (records per bin, log scale)</text></svg>')
    return "".join(out)


def modality_chart(report: Report) -> str:
    counts = report.modality_counts
    items = [(t, label, counts[t]) for t, label in MODALITIES] + [("none", "None detected", counts["none"])]
    top = max((c for _, _, c in items), default=0)
    if not top:
        return '<p class="empty">No EYE_IMAGING records yet.</p>'
    label_w, bar_w, row_h = 190, 250, 28
    width, height = label_w + bar_w + 60, row_h * len(items) + 4
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="Modalities of EYE_IMAGING records">']
    for i, (tag, label, c) in enumerate(items):
        y = 2 + i * row_h
        w = bar_w * c / top if c else 0
        cls = "seg mod" if tag != "none" else "seg unc"
        out.append(f'<g class="bar-row" data-filter="modality" data-value="{esc(tag)}" tabindex="0" role="button">'
                   f'<title>{esc(label)}: {n(c)} EYE_IMAGING records (click to filter the table)</title>'
                   f'<rect class="hit" x="0" y="{y}" width="{width}" height="{row_h - 2}"/>'
                   f'<text class="lab" x="{label_w - 8}" y="{y + row_h / 2 + 1}" text-anchor="end">{esc(label)}</text>'
                   f'<rect class="{cls}" x="{label_w}" y="{y + 5}" width="{max(w, 2 if c else 0):.1f}" height="{row_h - 12}" rx="2"/>'
                   f'<text class="num" x="{label_w + w + 6:.1f}" y="{y + row_h / 2 + 1}">{n(c)}</text></g>')
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------ figures and the crawl
def card(label: str, value: str, note: str = "", cls: str = "", target: str = "") -> str:
    attrs = f' data-jump="{esc(target)}" tabindex="0" role="button"' if target else ""
    return (f'<div class="card {esc(cls)}"{attrs}><div class="card-l">{esc(label)}</div>'
            f'<div class="card-v">{esc(value)}</div><div class="card-n">{esc(note)}</div></div>')


def figures(report: Report) -> str:
    t = report.totals
    records = sum(t.values())
    eye_rows = len(report.eye.rows)
    new = len(report.new_keys)
    if report.baseline:
        since = f"since the report of run {report.baseline.get('run_id')} ({when(report.baseline.get('generated_at'))})"
    else:
        since = "first report: no earlier one to compare with, so every record counts as new"
    d = report.downloads
    dl_note = (f"{n(d['pending'])} pending ({n(d['queued'])} queued, {n(d['partial'])} partial"
               + (f", {n(d['failed_files'])} failed files" if d["failed_files"] else "") + ")"
               + f" · {human_bytes(d['bytes_on_disk'])} on disk")
    crawl = report.crawl
    spiders = crawl["spiders"]
    unhealthy = [s for s in spiders if not healthy(s)]
    standing = report.review.get("standing") or {}
    standing = {k: standing.get(k, 0) for k in ("accept", "reject", "unsure")}
    tiers = Counter(r["tier"] for r in report.queue.rows)
    cards = [
        card("Records found", n(records),
             f"{n(t[EYE_IMAGING])} EYE_IMAGING · {n(t[NEGATIVE])} NEGATIVE"
             + (f" · {n(t['unclassified'])} unclassified" if t["unclassified"] else "")
             + f" · {len(report.sources)} sources"),
        card("EYE_IMAGING datasets", n(eye_rows),
             f"{n(t[EYE_IMAGING])} records, {n(report.eye.folded)} duplicates folded", "eye", "eye"),
        card("New EYE_IMAGING", ("+" + n(new)) if new else "0", since, "new", "eye:new"),
        card("To review", n(len(report.queue.rows)),
             f"wait for a curator: {n(tiers[0])} new EYE_IMAGING, "
             + (f"{n(tiers[1])} known datasets labelled NEGATIVE, " if tiers[1] else "")
             + f"{n(tiers[2])} borderline", "queue", "queue"),
        card("Decided by curators", n(sum(standing.values())),
             f"{n(standing['accept'])} accepted · {n(standing['reject'])} rejected · {n(standing['unsure'])} unsure "
             f"({n(report.review.get('decisions') or 0)} decisions in the ledger)", "decided", "rejected"),
        card("Borderline", n(len(report.borderline.rows)),
             f"NEGATIVE with P(eye) {BORDERLINE[0]:.1f}–{BORDERLINE[1]:.1f}", "border", "borderline"),
        card("Duplicates folded", n(report.duplicates["records"]),
             f"records that repeat another, in {n(report.duplicates['groups'])} groups across sources"),
        card("Downloads done", n(d["done"]), dl_note, "dls"),
    ]
    if spiders:
        cards.append(card("Last crawl", "+" + n(sum(whole(s.get("new")) for s in spiders)),
                          f"new records, {n(sum(whole(s.get('changed')) for s in spiders))} changed · "
                          f"{len(spiders)} spiders"
                          + (f" · {len(unhealthy)} with problems" if unhealthy else " · all healthy"),
                          "warn" if unhealthy else "", "crawl"))
    funnel = f'<p class="funnel" id="funnel">{esc(report.funnel.line())}</p>' if report.funnel else ""
    return '<section class="cards" aria-label="At a glance">' + "".join(cards) + "</section>" + funnel


def crawl_table(report: Report) -> str:
    crawl = report.crawl
    if not crawl["spiders"]:
        return ('<p class="empty">No crawl summaries under data/runs/ yet.</p>')
    head = ("<tr><th>Spider</th><th>Mode</th><th class=r>Hits</th><th class=r>Records</th><th class=r>New</th>"
            "<th class=r>Changed</th><th class=r>Unchanged</th><th class=r>Failures</th><th class=r>Time</th>"
            "<th>Health</th></tr>")
    body = []
    for s in sorted(crawl["spiders"], key=lambda s: str(s.get("spider"))):
        problems = strings(s.get("problems"))
        health = ('<span class="ok">✓ healthy</span>' if healthy(s) else
                  '<span class="bad">' + "<br>".join(esc(p) for p in problems or ["unhealthy"]) + "</span>")
        elapsed = s.get("elapsed_seconds")
        time_s = f"{float(elapsed) / 60:.1f} min" if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) else ""

        def num(key: str) -> str:
            v = s.get(key)
            return n(v) if isinstance(v, int) and not isinstance(v, bool) else ""

        body.append(f"<tr{'' if healthy(s) else ' class=bad-row'}><td>{esc(s.get('spider'))}</td><td>{esc(s.get('mode') or '')}</td>"
                    f"<td class=r>{num('hits')}</td><td class=r>{num('unique_records')}</td>"
                    f"<td class=r>{num('new')}</td><td class=r>{num('changed')}</td><td class=r>{num('unchanged')}</td>"
                    f"<td class=r>{num('failures')}</td><td class=r>{time_s}</td><td>{health}</td></tr>")
    finished = max((str(s.get("finished_at") or "") for s in crawl["spiders"]), default="")
    return (f'<p class="sub">Run {esc(crawl["run_id"])}, finished {esc(when(finished))}; '
            f'{n(crawl["runs"])} run{"s" if crawl["runs"] != 1 else ""} on record.</p>'
            f'<div class="scroll"><table class="static"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>')


def review_bar() -> str:
    """Who decides, the choices kept in this browser, and the export of the decisions file."""
    return """
<section class="review-bar" id="review-bar" aria-label="Your decisions">
  <label>Curator <input type="text" data-rv="curator" maxlength="120" placeholder="your name" autocomplete="name"></label>
  <span class="rv-count" data-rv="count" aria-live="polite"></span>
  <button type="button" data-rv="export">Export decisions file</button>
  <button type="button" data-rv="discard">Forget these choices</button>
  <p class="sub">Accept, reject or mark unsure in any table below (open a row). Your choices stay in this
  browser until you export them and record them with <code>scrapy review import FILE</code>; the next page
  shows them as decisions.</p>
</section>"""


def table_section(key: str, title: str, intro: str, with_new: bool) -> str:
    new_filter = ('<label class="chk"><input type="checkbox" data-f="new"> New since last run</label>'
                  if with_new else "")
    return f"""
<section class="tbl-section" id="{key}" data-table="{key}">
  <div class="sec-head"><h2>{esc(title)}</h2><p class="sub">{esc(intro)}</p></div>
  <div class="filters" role="search">
    <input type="search" data-f="q" placeholder="Search title, id, DOI, keywords" aria-label="Search">
    <select data-f="source" aria-label="Source"></select>
    <select data-f="band" aria-label="Confidence"></select>
    <select data-f="modality" aria-label="Modality"></select>
    <select data-f="access" aria-label="Access"></select>
    <select data-f="license" aria-label="License"></select>
    {new_filter}
    <label class="chk"><input type="checkbox" data-f="disagree"> Text and files disagree</label>
    <button type="button" class="reset" data-f="reset">Reset</button>
  </div>
  <div class="status" aria-live="polite"></div>
  <div class="scroll"><table class="rows"><thead></thead><tbody></tbody></table></div>
  <div class="pager"></div>
  <noscript><p class="empty">The tables need JavaScript; the figures above do not.</p></noscript>
</section>"""


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src {script_hash}; style-src {style_hash}; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<meta name="generator" content="envision-spiders scrapy report">
<title>Eye imaging datasets · review · {title_date}</title>
<link rel="icon" href="data:,">
<style>{css}</style>
</head>
<body>
<header class="top">
  <div class="wrap">
    <div class="brand"><span class="eye-mark" aria-hidden="true"></span>envision-spiders</div>
    <h1>Eye imaging datasets: weekly review</h1>
    <p class="meta">Generated {generated} · run {run_id} · {records} records from {source_count} sources</p>
  </div>
</header>
<main class="wrap">
{problems}
{figures}
<section class="charts">
  <figure class="panel"><figcaption>Records per source <span class="legend"><i class="k eye"></i>EYE_IMAGING <i class="k neg"></i>NEGATIVE <i class="k unc"></i>unclassified</span></figcaption>{source_chart}</figure>
  <figure class="panel"><figcaption>How sure the classifier is <span class="legend"><i class="k eye"></i>EYE_IMAGING <i class="k neg"></i>NEGATIVE</span></figcaption>{histogram}</figure>
  <figure class="panel"><figcaption>Modalities seen in EYE_IMAGING datasets <span class="legend">from file types and archive members</span></figcaption>{modality_chart}</figure>
</section>
{review_bar}
{queue_table}
{eye_table}
{borderline_table}
{rejected_table}
{recall}
{grants}
<section class="panel crawl" id="crawl"><h2>Last crawl</h2>{crawl}</section>
<footer>
  <p>Every number on this page comes from <code>results/</code> (classified records and <code>duplicates.json</code>),
  <code>data/runs/</code> (crawl summaries), <code>data/downloads/</code> (manifests and the queue) and the saved records'
  archive listings. <b>New</b> means EYE_IMAGING now and not in the previous report's snapshot
  (<code>data/report/snapshots/</code>), neither the record nor a duplicate of it. Duplicates are folded into their
  canonical record when both are in the same table. Modalities are detected from file types, archive members and
  names. <b>Why</b> lists the reasons the classifier gives for a label, those for it first (&#9650; for
  EYE_IMAGING, &#9660; against): words of the text, abbreviations and device names it read, and what the files
  and archive listings show; <b>text and files disagree</b> marks records whose text points one way and whose
  files the other. Regenerate with <code>scrapy report</code>.</p>
</footer>
</main>
<script type="application/json" id="report-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""


def render(report: Report) -> str:
    css, js = asset("report.css"), asset("report.js")
    records = sum(report.totals.values())
    problems = ""
    if report.problems:
        problems = ('<section class="notice"><b>Some inputs were incomplete:</b><ul>'
                    + "".join(f"<li>{esc(p)}</li>" for p in report.problems) + "</ul></section>")
    if not records:
        problems += ('<section class="notice">No classified records yet: run <code>scrapy classify</code> '
                     '(or <code>./automation.sh</code>); this page fills in from <code>results/</code>.</section>')
    lo, hi = BORDERLINE
    generated = parse_datetime(report.generated_at)
    return TEMPLATE.format(
        script_hash=csp_hash(js),
        style_hash=csp_hash(css),
        css=css,
        js=js,
        title_date=esc(generated.strftime("%d %b %Y") if generated else report.generated_at),
        generated=esc(when(report.generated_at)),
        run_id=esc(report.run_id),
        records=n(records),
        source_count=len(report.sources),
        problems=problems,
        figures=figures(report),
        source_chart=source_chart(report),
        histogram=histogram_chart(report),
        modality_chart=modality_chart(report),
        review_bar=review_bar(),
        queue_table=table_section("queue", "To review",
                                  "What waits for a curator's decision, most useful first: new EYE_IMAGING records, "
                                  "datasets of the reference catalogue labelled NEGATIVE, borderline NEGATIVE ones, "
                                  "records whose text and files disagree, then the other "
                                  "EYE_IMAGING records no one has decided on. A curator's accept or reject takes a "
                                  "record off this list; only accepted records are posted (POST_REQUIRES_REVIEW).", True),
        eye_table=table_section("eye", "EYE_IMAGING datasets",
                                "EYE_IMAGING by the label that stands (the model's, or a curator's accept), duplicates "
                                "folded into their canonical record. "
                                "Click a row's arrow for its description, archive members, duplicates and decision.", True),
        borderline_table=table_section("borderline", "Borderline: NEGATIVE, but maybe not",
                                       f"NEGATIVE records with prob_eye_imaging between {lo:.1f} and {hi:.1f}, "
                                       "closest to the line first: where a second look pays off.", False),
        rejected_table=table_section("rejected", "Rejected by curators",
                                     "Records a curator rejected, newest decision first, with the reason: never "
                                     "downloaded or posted (a record posted before is listed by scrapy post for "
                                     "withdrawal).", False),
        recall=recall_section(report.extras.get("recall")),
        grants=grants_section(report.extras.get("grants")),
        crawl=crawl_table(report),
        data=embed_json(payload(report)),
    )
