"""Figshare: a general repository that also hosts institution and publisher portals.

* API: ``POST /articles/search`` (``item_type`` 3, datasets; every word of a term
  required), then one ``GET /articles/{id}`` per new or changed article, and
  ``/articles/{id}/files`` (every page) when the embedded file list may be cut.
* Caveats: search answers are bare arrays without totals (paging stops at a short
  page); a query pages no deeper than about 1,000 results, so it is sorted by
  publication date and continued in ``published_since`` windows; a hit has no modified
  date (its version dates decide whether the saved copy is current); one request a
  second.
* Auth: ``FIGSHARE_ACCESS_TOKEN`` (``Authorization: token ...``), optional; a token the
  API refuses is dropped and the public crawl goes on.
* Arguments: ``-a since=YYYY-MM-DD``, ``-a full=1``.
* Docs: https://docs.figshare.com/ ; docs/sources/figshare.md
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from envision_spiders.mapping.figshare import article_id, files_hidden, map_article, size_of, version_stamp
from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.textutil import as_list, iso, parse_datetime
from envision_spiders.windows import next_window

DATASET = 3  # Figshare item_type of datasets
PAGE_SIZE = 100
# Deepest result a query may page to: the prose docs limit offsets to 1,000 (the
# OpenAPI file speaks of 9,000 items); the smaller is used, and an earlier
# "Max page reached" is handled as well.
RESULT_WINDOW = 1000
FILES_PAGE_SIZE = 1000  # the listing's maximum page
# The listing's default page; an embedded list this long may have been cut at a page.
EMBEDDED_FILES_SUSPECT = 10
MIN_QUERY_LENGTH = 3  # "search_for ... Usually min length is 3"
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9]+$")
_OPERATORS = {"AND", "OR", "NOT"}


# ------------------------------------------------------------------ query building
def search_for(term: str) -> str:
    """Every word of a term required: ``retinal OCT`` -> ``retinal AND OCT``.

    Plain words stay bare so Figshare's stemming applies (``dataset`` finds
    ``datasets``); a word with other characters (``OCT-A``, ``CHASE_DB1``, ``:title:``)
    or one spelled like an operator is quoted, so it is searched as written.
    """
    parts = []
    for word in term.replace('"', " ").split():
        parts.append(word if _PLAIN_WORD.match(word) and word not in _OPERATORS else f'"{word}"')
    return " AND ".join(parts)


def search_body(
    query: str,
    page: int,
    page_size: int = PAGE_SIZE,
    modified_since: str | None = None,
    published_since: str | None = None,
) -> dict[str, Any]:
    """The JSON body of one search page (page-based paging only: mixing in
    ``limit``/``offset`` is a 422)."""
    body: dict[str, Any] = {
        "search_for": query,
        "item_type": DATASET,
        "page": page,
        "page_size": page_size,
        "order": "published_date",
        "order_direction": "asc",
    }
    if modified_since:
        body["modified_since"] = modified_since
    if published_since:
        body["published_since"] = published_since
    return body


def latest_published(records: Iterable[Any], latest: str | None = None) -> tuple[str | None, bool]:
    """The latest ``published_date`` among records (and an earlier page's latest), as
    ISO, and whether the records came in ascending order of it, as asked: the windows
    that go past the cap rely on that order."""
    best = parse_datetime(latest)
    ordered = True
    for r in records:
        d = parse_datetime(r.get("published_date")) if isinstance(r, dict) else None
        if d is None:
            continue
        if best is not None and d < best:
            ordered = False
        best = d if best is None or d > best else best
    return (iso(best) if best else None), ordered


def is_cap_error(status: int, payload: Any) -> bool:
    """The API's answer to a page past its cap (400 "Max page reached. Please narrow
    down your search"; the prose docs say 422 for an offset past the limit)."""
    message = str(payload.get("message", "")) if isinstance(payload, dict) else ""
    return status in (400, 422) and ("max page" in message.lower() or "narrow down" in message.lower())


def saved_copy_is_current(stamp: datetime | None, saved_stamp: Any, asked_since: str | None) -> bool:
    """Whether the record on disk (saved with ``saved_stamp``, its version stamp) is
    still current for a search hit whose :func:`version_stamp` is ``stamp`` (a hit
    carries no ``modified_date``).

    * The API returned the hit for ``modified_since=asked_since``: if our copy is older
      than that day, the record changed after we saved it (a description or keyword
      edit, which Figshare does not publish as a new version, shows only this way).
    * Otherwise our copy is current unless the hit names a later version date (title,
      author, licence or file changes make a new version, see Figshare's "How
      versioning works"), which also covers runs without ``modified_since``.
    """
    saved = parse_datetime(saved_stamp)
    if saved is None:
        return False
    if asked_since and saved.date() < date.fromisoformat(asked_since):
        return False
    return stamp is not None and stamp <= saved


def needs_file_listing(article: dict) -> bool:
    """Whether the embedded file list may be incomplete, so ``/files`` must be read."""
    if files_hidden(article):
        return False
    embedded = article.get("files")
    if not isinstance(embedded, list):
        return True
    if len(embedded) >= EMBEDDED_FILES_SUSPECT:
        return True
    total = size_of(article.get("size"))
    listed = sum(size_of(f.get("size")) or 0 for f in embedded if isinstance(f, dict))
    return total is not None and listed < total


class FigshareSpider(SourceSpider):
    name = "figshare"
    api_setting = "FIGSHARE_API_URL"
    # "no automatic rate limiting ... we recommend no more than 1 request per second"
    pace = Pace(interval=1.0)

    # ------------------------------------------------------------------ searching
    async def searches(self):
        for term in self.terms:
            query = search_for(term)
            if len(query) < MIN_QUERY_LENGTH:
                self.crawler.stats.inc_value("envision/figshare/term_too_short")
                self.logger.warning("term %r is shorter than Figshare's %d-character minimum; not searched", term, MIN_QUERY_LENGTH)
                continue
            yield self.search_request(term)

    def search_request(self, term: str, page: int = 1, window: str | None = None, latest: str | None = None, ordered: bool = True):
        """One search page; ``window`` is the ``published_since`` of a continuation
        query, ``latest`` the latest published date its earlier pages held, ``ordered``
        whether they came in ascending publication order."""
        return self.api_request(
            self.api_url("articles/search"),
            self.parse_search,
            method="POST",
            json_body=search_body(search_for(term), page, modified_since=self.since_date(), published_since=window),
            cb_kwargs={"term": term, "page": page, "window": window, "latest": latest, "ordered": ordered},
            # the cap answers are read here, not dropped as errors
            meta={"handle_httpstatus_list": [400, 422]},
        )

    def parse_search(self, response, term: str, page: int, window: str | None, latest: str | None, ordered: bool = True):
        if response.status in (400, 422):
            yield from self.search_refused(response, term, window, latest, ordered)
            return
        records = response.json()
        if not isinstance(records, list):
            raise TypeError(f"a search answer is a JSON array, got {type(records).__name__}")
        yield from self.hits_arrived(term, records)
        if not self.wants_more(term) or len(records) < PAGE_SIZE:
            return  # capped, or the last page of this query
        latest, in_order = latest_published(records, latest)
        ordered = ordered and in_order
        if (page + 1) * PAGE_SIZE > RESULT_WINDOW:
            yield from self.continue_after_cap(term, window, latest, ordered)
        else:
            yield self.search_request(term, page + 1, window, latest, ordered)

    def search_refused(self, response, term: str, window: str | None, latest: str | None, ordered: bool):
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if is_cap_error(response.status, payload):
            self.crawler.stats.inc_value("envision/figshare/cap_answers")
            yield from self.continue_after_cap(term, window, latest, ordered)
            return
        # any other 400/422 is a query the API will never accept: say which and why
        self.crawler.stats.inc_value(f"envision/http_error/{response.status}")
        self.crawler.stats.inc_value("envision/figshare/search_refused")
        self.logger.error(
            "term %r: Figshare refused the search (HTTP %d: %s); results of this term are missing",
            term, response.status, (payload or {}).get("message") if isinstance(payload, dict) else response.text[:200],
        )

    def continue_after_cap(self, term: str, window: str | None, latest: str | None, ordered: bool):
        """Go past the page cap with a query for what was published after what we saw."""
        start = next_window(latest, window) if ordered else None
        if start is None:
            if ordered:
                why = f"more than {RESULT_WINDOW} results published from {window or 'the beginning'} to {(latest or '?')[:10]}"
            else:
                why = "the API did not sort the results by publication date as asked, so date windows could skip some"
            self.window_overflow(term, f"{why}; Figshare pages no deeper, so the rest of its results are not reachable")
            return
        self.crawler.stats.inc_value("envision/figshare/windows")
        self.logger.info("term %r: %d results reached; going on with those published since %s", term, RESULT_WINDOW, start)
        yield self.search_request(term, 1, start)

    def handle_hit(self, hit: dict, term: str | None):
        record_id = article_id(hit)
        item_type = hit.get("defined_type")
        if item_type is not None and item_type != DATASET:
            # the body asks for datasets only; a server that ignores it must not fill the corpus
            self.crawler.stats.inc_value("envision/figshare/not_dataset")
            return
        # a hit carries no modified_date: its version dates decide (see same_version)
        if self.needs_fetching(record_id, term, version_stamp(hit)):
            yield self.api_request(
                self.api_url(f"articles/{record_id}"),
                self.parse_article,
                cb_kwargs={"project_id": hit.get("project_id")},
            )

    def same_version(self, saved_modified: Any, modified: Any) -> bool:
        return saved_copy_is_current(modified, saved_modified, self.since_date())

    # ------------------------------------------------------------------ details and files
    def parse_article(self, response, project_id: Any = None):
        article = response.json()
        if not isinstance(article, dict):
            raise TypeError(f"an article answer is a JSON object, got {type(article).__name__}")
        article_id(article)
        if project_id is not None:
            article.setdefault("project_id", project_id)
        if needs_file_listing(article):
            self.crawler.stats.inc_value("envision/figshare/file_listings")
            yield self.files_request(article, 1, [])
        else:
            yield self.article_item(article, response.url)

    def files_request(self, article: dict, page: int, collected: list):
        return self.api_request(
            self.api_url(f"articles/{article['id']}/files", {"page": page, "page_size": FILES_PAGE_SIZE}),
            self.parse_files,
            cb_kwargs={"article": article, "page": page, "collected": collected},
            # a listing the API refuses still leaves the record with its embedded files
            meta={"handle_httpstatus_list": [400, 403, 404, 422]},
        )

    def parse_files(self, response, article: dict, page: int, collected: list):
        if response.status != 200:
            self.crawler.stats.inc_value("envision/figshare/file_listing_refused")
            self.logger.warning(
                "article %s: the file listing answered HTTP %d; keeping the %d files the record embeds%s",
                article.get("id"), response.status, len(as_list(article.get("files"))),
                f" and the {len(collected)} listed so far" if collected else "",
            )
            yield self.article_item(article, response.url, collected or None)
            return
        entries = response.json()
        if not isinstance(entries, list):
            raise TypeError(f"a file listing is a JSON array, got {type(entries).__name__}")
        collected = collected + entries
        if len(entries) >= FILES_PAGE_SIZE:
            yield self.files_request(article, page + 1, collected)
        else:
            yield self.article_item(article, response.url, collected)

    def article_item(self, article: dict, base_url: str, listing: list | None = None):
        record_id = article_id(article)
        return self.new_item(record_id, source_modified=version_stamp(article), api_url=self.api_url(f"articles/{record_id}"),
                             **map_article(article, base_url, listing))
