"""DataCite: the registry of research DOIs, whatever repository holds the data.

* API: ``GET /dois?query=...&resource-type-id=dataset`` (every word of a term a
  required phrase; ``updated:[since TO *]`` on incremental runs); a hit is the whole
  record (no detail request); no files, only declared formats and sizes.
* Caveats: cursor paging only (page numbers stop at 10,000 and then repeat the last
  page); ``links.next`` drops parameters, so its cursor is put into a URL rebuilt here;
  a cursor that does not advance ends the term; 500 requests per 5 minutes, 1,000 for
  clients that identify themselves; no rate-limit headers.
* Funder channel (``DATACITE_FUNDER_SEARCH``, on by default): besides the terms, two
  searches for datasets whose funding references name the National Eye Institute
  (:data:`FUNDER_SEARCHES`), incremental like the terms; a hit counts only when its
  own funding references, read by :mod:`envision_spiders.funding`, are NEI's.
  ``provenance.found_by`` says which channels found a record.
* Auth: none (``CONTACT_EMAIL``, when set, is sent as ``mailto=`` and in the User-Agent).
* Arguments: ``-a since=YYYY-MM-DD``, ``-a full=1``, ``-a page_size=N`` (1 to 1,000).
* Docs: https://support.datacite.org/docs/api ; docs/sources/datacite.md
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlparse

from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings

from envision_spiders.extensions.state import terms_hash
from envision_spiders.funding import NEI_FUNDER_ID, NEI_ROR
from envision_spiders.mapping.datacite import funding_of, map_record
from envision_spiders.politeness import Pace
from envision_spiders.query import term_query
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.textutil import normalize_doi

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
# A quarter of the maximum: a page stays around a megabyte (records are 3-8 kB), and
# nearly every term fits in one or two pages.
PAGE_SIZE = 250
FIRST_CURSOR = "1"

# Requests per 5 minutes and IP (support.datacite.org/docs/rate-limit, docs/sources/datacite.md).
ANONYMOUS_PACE = Pace(interval=300.0 / 500, windows=((500, 300.0),))
IDENTIFIED_PACE = Pace(interval=300.0 / 1000, windows=((1000, 300.0),))

_EMAIL = re.compile(r"[^@\s<>(),;]+@[^@\s<>(),;]+\.[^@\s<>(),;]+")


# ------------------------------------------------------------------ identification
def contact_email(settings: BaseSettings | Mapping) -> str | None:
    """``CONTACT_EMAIL`` when it looks like an address, else None."""
    value = str(settings.get("CONTACT_EMAIL") or "").strip()
    return value if _EMAIL.fullmatch(value) else None


def identified_user_agent(user_agent: str | None, email: str) -> str:
    """``name/1.0 (+https://site)`` -> ``name/1.0 (+https://site; mailto:a@b.org)``, the
    form DataCite (like Crossref) recognises."""
    ua = (user_agent or "").strip()
    if f"mailto:{email}" in ua:
        return ua
    if ua.endswith(")"):
        return f"{ua[:-1]}; mailto:{email})"
    return f"{ua} (mailto:{email})".strip()


# ------------------------------------------------------------------ query and paging
def build_query(term: str, since: str | None = None) -> str:
    """Every word of the term required; records updated since ``since`` (YYYY-MM-DD)."""
    return with_since(f"({term_query(term)})", since)


def with_since(query: str | None, since: str | None) -> str | None:
    """``query`` limited to records updated since ``since`` (YYYY-MM-DD), if given."""
    if not since:
        return query
    return f"{query} AND updated:[{since} TO *]" if query else f"updated:[{since} TO *]"


# The funder channel: datasets whose funding references name the National Eye Institute
# (docs/sources/datacite.md, "Search by funder"). Two searches, each paged by cursor:
# * ``funder-id``: DataCite's own filter parameter, which matches
#   ``fundingReferences.funderIdentifier`` against NEI's Crossref Funder ID
#   (https://doi.org/10.13039/100000053);
# * ``nei-awards``: an Elasticsearch query string on the index's ``funding_references``
#   fields for what that filter misses: NEI named by its ROR id or its name, and NEI
#   award numbers (institute code EY) under any funder, NIH's own id included. The
#   award wildcard is wide (``*EY*``); the spider keeps only hits whose references
#   :mod:`envision_spiders.funding` reads as NEI's.
FUNDER_SEARCHES: dict[str, tuple[str | None, tuple[tuple[str, str], ...]]] = {
    "funder-id": (None, (("funder-id", NEI_FUNDER_ID),)),
    "nei-awards": (
        f'(funding_references.funderIdentifier:"{NEI_ROR}" OR '
        'funding_references.funderName:"National Eye Institute" OR '
        "funding_references.awardNumber:*EY*)",
        (),
    ),
}
# Part of the incremental mark's hash while the funder search is on: turning it on (or
# off) makes the next run a full one, so the funder search starts from everything.
FUNDER_MARK = "channel:funder:" + NEI_FUNDER_ID


def funder_search(name: str, since: str | None = None) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """The query and the filter parameters of one funder search (FUNDER_SEARCHES)."""
    query, filters = FUNDER_SEARCHES[name]
    return with_since(query, since), filters


def search_params(query: str | None, cursor: str, page_size: int, email: str | None,
                  filters: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, str]]:
    """Every parameter of a search page, rebuilt for each page (``next`` drops some)."""
    params = [
        *([("query", query)] if query else []),
        *filters,
        ("resource-type-id", "dataset"),
        ("page[cursor]", cursor),
        ("page[size]", str(page_size)),
        ("affiliation", "false"),
        ("publisher", "false"),
        # the facet buckets in `meta` cost DataCite work and us bytes; we read none
        ("disable-facets", "true"),
    ]
    if email:
        params.append(("mailto", email))
    return params


def next_cursor(links: Any) -> str | None:
    """The cursor token of ``links.next``, or None when there is no next page (or the
    link is a page-number link, which this spider never follows)."""
    if not isinstance(links, dict) or not isinstance(links.get("next"), str):
        return None
    values = parse_qs(urlparse(links["next"]).query).get("page[cursor]")
    return values[0] if values and values[0] else None


def cursor_position(cursor: str) -> str | None:
    """What an opaque cursor encodes (``<created ms>,<doi>``), for log messages only."""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def doi_of(record: dict) -> str:
    """A DOI resource's DOI (``id``, else ``attributes.doi``); ValueError without one."""
    doi = normalize_doi(record.get("id")) or normalize_doi(record["attributes"].get("doi"))
    if not doi:
        raise ValueError(f"no DOI in id={record.get('id')!r}")
    return doi


# ------------------------------------------------------------------ the spider
class DataCiteSpider(SourceSpider):
    name = "datacite"
    api_setting = "DATACITE_API_URL"
    # 500 requests per 5 minutes for anonymous clients; identified ones get IDENTIFIED_PACE.
    pace = ANONYMOUS_PACE

    def __init__(self, *args: Any, page_size: str | int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.page_size_arg = None
        if page_size is not None:
            size = int(page_size)
            if not 1 <= size <= MAX_PAGE_SIZE:
                raise ValueError(f"-a page_size={page_size!r}: DataCite pages hold 1 to {MAX_PAGE_SIZE} records")
            self.page_size_arg = size

    @classmethod
    def pace_for(cls, settings: BaseSettings) -> Pace:
        return IDENTIFIED_PACE if contact_email(settings) else ANONYMOUS_PACE

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        email = contact_email(settings)
        if email:
            priority = max(settings.getpriority("USER_AGENT") or 0, SETTINGS_PRIORITIES["spider"])
            settings.set("USER_AGENT", identified_user_agent(settings.get("USER_AGENT"), email), priority=priority)

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> DataCiteSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.email = contact_email(crawler.settings)
        spider.page_size = spider.page_size_arg or PAGE_SIZE
        if spider.max_per_query:
            # no point in fetching a page longer than what will be kept
            spider.page_size = min(spider.page_size, spider.max_per_query)
        spider.funder_search = crawler.settings.getbool("DATACITE_FUNDER_SEARCH", True)
        spider.channels = ("terms", "funder") if spider.funder_search else ("terms",)
        if spider.funder_search:
            spider.terms_sha = terms_hash([*spider.terms, FUNDER_MARK])
        raw = str(crawler.settings.get("CONTACT_EMAIL") or "").strip()
        if raw and not spider.email:
            logger.warning("datacite: CONTACT_EMAIL=%r is not an e-mail address; requests go unidentified", raw)
        return spider

    # ------------------------------------------------------------------ searching
    async def searches(self):
        if self.email:
            logger.info("datacite: identified with CONTACT_EMAIL (mailto and User-Agent): up to 1000 requests per 5 minutes")
        else:
            logger.info("datacite: requests are unidentified (no usable CONTACT_EMAIL): DataCite allows them "
                        "500 requests per 5 minutes, half the identified pace")
        async for request in super().searches():
            yield request
        if self.funder_search:
            logger.info("datacite: also searching for datasets funded by the National Eye Institute (%s)",
                        ", ".join(FUNDER_SEARCHES))
            for name in FUNDER_SEARCHES:
                yield self.funder_request(name)
        else:
            logger.info("datacite: the search by funder is off (DATACITE_FUNDER_SEARCH=0)")

    def search_request(self, term: str, cursor: str = FIRST_CURSOR):
        params = search_params(build_query(term, self.since_date()), cursor, self.page_size, self.email)
        return self.api_request(
            self.api_url("dois", params),
            self.parse_search,
            cb_kwargs={"term": term, "cursor": cursor},
        )

    def funder_request(self, search: str, cursor: str = FIRST_CURSOR):
        query, filters = funder_search(search, self.since_date())
        params = search_params(query, cursor, self.page_size, self.email, filters)
        return self.api_request(
            self.api_url("dois", params),
            self.parse_funder,
            cb_kwargs={"search": search, "cursor": cursor},
        )

    def parse_search(self, response, term: str, cursor: str):
        records, links = self.page_of(response, term, cursor)
        yield from self.hits_arrived(term, records)
        yield from self.next_page(term, records, links, cursor, lambda following: self.search_request(term, following))

    def parse_funder(self, response, search: str, cursor: str):
        label = f"funder search {search}"
        records, links = self.page_of(response, label, cursor)
        yield from self.hits_arrived(label, records, self.handle_funder_hit, channel="funder")
        yield from self.next_page(label, records, links, cursor, lambda following: self.funder_request(search, following),
                                  what=label)

    def page_of(self, response, label: str, cursor: str) -> tuple[list, Any]:
        """The DOIs of a search page and its links."""
        data = response.json()
        records = data["data"]
        if not isinstance(records, list):
            raise TypeError(f"`data` is {type(records).__name__}, not a list of DOIs")
        if cursor == FIRST_CURSOR:
            logger.debug("datacite: %s: %s datasets", label, (data.get("meta") or {}).get("total"))
        return records, data.get("links")

    def next_page(self, term: str, records: list, links: Any, cursor: str, request_for, what: str | None = None):
        """The request of the page after this one, while there is one and it is wanted
        (``term`` keys the search for MAX_PER_QUERY; ``what`` names it in the log)."""
        what = what or f"term {term!r}"
        if not self.wants_more(term):
            return
        following = next_cursor(links)
        if not records or following is None:
            if records and isinstance(links, dict) and links.get("next"):
                # a page-number link: we never asked for one, and it stops at 10,000
                self.crawler.stats.inc_value("envision/datacite/next_without_cursor")
                self.hit_cap_reached = True
                logger.error("datacite: %s: the next link has no cursor (%s); the search is incomplete",
                             what, links["next"])
            return
        if following == cursor:
            self.crawler.stats.inc_value("envision/datacite/cursor_stuck")
            self.hit_cap_reached = True
            logger.error(
                "datacite: %s: the cursor did not advance past %s after %d records; the search is incomplete "
                "and the next run searches this period again", what, cursor_position(cursor) or cursor, self.hits_of(term),
            )
            return
        self.crawler.stats.inc_value("envision/datacite/cursor_pages")
        yield request_for(following)

    def handle_hit(self, record: dict, term: str | None):
        attributes = record["attributes"]
        doi = doi_of(record)
        if self.needs_fetching(doi, term, attributes.get("updated")):
            yield self.record_item(doi, record)

    def handle_funder_hit(self, record: dict, label: str):
        """A hit of the funder channel: kept when its funding references are NEI's (the
        award wildcard also matches other funders' numbers that hold ``EY``)."""
        attributes = record["attributes"]
        doi = doi_of(record)
        funding, _ = funding_of(doi, attributes)
        if not any(e["nei"] for e in funding):
            self.crawler.stats.inc_value("envision/datacite/funder_not_nei")
            logger.debug("datacite: %s: %s cites no NEI funding; left to the term searches", label, doi)
            return
        if self.needs_fetching(doi, None, attributes.get("updated"), channel="funder"):
            yield self.record_item(doi, record)

    def record_item(self, doi: str, record: dict):
        return self.new_item(doi, source_modified=record["attributes"].get("updated"), api_url=self.api_url(f"dois/{doi}"),
                             **map_record(doi, record))
