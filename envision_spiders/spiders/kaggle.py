"""Kaggle: a data science community whose datasets often re-upload academic ones.

* API (legacy REST v1): ``GET /datasets/list?search=...&sortBy=updated&page=N`` (20 a
  page), then each dataset's file list ``GET /datasets/list/{owner}/{slug}`` (paged by
  token, at most ``KAGGLE_MAX_FILE_PAGES`` pages of 200).
* Caveats: pages after 500 are empty (a term still full there is cut, and the run does
  not move the incremental mark); no date filter: newest first, an incremental run
  stops at the first page older than ``since``; timestamps with up to 7 fractional
  digits; no published limit: one request a second, API and downloads alike.
* Auth: ``KAGGLE_API_TOKEN`` (Bearer), else ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, else the
  official client's ``~/.kaggle`` files; downloads and archive peeks need them.
* Arguments: ``-a since=YYYY-MM-DD``, ``-a full=1``.
* Docs: https://github.com/Kaggle/kaggle-api ; docs/sources/kaggle.md
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote

from envision_spiders.mapping.kaggle import download_url, map_dataset, map_files, split_ref, value
from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.textutil import parse_datetime

logger = logging.getLogger(__name__)

PAGE_SIZE = 20  # fixed by Kaggle
LAST_PAGE = 500  # later pages are empty (Kaggle/kaggle-cli#553, #222)
FILES_PAGE_SIZE = 200
MAX_FILE_PAGES = 50  # 10,000 files per dataset; KAGGLE_MAX_FILE_PAGES overrides
SORT_BY = "updated"


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


# ------------------------------------------------------------------ spider
class KaggleSpider(SourceSpider):
    name = "kaggle"
    api_setting = "KAGGLE_API_URL"
    # No published limit (docs/sources/kaggle.md): a conservative request a second, one at a time.
    pace = Pace(interval=1.0)

    id_fields = ("ref", "id")

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> KaggleSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.max_file_pages = max(1, crawler.settings.getint("KAGGLE_MAX_FILE_PAGES", MAX_FILE_PAGES))
        return spider

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
        yield from self.hits_arrived(term, items)
        stamps = [d for d in (parse_datetime(value(it, "lastUpdated")) for it in items) if d is not None]
        step = next_step(page, len(items), oldest=min(stamps, default=None), since=self.since,
                         seen=self.hits_of(term), max_per_query=self.max_per_query)
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
        split_ref(ref)
        if self.needs_fetching(ref, term, value(hit, "lastUpdated")):
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

    def record_item(self, hit: dict, files: list[dict], *, complete: bool = True, problem: str | None = None):
        ref = hit["ref"]
        return self.new_item(ref, source_modified=value(hit, "lastUpdated"), api_url=self.files_url(ref),
                             **map_dataset(hit, files, self.api_root, self.web_root, complete=complete, problem=problem))
