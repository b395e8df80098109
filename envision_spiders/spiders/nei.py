"""NIH RePORTER: the grants of the National Eye Institute (API v2), spider ``nei``.

* API: ``POST /projects/search`` (JSON body; GET answers 405) for projects NEI
  administers or co-funds, every word of a term required over title, abstract and
  terms; ``include_fields`` in PascalCase (snake_case is silently ignored).
* Caveats: ``limit`` at most 500, sorted by ``appl_id``; a query pages only 10,000 to
  15,000 results deep, so a larger one is halved into fiscal-year ranges; one row per
  project and fiscal year: rows are merged into one record per core project number,
  emitted once every search is done; no modification date (incremental runs search the
  fiscal years since the one before ``since``); at most one request a second.
* Auth: none.
* Arguments: ``-a since=YYYY-MM-DD``, ``-a full=1``. Settings: ``NEI_API_URL``,
  ``NEI_RESULT_WINDOW`` (older names ``NIH_REPORTER_*`` still read).
* Docs: https://api.reporter.nih.gov/ ; docs/sources/nei.md
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider

from envision_spiders.mapping.nei import ID_FIELDS, NEI, Project, map_project, project_key, source_modified_of
from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import MALFORMED, SourceSpider, setting_with_aliases
from envision_spiders.windows import halve

# RePORTER's project data starts with fiscal year 1985.
FIRST_FISCAL_YEAR = 1985
PAGE_SIZE = 500
RESULT_WINDOW = 10_000
SEARCH_FIELDS = "projecttitle,abstracttext,terms"

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
    if not years:
        return None
    halves = halve(min(years), max(years) + 1, floor=FIRST_FISCAL_YEAR, ceiling=max(years) + 1, unit=1)
    if halves is None:
        return None
    return [[y for y in sorted(years, reverse=True) if lo <= y < hi] for lo, hi in reversed(halves)]


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


class NeiSpider(SourceSpider):
    name = "nei"
    api_setting = "NEI_API_URL"
    api_setting_aliases = ("NIH_REPORTER_API_URL",)
    # NIH: no more than one request a second; no budget headers.
    pace = Pace(interval=1.0)
    # a record's fiscal years and yearly amounts grow over incremental runs
    accumulated_extra = ("fiscal_years", "award_amounts")
    # a RePORTER project page has no schema.org Dataset to render
    landing_pages = False
    id_fields = ID_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.projects: dict[str, Project] = {}
        self._emitting = False

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> NeiSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        window = setting_with_aliases(crawler.settings, "NEI_RESULT_WINDOW", "NIH_REPORTER_RESULT_WINDOW")
        spider.result_window = int(window or RESULT_WINDOW)
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
        if offset == 0 and total > self.result_window:
            where = f"fiscal years {min(years)}-{max(years)}" if years else "every fiscal year"
            halves = self.too_many_hits(term, total, self.result_window, where, split_years(years))
            if halves:
                for half in halves:
                    yield self.search_request(term, half)
                return
        yield from self.hits_arrived(term, rows, self.collect)
        following = offset + len(rows)
        if rows and self.wants_more(term) and following < min(total, self.result_window):
            yield self.search_request(term, years, following)

    def collect(self, row: dict, term: str | None):
        """A row joins its core project's record (emitted when every search is done)."""
        record_id = project_key(row)
        self.first_sighting(record_id, term)
        project = self.projects.get(record_id)
        if project is None:
            self.projects[record_id] = project = Project(best=row)
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
                if not self.is_unchanged(core, source_modified_of(project.best)):
                    yield self.record_item(core, project)
            except MALFORMED as exc:
                self.bad_record(project.best, exc)

    def record_item(self, core: str, project: Project):
        return self.new_item(core, source_modified=source_modified_of(project.best), api_url=self.api_url("projects/search"),
                             **map_project(project))
