"""The shared credentials module: precedence, where credentials go, the Dryad token
(fetched once, cached, renewed once after a 401) and secrets that never show."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest

from envision_spiders.credentials import (
    Credentials,
    DryadOAuth,
    Renewal,
    StaticCredentials,
    credentials_for,
    parse_token_answer,
    site_root,
    url_under,
)

SECRET = "s3cr3t-VALUE-never-shown"


def basic(user: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


def headers_of(creds: Credentials) -> dict:
    return asyncio.run(creds.headers())


def test_site_root_and_url_under():
    assert site_root("https://datadryad.org/api/v2") == "https://datadryad.org"
    assert site_root("http://127.0.0.1:8765/dryad/api/v2/") == "http://127.0.0.1:8765/dryad"
    assert site_root("https://www.kaggle.com/api/v1") == "https://www.kaggle.com"
    assert url_under("https://datadryad.org/api/v2/files/1/download", "https://datadryad.org")
    assert url_under("http://127.0.0.1:8765/dryad/x", "http://127.0.0.1:8765/dryad")
    # another path prefix, host, port or scheme is not the site
    assert not url_under("http://127.0.0.1:8765/dryadx/x", "http://127.0.0.1:8765/dryad")
    assert not url_under("http://127.0.0.1:8765/storage/x", "http://127.0.0.1:8765/dryad")
    assert not url_under("https://datadryad.org.evil.com/x", "https://datadryad.org")
    assert not url_under("http://datadryad.org/x", "https://datadryad.org")
    assert not url_under("https://datadryad.org:8443/x", "https://datadryad.org")
    assert url_under("https://datadryad.org:443/x", "https://datadryad.org")


def test_kaggle_precedence(tmp_path):
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "file-user", "key": "file-key"}))
    env: dict[str, str] = {}
    creds = credentials_for("kaggle", "https://www.kaggle.com/api/v1", environ=env, home=home)
    assert headers_of(creds) == {"Authorization": basic("file-user", "file-key")}
    assert "kaggle.json" in creds.describe()
    env.update({"KAGGLE_USERNAME": "env-user", "KAGGLE_KEY": "env-key"})
    creds = credentials_for("kaggle", "https://www.kaggle.com/api/v1", environ=env, home=home)
    assert headers_of(creds) == {"Authorization": basic("env-user", "env-key")}
    env["KAGGLE_API_TOKEN"] = "KGAT_token"
    creds = credentials_for("kaggle", "https://www.kaggle.com/api/v1", environ=env, home=home)
    assert headers_of(creds) == {"Authorization": "Bearer KGAT_token"}
    assert creds.applies_to("https://www.kaggle.com/api/v1/datasets/download/a/b/c.zip")
    assert not creds.applies_to("https://storage.googleapis.com/kaggle-data-sets/1/2.zip")


def test_kaggle_half_set_and_broken_file_are_ignored(tmp_path, caplog):
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        creds = credentials_for("kaggle", None, environ={"KAGGLE_USERNAME": "only-user"}, home=home)
    assert not creds.configured and headers_of(creds) == {}
    assert "KAGGLE_KEY" in caplog.text and "not valid JSON" in caplog.text


@pytest.mark.parametrize(
    "source,variable,scheme",
    [("zenodo", "ZENODO_TOKEN", "Bearer"), ("figshare", "FIGSHARE_ACCESS_TOKEN", "token"), ("osf", "OSF_TOKEN", "Bearer")],
)
def test_static_tokens(source, variable, scheme):
    creds = credentials_for(source, environ={variable: SECRET})
    assert headers_of(creds) == {"Authorization": f"{scheme} {SECRET}"}
    assert SECRET not in repr(creds) and SECRET not in creds.describe()
    assert not credentials_for(source, environ={}).configured


def test_settings_give_the_api_root():
    creds = credentials_for("zenodo", settings={"ZENODO_API_URL": "http://127.0.0.1:9/zenodo/api"}, environ={"ZENODO_TOKEN": "t"})
    assert creds.applies_to("http://127.0.0.1:9/zenodo/api/records/1/files/a/content")
    assert not creds.applies_to("https://zenodo.org/api/records/1")


class FakePost:
    """A token endpoint: answers in order, counts calls, remembers the forms."""

    def __init__(self, *answers: tuple[int, dict]) -> None:
        self.answers = list(answers)
        self.forms: list[dict] = []

    async def __call__(self, url: str, form):
        self.forms.append(dict(form))
        await asyncio.sleep(0.01)  # let concurrent callers pile up
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return status, json.dumps(body).encode()


def test_dryad_token_is_fetched_once_for_concurrent_callers():
    post = FakePost((200, {"access_token": "tok1", "token_type": "Bearer", "expires_in": 36000}))
    creds = DryadOAuth("https://datadryad.org", "client", SECRET, post=post)

    async def go():
        return await asyncio.gather(*(creds.headers() for _ in range(20)))

    results = asyncio.run(go())
    assert all(h == {"Authorization": "Bearer tok1"} for h in results)
    assert creds.fetches == 1 and len(post.forms) == 1
    assert post.forms[0] == {"grant_type": "client_credentials", "client_id": "client", "client_secret": SECRET}
    assert creds.token_url == "https://datadryad.org/oauth/token"


def test_dryad_token_expiry_and_renewal_after_401():
    now = [1000.0]
    post = FakePost(
        (200, {"access_token": "tok1", "token_type": "bearer", "expires_in": 600}),
        (200, {"access_token": "tok2", "token_type": "bearer", "expires_in": 600}),
        (200, {"access_token": "tok3", "token_type": "bearer", "expires_in": 600}),
    )
    creds = DryadOAuth("https://datadryad.org", "client", SECRET, post=post, clock=lambda: now[0])

    async def go():
        first = await creds.headers()
        # 10 requests refused with tok1: one renewal for all of them
        renewed = await asyncio.gather(*(creds.renew(first) for _ in range(10)))
        after_renewal = await creds.headers()
        now[0] += 600  # past the expiry (minus the margin): a new token on next use
        after_expiry = await creds.headers()
        return first, renewed, after_renewal, after_expiry

    first, renewed, after_renewal, after_expiry = asyncio.run(go())
    assert first == {"Authorization": "Bearer tok1"}
    # the first refusal renewed the token; the other nine find it renewed already
    assert sorted(renewed) == [Renewal.AGAIN] * 9 + [Renewal.RENEWED]
    assert after_renewal == {"Authorization": "Bearer tok2"}
    assert after_expiry == {"Authorization": "Bearer tok3"}
    assert creds.fetches == 3


def test_dryad_refused_credentials_log_no_secret(caplog):
    post = FakePost((401, {"error": "invalid_client", "echo": SECRET}))
    creds = DryadOAuth("https://datadryad.org", "client", SECRET, post=post)
    with caplog.at_level(logging.DEBUG):
        assert asyncio.run(creds.headers()) == {}
        assert asyncio.run(creds.renew({})) is Renewal.NO
    assert "invalid_client" in caplog.text and "HTTP 401" in caplog.text
    assert SECRET not in caplog.text and SECRET not in repr(creds) and SECRET not in creds.last_error


def test_dryad_network_error_is_survived(caplog):
    async def post(url, form):
        raise ConnectionRefusedError(f"refused {form['client_secret']}")

    creds = DryadOAuth("https://datadryad.org", "client", SECRET, post=post)
    with caplog.at_level(logging.ERROR):
        assert asyncio.run(creds.headers()) == {}
    assert "ConnectionRefusedError" in caplog.text and SECRET not in caplog.text


def test_dryad_from_environment(caplog):
    env = {"DRYAD_CLIENT_ID": "id", "DRYAD_CLIENT_SECRET": SECRET}
    creds = credentials_for("dryad", "http://127.0.0.1:8765/dryad/api/v2", environ=env)
    assert isinstance(creds, DryadOAuth) and creds.token_url == "http://127.0.0.1:8765/dryad/oauth/token"
    env["DRYAD_TOKEN_URL"] = "http://127.0.0.1:8765/elsewhere/token"
    assert credentials_for("dryad", None, environ=env).token_url == "http://127.0.0.1:8765/elsewhere/token"
    with caplog.at_level(logging.WARNING):
        half = credentials_for("dryad", None, environ={"DRYAD_CLIENT_ID": "id"})
    assert not half.configured and "DRYAD_CLIENT_SECRET" in caplog.text


def test_parse_token_answer():
    assert parse_token_answer(200, b'{"access_token": "t", "token_type": "Bearer", "expires_in": 7200}') == ("t", 7200.0, "")
    assert parse_token_answer(200, b'{"access_token": "t"}') == ("t", None, "")
    assert parse_token_answer(200, b'{"access_token": "t", "token_type": "mac"}')[0] is None
    assert parse_token_answer(200, b"<html>")[0] is None
    assert parse_token_answer(400, b'{"error": "invalid_grant"}') == (None, None, "HTTP 400 (invalid_grant)")


def test_static_credentials_not_configured_send_nothing():
    creds = StaticCredentials("zenodo", "https://zenodo.org", "Bearer", "", "ZENODO_TOKEN")
    assert not creds.configured and not creds.applies_to("https://zenodo.org/api/x") and headers_of(creds) == {}


def test_kaggle_config_dir_and_xdg(tmp_path):
    import json as _json

    from envision_spiders.credentials import kaggle_config_dir

    home = tmp_path / "h"
    home.mkdir()
    xdg = tmp_path / "xdg" / "kaggle"
    xdg.mkdir(parents=True)
    (xdg / "kaggle.json").write_text(_json.dumps({"username": "x", "key": "y"}))
    # ~/.kaggle missing on Linux: $XDG_CONFIG_HOME/kaggle, as the official client
    assert kaggle_config_dir({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, home) == xdg
    creds = credentials_for("kaggle", "https://www.kaggle.com/api/v1", environ={"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, home=home)
    assert creds.configured and creds.user == "x"
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "kaggle.json").write_text(_json.dumps({"username": "carol", "key": "ck"}))
    creds = credentials_for("kaggle", "https://www.kaggle.com/api/v1",
                            environ={"KAGGLE_CONFIG_DIR": str(custom), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}, home=home)
    assert creds.user == "carol" and creds.origin == str(custom / "kaggle.json")
    (home / ".kaggle").mkdir()
    assert kaggle_config_dir({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, home) == home / ".kaggle"


def test_dryad_a_renewed_token_refused_before_it_ever_worked_means_the_account_is_refused(caplog):
    """The rule the crawl, the archive peeks and the downloads now share (it once lived
    only in the Dryad spider): a new token the API refuses before accepting it once is
    not renewed again; requests go on without a token."""
    post = FakePost(*[(200, {"access_token": f"tok{i}", "token_type": "bearer", "expires_in": 600}) for i in (1, 2, 3)])
    creds = DryadOAuth("https://datadryad.org", "client", SECRET, post=post)

    async def go():
        first = await creds.headers()
        assert await creds.renew(first)  # tok1 expired: tok2
        second = creds.current_headers()
        assert second == {"Authorization": "Bearer tok2"}
        # tok2 refused on a request that was already sent again with it: the account is refused
        assert await creds.renew(second, resent=True), "sent once more, without a token"
        return await creds.headers()

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(go()) == {}
    assert creds.refused and not creds.authenticated and creds.fetches == 2
    assert "refuses even a new OAuth token" in caplog.text and SECRET not in caplog.text


def test_dryad_a_renewed_token_that_worked_and_then_expired_is_renewed_again():
    post = FakePost(*[(200, {"access_token": f"tok{i}", "token_type": "bearer", "expires_in": 600}) for i in (1, 2, 3)])
    creds = DryadOAuth("https://datadryad.org", "client", SECRET, post=post)

    async def go():
        first = await creds.headers()
        assert await creds.renew(first)
        second = creds.current_headers()
        creds.accepted(second["Authorization"])  # the API took tok2 for other requests
        assert await creds.renew(second, resent=True)  # then refused it: expired too
        return await creds.headers()

    assert asyncio.run(go()) == {"Authorization": "Bearer tok3"}
    assert not creds.refused and creds.fetches == 3


def test_a_failed_token_request_is_not_repeated_on_every_request(caplog):
    post = FakePost((500, {"error": "server_error"}))
    creds = DryadOAuth("https://datadryad.org", "client", SECRET, post=post)

    async def go():
        return [await creds.headers() for _ in range(5)]

    assert asyncio.run(go()) == [{}] * 5
    assert creds.fetches == 1 and len(post.forms) == 1


def test_figshare_drops_a_refused_token_and_says_so_once(caplog):
    creds = credentials_for("figshare", "https://api.figshare.com/v2", environ={"FIGSHARE_ACCESS_TOKEN": SECRET})
    counted = []
    creds.count = counted.append
    sent = asyncio.run(creds.headers())
    with caplog.at_level(logging.ERROR):
        assert asyncio.run(creds.renew(sent)) and asyncio.run(creds.renew(sent))
    assert asyncio.run(creds.headers()) == {} and not creds.authenticated
    assert counted == ["token_refused"] and caplog.text.count("FIGSHARE_ACCESS_TOKEN") == 1 and SECRET not in caplog.text
    # static tokens of other sources are never dropped: a 401 is a problem to report
    zenodo = credentials_for("zenodo", environ={"ZENODO_TOKEN": SECRET})
    assert not asyncio.run(zenodo.renew(asyncio.run(zenodo.headers()))) and zenodo.configured


def test_every_request_refused_with_a_dropped_token_is_sent_again_without_it(tmp_path, monkeypatch):
    """Figshare: several requests leave with a token the API refuses. The first 401 drops
    it; the others, answered while the token is already gone, are sent again too
    (without it) instead of reaching the spider as failures."""
    from scrapy.http import TextResponse

    from envision_spiders.middlewares.credentials import CredentialsMiddleware
    from envision_spiders.spiders.figshare import FigshareSpider

    from tests.conftest import make_spider

    monkeypatch.setenv("FIGSHARE_ACCESS_TOKEN", SECRET)
    spider = make_spider(FigshareSpider, tmp_path, FIGSHARE_API_URL="https://api.figshare.com/v2")
    mw = CredentialsMiddleware.from_crawler(spider.crawler)

    async def go():
        sent = [spider.search_request(t) for t in ("alpha", "beta", "gamma")]
        for r in sent:
            await mw.process_request(r)
        assert all(r.headers["Authorization"] == f"token {SECRET}".encode() for r in sent)
        again = [await mw.process_response(r, TextResponse(r.url, status=401, request=r)) for r in sent]
        for r in again:
            await mw.process_request(r)
        return again

    again = asyncio.run(go())
    assert all(r.__class__.__name__ == "Request" and "Authorization" not in r.headers for r in again)
    assert spider.crawler.stats.get_value("envision/figshare/token_refused") == 1
