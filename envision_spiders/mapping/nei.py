"""NIH RePORTER project rows (API v2) -> DatasetItem fields, one record per core project.

One grant appears once per fiscal year (a new ``appl_id``, the same
``core_project_num``), with supplements and subprojects on top. The record is the
**core project** (``source_id`` = ``core_project_num``; a row without one is a record
of its own, under its project number, else its ``appl_id``): every row found by any
term in any fiscal year is merged (:class:`Project`), the row of the latest fiscal year
wins (a parent row over its subprojects and supplements), whatever order the searches
answer in. RePORTER has no modification date: the latest row's ``date_added`` stands in.
Response keys are snake_case; texts are not HTML ("IOP<21" is text).

``extra`` holds: ``fiscal_years`` (every fiscal year a search found, accumulated across
runs), ``award_amounts`` (per fiscal year, parent rows, accumulated), ``appl_id``,
``project_num``, ``subproject_id``, ``activity_code``, ``award_type``,
``funding_mechanism``, ``award_amount``, ``direct_cost_amt``, ``indirect_cost_amt`` (the
latest row), ``agency_ic_admin``, ``agency_ic_fundings``, ``nei_role`` (administering /
co-funding), ``organization``, ``program_officers``, ``opportunity_number``,
``is_active``, ``public_health_relevance``, ``spending_categories``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from envision_spiders.textutil import html_to_text, iso, year_of


PROJECT_PAGE = "https://reporter.nih.gov/project-details/{appl_id}"
NEI = ("NEI", "EY")  # abbreviation, IC code


# ------------------------------------------------------------------ field mapping
def split_terms(value: Any) -> list[str]:
    """``terms`` arrives as ``<Address><Adult>...`` and ``pref_terms`` as
    ``Address;Adult;...``: the terms, stripped, without repeats (case-insensitive)."""
    if not isinstance(value, str):
        return []
    text = value.replace("><", ";").replace("<", ";").replace(">", ";")
    out: list[str] = []
    seen: set[str] = set()
    for part in text.split(";"):
        word = " ".join(part.split())
        if word and word.lower() not in seen:
            seen.add(word.lower())
            out.append(word)
    return out


def plain(value: Any) -> tuple[str, list[str]]:
    """Plain text of an abstract and the links in it. RePORTER texts are not HTML
    ("IOP<21", "n<b" are text), so they are escaped before the project's one
    HTML-to-text helper normalises whitespace and finds the links."""
    if not isinstance(value, str):
        return "", []
    return html_to_text(html.escape(value, quote=False))


def text_of(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def present(**values: Any) -> dict[str, Any]:
    """The values that say something (no None, empty string, list or mapping)."""
    return {k: v for k, v in values.items() if v is not None and v != "" and v != [] and v != {}}


def number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if float(value).is_integer() else value


def person_name(p: dict) -> str:
    """``Last, First Middle`` like the other sources' creators; ``full_name`` else."""
    last, first, middle = (text_of(p.get(k)) for k in ("last_name", "first_name", "middle_name"))
    if last and (first or middle):
        return f"{last}, {' '.join(x for x in (first, middle) if x)}"
    return text_of(p.get("full_name")) or last


def creators_of(row: dict) -> list[dict[str, Any]]:
    org = row.get("organization") if isinstance(row.get("organization"), dict) else {}
    affiliation = text_of(org.get("org_name"))
    pis = [p for p in row.get("principal_investigators") or [] if isinstance(p, dict)]
    pis.sort(key=lambda p: not p.get("is_contact_pi"))  # the contact PI first, order kept otherwise
    out = []
    for p in pis:
        name = person_name(p)
        if not name:
            continue
        c: dict[str, Any] = {"name": name, "name_type": "Personal", "role": "contact PI" if p.get("is_contact_pi") else "PI"}
        if affiliation:
            c["affiliation"] = affiliation
        if p.get("profile_id"):
            c["nih_profile_id"] = p["profile_id"]
        out.append(c)
    return out


def is_supplement(row: dict) -> bool:
    split = row.get("project_num_split") if isinstance(row.get("project_num_split"), dict) else {}
    suffix = str(split.get("suffix_code") or "")
    return str(row.get("award_type") or "").startswith("3") or suffix.upper().startswith("S")


def row_rank(row: dict) -> tuple:
    """Which row of a core project a record shows: the latest fiscal year, then the
    parent over subprojects, an award over its supplements, the newest application."""
    fy = row.get("fiscal_year")
    appl = row.get("appl_id")
    return (
        fy if isinstance(fy, int) else -1,
        not row.get("subproject_id"),
        not is_supplement(row),
        appl if isinstance(appl, int) else -1,
    )


def nei_role(row: dict) -> str | None:
    admin = row.get("agency_ic_admin") if isinstance(row.get("agency_ic_admin"), dict) else {}
    if admin.get("abbreviation") == NEI[0] or admin.get("code") == NEI[1]:
        return "administering"
    for f in row.get("agency_ic_fundings") or []:
        if isinstance(f, dict) and (f.get("abbreviation") == NEI[0] or f.get("code") == NEI[1]):
            return "co-funding"
    return None


@dataclass


class Project:
    """What the searches found of one core project."""

    best: dict
    fiscal_years: set[int] = field(default_factory=set)
    amounts: dict[int, dict[int, Any]] = field(default_factory=dict)  # fy -> appl_id -> award_amount

    def add(self, row: dict) -> None:
        fy = row.get("fiscal_year")
        if isinstance(fy, int):
            self.fiscal_years.add(fy)
            amount = number(row.get("award_amount"))
            if amount is not None and not row.get("subproject_id") and isinstance(row.get("appl_id"), int):
                # a subproject's money is part of its parent's award: not counted twice
                self.amounts.setdefault(fy, {})[row["appl_id"]] = amount
        if row_rank(row) > row_rank(self.best):
            self.best = row

    def award_amounts(self) -> dict[str, Any]:
        return {str(fy): sum(v.values()) for fy, v in sorted(self.amounts.items())}


# A row's record: its core project; a row without one is a record of its own.
ID_FIELDS = ("core_project_num", "project_num", "appl_id")


def project_key(row: dict) -> str:
    """The record a row belongs to: its core project number; a row without one is kept
    as a record of its own, under its project number, else its application id."""
    for key in ID_FIELDS:
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    raise ValueError("no core_project_num, project_num or appl_id")


def source_modified_of(row: dict) -> Any:
    """RePORTER has no modification date: the latest row's ``date_added`` (else its
    award notice) changes when a new fiscal year or a new award arrives."""
    return row.get("date_added") or row.get("award_notice_date") or None


def map_project(project: Project) -> dict[str, Any]:
    """DatasetItem fields of a core project: its best row, every fiscal year found."""
    row = project.best
    appl_id = row.get("appl_id")
    description, links = plain(row.get("abstract_text"))
    phr, phr_links = plain(row.get("phr_text"))
    if not description:
        description = phr
    keywords = split_terms(row.get("terms"))
    known = {k.lower() for k in keywords}
    keywords += [k for k in split_terms(row.get("pref_terms")) if k.lower() not in known]
    org = row.get("organization") if isinstance(row.get("organization"), dict) else {}
    admin = row.get("agency_ic_admin") if isinstance(row.get("agency_ic_admin"), dict) else {}
    dates = present(
        project_start=iso(row.get("project_start_date")),
        project_end=iso(row.get("project_end_date")),
        budget_start=iso(row.get("budget_start")),
        budget_end=iso(row.get("budget_end")),
        award_notice=iso(row.get("award_notice_date")),
        added=iso(row.get("date_added")),
    )
    start_year = year_of(row.get("project_start_date"))
    fundings = [
        present(fy=f.get("fy"), ic=f.get("abbreviation") or f.get("code"), total_cost=number(f.get("total_cost")))
        for f in row.get("agency_ic_fundings") or []
        if isinstance(f, dict)
    ]
    organization = present(
        name=text_of(org.get("org_name")),
        city=text_of(org.get("org_city")),
        state=text_of(org.get("org_state")),
        country=text_of(org.get("org_country")),
        department=text_of(org.get("dept_type")),
        uei=text_of(org.get("primary_uei")),
    )
    officers = [text_of(p.get("full_name")) or person_name(p) for p in row.get("program_officers") or [] if isinstance(p, dict)]
    spending = [s.strip() for s in str(row.get("spending_categories_desc") or "").split(";") if s.strip()]
    extra = {
        "fiscal_years": sorted(project.fiscal_years),
        "award_amounts": project.award_amounts(),
        "appl_id": appl_id,
        "project_num": text_of(row.get("project_num")),
        "subproject_id": row.get("subproject_id"),
        "activity_code": text_of(row.get("activity_code")),
        "award_type": text_of(row.get("award_type")),
        "funding_mechanism": text_of(row.get("funding_mechanism")),
        "award_amount": number(row.get("award_amount")),
        "direct_cost_amt": number(row.get("direct_cost_amt")),
        "indirect_cost_amt": number(row.get("indirect_cost_amt")),
        "agency_ic_admin": text_of(admin.get("abbreviation")) or text_of(admin.get("code")),
        "agency_ic_fundings": fundings,
        "nei_role": nei_role(row),
        "organization": organization,
        "program_officers": [o for o in officers if o],
        "opportunity_number": text_of(row.get("opportunity_number")) or text_of(row.get("full_foa")),
        "is_active": row.get("is_active") if isinstance(row.get("is_active"), bool) else None,
        "public_health_relevance": phr if phr != description else "",
        "spending_categories": spending,
    }
    return dict(
        url=PROJECT_PAGE.format(appl_id=appl_id) if appl_id else text_of(row.get("project_detail_url")) or None,
        title=plain(row.get("project_title"))[0],
        description=description,
        keywords=keywords,
        creators=creators_of(row),
        publication_year=start_year or (min(project.fiscal_years) if project.fiscal_years else None),
        dates=dates,
        access_type="metadata-only",
        resource_type="grant",
        external_links=list(dict.fromkeys(links + phr_links)),
        extra=present(**extra),
    )
