"""Zenodo (InvenioRDM, legacy JSON serializer): datasets for every search term.

What this spider knows about Zenodo (../shared/apis.md §1):

* ``GET /records?q=...&type=dataset&size=&page=&sort=mostrecent``; each term becomes a
  precise query, every word required (``"retinal" AND "OCT"``);
* page size 25 anonymous, 100 with ``ZENODO_TOKEN`` (sent as a Bearer header);
* ``page × size`` may not pass 10,000 (400 otherwise): a term with more hits is split
  into ``created`` date slices, halved until each fits;
* search hits carry the whole record, files included, in two shapes (2024+: ``key``,
  ``size``, ``checksum: "md5:..."``; Oct 2023: ``filename``, ``filesize``, bare checksum);
  a hit without files (restricted records) gets its listing from ``/records/{id}/files``;
* file keys hold spaces and brackets: download URLs are built from the API root with
  the key percent-quoted;
* search is limited to 30 requests a minute (guests and tokens alike), guests to 2,000
  requests an hour (tokens 5,000); file downloads come from the API host and share it.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from envision_spiders.politeness import Pace
from envision_spiders.query import term_query
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.textutil import checksum, html_to_text, iso, normalize_doi, plain_text, related_dois_and_links, strings, year_of

RESULT_WINDOW = 10_000
PAGE_SIZE_ANONYMOUS = 25
PAGE_SIZE_TOKEN = 100
# Zenodo opened in 2013; records migrated from elsewhere keep their upload date.
EPOCH = date(2013, 1, 1)


# ------------------------------------------------------------------ query building
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
    lo = start or EPOCH
    hi = end or (today + timedelta(days=1))
    if (hi - lo).days <= 1:
        return None
    mid = lo + (hi - lo) // 2
    return [(start, mid), (mid, end)]


def total_of(hits: dict) -> int:
    total = hits.get("total", 0)
    if isinstance(total, dict):  # Elasticsearch 7 shape {"value": n, "relation": "eq"}
        total = total.get("value", 0)
    return int(total or 0)


# ------------------------------------------------------------------ field mapping
def map_files(entries: Any, file_url) -> list[dict[str, Any]]:
    """Both search-hit shapes and the ``/files`` listing's ``entries``."""
    files = []
    for f in entries or []:
        if not isinstance(f, dict):
            continue
        name = f.get("key") or f.get("filename")
        if not isinstance(name, str) or not name:
            continue
        size = f.get("size", f.get("filesize"))
        files.append(
            {
                "name": name,
                "size_bytes": int(size) if isinstance(size, (int, float)) and size >= 0 else None,
                "url": file_url(name),
                "file_id": str(f.get("id") or f.get("file_id") or "") or None,
                "checksum": checksum(f.get("checksum")),
            }
        )
    return files


class ZenodoSpider(SourceSpider):
    name = "zenodo"
    api_setting = "ZENODO_API_URL"
    # 30 search requests a minute; the guest hourly limit (2,000) is looser than that.
    pace = Pace(interval=2.0, windows=((30, 60.0), (2000, 3600.0)))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token = os.environ.get("ZENODO_TOKEN", "").strip()
        self.page_size = PAGE_SIZE_TOKEN if self.token else PAGE_SIZE_ANONYMOUS
        self._hits_per_term: dict[str, int] = {}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def web_root(self) -> str:
        root = self.api_root
        return root[: -len("/api")] if root.endswith("/api") else root

    def file_url(self, record_id: str, key: str) -> str:
        return self.api_url(f"records/{record_id}/files/{quote(key, safe='/')}/content")

    # ------------------------------------------------------------------ searching
    async def searches(self):
        for term in self.terms:
            yield self.search_request(term)

    def search_request(self, term: str, page: int = 1, created: list | None = None):
        window = None
        if created:
            window = tuple(date.fromisoformat(d) if d else None for d in created)
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
        )

    def parse_search(self, response, term: str, page: int, created: list | None):
        data = response.json()
        hits = data["hits"]
        total = total_of(hits)
        records = hits.get("hits") or []
        if page == 1 and created is None:
            self.crawler.stats.inc_value("envision/terms_searched")
        if page == 1 and total > RESULT_WINDOW:
            window = tuple(date.fromisoformat(d) if d else None for d in created) if created else None
            halves = split_slice(window, datetime.now(timezone.utc).date())
            if halves:
                self.crawler.stats.inc_value("envision/zenodo/window_splits")
                self.logger.info(
                    "term %r: %d hits in %s pass the %d-result window; splitting by creation date",
                    term, total, created or "all dates", RESULT_WINDOW,
                )
                for lo, hi in halves:
                    yield self.search_request(term, 1, [lo.isoformat() if lo else None, hi.isoformat() if hi else None])
                return
            self.crawler.stats.inc_value("envision/zenodo/window_overflow")
            self.logger.warning(
                "term %r: %d hits created on one day (%s); only the first %d are reachable",
                term, total, created, RESULT_WINDOW,
            )
        self.count_hits(len(records))
        yield from self.each_record(records, lambda hit: self.handle_hit(hit, term))
        seen = self._hits_per_term[term] = self._hits_per_term.get(term, 0) + len(records)
        if self.max_per_query and seen >= self.max_per_query:
            return
        reachable = min(total, RESULT_WINDOW)
        if records and page * self.page_size < reachable:
            yield self.search_request(term, page + 1, created)

    def handle_hit(self, hit: dict, term: str | None):
        record_id = str(hit["id"])
        if not self.first_sighting(record_id, term):
            if hit_term := self.term_hit(record_id, term):
                yield hit_term
            return
        modified = hit.get("updated") or hit.get("modified")
        if self.is_unchanged(record_id, modified):
            if hit_term := self.term_hit(record_id, term):
                yield hit_term
            return
        files = map_files(hit.get("files"), lambda key: self.file_url(record_id, key))
        if files:
            yield self.record_item(hit, files)
        else:
            # restricted records list no files in the hit; the listing still has them
            yield self.api_request(
                self.api_url(f"records/{record_id}/files"),
                self.parse_files,
                cb_kwargs={"hit": hit},
            )

    def parse_files(self, response, hit: dict):
        data = response.json()
        record_id = str(hit["id"])
        entries = data.get("entries") if isinstance(data, dict) else None
        yield self.record_item(hit, map_files(entries, lambda key: self.file_url(record_id, key)))

    # ------------------------------------------------------------------ mapping
    def record_item(self, hit: dict, files: list[dict]):
        md = hit.get("metadata") or {}
        record_id = str(hit["id"])
        description, links = html_to_text(md.get("description"))
        doi = normalize_doi(md.get("doi") or hit.get("doi"))
        related = []
        for r in md.get("related_identifiers") or []:
            if isinstance(r, dict) and isinstance(r.get("identifier"), str):
                related.append(
                    {
                        "identifier": r["identifier"],
                        "relation": str(r.get("relation") or ""),
                        "scheme": str(r.get("scheme") or ""),
                        **({"resource_type": str(r["resource_type"])} if r.get("resource_type") else {}),
                    }
                )
        related_dois, external = related_dois_and_links([r["identifier"] for r in related], doi, links)
        license_ = md.get("license")
        if isinstance(license_, dict):
            license_ = license_.get("id") or license_.get("title")
        resource = md.get("resource_type") or {}
        keywords = strings(md.get("keywords"))
        for s in md.get("subjects") or []:
            if isinstance(s, dict) and isinstance(s.get("term"), str) and s["term"] not in keywords:
                keywords.append(s["term"])
        creators = []
        for c in md.get("creators") or []:
            if isinstance(c, dict) and c.get("name"):
                creators.append(
                    {k: v for k, v in (("name", c.get("name")), ("affiliation", c.get("affiliation")), ("orcid", c.get("orcid"))) if v}
                )
        links_ = hit.get("links") or {}
        modified = hit.get("updated") or hit.get("modified")
        return self.new_item(
            record_id,
            source_modified=modified,
            api_url=self.api_url(f"records/{record_id}"),
            doi=doi,
            url=links_.get("self_html") or f"{self.web_root}/records/{record_id}",
            title=plain_text(md.get("title") or hit.get("title")),
            description=description,
            keywords=keywords,
            creators=creators,
            publication_year=year_of(md.get("publication_date")),
            dates={
                k: v
                for k, v in (
                    ("created", iso(hit.get("created"))),
                    ("modified", iso(modified)),
                    ("published", md.get("publication_date") if isinstance(md.get("publication_date"), str) else None),
                )
                if v
            },
            license=license_ if isinstance(license_, str) else None,
            access_type=md.get("access_right") if isinstance(md.get("access_right"), str) else None,
            resource_type=resource.get("type") if isinstance(resource, dict) else None,
            related_identifiers=related,
            related_dois=related_dois,
            external_links=external,
            files=files,
            extra={
                k: v
                for k, v in (
                    ("conceptrecid", hit.get("conceptrecid")),
                    ("conceptdoi", normalize_doi(hit.get("conceptdoi"))),
                    ("communities", [c.get("id") for c in md.get("communities") or [] if isinstance(c, dict)]),
                    ("resource_subtype", resource.get("subtype") if isinstance(resource, dict) else None),
                    ("version", md.get("version")),
                )
                if v
            },
        )
