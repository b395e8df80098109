"""A test spider for the landing-page middleware: yields the records listed (as JSON)
in the LANDING_TEST_RECORDS environment variable from a callback, as a source spider
yields its records. Run with ``scrapy runspider tests/spiders/landing.py``."""

from __future__ import annotations

import json
import os

import scrapy

from envision_spiders.spiders.base import SourceSpider


class LandingTestSpider(SourceSpider):
    name = "landingtest"
    api_setting = "ZENODO_API_URL"

    async def searches(self):
        yield scrapy.Request("data:,", callback=self.parse_records, dont_filter=True)

    def parse_records(self, response):
        for rec in json.loads(os.environ.get("LANDING_TEST_RECORDS", "[]")):
            yield self.new_item(
                rec["id"],
                source_modified=None,
                api_url=self.api_root,
                url=rec["url"],
                title=rec.get("title", ""),
                description=rec.get("description", ""),
                keywords=rec.get("keywords", []),
                extra=rec.get("extra", {}),
            )
