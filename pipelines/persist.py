"""One JSON file per record under ``data/metadata/{source}/``, written atomically.

* a record is written to a temporary file in the same folder, fsynced, then renamed
  over the old one: a kill or a crash leaves the old record or the new one, never a
  torn file, and nothing else on disk is touched;
* ``provenance.search_terms`` is the union of the terms that found the record this run
  (the crawl state keeps them, including those that found it while it was on its way
  here) and in earlier runs, by the one rule of
  :func:`envision_spiders.extensions.state.merged_terms`; once written, the state
  merges later terms into the file itself;
* ``provenance.found_by`` is likewise the union of the channels that found it
  (``terms``, DataCite's ``funder`` search), by
  :func:`envision_spiders.extensions.state.merged_channels`;
* ``extra`` facts a spider lists in ``accumulated_extra`` grow across runs: lists
  become the sorted union, mappings are merged (a source that reports a record
  piecemeal, like RePORTER's fiscal years searched a few at a time incrementally);
* a text the new harvest could not read (an empty title or description where the
  saved record has one: an API that sent nothing, a parser that lost it) never
  replaces the saved text: it is kept, logged and counted
  (``envision/persist/kept_saved_text``);
* new, changed and unchanged records are counted (``envision/records/*``);
* a write that fails (full disk, permissions) is logged with the path and the reason,
  counted, and the item is dropped so later steps never act on an unsaved record.
"""

from __future__ import annotations

import logging
from pathlib import Path

from itemadapter import ItemAdapter
from scrapy.exceptions import DropItem

from envision_spiders import paths
from envision_spiders.extensions.state import CrawlState, merged_channels, merged_terms, saved_channels
from envision_spiders.storage import atomic_write_json, record_path

logger = logging.getLogger(__name__)

# Fields that change on every harvest without the record changing.
_VOLATILE = ("harvested_at",)
# Fields a later step sets on the item; None means "not set this run".
KEPT_WHEN_NONE = ("classification",)
# Texts an empty new value never replaces (see keep_saved_texts).
KEPT_WHEN_EMPTY = ("title", "description")


def keep_saved_texts(existing: dict, record: dict) -> list[str]:
    """Put back the saved title and description where the new record has none (an
    empty text is a harvest that could not read it, not a dataset that lost its
    description); returns the fields kept."""
    kept = []
    for key in KEPT_WHEN_EMPTY:
        old, new = existing.get(key), record.get(key)
        if isinstance(old, str) and old.strip() and not (isinstance(new, str) and new.strip()):
            record[key] = old
            kept.append(key)
    return kept


def accumulate(old, new):
    """``new`` grown by what ``old`` had: lists -> sorted union (order kept when the
    values do not sort), dicts -> merged (new values win), anything else -> new."""
    if isinstance(old, list) and isinstance(new, list):
        merged = [*new, *(v for v in old if v not in new)]
        try:
            return sorted(merged)
        except TypeError:
            return merged
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **new}
    return new if new is not None else old


def _comparable(record: dict) -> dict:
    prov = {k: v for k, v in (record.get("provenance") or {}).items() if k not in _VOLATILE}
    return {**record, "provenance": prov}


class PersistPipeline:
    def __init__(self, crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.data_dir = paths.data_dir(crawler.settings)

    @classmethod
    def from_crawler(cls, crawler) -> PersistPipeline:
        return cls(crawler)

    def process_item(self, item):
        adapter = ItemAdapter(item)
        source, source_id = adapter["source"], str(adapter["source_id"])
        path = record_path(self.data_dir, source, source_id)
        record = adapter.asdict()
        state = CrawlState.of(self.crawler)
        existing = state.saved(source_id)
        # the terms the item was made with, then those that found it since (the crawl
        # state has them) and those of earlier runs
        terms = list((record.get("provenance") or {}).get("search_terms") or [])
        others = state.terms_found(source_id)
        if isinstance(existing, dict):
            others += (existing.get("provenance") or {}).get("search_terms") or []
        prov = record.setdefault("provenance", {})
        prov["search_terms"] = merged_terms(terms, others)
        # the channels that found it (terms, funder), this run's and earlier runs'
        prov["found_by"] = merged_channels(prov.get("found_by"), state.channels_found(source_id),
                                           saved_channels(existing.get("provenance")) if isinstance(existing, dict) else [])
        if isinstance(existing, dict):
            old_extra = existing.get("extra") if isinstance(existing.get("extra"), dict) else {}
            extra = record.get("extra") if isinstance(record.get("extra"), dict) else None
            for key in getattr(self.crawler.spider, "accumulated_extra", ()):
                if extra is not None and key in old_extra:
                    extra[key] = accumulate(old_extra[key], extra.get(key))
            # what later steps added (labels, duplicate marks) survives a refresh; an item
            # that was not classified this run (CLASSIFY_ENABLED=0, or the model failed)
            # carries classification=None and keeps the saved label
            for key, value in existing.items():
                if key not in record or (key in KEPT_WHEN_NONE and record[key] is None):
                    record[key] = value
            for key in keep_saved_texts(existing, record):
                self.stats.inc_value("envision/persist/kept_saved_text")
                logger.warning("%s %s: the new %s is empty; the saved one (%d characters) is kept",
                               source, source_id, key, len(record[key]))
        status = "new" if existing is None else ("unchanged" if _comparable(existing) == _comparable(record) else "changed")
        try:
            atomic_write_json(path, record)
        except OSError as exc:
            self.stats.inc_value("envision/persist/errors")
            logger.error("Cannot save %s record %s to %s: %s", source, source_id, path, exc)
            raise DropItem(f"not saved: {exc}") from exc
        state.record_saved(source_id, record)
        self.stats.inc_value(f"envision/records/{status}" if status != "unchanged" else "envision/records/rewritten_unchanged")
        if status == "changed":
            logger.debug("%s record %s changed", source, source_id)
        return item
