"""NIH RePORTER on the local API server, under ``/reporter/v2`` (set NEI_API_URL to it).

Shapes come from the recorded pieces in ``samples/nei/``: each generated row
is a copy of ``project_record_fy2022.json`` (one ``results[]`` element) with its own
ids, texts, fiscal year, PIs, organisation and amounts, plus the documented fields
that the recorded element lacks (``abstract_text``, ``terms``, ``project_detail_url``,
``date_added``, ...); the envelope follows ``search_meta_envelope_2023.json``
(its malformed ``https:/`` URL included). A grant has one row per fiscal year (a new
``appl_id``, the same ``core_project_num``); some have supplements (type 3) or
subprojects; timestamps carry ``Z`` up to FY2022 and no zone from FY2023, as the
real records do; some texts are empty strings, some null.

``POST /projects/search`` behaves like RePORTER: criteria ``agencies`` with
``is_agency_admin`` / ``is_agency_funding`` (either matches when both are set),
``fiscal_years`` (empty or absent: every year), ``advanced_text_search`` (operator
``and`` / ``or`` over ``projecttitle``, ``abstracttext``, ``terms``), ``date_added``;
``limit`` up to 500; ``offset`` past 14,999 is an error (the result window);
``include_fields`` honoured only in PascalCase (snake_case names are ignored and
whole rows come back); ``sort_field`` / ``sort_order``. GET answers 405.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from envision_spiders.textutil import html_to_text

from .core import STATE_KEY, ServerState, json_response
from .corpus import generated_texts

PREFIX = "/reporter/v2"
SAMPLES = Path(__file__).with_name("samples") / "nei"
MAX_LIMIT = 500
MAX_OFFSET = 14_999
NEI = {"code": "EY", "abbreviation": "NEI", "name": "National Eye Institute"}
OTHER_ICS = [
    {"code": "EB", "abbreviation": "NIBIB", "name": "National Institute of Biomedical Imaging and Bioengineering"},
    {"code": "AG", "abbreviation": "NIA", "name": "National Institute on Aging"},
    {"code": "OD", "abbreviation": "OD", "name": "NIH Office of the Director"},
]
SEARCHABLE = {"projecttitle": "project_title", "abstracttext": "abstract_text", "terms": "terms"}


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@dataclass
class ReporterState:
    rows: dict[int, dict] = field(default_factory=dict)  # appl_id -> row
    next_appl_id: int = 10_000_001
    searches: list[dict] = field(default_factory=list)  # the criteria of every search, for tests


def state_of(server: ServerState) -> ReporterState:
    return server.sources.setdefault("nei", ReporterState())


# ------------------------------------------------------------------ generation
def stamp(dt: datetime, fiscal_year: int) -> str:
    """``2020-12-21T12:12:00Z`` up to FY2022, ``2023-08-01T00:00:00`` after (docs/sources/nei.md)."""
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return text + "Z" if fiscal_year <= 2022 else text


def pascal_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def add_row(
    server: ServerState,
    *,
    core: str,
    fiscal_year: int,
    support_year: int,
    title: str,
    abstract: str | None,
    terms: list[str] | None,
    admin: dict,
    fundings: list[dict],
    start: datetime,
    end: datetime,
    added: datetime,
    award_amount: int,
    pis: list[dict],
    org: dict,
    award_type: str = "5",
    suffix: str = "",
    subproject_id: str | None = None,
) -> dict:
    """One row (one fiscal year of one grant) in the real shape."""
    st = state_of(server)
    row = copy.deepcopy(_sample("project_record_fy2022.json"))
    appl_id = st.next_appl_id
    st.next_appl_id += 1
    activity, ic, serial = core[:3], core[3:5], core[5:]
    project_num = f"{award_type[0]}{core}-{support_year:02d}{suffix}"
    notice = start + timedelta(days=365 * (support_year - 1))
    row.update(
        {
            "appl_id": appl_id,
            "subproject_id": subproject_id,
            "fiscal_year": fiscal_year,
            "project_num": project_num,
            "project_serial_num": f"{ic}{serial}",
            "core_project_num": core,
            "award_type": award_type,
            "activity_code": activity,
            "award_amount": award_amount,
            "direct_cost_amt": int(award_amount * 0.64),
            "indirect_cost_amt": award_amount - int(award_amount * 0.64),
            "principal_investigators": pis,
            "contact_pi_name": next((f"{p['last_name']}, {p['first_name']}".upper() for p in pis if p["is_contact_pi"]), ""),
            "agency_ic_admin": admin,
            "agency_ic_fundings": [{**f, "fy": fiscal_year} for f in fundings],
            "agency_code": "NIH",
            "project_start_date": stamp(start, fiscal_year),
            "project_end_date": stamp(end, fiscal_year),
            "budget_start": stamp(notice, fiscal_year),
            "budget_end": stamp(notice + timedelta(days=364), fiscal_year),
            "award_notice_date": stamp(notice - timedelta(days=20), fiscal_year),
            "date_added": stamp(added, fiscal_year),
            "project_title": title,
            "abstract_text": abstract,
            "terms": None if terms is None else "".join(f"<{t}>" for t in terms),
            "pref_terms": None if terms is None else ";".join(sorted(terms, key=str.lower)),
            "phr_text": "PROJECT NARRATIVE\nThis work will help people with eye disease." if abstract else "",
            "project_detail_url": f"https://reporter.nih.gov/project-details/{appl_id}",
            "is_active": end > datetime.now(timezone.utc),
            "is_new": support_year == 1,
            "opportunity_number": "PA-20-185" if fiscal_year >= 2023 else None,
            "full_foa": "PA-20-185" if fiscal_year < 2023 else None,
            "spending_categories_desc": "Bioengineering; Eye Disease and Disorders of Vision",
        }
    )
    row["organization"].update(org)
    row["project_num_split"].update(
        {"appl_type_code": award_type[0], "activity_code": activity, "ic_code": ic, "serial_num": serial,
         "support_year": f"{support_year:02d}", "full_support_year": f"{support_year:02d}", "suffix_code": suffix}
    )
    st.rows[appl_id] = row
    return row


FIRST_NAMES = ["Ana", "Wei", "Kofi", "Maria", "John", "Priya", "Lars", "Yuki"]
LAST_NAMES = ["Okafor", "Chen", "Lindqvist", "Garcia", "Smith", "Patel", "Tanaka", "Nguyen"]
ORGS = [("JOHNS HOPKINS UNIVERSITY", "BALTIMORE", "MD"), ("UNIVERSITY OF WASHINGTON", "SEATTLE", "WA"),
        ("OREGON HEALTH & SCIENCE UNIVERSITY", "PORTLAND", "OR"), ("UNIVERSITY OF MICHIGAN", "ANN ARBOR", "MI")]


def current_fiscal_year(now: datetime | None = None) -> int:
    now = now or datetime.now(timezone.utc)
    return now.year + 1 if now.month >= 10 else now.year


def generate(server: ServerState, n: int, seed: int = 1) -> int:
    """``n`` grants, each with one row per fiscal year (2 to 6 years, ending at or
    before the current fiscal year); most administered by NEI, some co-funded by NEI,
    some with no NEI money (which an NEI search must not return); some with a
    supplement or a subproject; some with empty or null abstracts and terms."""
    rng = random.Random(seed)
    texts = generated_texts(n, seed)
    last_fy = current_fiscal_year()
    for i, text in enumerate(texts):
        roll = rng.random()
        if roll < 0.7:
            admin, fundings, ic = NEI, [{**NEI, "total_cost": 0.0}], "EY"
        elif roll < 0.85:  # administered elsewhere, co-funded by NEI
            admin = OTHER_ICS[0]
            fundings, ic = [{**OTHER_ICS[0], "total_cost": 0.0}, {**NEI, "total_cost": 0.0}], "EB"
        else:  # no NEI money
            admin, fundings, ic = OTHER_ICS[1], [{**OTHER_ICS[1], "total_cost": 0.0}], "AG"
        activity = rng.choice(["R01", "R01", "R21", "K23", "U10", "P30"])
        core = f"{activity}{ic}{seed % 10}{i:05d}"
        years = rng.randint(2, 6)
        end_fy = last_fy - rng.choice([0, 0, 1, 2, 5, 9])
        first_fy = end_fy - years + 1
        start = datetime(first_fy - 1, 9, 30, 12, 12, tzinfo=timezone.utc) + timedelta(days=rng.randint(1, 200))
        end = start + timedelta(days=365 * years - 1)
        pis = []
        for k in range(rng.choice([1, 1, 2])):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            pis.append({"profile_id": rng.randint(1_000_000, 9_999_999), "first_name": first, "middle_name": rng.choice(["", "R."]),
                        "last_name": last, "is_contact_pi": k == 0, "full_name": f"{first} {last}", "title": "PROFESSOR" if k == 0 else ""})
        org_name, city, state = rng.choice(ORGS)
        org = {"org_name": org_name, "org_city": city, "org_state": state}
        blank = rng.random()
        # RePORTER abstracts are plain text: the generated HTML becomes text, links written out
        body, links = html_to_text(text.description)
        abstract = "" if blank < 0.05 else (None if blank < 0.08 else
                                            body + "".join(f" More at {u}" for u in links) + " Patients with IOP<21 mmHg were included.")
        terms = [] if blank < 0.05 else (None if blank < 0.08 else text.keywords + ["Eye", "Retina", "Optical Coherence Tomography"])
        amount = rng.randint(150_000, 600_000)
        for support, fy in enumerate(range(first_fy, end_fy + 1), start=1):
            added = datetime(fy - 1, 10, 1, tzinfo=timezone.utc) + timedelta(days=rng.randint(0, 300))
            title = text.title
            add_row(server, core=core, fiscal_year=fy, support_year=support, title=title,
                    abstract=abstract, terms=terms, admin=admin, fundings=fundings, start=start, end=end,
                    added=added, award_amount=amount + 1000 * support, pis=pis, org=org,
                    award_type="1" if support == 1 else "5")
            if activity == "R01" and rng.random() < 0.1:
                add_row(server, core=core, fiscal_year=fy, support_year=support, title=title,
                        abstract=abstract, terms=terms, admin=admin, fundings=fundings, start=start, end=end,
                        added=added + timedelta(days=30), award_amount=50_000, pis=pis, org=org,
                        award_type="3", suffix="S1")
            if activity == "P30" and rng.random() < 0.5:
                add_row(server, core=core, fiscal_year=fy, support_year=support, title=f"Imaging core of {core}",
                        abstract=abstract, terms=terms, admin=admin, fundings=fundings, start=start, end=end,
                        added=added, award_amount=90_000, pis=pis, org=org, subproject_id="5001")
    return n


@functools.lru_cache(maxsize=8)
def planned_grants(n: int, seed: int = 1) -> tuple[tuple[str, str], ...]:
    """``(core project number, title)`` of the NEI-funded grants among the first ``n``
    that ``generate(…, n, seed)`` makes (administered or co-funded by NEI), for datasets
    of the other sources to cite. Generation is sequential, so these are the same grants
    in any corpus of ``n`` grants or more."""
    state = ServerState()
    generate(state, n, seed)
    out: dict[str, str] = {}
    for row in sorted(state_of(state).rows.values(), key=lambda r: r["appl_id"]):
        if any(f.get("code") == NEI["code"] for f in row["agency_ic_fundings"]) and not row.get("subproject_id"):
            out.setdefault(row["core_project_num"], row["project_title"])
    return tuple(out.items())


def modify(server: ServerState, fraction: float, seed: int = 2) -> int:
    """A new fiscal year (a continuation row added today, with a new amount and a
    revised title) for a fraction of the grants whose last year is recent."""
    st = state_of(server)
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    fy_now = current_fiscal_year(now)
    latest: dict[str, dict] = {}
    for row in st.rows.values():
        core = row["core_project_num"]
        if not row.get("subproject_id") and (core not in latest or row["fiscal_year"] > latest[core]["fiscal_year"]):
            latest[core] = row
    eligible = sorted(c for c, r in latest.items() if fy_now - 2 <= r["fiscal_year"] < fy_now)
    chosen = rng.sample(eligible, min(len(eligible), max(1, int(len(latest) * fraction))))
    for core in chosen:
        prev = latest[core]
        row = copy.deepcopy(prev)
        row["appl_id"] = st.next_appl_id
        st.next_appl_id += 1
        fy = prev["fiscal_year"] + 1
        support = int(prev["project_num_split"]["support_year"]) + 1
        row.update({
            "fiscal_year": fy,
            "project_num": f"5{core}-{support:02d}",
            "award_type": "5",
            "award_amount": prev["award_amount"] + 7,
            "project_title": prev["project_title"] + " (continued)",
            "date_added": stamp(now, fy),
            "project_detail_url": f"https://reporter.nih.gov/project-details/{row['appl_id']}",
            "agency_ic_fundings": [{**f, "fy": fy} for f in prev["agency_ic_fundings"]],
        })
        row["project_num_split"].update({"support_year": f"{support:02d}", "appl_type_code": "5", "suffix_code": ""})
        st.rows[row["appl_id"]] = row
    return len(chosen)


# ------------------------------------------------------------------ search semantics
_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: Any) -> set[str]:
    return set(_TOKEN.findall(text.lower())) if isinstance(text, str) else set()


def _agency_match(row: dict, criteria: dict) -> bool:
    agencies = {a.upper() for a in criteria.get("agencies") or [] if isinstance(a, str)}
    if not agencies:
        return True
    admin_flag = criteria.get("is_agency_admin")
    funding_flag = criteria.get("is_agency_funding")
    if admin_flag is None and funding_flag is None:
        admin_flag = True  # RePORTER's default: the administering IC
    if admin_flag and (row.get("agency_ic_admin") or {}).get("abbreviation") in agencies:
        return True
    if funding_flag:
        return any(f.get("abbreviation") in agencies for f in row.get("agency_ic_fundings") or [])
    return False


def _text_match(row: dict, search: dict) -> bool:
    words = tokens(search.get("search_text"))
    if not words:
        return True
    fields = str(search.get("search_field") or "all").lower()
    keys = list(SEARCHABLE.values()) if fields in ("all", "") else [SEARCHABLE[f.strip()] for f in fields.split(",") if f.strip() in SEARCHABLE]
    haystack: set[str] = set()
    for k in keys:
        haystack |= tokens(row.get(k))
    if str(search.get("operator") or "and").lower() == "or":
        return bool(words & haystack)
    return words <= haystack


def _date_match(value: Any, window: Any) -> bool:
    if not isinstance(window, dict):
        return True
    v = (value or "")[:10]
    lo, hi = (window.get("from_date") or "")[:10], (window.get("to_date") or "")[:10]
    return bool(v) and (not lo or v >= lo) and (not hi or v <= hi)


def matches(row: dict, criteria: dict) -> bool:
    years = criteria.get("fiscal_years") or []
    if years and row["fiscal_year"] not in years:
        return False
    if not _agency_match(row, criteria):
        return False
    if isinstance(criteria.get("advanced_text_search"), dict) and not _text_match(row, criteria["advanced_text_search"]):
        return False
    return _date_match(row.get("date_added"), criteria["date_added"]) if "date_added" in criteria else True


def project(row: dict, include: list[Any]) -> dict:
    """Only the PascalCase ``include_fields`` that name real fields; none: the whole row."""
    keys = [pascal_to_snake(f) for f in include if isinstance(f, str) and re.fullmatch(r"[A-Z][A-Za-z]*", f)]
    keys = [k for k in keys if k in row]
    return {k: row[k] for k in keys} if keys else row


def _error(message: str, status: int = 400) -> web.Response:
    return json_response({"error": message, "status": status}, status=status)


async def search(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _error("The request body is not valid JSON.")
    if not isinstance(body, dict):
        return _error("The request body must be a JSON object.")
    criteria = body.get("criteria") or {}
    try:
        offset = int(body.get("offset", 0))
        limit = int(body.get("limit", 50))
    except (TypeError, ValueError):
        return _error("offset and limit must be integers.")
    if limit < 1 or limit > MAX_LIMIT:
        return _error(f"limit must be between 1 and {MAX_LIMIT}.")
    if offset < 0 or offset > MAX_OFFSET:
        return _error(f"offset must be between 0 and {MAX_OFFSET}.")
    sort_field = body.get("sort_field") or "appl_id"
    reverse = str(body.get("sort_order") or "asc").lower() == "desc"
    with server.lock:
        st.searches.append(copy.deepcopy(criteria))
        found = [r for r in st.rows.values() if matches(r, criteria)]
        found.sort(key=lambda r: (str(r.get(sort_field) or "") if sort_field.endswith("date") else (r.get(sort_field) or 0), r["appl_id"]),
                   reverse=reverse)
        page = [copy.deepcopy(project(r, body.get("include_fields") or [])) for r in found[offset : min(offset + limit, MAX_OFFSET + 1)]]
    envelope = _sample("search_meta_envelope_2023.json")
    search_id = hashlib.sha1(json.dumps(criteria, sort_keys=True).encode()).hexdigest()[:22]
    envelope["meta"].update({
        "search_id": search_id,
        "total": len(found),
        "offset": offset,
        "limit": limit,
        "sort_field": body.get("sort_field"),
        "sort_order": "DESC" if reverse else "ASC",
        "properties": {"URL": f"https:/reporter.nih.gov/search/{search_id}/projects"},
    })
    envelope["results"] = page
    return json_response(envelope)


async def not_allowed(request: web.Request) -> web.Response:
    return json_response({"error": "The requested resource does not support http method 'GET'."}, status=405,
                         headers={"Allow": "POST"})


def register(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/projects/search", search)
    app.router.add_get(f"{PREFIX}/projects/search", not_allowed)
