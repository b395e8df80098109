"""Kaggle (legacy REST API v1): public datasets for every search term.

What this spider knows about Kaggle (../shared/apis.md §6):

* ``GET /datasets/list?search=...&sortBy=updated&page=N`` answers a bare JSON array of
  20 datasets (the RPC API wraps the same items in ``{"datasets": [...]}``: both are
  read). Pages after 500 are empty whatever the number of matches: a term whose page
  500 is still full is truncated, which is logged and keeps the "last successful run"
  mark where it was (``hit_cap_reached``).
* There is no date filter. Every search is sorted by ``updated`` (newest first, a
  stable order while paging: a dataset updated during the crawl moves to the top, so
  it can be seen twice but never skipped, which "hottest" cannot promise); an
  incremental run stops paging a term at the first page that reaches datasets older
  than ``since``, and a dataset whose ``lastUpdated`` matches the saved record costs
  no request at all.
* The file list comes from its own endpoint, ``GET /datasets/list/{owner}/{slug}``
  (``{"datasetFiles": [...], "errorMessage": ...}``, paged with ``pageSize`` /
  ``pageToken`` / ``nextPageToken`` in newer answers), never from the view endpoint.
  Large image datasets list one entry per image: at most ``KAGGLE_MAX_FILE_PAGES``
  pages of 200 are read per dataset (``extra["files_complete"]`` says when the list
  was cut). A file's own ``url`` is ``https://www.kaggle.com/``, not a link: the
  download URL is ``{KAGGLE_API_URL}/datasets/download/{owner}/{slug}/{file}`` with
  the name percent-quoted as the official client does (``/`` too). Files have no
  checksum, and Kaggle may serve a large file zipped (tensorflow/datasets#1877).
* ``/datasets/download/{owner}/{slug}`` is a ZIP of the whole dataset whose size is
  not the total of its files: it is kept as ``extra["dataset_archive_url"]``, never
  among ``files`` and never compared with a total.
* Timestamps carry 0 to 7 fractional digits (``2019-06-03T00:56:47.1511526Z``).
* Between 2022 and 2023 the legacy list sent each nullable field three times (``title``,
  ``hasTitle``, ``titleNullable``), the plain one sometimes a placeholder (``""``,
  ``false``) [2nd: field layouts decoded by public clients]; :func:`value` reads the
  ``...Nullable`` form first.
* A list item has a one-line ``subtitle`` and no description: the subtitle stands in
  for the description and ``extra["needs_landing_page"]`` asks the landing-page
  renderer to fill the real one. Links and DOIs in the texts go to ``external_links``
  and ``related_dois``: Kaggle often re-uploads academic datasets, and these (with
  owner, slug and creator) let results mark mirrors.
* Auth: ``KAGGLE_API_TOKEN`` (Bearer), else ``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` (HTTP
  basic), else the files the official client reads in ``KAGGLE_CONFIG_DIR`` (default
  ``~/.kaggle``, or ``$XDG_CONFIG_HOME/kaggle`` on Linux when that does not exist):
  ``access_token`` (Bearer), then ``kaggle.json`` (basic). Without credentials the
  spider says so once and searches anonymously as far as Kaggle allows; downloads
  (and so archive peeking) need them. A refusal (401, or 403 on a search) is logged
  once, never with the key, and keeps the "last successful run" mark; a file list
  answering 403 leaves its dataset saved without files (``extra["files_error"]``).
* Pace: Kaggle publishes no limits ("we don't usually share the limits", apis.md §6,
  Kaggle/kaggle-cli#217 #132) and throttles downloads harder (#931): one request a
  second, one at a time, shared by API calls and downloads (same host). 429 answers
  come with ``{"code":429,...}`` or ``{"error":{"code":429,...}}`` bodies and are
  handled by the rate-limit middleware like any other 429.

Tags are the keywords, ``licenseName`` the license. ``item.extra`` keys: ``ref``,
``owner``, ``slug``, ``kaggle_id``, ``owner_name``, ``creator_name``, ``creator_ref``
(the creator's user name), ``subtitle``, ``total_bytes`` (Kaggle's total of the
files), ``current_version``,
``usability_rating``, ``download_count``, ``vote_count``, ``view_count``,
``dataset_archive_url``, ``needs_landing_page``, ``files_complete``, ``files_error``
(when the file list answered an ``errorMessage``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote

from envision_spiders.credentials import credentials_for
from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.textutil import dois_in, html_to_text, iso, parse_datetime, plain_text, strings

logger = logging.getLogger(__name__)

PAGE_SIZE = 20  # fixed by Kaggle
LAST_PAGE = 500  # later pages are empty (Kaggle/kaggle-cli#553, #222)
FILES_PAGE_SIZE = 200
MAX_FILE_PAGES = 50  # 10,000 files per dataset; KAGGLE_MAX_FILE_PAGES overrides
SORT_BY = "updated"


# ------------------------------------------------------------------ answers
def value(record: Any, key: str, kind: type | tuple[type, ...] = str) -> Any:
    """``record[key + "Nullable"]`` or ``record[key]``, whichever has the expected type
    (booleans never count as numbers or text, blank text is no text); None otherwise,
    and None when ``record["hasKey"]`` says there is no value."""
    if not isinstance(record, dict) or record.get("has" + key[:1].upper() + key[1:]) is False:
        return None
    for k in (key + "Nullable", key):
        v = record.get(k)
        if isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            continue
        if isinstance(v, kind) and not (isinstance(v, str) and not v.strip()):
            return v
    return None


def kaggle_error(data: Any) -> str | None:
    """The message of an error body (legacy ``{"code", "message"}``, new ``{"error":
    {...}}``), or None when the body is not one."""
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict):
        return f"{err.get('code', '?')} {err.get('status') or ''} {err.get('message') or ''}".strip()
    if "code" in data and "message" in data and not data.get("datasets"):
        return f"{data.get('code')} {data.get('message')}"
    return None


def page_items(data: Any) -> list:
    """The datasets of one list page, from the legacy bare array or the RPC envelope."""
    if isinstance(data, list):
        return data
    message = kaggle_error(data)
    if message:
        raise ValueError(f"Kaggle answered an error: {message}")
    if isinstance(data, dict) and isinstance(data.get("datasets"), list):
        return data["datasets"]
    raise TypeError(f"expected a list of datasets, got {type(data).__name__}")


def split_ref(ref: Any) -> tuple[str, str]:
    """``owner/slug`` -> ("owner", "slug"); ValueError for anything else."""
    if not isinstance(ref, str):
        raise ValueError(f"dataset ref {ref!r} is not a string")
    owner, sep, slug = ref.strip().partition("/")
    if not (sep and owner and slug) or "/" in slug:
        raise ValueError(f"dataset ref {ref!r} is not owner/slug")
    return owner, slug


def next_step(
    page: int,
    n_items: int,
    *,
    oldest: datetime | None = None,
    since: datetime | None = None,
    seen: int = 0,
    max_per_query: int = 0,
) -> str:
    """What to do after a list page: ``next`` page, or why paging stops: ``last_page``
    (a short page), ``older_than_since``, ``max_per_query``, or ``cap`` (page 500 was
    full: Kaggle shows nothing further)."""
    if n_items < PAGE_SIZE:
        return "last_page"
    if since is not None and oldest is not None and oldest < since:
        return "older_than_since"
    if max_per_query and seen >= max_per_query:
        return "max_per_query"
    if page >= LAST_PAGE:
        return "cap"
    return "next"


def download_url(api_root: str, owner: str, slug: str, name: str | None = None) -> str:
    """Download URL of one file, or of the whole dataset's ZIP when ``name`` is None."""
    url = f"{api_root.rstrip('/')}/datasets/download/{quote(owner, safe='')}/{quote(slug, safe='')}"
    return url if name is None else f"{url}/{quote(name, safe='')}"


def map_files(entries: Any, file_url) -> list[dict[str, Any]]:
    """``datasetFiles`` entries as item files (``size`` in some newer answers)."""
    files = []
    for f in entries or []:
        name = value(f, "name")
        if not name:
            continue
        size = value(f, "totalBytes", int)
        if size is None:
            size = value(f, "size", int)
        files.append(
            {
                "name": name,
                "size_bytes": size if size is not None and size >= 0 else None,
                "url": file_url(name),
                "file_id": value(f, "ref") or name,
                "checksum": None,  # Kaggle publishes none
            }
        )
    return files


def texts_and_links(*fragments: Any) -> tuple[list[str], list[str]]:
    """Plain texts of the fragments and the links they hold, in order, without repeats."""
    texts, links = [], []
    for fragment in fragments:
        text, found = html_to_text(fragment)
        texts.append(text)
        links.extend(found)
    return texts, list(dict.fromkeys(links))


def dois_in_text(*texts: str) -> list[str]:
    words = (w.strip(".,;:()[]<>\"'") for t in texts for w in t.split())
    return dois_in(w for w in words if "10." in w)


# ------------------------------------------------------------------ spider
class KaggleSpider(SourceSpider):
    name = "kaggle"
    api_setting = "KAGGLE_API_URL"
    # No published limit (apis.md §6): a conservative request a second, one at a time.
    pace = Pace(interval=1.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hits_per_term: dict[str, int] = {}

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> KaggleSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        # KAGGLE_API_TOKEN, KAGGLE_USERNAME + KAGGLE_KEY, or the official client's files
        spider.credentials = credentials_for("kaggle", spider.api_root)
        spider.max_file_pages = max(1, crawler.settings.getint("KAGGLE_MAX_FILE_PAGES", MAX_FILE_PAGES))
        return spider

    def auth_headers(self) -> dict[str, str]:
        return self.credentials.current_headers()

    def files_readable(self) -> bool:
        # Kaggle serves file downloads (and so Range peeks) only to authenticated clients
        return self.credentials.configured


    @property
    def web_root(self) -> str:
        root = self.api_root
        return root[: -len("/api/v1")] if root.endswith("/api/v1") else root

    # ------------------------------------------------------------------ start
    async def start(self):
        if self.credentials.configured:
            logger.info("kaggle: authenticating with %s", self.credentials.describe())
        else:
            logger.warning(
                "kaggle: no credentials (KAGGLE_API_TOKEN, KAGGLE_USERNAME + KAGGLE_KEY, or %s/kaggle.json); "
                "searching anonymously as far as Kaggle allows. File downloads and archive peeking need credentials.",
                self.credentials.origin,
            )
        async for request in super().start():
            yield request

    async def searches(self):
        for term in self.terms:
            yield self.search_request(term)

    def search_request(self, term: str, page: int = 1):
        params = {"search": term, "sortBy": SORT_BY, "page": page}
        return self.api_request(self.api_url("datasets/list", params), self.parse_search, cb_kwargs={"term": term, "page": page})

    def on_request_failed(self, failure):
        """401 anywhere, or 403 on a search: the credentials (or their absence) are
        refused; said once, counted, and the run keeps the mark where it was. 403 on a
        file list: the dataset is kept without its files. Anything else: the base."""
        response = getattr(failure.value, "response", None)
        status = response.status if response is not None else None
        request = failure.request
        if status == 403 and request.callback == self.parse_files:
            self.crawler.stats.inc_value("envision/http_error/403")
            self.crawler.stats.inc_value("envision/kaggle/files_forbidden")
            hit = request.cb_kwargs["hit"]
            logger.warning("kaggle: the file list of %s answered HTTP 403; the dataset is saved without its files", hit.get("ref"))
            return [self.record_item(hit, request.cb_kwargs.get("files") or [], complete=False, problem="HTTP 403")]
        if status not in (401, 403):
            return super().on_request_failed(failure)
        self.crawler.stats.inc_value(f"envision/http_error/{status}")
        self.crawler.stats.inc_value("envision/kaggle/refused")
        if self.credentials.configured:
            why = f"Kaggle refused {self.credentials.describe()}; check them"
        else:
            why = "Kaggle refuses this without credentials; set KAGGLE_API_TOKEN (or KAGGLE_USERNAME and KAGGLE_KEY)"
        # said once (further refusals are only counted); keeps the last-successful-run mark
        self.report_problem(f"HTTP {status}: {why}")
        return None

    # ------------------------------------------------------------------ searching
    def parse_search(self, response, term: str, page: int):
        items = page_items(response.json())
        if page == 1:
            self.crawler.stats.inc_value("envision/terms_searched")
        self.count_hits(len(items))
        yield from self.each_record(items, lambda hit: self.handle_hit(hit, term))
        seen = self._hits_per_term[term] = self._hits_per_term.get(term, 0) + len(items)
        stamps = [d for d in (parse_datetime(value(it, "lastUpdated")) for it in items) if d is not None]
        step = next_step(
            page, len(items), oldest=min(stamps, default=None), since=self.since, seen=seen, max_per_query=self.max_per_query
        )
        if step == "next":
            yield self.search_request(term, page + 1)
        elif step == "older_than_since":
            self.crawler.stats.inc_value("envision/kaggle/stopped_at_since")
        elif step == "cap":
            self.hit_cap_reached = True
            self.crawler.stats.inc_value("envision/kaggle/page_cap")
            logger.warning(
                "kaggle: term %r still has matches on page %d, the last page Kaggle serves (%d datasets); "
                "older matches are out of reach and this run will not move the last-successful-run mark",
                term, page, page * PAGE_SIZE,
            )

    def handle_hit(self, hit: dict, term: str | None):
        ref = hit["ref"]
        owner, slug = split_ref(ref)
        if not self.first_sighting(ref, term):
            if hit_term := self.term_hit(ref, term):
                yield hit_term
            return
        if self.is_unchanged(ref, value(hit, "lastUpdated")):
            if hit_term := self.term_hit(ref, term):
                yield hit_term
            return
        yield self.files_request(hit)

    # ------------------------------------------------------------------ files
    def files_url(self, ref: str, token: str | None = None) -> str:
        owner, slug = split_ref(ref)
        path = f"datasets/list/{quote(owner, safe='')}/{quote(slug, safe='')}"
        return self.api_url(path, {"pageSize": FILES_PAGE_SIZE, "pageToken": token or None})

    def files_request(self, hit: dict, token: str | None = None, files: list | None = None, page: int = 1):
        return self.api_request(
            self.files_url(hit["ref"], token),
            self.parse_files,
            cb_kwargs={"hit": hit, "files": files or [], "page": page, "token": token},
        )

    def parse_files(self, response, hit: dict, files: list | None = None, page: int = 1, token: str | None = None):
        data = response.json()
        if not isinstance(data, dict):
            raise TypeError(f"expected a file list object, got {type(data).__name__}")
        message = kaggle_error(data)
        if message:
            raise ValueError(f"Kaggle answered an error: {message}")
        ref = hit["ref"]
        owner, slug = split_ref(ref)
        entries = data.get("datasetFiles")
        if entries is None:
            entries = data.get("files")
        if entries is not None and not isinstance(entries, list):
            raise TypeError(f"datasetFiles is a {type(entries).__name__}")
        files = list(files or []) + map_files(entries, lambda name: download_url(self.api_root, owner, slug, name))
        problem = data.get("errorMessage")
        problem = problem.strip() if isinstance(problem, str) and problem.strip() else None
        if problem:
            self.crawler.stats.inc_value("envision/kaggle/files_error")
            logger.warning("kaggle: the file list of %s answered %r; saved with the %d files listed", ref, problem, len(files))
        following = data.get("nextPageToken")
        complete = True
        if isinstance(following, str) and following and entries and following != token and not problem:
            if page < self.max_file_pages:
                yield self.files_request(hit, following, files, page + 1)
                return
            complete = False
            self.crawler.stats.inc_value("envision/kaggle/files_truncated")
            logger.info("kaggle: %s lists more than %d files; kept the first %d", ref, len(files), len(files))
        yield self.record_item(hit, files, complete=complete, problem=problem)

    # ------------------------------------------------------------------ mapping
    def record_item(self, hit: dict, files: list[dict], *, complete: bool = True, problem: str | None = None):
        ref = hit["ref"]
        owner, slug = split_ref(ref)
        modified = value(hit, "lastUpdated")
        (subtitle, description), links = texts_and_links(value(hit, "subtitle"), value(hit, "description"))
        tags = [t for t in hit.get("tags") or [] if isinstance(t, dict)]
        keywords = strings([value(t, "name") for t in tags])
        creator = plain_text(value(hit, "creatorName"))
        url = value(hit, "url")
        if not (isinstance(url, str) and url.lower().startswith(("http://", "https://"))):
            url = f"{self.web_root}/datasets/{ref}"
        private = hit.get("isPrivate")
        license_name = plain_text(value(hit, "licenseName")) or None
        return self.new_item(
            ref,
            source_modified=modified,
            api_url=self.files_url(ref),
            doi=None,  # the list carries none
            url=url,
            title=plain_text(value(hit, "title")) or slug,
            description=description or subtitle,
            keywords=keywords,
            creators=[{"name": creator}] if creator else [],
            dates={"modified": iso(modified)} if iso(modified) else {},
            license=license_name,
            access_type=None if not isinstance(private, bool) else ("restricted" if private else "open"),
            resource_type="dataset",
            related_dois=dois_in_text(subtitle, description, *links),
            external_links=links,
            files=files,
            total_size_bytes=value(hit, "totalBytes", int),
            extra={
                k: v
                for k, v in (
                    ("ref", ref),
                    ("owner", value(hit, "ownerRef") or owner),
                    ("slug", slug),
                    ("kaggle_id", value(hit, "id", int)),
                    ("owner_name", plain_text(value(hit, "ownerName")) or None),
                    ("creator_name", creator or None),
                    ("creator_ref", value(hit, "creatorUrl")),
                    ("subtitle", subtitle or None),
                    ("total_bytes", value(hit, "totalBytes", int)),
                    ("current_version", value(hit, "currentVersionNumber", int)),
                    ("usability_rating", value(hit, "usabilityRating", (int, float))),
                    ("download_count", value(hit, "downloadCount", int)),
                    ("vote_count", value(hit, "voteCount", int)),
                    ("view_count", value(hit, "viewCount", int)),
                    ("dataset_archive_url", download_url(self.api_root, owner, slug)),
                    ("needs_landing_page", not description),
                    ("files_complete", complete),
                    ("files_error", problem),
                )
                if v is not None
            },
        )
