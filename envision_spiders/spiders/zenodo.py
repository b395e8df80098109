"""Zenodo: CERN's general-purpose research repository (InvenioRDM, legacy JSON serializer).

* API: ``GET /records?q=...&type=dataset`` (every word of a term required); search
  hits carry the whole record with its files (two shapes), except restricted ones,
  whose listing comes from ``/records/{id}/files``.
* Caveats: 25 hits a page anonymous, 100 with a token; ``page x size`` stops at 10,000,
  so a larger term is split into ``created`` date windows; 30 searches a minute, and
  every request (searches, records, file content) within 60 a minute and 2,000 an hour
  for guests (100 and 5,000 with a token); files come from the API host.
* Auth: ``ZENODO_TOKEN`` (Bearer), optional.
* Arguments: ``-a since=YYYY-MM-DD``, ``-a full=1``.
* Docs: https://developers.zenodo.org/ ; docs/sources/zenodo.md
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from envision_spiders.credentials import has_credentials
from envision_spiders.mapping.zenodo import map_files, map_record, modified_of
from envision_spiders.politeness import Pace
from envision_spiders.query import term_query
from envision_spiders.spiders.base import SourceSpider, source_id
from envision_spiders.windows import as_date, halve

RESULT_WINDOW = 10_000
PAGE_SIZE_ANONYMOUS = 25
PAGE_SIZE_TOKEN = 100
# Zenodo opened in 2013; records migrated from elsewhere keep their upload date.
EPOCH = date(2013, 1, 1)

# Zenodo publishes a budget per class of request: every request (records, file content,
# searches) counts against 60 a minute and 2,000 an hour for guests, 100 and 5,000 with
# a token; searches also against 30 a minute, guests and tokens alike. The host's pace is
# the slot delay; searches carry ``request_class`` "zenodo-search" and spend both budgets
# (see RateLimitMiddleware), one every two seconds at most.
GUEST_PACE = Pace(interval=1.0, windows=((60, 60.0), (2000, 3600.0)))
TOKEN_PACE = Pace(interval=0.6, windows=((100, 60.0), (5000, 3600.0)))
SEARCH = "zenodo-search"
SEARCH_PACE = Pace(interval=2.0, windows=((1, 2.0), (30, 60.0)))


# ------------------------------------------------------------------ queries
def build_query(term: str, since: str | None = None, created: tuple[date | None, date | None] | None = None) -> str:
    parts = [f"({term_query(term)})"]
    if created:
        start, end = created
        lo = start.isoformat() if start else "*"
        hi = end.isoformat() if end else "*"
        parts.append(f"created:[{lo} TO {hi}}}")  # start inclusive, end exclusive
    if since:
        parts.append(f"updated:[{since} TO *]")
    return " AND ".join(parts)


def split_slice(created: tuple[date | None, date | None] | None, today: date) -> list[tuple[date | None, date | None]] | None:
    """Halve a ``created`` slice; None when it is a single day and cannot be split."""
    start, end = created or (None, None)
    return halve(start, end, floor=EPOCH, ceiling=today + timedelta(days=1), unit=timedelta(days=1))


def total_of(hits: dict) -> int:
    total = hits.get("total", 0)
    if isinstance(total, dict):  # Elasticsearch 7 shape {"value": n, "relation": "eq"}
        total = total.get("value", 0)
    return int(total or 0)


def content_url(api_root: str, record_id: str, key: str) -> str:
    """A file's download URL, from the API root (keys hold spaces and brackets)."""
    return f"{api_root.rstrip('/')}/records/{record_id}/files/{quote(key, safe='/')}/content"


class ZenodoSpider(SourceSpider):
    name = "zenodo"
    api_setting = "ZENODO_API_URL"
    pace = GUEST_PACE
    extra_budgets = {SEARCH: SEARCH_PACE}

    @classmethod
    def pace_for(cls, settings) -> Pace:
        return TOKEN_PACE if has_credentials("zenodo") else cls.pace

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> ZenodoSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.page_size = PAGE_SIZE_TOKEN if spider.credentials.configured else PAGE_SIZE_ANONYMOUS
        return spider

    @property
    def web_root(self) -> str:
        root = self.api_root
        return root[: -len("/api")] if root.endswith("/api") else root

    def file_url(self, record_id: str, key: str) -> str:
        return content_url(self.api_root, record_id, key)

    # ------------------------------------------------------------------ searching
    def search_request(self, term: str, page: int = 1, created: list | None = None):
        """``created``: the [start, end) window of creation dates (ISO or None), as JSON."""
        window = tuple(as_date(d) for d in created) if created else None
        params = {
            "q": build_query(term, self.since_date(), window),
            "type": "dataset",
            "size": self.page_size,
            "page": page,
            "sort": "mostrecent",
        }
        return self.api_request(
            self.api_url("records", params),
            self.parse_search,
            cb_kwargs={"term": term, "page": page, "created": created},
            meta={"request_class": SEARCH},
        )

    def parse_search(self, response, term: str, page: int, created: list | None):
        hits = response.json()["hits"]
        total = total_of(hits)
        records = hits.get("hits") or []
        if page == 1 and total > RESULT_WINDOW:
            window = tuple(as_date(d) for d in created) if created else None
            halves = self.too_many_hits(term, total, RESULT_WINDOW, f"created {created or 'any time'}",
                                        split_slice(window, datetime.now(timezone.utc).date()))
            if halves:
                for lo, hi in halves:
                    yield self.search_request(term, 1, [lo.isoformat() if lo else None, hi.isoformat() if hi else None])
                return
        yield from self.hits_arrived(term, records)
        if records and self.wants_more(term) and page * self.page_size < min(total, RESULT_WINDOW):
            yield self.search_request(term, page + 1, created)

    def handle_hit(self, hit: dict, term: str | None):
        record_id = source_id(hit["id"])
        if not self.needs_fetching(record_id, term, modified_of(hit)):
            return
        files = map_files(hit.get("files"), lambda key: self.file_url(record_id, key))
        if files:
            yield self.record_item(hit, files)
        else:
            # restricted records list no files in the hit; the listing still has them
            yield self.api_request(self.api_url(f"records/{record_id}/files"), self.parse_files, cb_kwargs={"hit": hit})

    def parse_files(self, response, hit: dict):
        data = response.json()
        record_id = source_id(hit["id"])
        entries = data.get("entries") if isinstance(data, dict) else None
        yield self.record_item(hit, map_files(entries, lambda key: self.file_url(record_id, key)))

    def record_item(self, hit: dict, files: list[dict]):
        record_id = source_id(hit["id"])
        return self.new_item(record_id, source_modified=modified_of(hit), api_url=self.api_url(f"records/{record_id}"),
                             **map_record(hit, files, self.web_root))
