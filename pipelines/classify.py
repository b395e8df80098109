"""Label every record during the crawl, without stalling it.

* The model (``CLASSIFIER_MODEL``, see :mod:`envision_spiders.classifier.model`) starts
  loading in a worker thread when the first record arrives; requests go on meanwhile,
  and items wait for it. A crawl that yields no record (an incremental run with nothing
  new) never loads it: a load still running when such a short crawl exited failed at
  interpreter shutdown and read as a broken model. ``scrapy crawl all`` loads it once
  for its seven crawlers.
* Items are collected into batches (``CLASSIFY_BATCH_SIZE`` items, or whatever arrived
  within ``CLASSIFY_BATCH_WAIT`` seconds) and each batch is classified in that worker
  thread: the reactor keeps downloading while torch computes. One batch runs at a
  time in the process (torch already uses every core).
* ``item.classification`` gets the label, the confidence (the probability of that
  label), both probabilities, the text model's own probability, the evidence (the
  reasons, those for the label first) and whether text and files disagree, the model's id, the
  sha256 of the classified text and of the file evidence, and the time. The record's
  archive listings are on the item already (the archive-peek middleware runs before any
  pipeline). The persistence pipeline (300) writes it with the record, so this one runs
  before it (200).
* A record whose saved copy already carries this model's label for the same text and
  file evidence is not classified again: the saved classification is reused as it is.
* ``CLASSIFY_ENABLED=0`` turns the pipeline off (the original ``--scrape-only``); the
  saved labels stay, and ``scrapy classify`` labels what is missing later. When the
  model cannot load, the crawl goes on: items are saved unlabelled, the error is logged
  once, and ``envision/classify/unclassified`` counts them.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from itemadapter import ItemAdapter
from scrapy.exceptions import NotConfigured

from envision_spiders.classifier import (
    Classifier,
    ClassifierInput,
    curated_examples,
    models_dir,
    record_input,
    shared_classifier,
)
from envision_spiders.extensions.state import CrawlState

logger = logging.getLogger(__name__)

# One worker for every crawler of the process: model loading and inference.
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="envision-classify")


class ClassifyPipeline:
    def __init__(self, crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("CLASSIFY_ENABLED", True):
            raise NotConfigured("CLASSIFY_ENABLED is off")
        self.crawler = crawler
        self.stats = crawler.stats
        self.spec = settings.get("CLASSIFIER_MODEL") or ""
        self.models_root = models_dir(settings)
        self.settings = settings
        self.batch_size = max(1, settings.getint("CLASSIFY_BATCH_SIZE", 32))
        self.batch_wait = max(0.0, settings.getfloat("CLASSIFY_BATCH_WAIT", 1.0))
        self._model: asyncio.Future | None = None
        self._pending: list[tuple[ClassifierInput, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task] = set()
        self._load_failed = False

    @classmethod
    def from_crawler(cls, crawler) -> ClassifyPipeline:
        return cls(crawler)

    def _start_loading(self) -> None:
        loop = asyncio.get_running_loop()
        self._model = loop.run_in_executor(_WORKER, self._load)

    def _load(self) -> Classifier:
        # the default model learns from the curators' decisions under DATA_DIR too
        return shared_classifier(self.spec, self.models_root, curated_examples(self.settings))

    async def _classifier(self) -> Classifier | None:
        if self._model is None:  # the first record of the crawl
            self._start_loading()
        try:
            return await asyncio.shield(self._model)
        except Exception as exc:
            if not self._load_failed:
                self._load_failed = True
                self.stats.set_value("envision/classify/model_errors", 1)
                logger.error("Cannot load the classifier (CLASSIFIER_MODEL=%r): %s: %s. Records are saved "
                             "without a label; run `scrapy classify` once the model loads.",
                             self.spec, type(exc).__name__, exc)
            return None

    async def process_item(self, item):
        adapter = ItemAdapter(item)
        classifier = await self._classifier()
        if classifier is None:
            self.stats.inc_value("envision/classify/unclassified")
            return item
        inp = record_input(adapter)
        saved = CrawlState.of(self.crawler).saved(str(adapter["source_id"]))
        previous = saved.get("classification") if isinstance(saved, dict) else None
        if classifier.reusable(previous, inp):
            adapter["classification"] = previous
            self.stats.inc_value("envision/classify/cached")
            return item
        result = await self._enqueue(inp)
        if result is None:
            self.stats.inc_value("envision/classify/unclassified")
            return item
        adapter["classification"] = result
        self.stats.inc_value("envision/classify/classified")
        self.stats.inc_value(f"envision/classify/{result['label'].lower()}")
        return item

    # --------------------------------------------------------------- batching

    def _enqueue(self, inp: ClassifierInput) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((inp, future))
        if len(self._pending) >= self.batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.batch_wait, self._flush)
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._classify(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _classify(self, batch: list[tuple[ClassifierInput, asyncio.Future]]) -> None:
        inputs = [i for i, _ in batch]
        try:
            classifier = await asyncio.shield(self._model)
            results = await asyncio.get_running_loop().run_in_executor(_WORKER, classifier.classify_inputs, inputs)
            self.stats.inc_value("envision/classify/batches")
        except Exception as exc:
            logger.error("Classifying a batch of %d records failed: %s: %s; they are saved without a "
                         "label (`scrapy classify` labels them later)", len(inputs), type(exc).__name__, exc)
            self.stats.inc_value("envision/classify/errors", len(inputs))
            results = [None] * len(batch)
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)

    async def close_spider(self) -> None:
        self._flush()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
