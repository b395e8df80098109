"""``scrapy export-addf``: AI-READI ADDF metadata for confident EYE_IMAGING records.

::

    scrapy export-addf [--source S ...] [--threshold T] [-o DIR]

For each record passing the download gate (the results files and the queue, as
``scrapy download`` sees them) writes, under ``DIR/{source}/{safe id}/`` (default
``DATA_DIR/addf``), ``dataset_description.json`` and
``dataset_structure_description.json`` (``envision_spiders.addf``), each atomically,
plus ``addf-notes.json`` listing the required fields the source did not state
(placeholders a curator must review) and any schema violation. Exit status 1 when a
document does not validate.
"""

from __future__ import annotations

import argparse
import logging

from envision_spiders.downloads.cli import RecordsCommand

logger = logging.getLogger(__name__)


class Command(RecordsCommand):
    def syntax(self) -> str:
        return "[--source S ...] [--threshold T] [-o DIR]"

    def short_desc(self) -> str:
        return "Write AI-READI ADDF metadata (dataset_description.json, ...) for EYE_IMAGING records"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("-o", "--output", default=None, metavar="DIR", help="output folder (default: DATA_DIR/addf)")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        from pathlib import Path

        from envision_spiders.addf import build
        from envision_spiders.downloads.cli import selection
        from envision_spiders.downloads.queue import ReadOnlyQueue, read_results, results_path
        from envision_spiders.downloads.runner import collect_candidates
        from envision_spiders.storage import atomic_write_json, read_json, record_path, safe_id
        from envision_spiders.textutil import utcnow_iso

        assert self.settings is not None
        config, sources = selection(self.settings, args, opts)
        out_root = Path(opts.output) if opts.output else config.data_dir / "addf"
        rows = {}
        for source in sources:
            for row in read_results(results_path(config.results_dir, source)):
                rows[(str(row.get("source") or source), str(row["source_id"]))] = row
        written = invalid = missing = 0
        for cand in collect_candidates(config, sources, ReadOnlyQueue(config.data_dir)):
            source, sid = str(cand["source"]), str(cand["source_id"])
            record = read_json(record_path(config.data_dir, source, sid))
            if not isinstance(record, dict):
                logger.error("export-addf: %s %s has no saved record; skipped", source, sid)
                missing += 1
                continue
            manifest = read_json(config.downloads_dir / safe_id(source) / safe_id(sid) / "manifest.json")
            docs = build(record, rows.get((source, sid)) or cand, manifest if isinstance(manifest, dict) else None)
            folder = out_root / safe_id(source) / safe_id(sid)
            atomic_write_json(folder / "dataset_description.json", docs.description)
            atomic_write_json(folder / "dataset_structure_description.json", docs.structure)
            atomic_write_json(folder / "addf-notes.json", {
                "source": source, "source_id": sid, "generated_at": utcnow_iso(),
                "placeholders": docs.placeholders, "errors": docs.errors,
            })
            written += 1
            if docs.errors:
                invalid += 1
                logger.error("export-addf: %s %s does not validate: %s", source, sid, "; ".join(docs.errors[:5]))
        logger.info("export-addf: %d records written to %s (%d invalid, %d without a saved record)", written, out_root, invalid, missing)
        if invalid:
            self.exitcode = 1
