"""NIH RePORTER (API v2): National Eye Institute grants for every search term.

What this spider knows about RePORTER (../shared/apis.md §7):

* ``POST /projects/search`` with a JSON body, no authentication, GET answers 405;
* ``criteria.agencies: ["NEI"]`` with **both** ``is_agency_admin`` and
  ``is_agency_funding``: projects NEI administers *or* co-funds. apis.md names
  ``is_agency_funding`` for co-funded projects, and eye imaging work is often
  administered elsewhere with NEI money (an NIBIB imaging grant co-funded by NEI);
  ``is_agency_admin`` keeps NEI-administered projects paid from other funds (the
  Common Fund: the real sample is administered by NIAAA and funded by OD only).
  ``extra["nei_role"]`` tells curators which one a record is;
* ``advanced_text_search`` with operator ``and`` over
  ``projecttitle,abstracttext,terms``: every word of a term is required;
* ``include_fields`` values are PascalCase (``ProjectTitle``); snake_case names are
  silently ignored and whole records come back. Response keys are snake_case;
* ``limit`` at most 500, sorted by ``appl_id`` so pages are stable while RePORTER
  adds rows; the result window is 15,000 by recent sources and 10,000 by older ones
  (apis.md: conflicting), so a query whose total passes ``NIH_REPORTER_RESULT_WINDOW``
  (10,000 by default) is split by fiscal years, halving the range down to single
  years; a single year that still overflows is logged and the run does not move
  the "last successful run" mark;
* NIH asks for at most one request a second (and big jobs at night or at weekends).

One grant appears once per fiscal year (a new ``appl_id``, the same
``core_project_num``), with supplements and subprojects on top. The record is the
**core project** (``source_id`` = ``core_project_num``): every row found by any term
in any fiscal year is merged in memory, the row of the latest fiscal year wins
(a parent row over its subprojects and supplements), whatever order the searches
answer in; the records are emitted once every search is done (``spider_idle``).
A run stopped before that saves nothing new (and leaves every saved record whole).

Incremental runs: RePORTER has no modification date. ``date_added`` only shows new
rows (and only since 2011), not rows revised later (a no-cost extension changes the
project end date of an existing row), so an incremental run searches the fiscal
years from the one before ``since`` to the current one: new fiscal years, new
grants and revisions of recent rows all fall in that window, for a few requests a
term. A record whose latest row keeps its ``date_added`` is left untouched.
``-a full=1`` searches every fiscal year again.

``extra`` holds: ``fiscal_years`` (every fiscal year a search found, accumulated
across runs), ``award_amounts`` (per fiscal year, parent rows, accumulated),
``appl_id``, ``project_num``, ``subproject_id``, ``activity_code``, ``award_type``,
``funding_mechanism``, ``award_amount``, ``direct_cost_amt``, ``indirect_cost_amt``
(the latest row), ``agency_ic_admin``, ``agency_ic_fundings``, ``nei_role``
(administering / co-funding), ``organization``, ``program_officers``,
``opportunity_number``, ``is_active``, ``public_health_relevance``,
``spending_categories``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider

from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.textutil import html_to_text, iso, year_of

# RePORTER's project data starts with fiscal year 1985.
FIRST_FISCAL_YEAR = 1985
PAGE_SIZE = 500
RESULT_WINDOW = 10_000
SEARCH_FIELDS = "projecttitle,abstracttext,terms"
PROJECT_PAGE = "https://reporter.nih.gov/project-details/{appl_id}"
NEI = ("NEI", "EY")  # abbreviation, IC code

# PascalCase, as RePORTER wants them (snake_case is silently ignored).
INCLUDE_FIELDS = (
    "ApplId", "SubprojectId", "FiscalYear", "ProjectNum", "CoreProjectNum", "ProjectNumSplit",
    "ProjectTitle", "AbstractText", "PhrText", "Terms", "PrefTerms",
    "PrincipalInvestigators", "ContactPiName", "ProgramOfficers", "Organization",
    "AgencyIcAdmin", "AgencyIcFundings", "AwardAmount", "DirectCostAmt", "IndirectCostAmt",
    "ActivityCode", "AwardType", "FundingMechanism", "OpportunityNumber",
    "ProjectStartDate", "ProjectEndDate", "BudgetStart", "BudgetEnd", "AwardNoticeDate", "DateAdded",
    "IsActive", "SpendingCategoriesDesc", "ProjectDetailUrl",
)


# ------------------------------------------------------------------ query building
def fiscal_year_of(day: date | datetime) -> int:
    """US federal fiscal year: FY N runs from 1 October N-1 to 30 September N."""
    return day.year + 1 if day.month >= 10 else day.year


def fiscal_years_to_search(since: datetime | None, today: date) -> list[int]:
    """Every fiscal year on a full run; the one before ``since``'s to the current
    one on an incremental run. Newest first."""
    last = fiscal_year_of(today)
    first = FIRST_FISCAL_YEAR if since is None else max(FIRST_FISCAL_YEAR, fiscal_year_of(since) - 1)
    return list(range(last, first - 1, -1))


def split_years(years: list[int]) -> list[list[int]] | None:
    """Halve a fiscal-year range (newer half first); None for a single year."""
    if len(years) <= 1:
        return None
    mid = len(years) // 2
    return [years[:mid], years[mid:]]


def search_body(term: str, fiscal_years: list[int], offset: int = 0, limit: int = PAGE_SIZE) -> dict[str, Any]:
    return {
        "criteria": {
            "agencies": [NEI[0]],
            "is_agency_admin": True,
            "is_agency_funding": True,
            "fiscal_years": sorted(fiscal_years),
            "advanced_text_search": {"operator": "and", "search_field": SEARCH_FIELDS, "search_text": term},
        },
        "include_fields": list(INCLUDE_FIELDS),
        "offset": offset,
        "limit": limit,
        "sort_field": "appl_id",
        "sort_order": "asc",
    }


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


def source_modified_of(row: dict) -> Any:
    """RePORTER has no modification date: the latest row's ``date_added`` (else its
    award notice) changes when a new fiscal year or a new award arrives."""
    return row.get("date_added") or row.get("award_notice_date") or None


class NeiSpider(SourceSpider):
    name = "nei"
    api_setting = "NIH_REPORTER_API_URL"
    # NIH: no more than one request a second (apis.md §7); no budget headers.
    pace = Pace(interval=1.0)
    # a record's fiscal years and yearly amounts grow over incremental runs
    accumulated_extra = ("fiscal_years", "award_amounts")
    # a RePORTER project page has no schema.org Dataset to render
    landing_pages = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.projects: dict[str, Project] = {}
        self._hits_per_term: dict[str, int] = {}
        self._searched_terms: set[str] = set()
        self._emitting = False

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> NeiSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.result_window = crawler.settings.getint("NIH_REPORTER_RESULT_WINDOW", RESULT_WINDOW)
        crawler.signals.connect(spider.on_idle, signal=signals.spider_idle)
        return spider

    # ------------------------------------------------------------------ searching
    async def searches(self):
        years = fiscal_years_to_search(self.since, datetime.now(timezone.utc).date())
        for term in self.terms:
            yield self.search_request(term, years)

    def search_request(self, term: str, years: list[int], offset: int = 0):
        return self.api_request(
            self.api_url("projects/search"),
            self.parse_search,
            method="POST",
            json_body=search_body(term, years, offset),
            cb_kwargs={"term": term, "years": list(years), "offset": offset},
            dont_filter=True,
        )

    def parse_search(self, response, term: str, years: list[int], offset: int):
        data = response.json()
        total = int(data["meta"]["total"] or 0)
        rows = data["results"]
        if not isinstance(rows, list):
            raise TypeError(f"results is {type(rows).__name__}, not a list")
        if term not in self._searched_terms:
            self._searched_terms.add(term)
            self.crawler.stats.inc_value("envision/terms_searched")
        if offset == 0 and total > self.result_window:
            halves = split_years(years)
            if halves:
                self.crawler.stats.inc_value("envision/nei/year_splits")
                self.logger.info(
                    "term %r: %d projects in fiscal years %d-%d pass the %d-result window; splitting by fiscal year",
                    term, total, min(years), max(years), self.result_window,
                )
                for half in halves:
                    yield self.search_request(term, half)
                return
            self.hit_cap_reached = True
            self.crawler.stats.inc_value("envision/nei/window_overflow")
            self.logger.warning(
                "term %r: %d projects in fiscal year %s alone; only the first %d are reachable",
                term, total, years[0] if years else "?", self.result_window,
            )
        self.count_hits(len(rows))
        yield from self.each_record(rows, lambda row: self.collect(row, term))
        seen = self._hits_per_term[term] = self._hits_per_term.get(term, 0) + len(rows)
        if self.max_per_query and seen >= self.max_per_query:
            return
        following = offset + len(rows)
        if rows and following < min(total, self.result_window):
            yield self.search_request(term, years, following)

    def collect(self, row: dict, term: str | None):
        core = row["core_project_num"]
        if not isinstance(core, str) or not core.strip():
            raise ValueError(f"appl_id {row.get('appl_id')}: no core_project_num")
        core = core.strip()
        self.first_sighting(core, term)
        project = self.projects.get(core)
        if project is None:
            self.projects[core] = project = Project(best=row)
        project.add(row)
        return ()

    # ------------------------------------------------------------------ emitting
    def on_idle(self) -> None:
        """Every search is done: emit the merged projects (through a ``data:``
        request, the way a spider hands items to the engine outside a callback)."""
        if not self.projects or self._emitting:
            return
        self._emitting = True
        self.crawler.engine.crawl(scrapy.Request("data:,", callback=self.emit_projects, dont_filter=True))
        raise DontCloseSpider

    def emit_projects(self, response=None):
        projects, self.projects = self.projects, {}
        self._emitting = False
        self.logger.info("%d NEI projects found; saving those that are new or changed", len(projects))
        for core in sorted(projects):
            project = projects[core]
            try:
                modified = source_modified_of(project.best)
                if self.is_unchanged(core, modified):
                    for term in self.terms_for(core):
                        yield self.term_hit(core, term)
                    continue
                yield self.record_item(core, project)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.crawler.stats.inc_value("envision/bad_record")
                self.logger.error("nei: skipped malformed project %s: %s: %s", core, type(exc).__name__, exc)

    # ------------------------------------------------------------------ mapping
    def record_item(self, core: str, project: Project):
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
        return self.new_item(
            core,
            source_modified=source_modified_of(row),
            api_url=self.api_url("projects/search"),
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
