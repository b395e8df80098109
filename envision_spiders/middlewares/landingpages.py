"""Rendered landing pages: fill what a record lacks from its page's schema.org Dataset.

Some records arrive without a usable description: a Kaggle list item carries a
one-line subtitle (the Kaggle spider marks it ``extra["needs_landing_page"] = True``),
some DataCite records have none. With ``RENDER_LANDING_PAGES`` on, such a record's
landing page (``item.url``) is rendered in headless Chromium with scrapy-playwright,
and the schema.org ``Dataset`` JSON-LD the page builds (often with JavaScript, so a
plain HTTP fetch does not see it) fills the missing description, keywords, license
and distribution links (``external_links``).

* :class:`LandingPageMiddleware` is a spider middleware: for each item a spider
  yields that needs it, it awaits ``engine.download_async`` of a ``playwright``
  request, so the downloader middlewares (the source's pace, budgets, 429 handling,
  retries) apply as to any request of that spider. Only records that need it are
  rendered: an explicit ``extra["needs_landing_page"]`` decides, else an empty
  description does; a spider whose pages carry no Dataset (``landing_pages = False``)
  is never rendered. A failure (timeout, HTTP error, no Dataset on the page) is
  logged and counted (``envision/landing/*``) and leaves the record as it was.
* :class:`LandingPagesAddon` enables scrapy-playwright's download handler only when
  ``RENDER_LANDING_PAGES`` is on and Chromium exists, so normal crawls never start
  Playwright or a browser.
* :func:`dataset_fields` is the pure parsing (extruct's JSON-LD extractor, one broken
  block never hiding the others).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy import Request
from scrapy.exceptions import NotConfigured

from envision_spiders.textutil import html_to_text, strings

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
DATASET_TYPES = {"dataset", "schema:dataset", "http://schema.org/dataset", "https://schema.org/dataset"}
# Scripts (the JSON-LD may be built by them) and data requests go through; what only
# draws the page does not.
ABORTED_RESOURCES = {"image", "media", "font", "stylesheet"}
# Waits until the page holds a Dataset JSON-LD block (or gives up quietly).
HAS_DATASET_JS = """() => [...document.querySelectorAll('script[type="application/ld+json"]')]
    .some(s => /"@type"\\s*:\\s*(\\[[^\\]]*)?"(schema:|https?:\\/\\/schema\\.org\\/)?Dataset"/.test(s.textContent))"""


# ------------------------------------------------------------------ parsing
def _types(node: dict) -> set[str]:
    t = node.get("@type")
    return {str(x).strip().lower() for x in (t if isinstance(t, list) else [t]) if x}


def _nodes(data: Any):
    """Every object of a JSON-LD document: lists, ``@graph`` and nested values."""
    if isinstance(data, list):
        for x in data:
            yield from _nodes(x)
    elif isinstance(data, dict):
        yield data
        for key, value in data.items():
            if key != "@context" and isinstance(value, (list, dict)):
                yield from _nodes(value)


def jsonld_blocks(html: str | bytes, base_url: str | None = None) -> list[Any]:
    """The JSON-LD objects of a page; a block that does not parse is logged and skipped."""
    from extruct.jsonld import JsonLdExtractor
    from extruct.utils import parse_html

    if not html:
        return []
    tree = parse_html(html.encode("utf-8") if isinstance(html, str) else html, encoding="UTF-8")
    extractor = JsonLdExtractor()
    out: list[Any] = []
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            out.extend(extractor.extract_items(script, base_url=base_url))
        except ValueError as exc:
            logger.info("Skipped a JSON-LD block that does not parse on %s: %s", base_url or "a page", str(exc)[:120])
    return out


def _text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("@value") or value.get("name")
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), "")
    return html_to_text(value)[0] if isinstance(value, str) else ""


def _keywords(value: Any) -> list[str]:
    out: list[str] = []
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, dict):  # DefinedTerm
            v = v.get("name") or v.get("termCode")
        if isinstance(v, str):
            out.extend(p for p in (s.strip() for s in v.split(",")) if p)
    return strings(out)


def _license(value: Any) -> str | None:
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, dict):  # CreativeWork
            v = v.get("url") or v.get("@id") or v.get("name")
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def _links(value: Any) -> list[str]:
    out: list[str] = []
    for v in value if isinstance(value, list) else [value]:
        candidates = [v.get("contentUrl"), v.get("url")] if isinstance(v, dict) else [v]
        for c in candidates:
            if isinstance(c, str) and c.strip().lower().startswith(("http://", "https://")) and c.strip() not in out:
                out.append(c.strip())
    return out


def dataset_fields(html: str | bytes, base_url: str | None = None) -> dict[str, Any] | None:
    """description, keywords, license and distribution links of the page's first
    schema.org Dataset, or None when the page has none."""
    for node in (n for block in jsonld_blocks(html, base_url) for n in _nodes(block)):
        if not _types(node) & DATASET_TYPES:
            continue
        description = _text(node.get("description"))
        return {
            "description": description,
            "keywords": _keywords(node.get("keywords")),
            "license": _license(node.get("license")),
            "links": [u for u in _links(node.get("distribution")) if u != base_url],
            "description_links": html_to_text(node.get("description"))[1] if isinstance(node.get("description"), str) else [],
        }
    return None


def fill(adapter: ItemAdapter, found: dict[str, Any]) -> list[str]:
    """Fill what the record lacks; returns the names of the fields that changed."""
    filled = []
    current = (adapter.get("description") or "").strip()
    flagged = bool((adapter.get("extra") or {}).get("needs_landing_page"))
    if found["description"] and (not current or (flagged and len(found["description"]) > len(current))):
        adapter["description"] = found["description"]
        filled.append("description")
    keywords = list(adapter.get("keywords") or [])
    known = {k.lower() for k in keywords}
    new = [k for k in found["keywords"] if k.lower() not in known]
    if new:
        adapter["keywords"] = keywords + new
        filled.append("keywords")
    if found["license"] and not adapter.get("license"):
        adapter["license"] = found["license"]
        filled.append("license")
    links = list(adapter.get("external_links") or [])
    extra_links = [u for u in found["links"] + found["description_links"] if u not in links]
    if extra_links:
        adapter["external_links"] = links + extra_links
        filled.append("external_links")
    return filled


# ------------------------------------------------------------------ browser set-up
def chromium_missing(settings: BaseSettings) -> str | None:
    """Why Chromium cannot be launched (None when it can, or when Playwright uses
    its own browser because no ``executable_path`` is set)."""
    path = (settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS") or {}).get("executable_path")
    if not path:
        return None
    found = path if os.path.isabs(path) else shutil.which(path)
    if found and os.path.isfile(found) and os.access(found, os.X_OK):
        return None
    return f"no Chromium at {path} (CHROMIUM_PATH); install it (apt-get install -y chromium) or point CHROMIUM_PATH at it"


def abort_request(request: Any) -> bool:
    """``PLAYWRIGHT_ABORT_REQUEST``: images, media, fonts and styles are not fetched."""
    return request.resource_type in ABORTED_RESOURCES


class LandingPagesAddon:
    """Turns scrapy-playwright's download handler on only for crawls that render."""

    def update_settings(self, settings: BaseSettings) -> None:
        if not settings.getbool("RENDER_LANDING_PAGES") or chromium_missing(settings):
            return
        handlers = settings["DOWNLOAD_HANDLERS"]
        for scheme in ("http", "https"):
            handlers.set(scheme, HANDLER, priority="addon")


async def wait_for_dataset(page: Any, timeout_ms: float) -> None:
    """A page method: wait until a Dataset JSON-LD block exists, at most ``timeout_ms``;
    a page that never builds one is read as it is."""
    from playwright.async_api import Error as PlaywrightError

    try:
        await page.wait_for_function(HAS_DATASET_JS, timeout=timeout_ms)
    except PlaywrightError:  # TimeoutError is a subclass
        pass


# ------------------------------------------------------------------ the middleware
class LandingPageMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.timeout = crawler.settings.getfloat("LANDING_PAGE_TIMEOUT", 30.0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LandingPageMiddleware:
        settings = crawler.settings
        if not settings.getbool("RENDER_LANDING_PAGES"):
            raise NotConfigured("RENDER_LANDING_PAGES is off")
        why = chromium_missing(settings)
        if why:
            crawler.stats.set_value("envision/landing/chromium_missing", 1)
            logger.error("RENDER_LANDING_PAGES is on but %s: landing pages are not rendered in this crawl", why)
            raise NotConfigured(why)
        if HANDLER not in (settings.getdict("DOWNLOAD_HANDLERS") or {}).values():
            logger.error(
                "RENDER_LANDING_PAGES is on but scrapy-playwright's download handler is not enabled "
                "(ADDONS must list envision_spiders.middlewares.landingpages.LandingPagesAddon): "
                "landing pages are not rendered in this crawl"
            )
            raise NotConfigured("no playwright download handler")
        return cls(crawler)

    def needs(self, item: Any) -> bool:
        if not ItemAdapter.is_item(item):
            return False
        adapter = ItemAdapter(item)
        if "url" not in adapter.field_names() or "description" not in adapter.field_names():
            return False  # not a dataset record
        if getattr(self.crawler.spider, "landing_pages", True) is False:
            return False
        url = adapter.get("url")
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            return False
        flag = (adapter.get("extra") or {}).get("needs_landing_page")
        if flag is not None:
            return bool(flag)
        return not (adapter.get("description") or "").strip()

    async def process_spider_output(self, response: Any, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for item in result:
            if self.needs(item):
                await self.enrich(ItemAdapter(item))
            yield item

    def request(self, url: str) -> Request:
        from scrapy_playwright.page import PageMethod

        ms = self.timeout * 1000
        return Request(
            url,
            meta={
                "playwright": True,
                "playwright_page_goto_kwargs": {"wait_until": "load", "timeout": ms},
                "playwright_page_methods": [PageMethod(wait_for_dataset, ms / 2)],
                "max_retry_times": 1,
                "landing_page": True,
            },
            dont_filter=True,
        )

    async def enrich(self, adapter: ItemAdapter) -> None:
        stats = self.crawler.stats
        url = adapter["url"]
        record = f"{adapter.get('source')} record {adapter.get('source_id')}"
        stats.inc_value("envision/landing/requested")
        try:
            response = await self.crawler.engine.download_async(self.request(url))
        except Exception as exc:  # noqa: BLE001 - any failure leaves the record as it was
            stats.inc_value("envision/landing/failed")
            logger.warning("Landing page of %s not rendered (%s): %s: %s; record kept as it was",
                           record, url, type(exc).__name__, str(exc)[:200])
            return
        if response.status != 200:
            stats.inc_value("envision/landing/failed")
            logger.warning("Landing page of %s answered HTTP %d (%s); record kept as it was", record, response.status, url)
            return
        try:
            found = dataset_fields(response.body, response.url)
        except Exception as exc:  # noqa: BLE001 - hostile markup must not break the crawl
            found = None
            logger.warning("Cannot read the landing page of %s (%s): %s: %s", record, url, type(exc).__name__, exc)
        if not found:
            stats.inc_value("envision/landing/no_dataset")
            logger.info("Landing page of %s (%s) has no schema.org Dataset; record kept as it was", record, url)
            return
        filled = fill(adapter, found)
        stats.inc_value("envision/landing/rendered")
        for name in filled:
            stats.inc_value(f"envision/landing/filled/{name}")
        extra = adapter.get("extra")
        if isinstance(extra, dict):
            extra["landing_page"] = {"url": response.url, "filled": filled}
        logger.debug("Landing page of %s filled %s", record, ", ".join(filled) or "nothing")
