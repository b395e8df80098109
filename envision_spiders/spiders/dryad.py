"""Dryad (API v2, HAL JSON): datasets for every search term.

What this spider knows about Dryad (../shared/apis.md §3, and datadryad/dryad-app):

* ``GET /search?q=...&per_page=100`` (100 is the maximum); each word of a term is a
  quoted Lucene phrase and Dryad requires them all. An answer is a HAL page: ``count``,
  ``total``, ``_embedded["stash:datasets"]`` and ``_links.next`` until the last page (no
  ``total_pages``). Links are root-relative (``/api/v2/search?page=2&...``): they are
  resolved against the response URL, never appended to it;
* a search hit is the whole dataset metadata of its latest viewable version. That
  version is the one ``_links["stash:version"]`` names (not the last of a list); its
  files come from ``/versions/{id}/files``, every page; files whose ``status`` is
  ``deleted`` are skipped; checksums are ``digest`` + ``digestType`` (``sha-256``, ``md5``
  on older files); the download link is ``_links["stash:download"]``, on the API host;
* dataset DOIs in paths are fully percent-encoded (``datasets/doi%3A10.5061%2Fdryad.x``);
* incremental runs send ``modifiedSince`` (ISO 8601, UTC, ``Z``). ``lastModificationDate``
  is only a day, so a record dated on or after the day of the last successful run is
  fetched again (it may have changed later that day); older ones are skipped when their
  saved date matches. Answers of the 2020 shape have no such date; their
  ``publicationDate`` stands in (``-a full=1`` refreshes them);
* 30 requests a minute anonymous, 240 with an OAuth token: ``DRYAD_CLIENT_ID`` and
  ``DRYAD_CLIENT_SECRET`` are exchanged once per crawl (client-credentials grant) at
  ``{site root}/oauth/token`` or ``DRYAD_TOKEN_URL``, in ``start()``; when the API answers
  401 the token is renewed once for all the requests it failed and they are sent again.
  Requests pick up the current token when they leave (FreshCredentialsMiddleware), and
  requests with and without a token have budgets of their own. The token and the secret
  are never logged or written;
* file downloads need a token: without one the crawl goes on (said once in the log) and
  its records carry ``extra["files_need_auth"] = True`` so archive peeking skips them;
* 429 answers carry ``RateLimit-Limit/-Remaining/-Reset`` (the reset is the epoch second
  a fixed window ends) and no ``Retry-After``; the shared rate-limit middleware honours
  them.

The description is the abstract alone (what DataCite shows for the same DOI); methods and
usage notes are kept in ``extra``. ``extra`` holds: ``dryad_id`` (the dataset's number),
``version_id``, ``version_number``, ``curation_status``, ``version_changes``,
``field_of_science`` (also a keyword), ``methods``, ``usage_notes`` (plain text; their
links go to ``external_links``), ``funders``, ``locations``, ``storage_size`` (the API's
total, also the record's ``total_size_bytes`` when files have no sizes),
``related_publication_issn``, ``deleted_files`` (deleted entries the listing held) and
``files_need_auth``. Authors' e-mail addresses are not kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode, urlparse, urlsplit

import scrapy
from scrapy import signals
from scrapy.settings import BaseSettings
from twisted.python.failure import Failure

from envision_spiders.credentials import dryad_client, dryad_token_url, parse_token_answer, site_root
from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.query import term_query
from envision_spiders.textutil import checksum, dois_in, html_to_text, normalize_doi, parse_datetime, plain_text, strings, year_of

logger = logging.getLogger(__name__)

PAGE_SIZE = 100  # Dryad's largest per_page
# 240 requests a minute with a token (apis.md §3; older docs said 120: AutoThrottle and
# the 429 handling cover a lower real limit).
TOKEN_PACE = Pace(interval=0.25, windows=((240, 60.0),))
# 30 a minute anonymous. The one-in-two-seconds window restates the interval so the pace
# also holds when a crawl that expected a token goes on without one (its download slot
# was set up for the token's pace).
ANONYMOUS_PACE = Pace(interval=2.0, windows=((1, 2.0), (30, 60.0)))
# Dryad counts requests with and without a token apart (240 and 30 a minute): each has a
# budget of its own (see RateLimitMiddleware), created with the pace of its kind. The
# token request has one too, outside both.
TOKEN_BUDGET = "dryad-oauth"
ANONYMOUS_SUFFIX = "#anonymous"
RENEWED = "dryad_token_renewed"  # meta: how often a request was refused with the token then current
RESENT = "dryad_resent"  # meta: how often a refused request was sent again, for whatever reason
MAX_RESENDS = 2  # refusals with the current token: after that the request, not the token, is refused
# refusals with a token renewed since (the request was in flight when it expired) are nobody's
# fault and cost no token, but a request cannot go round for ever
MAX_STALE_RESENDS = 8
# what one journey of a request leaves in its meta; a request sent again starts afresh
SPENT_META = ("download_latency", "download_slot", "retry_times", "ratelimit_retries", "first_attempt_at",
              "retry_not_before", "redirect_times", "redirect_ttl", "redirect_urls", "redirect_reasons")


# ------------------------------------------------------------------ requests
def build_query(term: str) -> str:
    """Every word of a term required, each an exact phrase (Lucene operators inert):
    ``OCT-A retina`` -> ``"OCT-A" "retina"`` (Dryad ANDs the parts of ``q``)."""
    return term_query(term, joiner=" ")  # Dryad ANDs the words of q


def since_param(since: datetime | None) -> str | None:
    """``modifiedSince`` wants ISO 8601 in UTC with a ``Z`` (400 otherwise)."""
    return since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if since else None


def dataset_path(identifier: str) -> str:
    """``doi:10.5061/dryad.x`` -> ``datasets/doi%3A10.5061%2Fdryad.x`` (``:`` and ``/``
    encoded too, as the API requires)."""
    return "datasets/" + quote(identifier.strip(), safe="")


# ------------------------------------------------------------------ HAL
def embedded(page: Any, rel: str) -> list:
    """``page["_embedded"][rel]``; [] when the page holds none, TypeError when the
    answer is not a HAL page (a malformed answer is retried, see BadResponseMiddleware)."""
    if not isinstance(page, dict):
        raise TypeError(f"expected a HAL object, got {type(page).__name__}")
    found = (page.get("_embedded") or {}).get(rel, [])
    if not isinstance(found, list):
        raise TypeError(f"_embedded[{rel!r}] is {type(found).__name__}, not a list")
    return found


def link(obj: Any, rel: str) -> str | None:
    """``obj["_links"][rel]["href"]`` or None."""
    links = obj.get("_links") if isinstance(obj, dict) else None
    target = links.get(rel) if isinstance(links, dict) else None
    href = target.get("href") if isinstance(target, dict) else None
    return href.strip() if isinstance(href, str) and href.strip() else None


def trailing_id(href: str | None, collection: str) -> int | None:
    """The number ending a ``/{collection}/{n}`` link path: ``/api/v2/versions/93`` -> 93."""
    if not href:
        return None
    m = re.search(rf"/{collection}/(\d+)/?$", urlsplit(href).path)
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------ field mapping


def is_deleted(entry: Any) -> bool:
    return isinstance(entry, dict) and str(entry.get("status") or "").lower() == "deleted"


def map_files(entries: Iterable[Any], resolve: Callable[[str], str], download_url: Callable[[int], str]) -> list[dict[str, Any]]:
    """Files of a ``stash:files`` page (deleted ones left out). ``resolve`` makes a link
    absolute (the listing's ``response.urljoin``); ``download_url`` builds the documented
    ``/files/{id}/download`` when a file has no download link."""
    files = []
    for f in entries:
        if not isinstance(f, dict) or is_deleted(f):
            continue
        name = f.get("path")
        if not isinstance(name, str) or not name.strip():
            continue
        file_id = trailing_id(link(f, "self"), "files")
        href = link(f, "stash:download") or link(f, "stash:file-download")
        url = resolve(href) if href else (download_url(file_id) if file_id is not None else None)
        size = f.get("size")
        files.append(
            {
                "name": name,
                "size_bytes": size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
                "url": url,
                "file_id": str(file_id) if file_id is not None else None,
                "checksum": checksum(f.get("digest"), f.get("digestType")),
            }
        )
    return files


_ORCID = re.compile(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]", re.IGNORECASE)


def orcid_of(value: Any) -> str | None:
    """A bare ORCID iD from ``0000-...`` or ``https://orcid.org/0000-...``."""
    m = _ORCID.search(value) if isinstance(value, str) else None
    return m.group(0).upper() if m else None


def creators_of(authors: Any) -> list[dict[str, str]]:
    """``{name: "Family, Given", given_name, family_name, orcid, affiliation}`` per author,
    in the API's order, empty parts left out (e-mail addresses are not kept)."""
    creators = []
    for a in authors if isinstance(authors, list) else []:
        if not isinstance(a, dict):
            continue
        given, family = plain_text(a.get("firstName")), plain_text(a.get("lastName"))
        if not given and not family:
            continue
        affiliations = strings([a.get("affiliation")] + [x.get("name") for x in a.get("affiliations") or [] if isinstance(x, dict)])
        entry = {
            "name": f"{family}, {given}" if family and given else family or given,
            "given_name": given,
            "family_name": family,
            "orcid": orcid_of(a.get("orcid")),
            "affiliation": "; ".join(affiliations),
        }
        creators.append({k: v for k, v in entry.items() if v})
    return creators


_SPDX_URL = re.compile(r"^https?://spdx\.org/licenses/([A-Za-z0-9.+-]+?)(?:\.html|\.json)?/?(?:#.*)?$", re.IGNORECASE)


def license_of(value: Any) -> str | None:
    """The SPDX id of Dryad's license URL (``https://spdx.org/licenses/CC0-1.0.html`` ->
    ``CC0-1.0``); any other license string is kept as given."""
    if not isinstance(value, str) or not value.strip():
        return None
    m = _SPDX_URL.match(value.strip())
    return m.group(1) if m else value.strip()


def access_of(record: dict) -> str | None:
    status = str(record.get("curationStatus") or "").lower()
    visibility = str(record.get("visibility") or "").lower()
    if "embargo" in status:
        return "embargoed"
    if visibility == "restricted":
        return "restricted"
    if status == "published" or visibility == "public":
        return "open"
    return None


def date_of(value: Any) -> str | None:
    """A date the API sent (``2025-03-28``), kept as given when it parses."""
    return value.strip() if isinstance(value, str) and parse_datetime(value) else None


def modified_of(record: dict) -> str | None:
    """The record's modified day: ``lastModificationDate``; answers of the 2020 shape have
    none, and their ``publicationDate`` stands in (a full run refreshes them)."""
    return date_of(record.get("lastModificationDate")) or date_of(record.get("publicationDate"))


def related_of(works: Any, own_doi: str | None) -> tuple[list[dict[str, str]], list[str], list[str]]:
    """``relatedWorks`` as related identifiers, the DOIs among them (not the record's
    own) and the web links that are not DOIs."""
    related = []
    for w in works if isinstance(works, list) else []:
        if isinstance(w, dict) and isinstance(w.get("identifier"), str) and w["identifier"].strip():
            related.append(
                {
                    "identifier": w["identifier"].strip(),
                    "relation": str(w.get("relationship") or ""),
                    "scheme": str(w.get("identifierType") or ""),
                }
            )
    related_dois = [d for d in dois_in(r["identifier"] for r in related) if d != own_doi]
    links = [
        r["identifier"] for r in related
        if r["identifier"].lower().startswith(("http://", "https://")) and not normalize_doi(r["identifier"])
    ]
    return related, related_dois, links


def funders_of(funders: Any) -> list[dict[str, str]]:
    out = []
    for f in funders if isinstance(funders, list) else []:
        if isinstance(f, dict):
            entry = {
                "name": plain_text(f.get("organization")),
                "identifier": plain_text(f.get("identifier")),
                "award_number": plain_text(f.get("awardNumber")),
            }
            if any(entry.values()):
                out.append({k: v for k, v in entry.items() if v})
    return out


def map_dataset(record: dict, site: str) -> dict[str, Any]:
    """DatasetItem fields of a dataset (a search hit) or version record, files aside."""
    identifier = record.get("identifier")
    doi = normalize_doi(identifier)
    description, links = html_to_text(record.get("abstract"))
    methods, method_links = html_to_text(record.get("methods"))
    usage, usage_links = html_to_text(record.get("usageNotes"))
    related, related_dois, related_links = related_of(record.get("relatedWorks"), doi)
    keywords = strings(record.get("keywords"))
    field = plain_text(record.get("fieldOfScience"))
    if field and field not in keywords:
        keywords.append(field)
    size = record.get("storageSize", record.get("storage_size"))
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    published, modified = date_of(record.get("publicationDate")), date_of(record.get("lastModificationDate"))
    places = strings([p.get("place") for p in record.get("locations") or [] if isinstance(p, dict)])
    issn = record.get("relatedPublicationISSN")
    extra = {
        "dryad_id": record.get("id") if isinstance(record.get("id"), int) else None,
        "version_number": record.get("versionNumber") if isinstance(record.get("versionNumber"), int) else None,
        "curation_status": plain_text(record.get("curationStatus")),
        "version_changes": plain_text(record.get("versionChanges")),
        "field_of_science": field,
        "methods": methods,
        "usage_notes": usage,
        "funders": funders_of(record.get("funders")),
        "locations": places,
        "storage_size": size,
        "related_publication_issn": issn if isinstance(issn, str) and issn else None,
    }
    return {
        "doi": doi,
        "url": f"{site}/dataset/{identifier.strip()}" if doi else None,
        "title": plain_text(record.get("title")),
        "description": description,
        "keywords": keywords,
        "creators": creators_of(record.get("authors")),
        "publication_year": year_of(published),
        "dates": {k: v for k, v in (("published", published), ("modified", modified)) if v},
        "license": license_of(record.get("license")),
        "access_type": access_of(record),
        "resource_type": "dataset",
        "related_identifiers": related,
        "related_dois": related_dois,
        "external_links": list(dict.fromkeys(links + method_links + usage_links + related_links)),
        "total_size_bytes": size,
        "extra": {k: v for k, v in extra.items() if v not in (None, "", [])},
    }


class DryadSpider(SourceSpider):
    name = "dryad"
    api_setting = "DRYAD_API_URL"
    pace = ANONYMOUS_PACE
    # File downloads (archive peeks too) have their own limit, about 100 an hour on a
    # fixed clock hour whatever the token (apis.md §3)
    extra_budgets = {"dryad-downloads": Pace(interval=0.0, windows=((100, 3600.0),))}
    files_budget = "dryad-downloads"

    @classmethod
    def pace_for(cls, settings: BaseSettings) -> Pace:
        # 240 requests a minute with an API account, 30 without (apis.md §3)
        return TOKEN_PACE if dryad_client() else ANONYMOUS_PACE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._credentials = dryad_client()
        self._token: str | None = None
        self._token_worked = False  # the API has accepted the current token at least once
        self._token_lock: asyncio.Lock | None = None
        self._hits_per_term: dict[str, int] = {}
        self._settled_before: Any = ...  # the day of the last successful run, looked up once
        self._told_anonymous_401 = False

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> DryadSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.site_root = site_root(spider.api_root)
        spider.token_url = (crawler.settings.get("DRYAD_TOKEN_URL") or "").strip() or dryad_token_url(spider.api_root)
        spider.page_size = min(PAGE_SIZE, spider.max_per_query) if spider.max_per_query else PAGE_SIZE
        spider.budget_keys = {spider.api_host, spider.api_host + ANONYMOUS_SUFFIX}
        crawler.signals.connect(spider.note_token_accepted, signal=signals.response_received)
        return spider

    # ------------------------------------------------------------------ credentials
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def note_token_accepted(self, response, request) -> None:
        """An answer other than 401 to a request sent with the current token: that token
        works (so a later refusal means it expired, not that the account is refused)."""
        if (self._token and response.status != 401
                and request.headers.get("Authorization") == f"Bearer {self._token}".encode()):
            self._token_worked = True

    def files_readable(self) -> bool:
        # Dryad serves data files only to authenticated clients (apis.md §3)
        return bool(self._token)

    @property
    def budget_key(self) -> str:
        return self.api_host if self._token else self.api_host + ANONYMOUS_SUFFIX

    def api_request(self, url: str, callback: Callable, **kwargs: Any) -> scrapy.Request:
        """Requests to the API share the budget of their kind and leave with the token
        current when they are sent (FreshCredentialsMiddleware), not the one current
        when they were made."""
        request = super().api_request(url, callback, **kwargs)
        if urlparse(url).hostname == self.api_host:
            request.meta["budget"] = self.budget_key
            request.meta["fresh_credentials"] = True
        return request

    @property
    def token_lock(self) -> asyncio.Lock:
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        return self._token_lock

    async def start(self):
        if self._credentials:
            async with self.token_lock:
                await self.fetch_token()
        elif os.environ.get("DRYAD_CLIENT_ID", "").strip() or os.environ.get("DRYAD_CLIENT_SECRET", "").strip():
            logger.warning("dryad: only one of DRYAD_CLIENT_ID and DRYAD_CLIENT_SECRET is set; both are needed for a token")
        if not self._token:
            logger.warning(
                "dryad: crawling without an OAuth token (set DRYAD_CLIENT_ID and DRYAD_CLIENT_SECRET for one): "
                "30 API requests a minute instead of 240, and Dryad refuses anonymous file downloads, so its "
                "archives are not peeked (records carry extra.files_need_auth)"
            )
        async for request in super().start():
            yield request

    async def fetch_token(self) -> bool:
        """Exchange the client credentials for a bearer token (client-credentials grant).
        The request bypasses the spider (no errback, never recorded as a failure: its
        body holds the secret) and never follows a redirect with the secret."""
        assert self._credentials is not None
        client_id, secret = self._credentials
        request = scrapy.Request(
            self.token_url,
            method="POST",
            body=urlencode({"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            dont_filter=True,
            meta={"budget": TOKEN_BUDGET, "dont_redirect": True},
        )
        stats = self.crawler.stats
        try:
            response = await self.crawler.engine.download_async(request)
        except Exception as exc:  # connection errors once the retries are spent, IgnoreRequest
            token, why = None, f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            token, _expires, why = parse_token_answer(response.status, response.body)
        if token is None:
            self._token = None
            self.pace = ANONYMOUS_PACE
            stats.inc_value("envision/dryad/token_failed")
            logger.error(
                "dryad: no OAuth token from %s: %s; check DRYAD_CLIENT_ID, DRYAD_CLIENT_SECRET (and DRYAD_TOKEN_URL); "
                "going on without one",
                self.token_url, why,
            )
            return False
        self._token = token
        self._token_worked = False
        self.pace = TOKEN_PACE
        stats.inc_value("envision/dryad/token_fetched")
        return True

    async def credentials_ready(self) -> None:
        """Returns once no token renewal is in progress (FreshCredentialsMiddleware
        holds API requests here, so none leaves with a token about to be replaced)."""
        if self._credentials:
            async with self.token_lock:
                pass

    async def on_request_failed(self, failure: Failure):
        """A 401 from the API is about the token, not the request: renew the token (once
        for all the requests it failed) and send the request again. A 401 that stays is
        kept for the next run, like any failure that is not the request's fault."""
        request = failure.request
        response = getattr(failure.value, "response", None)
        self.remember_terms(request)
        if response is None or response.status != 401:
            super().on_request_failed(failure)
            return
        again = await self.with_new_token(request)
        if again is not None:
            yield again
            return
        self.crawler.stats.inc_value("envision/http_error/401")
        self.state.record_failure(request, "HTTP 401 (authentication refused)")

    async def with_new_token(self, request: scrapy.Request) -> scrapy.Request | None:
        """The refused request to send again, or None.

        * refused with the current token: renew it, unless the request was already sent
          again with a renewed token that the API has not accepted once, which means it
          refuses the tokens these credentials get: then go on without a token (a renewed
          token that worked for other requests and was then refused has expired in turn);
        * refused with an older token (renewed since): send it again as it is, without
          counting it against the request (up to MAX_STALE_RESENDS times);
        * refused without a token while none can be had: None.
        A request refused MAX_RESENDS times with the token then current is not sent again."""
        tries = request.meta.get(RENEWED, 0)
        resent = request.meta.get(RESENT, 0)
        if urlparse(request.url).hostname != self.api_host or tries >= MAX_RESENDS or resent >= MAX_STALE_RESENDS:
            return None
        if not self._credentials:
            if not self._told_anonymous_401:
                self._told_anonymous_401 = True
                logger.error(
                    "dryad: %s answered 401 to an anonymous request: set DRYAD_CLIENT_ID and DRYAD_CLIENT_SECRET",
                    request.url,
                )
            return None
        sent = request.headers.get("Authorization")
        async with self.token_lock:
            refused_current = bool(self._token) and f"Bearer {self._token}".encode() == sent
            if refused_current:
                if tries and not self._token_worked:
                    self.crawler.stats.inc_value("envision/dryad/token_refused")
                    logger.error(
                        "dryad: the API refuses even a new OAuth token for %s; going on without a token "
                        "(check the API account of DRYAD_CLIENT_ID)",
                        request.url,
                    )
                    self._token = None
                    self.pace = ANONYMOUS_PACE
                else:
                    logger.info("dryad: the API refused the OAuth token (expired?); asking for a new one")
                    if await self.fetch_token():
                        self.crawler.stats.inc_value("envision/dryad/token_renewed")
            if not self._token and sent is None:
                return None
        headers = request.headers.copy()
        headers.pop("Authorization", None)
        headers.update(self.auth_headers())
        meta = {k: v for k, v in request.meta.items() if k not in SPENT_META}
        meta.update({RENEWED: tries + int(refused_current), RESENT: resent + 1, "budget": self.budget_key})
        # ahead of the queue: sent soon, with the token it was renewed for
        return request.replace(headers=headers, dont_filter=True, meta=meta, priority=request.priority + 10)

    def remember_terms(self, request: scrapy.Request) -> None:
        """A files listing that fails is retried next run, before any search: it keeps
        every term that found its record so far."""
        hit = request.cb_kwargs.get("hit")
        if isinstance(hit, dict):
            doi = normalize_doi(hit.get("identifier"))
            if doi:
                request.cb_kwargs["terms"] = self.terms_for(doi)

    # ------------------------------------------------------------------ incremental
    def is_unchanged(self, source_id: str, source_modified: Any) -> bool:
        """Dryad's modified date is a day: a record saved on the day it changed may have
        changed again later that day, so only dates before the day of the last
        successful run can prove a record unchanged."""
        day = parse_datetime(source_modified)
        if self._settled_before is ...:
            last = self.state.last_success(self.terms_sha)
            self._settled_before = last.date() if last else None
        if day is not None and self._settled_before is not None and day.date() >= self._settled_before:
            return False
        return super().is_unchanged(source_id, source_modified)

    # ------------------------------------------------------------------ searching
    async def searches(self):
        for term in self.terms:
            yield self.search_request(term)

    def search_request(self, term: str) -> scrapy.Request:
        params = {"q": build_query(term), "per_page": self.page_size, "modifiedSince": since_param(self.since)}
        return self.api_request(self.api_url("search", params), self.parse_search, cb_kwargs={"term": term, "page": 1})

    def parse_search(self, response, term: str, page: int):
        data = response.json()
        hits = embedded(data, "stash:datasets")
        if page == 1:
            self.crawler.stats.inc_value("envision/terms_searched")
        self.count_hits(len(hits))
        yield from self.each_record(hits, lambda hit: self.handle_hit(hit, term))
        seen = self._hits_per_term[term] = self._hits_per_term.get(term, 0) + len(hits)
        if self.max_per_query and seen >= self.max_per_query:
            return
        following = self.next_page(response, data) if hits else None
        if following:
            yield self.api_request(following, self.parse_search, cb_kwargs={"term": term, "page": page + 1})
            return
        total = data.get("total")
        if isinstance(total, int) and seen < total:
            self.crawler.stats.inc_value("envision/dryad/paging_ended_early")
            logger.warning("dryad: term %r: the API counts %d hits but its pages held %d", term, total, seen)

    def next_page(self, response, data: dict) -> str | None:
        href = link(data, "next")
        if not href:
            return None
        url = response.urljoin(href)
        if url == response.url:
            self.crawler.stats.inc_value("envision/dryad/self_link_loop")
            logger.error("dryad: %s names itself as the next page; paging stopped", response.url)
            return None
        return url

    def handle_hit(self, hit: dict, term: str | None):
        identifier = hit["identifier"]
        doi = normalize_doi(identifier)
        if not doi:
            raise ValueError(f"identifier {identifier!r} is not a DOI")
        if not isinstance(hit.get("_links"), dict):
            # "Identifier cannot be viewed ...": a stub without metadata or versions
            self.crawler.stats.inc_value("envision/dryad/not_viewable")
            logger.info("dryad: %s cannot be viewed (%s); skipped", identifier, str(hit.get("message") or "")[:120])
            return
        if not self.first_sighting(doi, term):
            if hit_term := self.term_hit(doi, term):
                yield hit_term
            return
        if self.is_unchanged(doi, modified_of(hit)):
            if hit_term := self.term_hit(doi, term):
                yield hit_term
            return
        version_id = trailing_id(link(hit, "stash:version"), "versions")
        if version_id is None:
            self.crawler.stats.inc_value("envision/dryad/no_version")
            logger.warning("dryad: %s names no latest version (_links.stash:version); saved without files", identifier)
            yield self.record_item(hit, [], None)
            return
        yield self.files_request(
            self.api_url(f"versions/{version_id}/files", {"per_page": PAGE_SIZE}),
            hit=hit, version_id=version_id, files=[], deleted=0, terms=self.terms_for(doi),
        )

    def files_request(self, url: str, **cb_kwargs: Any) -> scrapy.Request:
        # ahead of further search pages, so a record in progress is finished and saved first
        return self.api_request(url, self.parse_files, cb_kwargs=cb_kwargs, priority=1)

    def parse_files(self, response, hit: dict, version_id: int, files: list, deleted: int, terms: list | None = None):
        data = response.json()
        entries = embedded(data, "stash:files")
        doi = normalize_doi(hit["identifier"])
        for term in terms or []:  # a listing retried from an earlier run
            self.first_sighting(doi, term)
        page_files = map_files(entries, response.urljoin, lambda file_id: self.api_url(f"files/{file_id}/download"))
        page_deleted = sum(1 for e in entries if is_deleted(e))
        unusable = len(entries) - len(page_files) - page_deleted
        if unusable:
            self.crawler.stats.inc_value("envision/bad_record", unusable)
            logger.error("dryad: %s: %d file entries without a name on %s; left out", doi, unusable, response.url)
        files = files + page_files
        deleted += page_deleted
        following = self.next_page(response, data) if entries else None
        if following:
            yield self.files_request(following, hit=hit, version_id=version_id, files=files, deleted=deleted, terms=terms)
            return
        if deleted:
            self.crawler.stats.inc_value("envision/dryad/deleted_files_skipped", deleted)
        yield self.record_item(hit, files, version_id, deleted)

    # ------------------------------------------------------------------ mapping
    def record_item(self, hit: dict, files: list[dict], version_id: int | None, deleted: int = 0):
        fields = map_dataset(hit, self.site_root)
        doi = fields["doi"]
        extra = fields.pop("extra")
        extra.update({k: v for k, v in (("version_id", version_id), ("deleted_files", deleted)) if v})
        if not self._token:
            extra["files_need_auth"] = True
        return self.new_item(
            doi,
            source_modified=modified_of(hit),
            api_url=self.api_url(dataset_path(hit["identifier"])),
            files=files,
            extra=extra,
            **fields,
        )
