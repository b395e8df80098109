"""Figshare (API v2): public datasets for every search term.

What this spider knows about Figshare (../shared/apis.md §2):

* search is ``POST /articles/search`` with a JSON body: ``search_for`` (the term's words
  joined with ``AND``: a plain space means OR on Figshare), ``item_type: 3`` (datasets),
  ``page``/``page_size`` (never mixed with ``limit``/``offset``: that is a 422),
  ``modified_since`` on incremental runs; answers are bare arrays of light records
  without total, description or files, so paging stops at the first short page;
* a query can only page so deep: the prose docs say 1,000 results ("max page for a
  page_size of 10 is 100"), the OpenAPI file 9,000 (then an ``X-Cursor``), and past it
  the API answers ``400 Max page reached``. We sort by ``published_date`` ascending and,
  when a query reaches the 1,000th result (or the API says "Max page reached" earlier),
  go on with a new query from the last published date seen (``published_since``: the
  documented filter, which has no upper bound, hence the ascending order). The new
  window starts one day before that date, because the API takes a bare date and does
  not say whether "since" includes it; records seen twice are fetched once. When more
  than a window's worth of results share two days, the window cannot move: that is
  logged, counted (``envision/figshare/window_overflow``) and keeps the "last successful
  run" mark where it was; so does an answer that was not sorted as asked (windows would
  skip records). (The cursor is not used: it is documented only for lists past 9,000
  items, and the windows need no server-side state.)
* every new or changed hit costs one ``GET /articles/{id}`` (the full record); a hit
  carries no ``modified_date``, so whether the copy on disk is current is decided from
  what it does carry (see :func:`saved_copy_is_current`);
* file lists: the detail embeds ``files``, but the listing ``GET /articles/{id}/files``
  is paginated since Nov 2024 (``page``/``page_size``, default 10, max 1000) and nothing
  promises the embedded list is whole for large articles. It is read (every page) when
  the embedded list may be cut: no list, 10 or more entries (a page of the listing's
  default size), or file sizes that add up to less than the article's ``size``. A
  listing the API refuses (403/404, e.g. confidential files) leaves the embedded list;
* files: ``download_url`` (ndownloader, which redirects to storage), checksum
  ``computed_md5`` falling back to ``supplied_md5``; ``is_link_only`` files are links
  to elsewhere and go to ``external_links``, not to ``files``;
* access: ``is_public`` / ``is_embargoed`` / ``is_confidential`` / ``is_metadata_record``;
  license ``license.name``; keywords ``tags`` + ``keywords`` + category titles;
  versioned DOIs (``10.6084/m9.figshare.123.v2``) are kept as given;
* auth: ``Authorization: token <FIGSHARE_ACCESS_TOKEN>`` (the word ``token``, not
  Bearer), sent to the API host only; public search and details need none, so a token
  the API refuses (401) is dropped, said once, and the crawl goes on without it;
* pace: no enforced limit, but Figshare asks for at most one request a second.

``item.extra`` keeps: ``doi_unversioned`` (the DOI without ``.vN``, to find duplicates),
``version``, ``handle``, ``group_id``, ``project_id``, ``portal_host`` (the landing page's
host when it is not figshare.com: institution and publisher portals such as
plos.figshare.com, and mirrors), ``mirrored_from`` (the repository a mirrored record
comes from, e.g. ``zenodo`` for zenodo.figshare.com; its DOI belongs to that
repository), ``resource_title`` (the related publication), ``embargo`` (type, date,
reason), ``confidential_reason``, ``metadata_only_reason``, ``funding``, and
``files_from_listing`` when the file list came from ``/files``.

``provenance.source_modified`` is the article's :func:`version_stamp`: its
``modified_date``, or a later version date the same record reports (so a search hit
of an unchanged record never looks newer than the copy saved from it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlparse

from envision_spiders.items import DatasetItem
from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.textutil import (
    as_list,
    checksum,
    dois_in,
    html_to_text,
    iso,
    normalize_doi,
    parse_datetime,
    plain_text,
    strings,
    year_of,
)

DATASET = 3  # Figshare item_type of datasets
PAGE_SIZE = 100
# Deepest result a query may page to: the prose docs limit offsets to 1,000 (the
# OpenAPI file speaks of 9,000 items); the smaller is used, and an earlier
# "Max page reached" is handled as well.
RESULT_WINDOW = 1000
FILES_PAGE_SIZE = 1000  # the listing's maximum page
# The listing's default page; an embedded list this long may have been cut at a page.
EMBEDDED_FILES_SUSPECT = 10
WINDOW_OVERLAP = timedelta(days=1)
MIN_QUERY_LENGTH = 3  # "search_for ... Usually min length is 3"
# Dates in a record (search hit or detail) that move when a new version is published.
VERSION_TIMELINE_KEYS = ("posted", "revision", "firstOnline")
# Figshare mirrors other repositories under their own name or DOI prefix.
MIRROR_HOSTS = {"zenodo.figshare.com": "zenodo"}
MIRROR_DOI_PREFIXES = {"10.5281": "zenodo", "10.17632": "mendeley_data", "10.5061": "dryad"}
FIGSHARE_HOSTS = ("figshare.com", "www.figshare.com")
_VERSION_SUFFIX = re.compile(r"\.v\d+$", re.IGNORECASE)
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


def next_window(latest: str | None, current: str | None) -> str | None:
    """The ``published_since`` of the query that continues a capped one, or None when
    the window cannot move forward (more than a window of results in two days)."""
    last = parse_datetime(latest)
    if last is None:
        return None
    start = last.date() - WINDOW_OVERLAP
    if current and start <= date.fromisoformat(current):
        return None
    return start.isoformat()


def is_cap_error(status: int, payload: Any) -> bool:
    """The API's answer to a page past its cap (400 "Max page reached. Please narrow
    down your search"; the prose docs say 422 for an offset past the limit)."""
    message = str(payload.get("message", "")) if isinstance(payload, dict) else ""
    return status in (400, 422) and ("max page" in message.lower() or "narrow down" in message.lower())


# ------------------------------------------------------------------ change detection
def version_stamp(record: Any) -> datetime | None:
    """The latest date a record gives about its own state: ``modified_date`` (details
    only), ``published_date`` and the timeline's posted / revision / firstOnline (a new
    version moves them). Dates of the related paper (``publisherPublication``) are left
    out: they may lie after the dataset's last change."""
    if not isinstance(record, dict):
        return None
    values = [record.get("modified_date"), record.get("published_date")]
    timeline = record.get("timeline")
    if isinstance(timeline, dict):
        values += [timeline.get(k) for k in VERSION_TIMELINE_KEYS]
    dates = [d for d in map(parse_datetime, values) if d]
    return max(dates) if dates else None


def saved_copy_is_current(hit: dict, saved_stamp: Any, asked_since: str | None) -> bool:
    """Whether the record on disk (saved with ``saved_stamp``, its version stamp) is
    still current for a search hit, which carries no ``modified_date``.

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
    stamp = version_stamp(hit)
    return stamp is not None and stamp <= saved


# ------------------------------------------------------------------ field mapping
def article_id(record: dict) -> str:
    """A Figshare article id (a positive integer) as a string; ValueError otherwise."""
    value = record.get("id")
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise ValueError(f"article id {value!r} is not a number")
    return text


def unversioned_doi(doi: str | None) -> str | None:
    """``10.6084/m9.figshare.123.v2`` -> ``10.6084/m9.figshare.123`` (same DOI when
    it has no version)."""
    return _VERSION_SUFFIX.sub("", doi) if doi else None


def access_type_of(article: dict) -> str:
    if article.get("is_public") is False:
        return "closed"
    if article.get("is_embargoed"):
        return "embargoed"
    if article.get("is_confidential"):
        return "restricted"
    if article.get("is_metadata_record"):
        return "metadata-only"
    return "open"


def files_hidden(article: dict) -> bool:
    """Files an anonymous reader cannot list (embargoed, confidential, metadata-only)."""
    return bool(article.get("is_embargoed") or article.get("is_confidential") or article.get("is_metadata_record"))


def _size(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def map_files(entries: Any, base_url: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    """Figshare file entries (embedded or from ``/files``) as project files, and the
    links of link-only files."""
    files: list[dict[str, Any]] = []
    links: list[str] = []
    for f in entries if isinstance(entries, list) else []:
        if not isinstance(f, dict):
            continue
        url = f.get("download_url")
        url = urljoin(base_url, url.strip()) if isinstance(url, str) and url.strip() else None
        if f.get("is_link_only"):
            if url and url not in links:
                links.append(url)
            continue
        name = f.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        file_id = f.get("id")
        files.append(
            {
                "name": name,
                "size_bytes": _size(f.get("size")),
                "url": url,
                "file_id": str(file_id) if isinstance(file_id, (int, str)) and str(file_id) else None,
                "checksum": checksum(f.get("computed_md5"), "md5") or checksum(f.get("supplied_md5"), "md5"),
            }
        )
    return files, links


def merge_files(primary: list[dict], secondary: list[dict]) -> list[dict]:
    """Files of ``primary`` (the listing), then those of ``secondary`` it lacks."""
    seen = {f.get("file_id") or f.get("name") for f in primary}
    return primary + [f for f in secondary if (f.get("file_id") or f.get("name")) not in seen]


def needs_file_listing(article: dict) -> bool:
    """Whether the embedded file list may be incomplete, so ``/files`` must be read."""
    if files_hidden(article):
        return False
    embedded = article.get("files")
    if not isinstance(embedded, list):
        return True
    if len(embedded) >= EMBEDDED_FILES_SUSPECT:
        return True
    total = _size(article.get("size"))
    listed = sum(_size(f.get("size")) or 0 for f in embedded if isinstance(f, dict))
    return total is not None and listed < total


def keywords_of(article: dict) -> list[str]:
    """``tags`` + ``keywords`` + category titles, without repeats (case-insensitive)."""
    out: list[str] = []
    seen: set[str] = set()
    categories = [c.get("title") for c in as_list(article.get("categories")) if isinstance(c, dict)]
    for word in strings(article.get("tags")) + strings(article.get("keywords")) + strings(categories):
        if word.lower() not in seen:
            seen.add(word.lower())
            out.append(word)
    return out


def creators_of(article: dict) -> list[dict[str, str]]:
    out = []
    for a in as_list(article.get("authors")):
        if isinstance(a, dict) and isinstance(a.get("full_name"), str) and a["full_name"].strip():
            person = {"name": a["full_name"].strip()}
            if isinstance(a.get("orcid_id"), str) and a["orcid_id"].strip():
                person["orcid"] = a["orcid_id"].strip()
            out.append(person)
    return out


def related_of(article: dict) -> list[dict[str, str]]:
    """The related publication (``resource_doi``), ``related_materials`` and
    ``references`` as related identifiers."""
    related: list[dict[str, str]] = []

    def add(identifier: Any, relation: str, scheme: str) -> None:
        if isinstance(identifier, str) and identifier.strip():
            entry = {"identifier": identifier.strip(), "relation": relation, "scheme": scheme}
            if entry not in related:
                related.append(entry)

    add(article.get("resource_doi"), "IsSupplementTo", "doi")
    for m in as_list(article.get("related_materials")):
        if isinstance(m, dict):
            add(m.get("identifier"), str(m.get("relation") or "References"), str(m.get("identifier_type") or "").lower())
    for ref in as_list(article.get("references")):
        add(ref, "References", "doi" if normalize_doi(ref) else "url")
    return related


def portal_facts(article: dict) -> dict[str, str]:
    """Where the landing page lives (institution and publisher portals, mirrors) and,
    for mirrored records, the repository the DOI belongs to."""
    facts: dict[str, str] = {}
    url = article.get("url_public_html") or article.get("figshare_url")
    host = (urlparse(url).hostname or "").lower() if isinstance(url, str) else ""
    if host and host not in FIGSHARE_HOSTS:
        facts["portal_host"] = host
    doi = normalize_doi(article.get("doi"))
    origin = MIRROR_HOSTS.get(host) or (MIRROR_DOI_PREFIXES.get(doi.split("/", 1)[0]) if doi else None)
    if origin:
        facts["mirrored_from"] = origin
    return facts


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class FigshareSpider(SourceSpider):
    name = "figshare"
    api_setting = "FIGSHARE_API_URL"
    # "no automatic rate limiting ... we recommend no more than 1 request per second"
    pace = Pace(interval=1.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token = os.environ.get("FIGSHARE_ACCESS_TOKEN", "").strip()
        self._hits_per_term: dict[str, int] = {}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def on_request_failed(self, failure):
        """A refused token (401) must not cost the run: everything this spider reads is
        public, so the token is dropped (said once) and the request sent again without it."""
        response = getattr(failure.value, "response", None)
        request = failure.request
        if response is None or response.status != 401 or not request.headers.get("Authorization"):
            return super().on_request_failed(failure)
        if self.token:
            self.token = ""
            self.crawler.stats.inc_value("envision/figshare/token_refused")
            self.logger.error(
                "FIGSHARE_ACCESS_TOKEN was refused (HTTP 401 from %s); going on without it "
                "(public search and records need none): check the token", request.url,
            )
        retry = request.replace(dont_filter=True)
        retry.headers.pop("Authorization", None)
        return [retry]

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
        if page == 1 and window is None:
            self.crawler.stats.inc_value("envision/terms_searched")
        self.count_hits(len(records))
        yield from self.each_record(records, lambda hit: self.handle_hit(hit, term))
        seen = self._hits_per_term[term] = self._hits_per_term.get(term, 0) + len(records)
        if self.max_per_query and seen >= self.max_per_query:
            return
        if len(records) < PAGE_SIZE:
            return  # the last page of this query
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
            self.hit_cap_reached = True
            self.crawler.stats.inc_value("envision/figshare/window_overflow")
            if ordered:
                why = f"more than {RESULT_WINDOW} results published from {window or 'the beginning'} to {(latest or '?')[:10]}"
            else:
                why = "the API did not sort the results by publication date as asked, so date windows could skip some"
            self.logger.warning(
                "term %r: %s; Figshare pages no deeper, so the rest of its results are not reachable; "
                "the last-successful-run mark stays where it was", term, why,
            )
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
        known = term in self.terms_for(record_id)
        if not self.first_sighting(record_id, term):
            if not known and (hit_term := self.term_hit(record_id, term)):
                yield hit_term
            return
        if self.is_current(record_id, hit):
            if hit_term := self.term_hit(record_id, term):
                yield hit_term
            return
        yield self.api_request(
            self.api_url(f"articles/{record_id}"),
            self.parse_article,
            cb_kwargs={"project_id": hit.get("project_id")},
        )

    def is_current(self, record_id: str, hit: dict) -> bool:
        """True (and counted) when the saved copy needs no refresh (never on a full run)."""
        if self.full:
            return False
        saved = self.state.saved(record_id)
        if not saved or not saved_copy_is_current(hit, saved.get("source_modified"), self.since_date()):
            return False
        self.crawler.stats.inc_value("envision/records/unchanged")
        return True

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

    # ------------------------------------------------------------------ mapping
    def article_item(self, article: dict, base_url: str, listing: list | None = None) -> DatasetItem:
        record_id = article_id(article)
        files, links = map_files(article.get("files"), base_url)
        if listing is not None:
            listed, listed_links = map_files(listing, base_url)
            files = merge_files(listed, files)
            links = list(dict.fromkeys(listed_links + links))
        description, desc_links = html_to_text(article.get("description"))
        doi = normalize_doi(article.get("doi"))
        related = related_of(article)
        own = {doi, unversioned_doi(doi)}
        related_dois = [d for d in dois_in(r["identifier"] for r in related) if d not in own]
        external = list(dict.fromkeys(desc_links + links))
        for r in related:
            ident = r["identifier"]
            if ident.lower().startswith(("http://", "https://")) and not normalize_doi(ident) and ident not in external:
                external.append(ident)
        license_ = article.get("license")
        license_name = _text(license_.get("name")) if isinstance(license_, dict) else _text(license_)
        timeline = article.get("timeline") if isinstance(article.get("timeline"), dict) else {}
        published = article.get("published_date") or timeline.get("posted")
        dates = {
            k: v
            for k, v in (
                ("created", iso(article.get("created_date"))),
                ("modified", iso(article.get("modified_date"))),
                ("published", iso(published)),
                ("first_online", iso(timeline.get("firstOnline"))),
                ("embargo_until", iso(article.get("embargo_date")) if article.get("is_embargoed") else None),
            )
            if v
        }
        extra: dict[str, Any] = {
            "doi_unversioned": unversioned_doi(doi),
            "version": article.get("version") if isinstance(article.get("version"), int) else None,
            "handle": _text(article.get("handle")),
            "group_id": article.get("group_id") if isinstance(article.get("group_id"), int) else None,
            "project_id": article.get("project_id") if isinstance(article.get("project_id"), int) else None,
            **portal_facts(article),
            "resource_title": plain_text(article.get("resource_title")) or None,
            "confidential_reason": _text(article.get("confidential_reason")) if article.get("is_confidential") else None,
            "metadata_only_reason": _text(article.get("metadata_reason")) if article.get("is_metadata_record") else None,
            "funding": [t for t in (plain_text(f.get("title")) for f in as_list(article.get("funding_list")) if isinstance(f, dict)) if t],
            "files_from_listing": True if listing is not None else None,
        }
        if article.get("is_embargoed"):
            extra["embargo"] = {
                k: v
                for k, v in (
                    ("type", _text(article.get("embargo_type"))),
                    ("until", iso(article.get("embargo_date"))),
                    ("reason", plain_text(article.get("embargo_reason")) or None),
                )
                if v
            }
        stamp = version_stamp(article)
        return self.new_item(
            record_id,
            source_modified=stamp,
            api_url=self.api_url(f"articles/{record_id}"),
            doi=doi,
            url=_text(article.get("url_public_html")) or _text(article.get("figshare_url")),
            title=plain_text(article.get("title")),
            description=description,
            keywords=keywords_of(article),
            creators=creators_of(article),
            publication_year=year_of(published) or year_of(article.get("created_date")),
            dates=dates,
            license=license_name,
            access_type=access_type_of(article),
            resource_type=_text(article.get("defined_type_name")),
            related_identifiers=related,
            related_dois=related_dois,
            external_links=external,
            files=files,
            total_size_bytes=_size(article.get("size")),
            extra={k: v for k, v in extra.items() if v not in (None, [], {}, "")},
        )


