"""Derive the file statistics of every record the same way, whatever its source.

``file_names``, ``file_types``, ``file_count``, ``total_size_bytes`` and the imaging /
medical / archive / genomics counts come from the record's ``files`` and from the
members of its peeked ``archives``, through the project's one extension table
(``envision_spiders.filetypes``). A record whose API lists no files keeps the total
size and the file types the API declared (Figshare ``size``, DataCite ``formats``).
A record without a source id is dropped (and counted): it could never be saved or
found again.
"""

from __future__ import annotations

import logging

from itemadapter import ItemAdapter
from scrapy.exceptions import DropItem

from envision_spiders.filetypes import summarize_files

logger = logging.getLogger(__name__)


class NormalizePipeline:
    def __init__(self, crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler) -> NormalizePipeline:
        return cls(crawler)

    def process_item(self, item):
        adapter = ItemAdapter(item)
        if not adapter.get("source_id"):
            self.crawler.stats.inc_value("envision/records/dropped_without_id")
            raise DropItem(f"record from {adapter.get('source')} without a source id")
        files = adapter.get("files") or []
        stats = summarize_files(files, adapter.get("archives") or [])
        if adapter.get("total_size_bytes") is not None and stats["total_size_bytes"] is None:
            # the API gave a total (Figshare `size`, Dryad `storageSize`) without per-file sizes
            stats.pop("total_size_bytes")
        if not files and not adapter.get("archives") and adapter.get("file_types"):
            # a registry record (DataCite) declares its formats without listing files
            stats.pop("file_types")
        for key, value in stats.items():
            adapter[key] = value
        return item
