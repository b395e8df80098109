"""Rendered landing pages: JSON-LD parsing on static HTML, which records are rendered,
the add-on that enables scrapy-playwright, and crawls that render pages of the local
server (whose JSON-LD only JavaScript builds) in a real headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest
from itemadapter import ItemAdapter
from scrapy.settings import Settings

from envision_spiders.items import DatasetItem
from localapi.core import add_page
from envision_spiders.middlewares.landingpages import (
    HANDLER,
    LandingPageMiddleware,
    LandingPagesAddon,
    chromium_missing,
    dataset_fields,
    fill,
)

from tests.conftest import ROOT, crawl_env, last_summary, saved_records

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

DATASET = {
    "@context": "https://schema.org/",
    "@type": "Dataset",
    "name": "Retinal OCT volumes",
    "description": "<p>OCT volumes of 500 eyes acquired with a <b>Spectralis</b>; see "
                   "<a href=\"https://example.org/protocol\">the protocol</a>.</p>",
    "keywords": ["OCT", "retina", "fundus"],
    "license": {"@type": "CreativeWork", "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
    "distribution": [
        {"@type": "DataDownload", "contentUrl": "https://example.org/oct.zip", "encodingFormat": "application/zip"},
        {"@type": "DataDownload", "url": "https://example.org/labels.csv"},
        {"@type": "DataDownload", "contentUrl": "ftp://example.org/old.zip"},
    ],
}


def page(*blocks: str) -> str:
    scripts = "".join(f'<script type="application/ld+json">{b}</script>' for b in blocks)
    return f"<html><head>{scripts}</head><body></body></html>"


# ------------------------------------------------------------------ parsing static HTML
def test_dataset_fields_from_static_json_ld():
    found = dataset_fields(page(json.dumps(DATASET)), "https://example.org/ds/1")
    assert found == {
        "description": "OCT volumes of 500 eyes acquired with a Spectralis; see the protocol.",
        "keywords": ["OCT", "retina", "fundus"],
        "license": "https://creativecommons.org/licenses/by/4.0/",
        "links": ["https://example.org/oct.zip", "https://example.org/labels.csv"],
        "description_links": ["https://example.org/protocol"],
    }


def test_dataset_found_in_graphs_lists_and_type_lists_past_broken_blocks():
    graph = {"@context": "https://schema.org", "@graph": [
        {"@type": "Organization", "name": "Kaggle"},
        {"@type": ["CreativeWork", "schema:Dataset"], "description": "Fundus photos", "keywords": "fundus, DR,  grading",
         "license": "https://spdx.org/licenses/CC0-1.0", "distribution": {"contentUrl": "https://k.example/d.zip"}},
    ]}
    html = page("{ this is not json", "<!-- " + json.dumps({"@type": "WebPage"}) + " -->", json.dumps(graph))
    found = dataset_fields(html, "https://k.example/ds")
    assert found["description"] == "Fundus photos"
    assert found["keywords"] == ["fundus", "DR", "grading"]
    assert found["license"] == "https://spdx.org/licenses/CC0-1.0"
    assert found["links"] == ["https://k.example/d.zip"]
    keywords_as_terms = {"@type": "Dataset", "keywords": [{"@type": "DefinedTerm", "name": "OCT"}, "eye"]}
    assert dataset_fields(page(json.dumps([keywords_as_terms])))["keywords"] == ["OCT", "eye"]


def test_pages_without_a_dataset():
    assert dataset_fields(page(json.dumps({"@type": "Organization", "name": "x"}))) is None
    assert dataset_fields("<html><body>no metadata</body></html>") is None
    assert dataset_fields("") is None and dataset_fields(b"\x00\xff garbage") is None


def test_fill_only_completes_what_is_missing():
    found = dataset_fields(page(json.dumps(DATASET)), "https://example.org/ds/1")
    # a flagged record (a Kaggle subtitle) gets the longer description
    item = DatasetItem(source="kaggle", source_id="a/b", url="https://x", description="OCT of eyes",
                       keywords=["oct", "eyes"], external_links=["https://example.org/oct.zip"],
                       extra={"needs_landing_page": True})
    filled = fill(ItemAdapter(item), found)
    assert filled == ["description", "keywords", "license", "external_links"]
    assert item.description.startswith("OCT volumes of 500 eyes")
    assert item.keywords == ["oct", "eyes", "retina", "fundus"]
    assert item.external_links == ["https://example.org/oct.zip", "https://example.org/labels.csv", "https://example.org/protocol"]
    # a record that has its own description and licence keeps them
    kept = DatasetItem(source="datacite", source_id="10.1/x", description="Its own words", license="cc-by-4.0")
    assert fill(ItemAdapter(kept), found) == ["keywords", "external_links"]
    assert kept.description == "Its own words" and kept.license == "cc-by-4.0"


def middleware(spider=None) -> LandingPageMiddleware:
    class Crawler:
        pass

    crawler = Crawler()
    crawler.spider = spider
    crawler.settings = Settings({"LANDING_PAGE_TIMEOUT": 5})
    return LandingPageMiddleware(crawler)


def test_which_records_are_rendered():
    mw = middleware()
    url = "https://www.kaggle.com/datasets/a/b"
    assert mw.needs(DatasetItem(source="kaggle", source_id="a/b", url=url, description="subtitle", extra={"needs_landing_page": True}))
    assert mw.needs(DatasetItem(source="datacite", source_id="1", url=url, description="  "))
    assert not mw.needs(DatasetItem(source="datacite", source_id="1", url=url, description="A description"))
    assert not mw.needs(DatasetItem(source="kaggle", source_id="1", url=url, description="", extra={"needs_landing_page": False}))
    assert not mw.needs(DatasetItem(source="datacite", source_id="1", url=None, description=""))
    assert not mw.needs(DatasetItem(source="datacite", source_id="1", url="ftp://x/y", description=""))
    assert not mw.needs({"url": url}) and not mw.needs("text")

    class Grants:
        landing_pages = False

    assert not middleware(Grants()).needs(DatasetItem(source="nei", source_id="R01EY1", url=url, description=""))
    request = mw.request(url)
    assert request.meta["playwright"] is True and request.meta["playwright_page_goto_kwargs"]["timeout"] == 5000
    assert request.dont_filter and request.meta["max_retry_times"] == 1


def test_the_addon_enables_the_browser_only_when_rendering(tmp_path):
    exe = tmp_path / "chromium"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)

    def handlers(**values):
        settings = Settings({"PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": str(exe)}, **values})
        LandingPagesAddon().update_settings(settings)
        return settings.getdict("DOWNLOAD_HANDLERS")

    assert handlers() == {}
    assert handlers(RENDER_LANDING_PAGES=True) == {"http": HANDLER, "https": HANDLER}
    assert handlers(RENDER_LANDING_PAGES=True, PLAYWRIGHT_LAUNCH_OPTIONS={"executable_path": str(tmp_path / "none")}) == {}
    assert "apt-get install -y chromium" in chromium_missing(Settings({"PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": "/no/chromium"}}))
    assert chromium_missing(Settings({"PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": str(exe)}})) is None


# ------------------------------------------------------------------ crawls
def landing_crawl(api, data_dir, records, **settings):
    env = crawl_env(api, data_dir, LANDING_TEST_RECORDS=json.dumps(records), **settings)
    return subprocess.run([sys.executable, "-m", "scrapy", "runspider", "tests/spiders/landing.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_the_local_page_builds_its_json_ld_with_javascript(api):
    path = add_page(api.state, "js", DATASET)
    with urllib.request.urlopen(api.base_url + path, timeout=10) as f:
        html = f.read()
    assert dataset_fields(html, api.base_url + path) is None, "a plain HTTP fetch sees no JSON-LD"


@pytest.mark.slow
@pytest.mark.skipif(not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
                    reason=f"no Chromium binary at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)")
def test_records_without_description_are_filled_from_rendered_pages(api, tmp_path):
    base = api.base_url
    full = add_page(api.state, "full", DATASET, delay_ms=300)
    kaggle = add_page(api.state, "kaggle", {"@context": "https://schema.org", "@graph": [
        {"@type": "Organization", "name": "Kaggle"},
        {"@type": "Dataset", "description": "Fundus photographs graded for diabetic retinopathy by three readers.",
         "keywords": "fundus, diabetic retinopathy", "license": {"name": "CC0: Public Domain"}},
    ]})
    described = add_page(api.state, "described", DATASET)
    other = add_page(api.state, "other", {"@type": "Organization", "name": "no dataset here"}, delay_ms=0)
    slow = add_page(api.state, "slow", DATASET)
    api.state.add_fault(path=r"/pages/dataset/slow", kind="slow", delay=8, count=-1)
    records = [
        {"id": "empty", "url": base + full, "description": ""},
        {"id": "flagged", "url": base + kaggle, "description": "Fundus photos", "keywords": ["fundus"],
         "extra": {"needs_landing_page": True}},
        {"id": "described", "url": base + described, "description": "Described by its API already."},
        {"id": "missing", "url": base + "/pages/dataset/gone", "description": ""},
        {"id": "other", "url": base + other, "description": ""},
        {"id": "slow", "url": base + slow, "description": ""},
    ]
    result = landing_crawl(api, tmp_path, records, RENDER_LANDING_PAGES="1", LANDING_PAGE_TIMEOUT="3")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = saved_records(tmp_path, "landingtest")
    assert set(saved) == {r["id"] for r in records}, "every record is saved, rendered or not"

    empty = saved["empty"]
    assert empty["description"] == "OCT volumes of 500 eyes acquired with a Spectralis; see the protocol."
    assert empty["keywords"] == ["OCT", "retina", "fundus"]
    assert empty["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert empty["external_links"] == ["https://example.org/oct.zip", "https://example.org/labels.csv", "https://example.org/protocol"]
    assert empty["extra"]["landing_page"] == {"url": base + full, "filled": ["description", "keywords", "license", "external_links"]}
    flagged = saved["flagged"]
    assert flagged["description"] == "Fundus photographs graded for diabetic retinopathy by three readers."
    assert flagged["keywords"] == ["fundus", "diabetic retinopathy"] and flagged["license"] == "CC0: Public Domain"
    for rid in ("described", "missing", "other", "slow"):
        rec = saved[rid]
        original = next(r for r in records if r["id"] == rid)
        assert rec["description"] == original["description"] and rec["license"] is None and "landing_page" not in rec["extra"], rid

    stats = last_summary(tmp_path, "landingtest")["stats"]
    assert stats["envision/landing/requested"] == 5
    assert stats["envision/landing/rendered"] == 2
    assert stats["envision/landing/failed"] == 2  # 404 and timeout
    assert stats["envision/landing/no_dataset"] == 1
    assert api.state.count(r"^/pages/dataset/described$") == 0, "records with a description are not rendered"
    assert api.state.count(r"^/pages/asset/") == 0, "images and styles are not fetched"
    pages = api.state.entries(r"^/pages/dataset/(full|kaggle)$")
    assert pages and all(e["user_agent"].startswith("envision-spiders/") for e in pages), "the browser identifies us"


@pytest.mark.slow
def test_no_browser_without_rendering_and_a_clear_error_without_chromium(api, tmp_path):
    path = add_page(api.state, "p", DATASET)
    records = [{"id": "empty", "url": api.base_url + path, "description": ""}]
    off = landing_crawl(api, tmp_path / "off", records)
    assert off.returncode == 0, off.stderr[-3000:]
    assert "scrapy-playwright" not in off.stderr and "Starting download handler" not in off.stderr
    assert saved_records(tmp_path / "off", "landingtest")["empty"]["description"] == ""
    assert api.state.count(r"^/pages/") == 0

    missing = landing_crawl(api, tmp_path / "missing", records, RENDER_LANDING_PAGES="1", CHROMIUM_PATH="/nonexistent/chromium")
    assert missing.returncode == 0, missing.stderr[-3000:]
    assert "RENDER_LANDING_PAGES is on but no Chromium at /nonexistent/chromium" in missing.stderr
    assert "Starting download handler" not in missing.stderr
    assert saved_records(tmp_path / "missing", "landingtest")["empty"]["description"] == ""
    assert last_summary(tmp_path / "missing", "landingtest")["stats"]["envision/landing/chromium_missing"] == 1
