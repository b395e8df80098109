"""Credentials go only to the exact origin (scheme, host, port) of their source's API.

A token-catching server on another port of 127.0.0.1 stands where a hostile or careless
record (or redirect) could send a crawl: it must never see an ``Authorization`` header,
whether an archive peek points at it, an API answer redirects there, a download goes
there, or an https API redirects to plain http.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from scrapy import Request
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.http import Response
from scrapy.utils.misc import load_object

from localapi import LocalAPIServer
from localapi.archives import zip_bytes
from localapi.core import ServedFile
from localapi.zenodo import add_record
from envision_spiders.spiders.zenodo import ZenodoSpider

from tests.conftest import crawl_in_process, make_spider, saved_records

SECRET = "catch-me-if-you-can-7d1e"
ZIP = ServedFile.from_bytes(zip_bytes([("scans/one.png", b"x" * 10), ("two.csv", b"y")]))


@pytest.fixture
def catcher():
    """A server on another port of 127.0.0.1 that logs the scheme of every Authorization
    header it receives (``state.entries()[i]["auth"]``)."""
    server = LocalAPIServer().start()
    server.state.add_file("caught/scans.zip", ZIP)
    yield server
    server.stop()


@pytest.fixture
def https_api():
    server = LocalAPIServer(tls=True).start()
    yield server
    server.stop()


@pytest.fixture
def terms(tmp_path):
    p = tmp_path / "terms.txt"
    p.write_text("retinal OCT\n")
    return p


def _zenodo_record(server, rid: int) -> None:
    add_record(server.state, rid, title="Retinal OCT volumes", description="retinal OCT scans", keywords=["OCT"],
               created=datetime(2024, 1, 1, tzinfo=timezone.utc), files={"scans.zip": ZIP})


def _assert_caught_nothing(catcher, result, tmp_path) -> None:
    visits = catcher.state.entries(r"/storage/caught/")
    assert visits, "the crawl reached the catching server (the test shows what it means to)"
    assert all(e["auth"] is None for e in visits), f"a token went to another origin: {visits}"
    written = result.stdout + result.stderr + "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.json*"))
    assert SECRET not in written


def _crawl_a_zenodo_peek_redirected_to(catcher, server, rid: int, data, terms):
    """A Zenodo record with an archive whose download the API redirects to the catcher;
    crawled with ZENODO_TOKEN set. Returns the crawl and the record's archive listing."""
    _zenodo_record(server, rid)
    server.state.add_fault(path=rf"/zenodo/api/records/{rid}/files/.+/content", kind="redirect", count=-1,
                           location=f"{catcher.base_url}/storage/caught/scans.zip")
    result = crawl_in_process(server, "zenodo", data, SEARCH_TERMS=terms, ZENODO_TOKEN=SECRET)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(e["auth"] == "Bearer" for e in server.state.entries(r"/zenodo/api/records")), "the API itself gets the token"
    (entry,) = saved_records(data, "zenodo")[str(rid)]["archives"]
    return result, entry


@pytest.mark.slow
def test_a_peek_redirected_to_another_port_carries_no_token(api, catcher, tmp_path, terms):
    result, entry = _crawl_a_zenodo_peek_redirected_to(catcher, api, 42, tmp_path / "d", terms)
    _assert_caught_nothing(catcher, result, tmp_path)
    assert entry["listed"] and entry["member_count"] == 2, "the archive was listed from where the redirect led"


@pytest.mark.slow
def test_a_peek_of_a_file_on_another_port_carries_no_token(api, catcher, tmp_path, terms):
    from localapi.figshare import add_article, state_of

    add_article(api.state, 7_000_001, title="Retinal OCT volumes", description="<p>retinal OCT scans</p>", tags=["OCT"],
                created=datetime(2024, 1, 1, tzinfo=timezone.utc), files={"scans.zip": ZIP})
    article = state_of(api.state).articles[7_000_001]
    article["files"][0]["download_url"] = f"{catcher.base_url}/storage/caught/scans.zip"
    result = crawl_in_process(api, "figshare", tmp_path / "d", SEARCH_TERMS=terms, FIGSHARE_ACCESS_TOKEN=SECRET)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(e["auth"] == "token" for e in api.state.entries(r"/figshare/v2/")), "the API itself gets the token"
    _assert_caught_nothing(catcher, result, tmp_path)
    (entry,) = saved_records(tmp_path / "d", "figshare")["7000001"]["archives"]
    assert entry["listed"] and entry["member_count"] == 2


@pytest.mark.slow
def test_an_https_api_redirecting_to_plain_http_does_not_send_its_token_along(https_api, catcher, tmp_path, terms):
    assert catcher.base_url.startswith("http://") and https_api.base_url.startswith("https://")
    result, entry = _crawl_a_zenodo_peek_redirected_to(catcher, https_api, 43, tmp_path / "d", terms)
    _assert_caught_nothing(catcher, result, tmp_path)
    assert entry["listed"], "the archive was listed from where the redirect led"


def test_a_download_sent_to_another_port_carries_no_token(api, catcher, tmp_path):
    """Downloads go through the same rule: neither a file on another port nor the file
    an API-origin redirect points there gets the token."""
    from envision_spiders.credentials import credentials_for
    from envision_spiders.downloads.runner import DownloadConfig, DownloadRunner
    from envision_spiders.storage import atomic_write_json, record_path

    root = api.api_settings()["ZENODO_API_URL"]
    api.state.add_fault(path=r"/zenodo/api/records/9/files/away.zip/content", kind="redirect", count=-1,
                        location=f"{catcher.base_url}/storage/caught/scans.zip")
    files = [{"name": name, "url": url, "size_bytes": ZIP.size, "file_id": name, "checksum": f"md5:{ZIP.md5}"}
             for name, url in (("direct.zip", f"{catcher.base_url}/storage/caught/scans.zip"),
                               ("away.zip", f"{root}/records/9/files/away.zip/content"))]
    cfg = DownloadConfig(data_dir=tmp_path / "data", results_dir=tmp_path / "results", scale=0.0, min_free_bytes=0,
                         retries=1, timeout=20.0, api_roots={"zenodo": root})
    atomic_write_json(record_path(cfg.data_dir, "zenodo", "9"), {"source": "zenodo", "source_id": "9", "title": "t", "files": files})
    creds = credentials_for("zenodo", root, environ={"ZENODO_TOKEN": SECRET})
    assert creds.applies_to(files[1]["url"]), "the first hop is the API's own: it gets the token"

    async def go():
        async with DownloadRunner(cfg, credentials={"zenodo": creds}) as runner:
            return await runner.run([{"source": "zenodo", "source_id": "9", "label": "EYE_IMAGING", "prob_eye_imaging": 0.99}])

    (report,) = asyncio.run(go())
    assert report.counts == {"downloaded": 2}
    assert [e["auth"] for e in api.state.entries(r"/zenodo/api/records/9/")] == ["Bearer"]
    visits = catcher.state.entries(r"/storage/caught/")
    assert len(visits) == 2 and all(e["auth"] is None for e in visits)


def _credentials_middleware(crawler):
    """The project's credentials middleware, whatever its class is called, from the settings."""
    entries = crawler.settings.getdict("DOWNLOADER_MIDDLEWARES")
    (path,) = [p for p in entries if "credentials" in p]
    return load_object(path).from_crawler(crawler)


@pytest.mark.parametrize(
    "target",
    ["http://zenodo.org/api/records/1/files/scans.zip/content",  # https -> http, same host
     "https://zenodo.org:8443/api/records/1/files/scans.zip/content"],  # another port
    ids=["https-to-http", "another-port"],
)
def test_the_credentials_middleware_never_puts_a_stripped_token_back(tmp_path, monkeypatch, target):
    """Scrapy drops Authorization on a redirect that changes scheme, host or port; the
    credentials middleware (which runs again on the redirected request) must not put
    it back, for API requests and archive peeks alike."""
    monkeypatch.setenv("ZENODO_TOKEN", SECRET)
    spider = make_spider(ZenodoSpider, tmp_path, ZENODO_API_URL="https://zenodo.org/api")
    crawler = spider.crawler
    credentials = _credentials_middleware(crawler)
    redirect = RedirectMiddleware.from_crawler(crawler)
    source = "https://zenodo.org/api/records/1/files/scans.zip/content"
    api_request = spider.api_request(source, spider.parse_files)
    peek = Request(source, meta={"fresh_credentials": True})  # what the archive peek middleware sends

    async def leave(request):
        await credentials.process_request(request)
        return request

    for request in (api_request, peek):
        sent = asyncio.run(leave(request))
        assert sent.headers.get("Authorization") == f"Bearer {SECRET}".encode()
        answer = Response(source, status=302, headers={"Location": target}, request=sent)
        redirected = redirect.process_response(sent, answer)
        assert isinstance(redirected, Request) and redirected.url == target
        assert "Authorization" not in redirected.headers  # Scrapy's own rule
        assert "Authorization" not in asyncio.run(leave(redirected)).headers


def test_credentials_apply_only_to_their_exact_origin():
    from envision_spiders.credentials import credentials_for

    creds = credentials_for("zenodo", "https://zenodo.org/api", environ={"ZENODO_TOKEN": SECRET})
    assert creds.applies_to("https://zenodo.org/api/records/1")
    assert creds.applies_to("https://zenodo.org:443/api/records/1/files/a/content")
    for url in ("http://zenodo.org/api/records/1", "https://zenodo.org:8443/api/records/1", "https://zenodo.org.evil/api",
                "https://sandbox.zenodo.org/api/records/1", "ftp://zenodo.org/api", "not a url", "https://zenodo.org:x/"):
        assert not creds.applies_to(url), url
    local = credentials_for("zenodo", "http://127.0.0.1:8765/zenodo/api", environ={"ZENODO_TOKEN": SECRET})
    assert local.applies_to("http://127.0.0.1:8765/zenodo/api/records/1")
    assert not local.applies_to("http://127.0.0.1:8766/zenodo/api/records/1")
    assert not local.applies_to("http://127.0.0.1:8765/figshare/v2/articles/1"), "another source of the local server"
    assert not local.applies_to("https://127.0.0.1:8765/zenodo/api/records/1")
