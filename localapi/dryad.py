"""Dryad on the local API server, under ``/dryad/api/v2`` (set DRYAD_API_URL to it).

Shapes come from the recorded responses in ``samples/dryad/`` and follow what the
dryad-app code renders:

* a dataset (a search hit, ``GET /datasets/{doi}``) is the metadata of its latest
  viewable version (``dataset_versions_2026-07.json``) after the dataset-level fields
  (``identifier``, ``id``, ``storageSize``, ``relatedPublicationISSN``) and before
  ``license``, under its ``_links``; a share of datasets is served in the 2020 shape of
  ``datasets_list_2020-06.json`` (``storage_size``; no ``lastModificationDate``,
  ``license``, ``visibility``; md5 digests); a few search hits are the stub Dryad renders
  for a dataset nobody may view (``identifier``, ``id``, ``message``);
* files follow ``version_files_2026-07.json``; some listings still hold ``deleted``
  entries, some datasets hold more than a page of files, older versions hold other files;
* paging is Dryad's (``UrlPager``): ``page`` and ``per_page`` (20 by default, at most
  100), root-relative ``_links`` (self, first, last, prev, next) that keep the other
  parameters (sorted, as Rails' ``to_query`` writes them), ``count`` and ``total``;
* ``q``: quoted phrases and words, all required, ``-word`` excluded, ``word*`` as a
  prefix; ``modifiedSince`` / ``modifiedBefore`` (ISO 8601 UTC with ``Z``, else 400) on the
  update time; dataset DOIs in paths percent-encoded (``doi%3A10.5061%2F...``, the colon
  may come unencoded);
* OAuth: ``POST /dryad/oauth/token`` (client-credentials grant; clients in
  ``DryadState.clients``) answers a bearer token; a bad, expired or revoked token is
  refused with 401 on every API path (``DryadState.token_uses`` makes tokens expire after
  that many requests); ``/files/{id}/download`` refuses anonymous clients with 401 and
  redirects others to ``/storage/dryad/...`` (Range served there);
* throttling like Dryad's rack-attack, off until a test sets ``DryadState.limits``: fixed
  windows per kind of request (``anonymous`` and ``token`` API requests, ``download``),
  answered with 429, ``RateLimit-Limit``, ``RateLimit-Remaining: 0``, ``RateLimit-Reset``
  (the epoch second the window ends) and no ``Retry-After``.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import random
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from aiohttp import web

from .core import STATE_KEY, ServedFile, ServerState, json_response
from .corpus import FUNDERS, Award, file_plan, funding_plan, generated_texts
from .payloads import make_payload
from .search import contains, tokens

SITE = "/dryad"
PREFIX = SITE + "/api/v2"
SAMPLES = Path(__file__).with_name("samples") / "dryad"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
DEFAULT_CLIENTS = {"envision-test": "envision-test-secret"}
TOKEN_KEY = web.RequestKey("dryad_token", str)  # the bearer token a request was accepted with
# DOI suffixes of new Dryad datasets use these characters (dryad.6hdr7sr8z)
_DOI_CHARS = "0123456789abcdefghjkmnpqrstvwxz"


@functools.cache
def _sample_text(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def _sample(name: str) -> dict:
    """A fresh copy of a recorded response (read from disk once)."""
    return json.loads(_sample_text(name))


@dataclass
class DryadState:
    datasets: dict[str, dict] = field(default_factory=dict)  # "doi:10.5061/dryad.x" -> dataset
    versions: dict[int, dict] = field(default_factory=dict)  # version id -> version
    files: dict[int, dict] = field(default_factory=dict)  # file id -> file entry (with its version id)
    clients: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CLIENTS))
    tokens: dict[str, dict] = field(default_factory=dict)  # token -> {"client", "uses", "expires"}
    token_uses: int | None = None  # a token is refused after this many accepted requests
    token_lifetime: int = 36000
    issued: list[str] = field(default_factory=list)  # every token handed out, in order
    refused: list[str | None] = field(default_factory=list)  # the token of every request refused with 401
    limits: dict[str, tuple[int, float]] = field(default_factory=dict)  # kind -> (limit, period seconds)
    windows: Counter = field(default_factory=Counter)  # (kind, window start) -> requests
    next_file_id: int = 3_985_000
    next_version_id: int = 355_000

    def revoke_all(self) -> None:
        self.tokens.clear()


def state_of(server: ServerState) -> DryadState:
    return server.sources.setdefault("dryad", DryadState())


def escaped(identifier: str) -> str:
    """Ruby's CGI.escape of a DOI, as Dryad writes it into paths."""
    return quote(identifier, safe="")


# ------------------------------------------------------------------ records
def version_metadata(shape: str, identifier: str, v: dict) -> dict:
    """A version's descriptive metadata in the shape of its era (keys in the recorded order)."""
    if shape == "2020":
        meta = _sample("datasets_list_2020-06.json")["_embedded"]["stash:datasets"][0]
        for key in ("_links", "identifier", "id", "storage_size"):
            meta.pop(key)
    else:
        meta = _sample("dataset_versions_2026-07.json")["_embedded"]["stash:versions"][0]
        meta.pop("_links")
        meta.update(
            {
                "versionStatus": "submitted",
                "versionChanges": "none" if v["number"] == 1 else "files_changed",
                "lastModificationDate": v["updated"].astimezone(timezone.utc).date().isoformat(),
                "visibility": "public",
                "sharingLink": f"http://datadryad.org/dataset/{identifier}",
            }
        )
        if v.get("methods"):
            meta["methods"] = v["methods"]
    meta.update(
        {
            "title": v["title"],
            "abstract": v["abstract"],
            "keywords": v["keywords"],
            "relatedWorks": v["related"],
            "versionNumber": v["number"],
            "curationStatus": v["curation"],
            "publicationDate": v["published"].date().isoformat(),
        }
    )
    funders = funders_of(shape, v.get("awards") or [])
    if funders or shape == "2026":
        meta["funders"] = funders
    else:
        meta.pop("funders", None)  # an unfunded dataset of 2020 has no funders key
    return meta


def funders_of(shape: str, awards: list[Award]) -> list[dict]:
    """``funders`` in the era's shape: 2026 ``{organization, identifierType, identifier,
    awardNumber, awardURI, awardDescription, awardTitle, order}`` (ROR ids), 2020
    ``{organization, awardNumber}``."""
    out = []
    for order, award in enumerate(awards):
        name, _, ror, _ = FUNDERS[award.funder]
        if shape == "2020":
            out.append({"organization": name, "awardNumber": award.number})
        else:
            out.append({"organization": name, "identifierType": "ror" if ror else None, "identifier": ror,
                        "awardNumber": award.number, "awardURI": None, "awardDescription": None,
                        "awardTitle": award.title, "order": order})
    return out


def hal_links(*rels: tuple[str, str]) -> dict:
    """``_links``: each relation's root-relative href under the API prefix, then the curies."""
    curies = _sample("version_files_2026-07.json")["_embedded"]["stash:files"][0]["_links"]["curies"]
    return {**{rel: {"href": PREFIX + path} for rel, path in rels}, "curies": curies}


def render_dataset(st: DryadState, ds: dict) -> dict:
    if ds.get("stub"):
        return {"identifier": ds["identifier"], "id": ds["id"],
                "message": "Identifier cannot be viewed. Either you lack permission to view it, or it is missing required elements."}
    v = st.versions[ds["latest"]]
    esc = escaped(ds["identifier"])
    links = hal_links(("self", f"/datasets/{esc}"), ("stash:versions", f"/datasets/{esc}/versions"),
                      ("stash:version", f"/versions/{v['id']}"), ("stash:download", f"/datasets/{esc}/download"))
    size = sum(st.files[f]["size"] for f in v["file_ids"] if st.files[f]["status"] != "deleted")
    if ds["shape"] == "2020":
        return {"_links": links, "identifier": ds["identifier"], "id": ds["id"], "storage_size": size,
                **version_metadata("2020", ds["identifier"], v)}
    out = {"_links": links, "identifier": ds["identifier"], "id": ds["id"], "storageSize": size}
    if ds.get("issn"):
        out["relatedPublicationISSN"] = ds["issn"]
    out.update(version_metadata("2026", ds["identifier"], v))
    if ds.get("license"):
        out["license"] = ds["license"]
    return out


def render_version(st: DryadState, v: dict) -> dict:
    ds = st.datasets[v["dataset"]]
    links = hal_links(("self", f"/versions/{v['id']}"), ("stash:dataset", f"/datasets/{escaped(ds['identifier'])}"),
                      ("stash:files", f"/versions/{v['id']}/files"), ("stash:download", f"/versions/{v['id']}/download"))
    return {"_links": links, **version_metadata(ds["shape"], ds["identifier"], v)}


def render_file(st: DryadState, f: dict) -> dict:
    v = st.versions[f["version"]]
    ds = st.datasets[v["dataset"]]
    rels = [("self", f"/files/{f['id']}"), ("stash:dataset", f"/datasets/{escaped(ds['identifier'])}"),
            ("stash:version", f"/versions/{v['id']}"), ("stash:files", f"/versions/{v['id']}/files")]
    if f["status"] != "deleted":  # Dryad links a download only where one may be had
        rels.append(("stash:download", f"/files/{f['id']}/download"))
    return {"_links": hal_links(*rels), "path": f["path"], "size": f["size"], "mimeType": f["mime"], "status": f["status"],
            "digest": f["digest"], "digestType": f["digest_type"]}


def _add_file(server: ServerState, st: DryadState, version_id: int, name: str, served: ServedFile | None,
              status: str, digest_type: str) -> int:
    file_id = st.next_file_id
    st.next_file_id += 1
    if served is not None:
        server.add_file(f"dryad/{version_id}/{name}", served)
        digest = served.sha256 if digest_type == "sha-256" else served.md5
        size = served.size
    else:  # a deleted file: listed, not stored
        digest, size = ("0" * 64 if digest_type == "sha-256" else "0" * 32), 1024
    mime = {"csv": "text/csv", "md": "text/markdown", "zip": "application/zip"}.get(name.rsplit(".", 1)[-1], "")
    st.files[file_id] = {"id": file_id, "version": version_id, "path": name, "size": size, "mime": mime,
                         "status": status, "digest": digest, "digest_type": digest_type}
    return file_id


def add_dataset(
    server: ServerState,
    identifier: str,
    *,
    dataset_id: int,
    title: str,
    abstract: str,
    keywords: list[str],
    published: datetime,
    updated: datetime,
    files: dict[str, ServedFile],
    shape: str = "2026",
    older_versions: int = 0,
    deleted_files: int = 0,
    methods: str | None = None,
    related: list[dict] | None = None,
    license: str | None = "https://spdx.org/licenses/CC0-1.0.html",
    issn: str | None = None,
    stub: bool = False,
    positive: bool | None = None,
    awards: list[Award] | None = None,
) -> dict:
    """One dataset in Dryad's shapes, with ``older_versions`` earlier versions (other files)
    before the latest; its files are registered for download."""
    st = state_of(server)
    digest_type = "md5" if shape == "2020" else "sha-256"
    ds = {"identifier": identifier, "id": dataset_id, "shape": shape, "license": license, "issn": issn,
          "stub": stub, "positive": positive, "version_ids": []}
    for number in range(1, older_versions + 2):
        latest = number == older_versions + 1
        vid = st.next_version_id
        st.next_version_id += 1
        v = {"id": vid, "dataset": identifier, "number": number, "title": title, "abstract": abstract,
             "keywords": keywords, "methods": methods, "related": related or [], "curation": "Published",
             "published": published, "updated": updated if latest else published, "file_ids": [],
             "awards": list(awards or [])}
        st.versions[vid] = v
        if latest:
            for name, served in files.items():
                v["file_ids"].append(_add_file(server, st, vid, name, served, "copied" if number > 1 else "created", digest_type))
            for k in range(deleted_files):
                v["file_ids"].append(_add_file(server, st, vid, f"superseded_{k}.csv", None, "deleted", digest_type))
        else:
            served = ServedFile.from_bytes(f"draft {number} of {identifier}\n".encode())
            v["file_ids"].append(_add_file(server, st, vid, f"draft_v{number}.csv", served, "created", digest_type))
        ds["version_ids"].append(vid)
    ds["latest"] = ds["version_ids"][-1]
    ds["updated_at"] = updated
    st.datasets[identifier] = ds
    return ds


def _doi_suffix(rng: random.Random, old: bool) -> str:
    n = 7 if old else 9
    return "".join(rng.choice(_DOI_CHARS) for _ in range(n))


def generate(server: ServerState, n: int, seed: int = 1, start_id: int = 50_001) -> int:
    """``n`` datasets: mostly in the 2026 shape, some in the 2020 one; some with several
    versions, deleted files in the listing, more than a page of files, methods with a
    link, related works; a few search hits that cannot be viewed."""
    st = state_of(server)
    rng = random.Random(seed)
    texts = generated_texts(n, seed)
    base = datetime(2015, 1, 1, tzinfo=timezone.utc)
    for i, text in enumerate(texts):
        old = rng.random() < 0.15
        identifier = f"doi:10.5061/dryad.{_doi_suffix(rng, old)}"
        while identifier in st.datasets:
            identifier = f"doi:10.5061/dryad.{_doi_suffix(rng, old)}"
        published = base + timedelta(days=rng.randint(0, 3600), seconds=rng.randint(0, 86399))
        updated = published + timedelta(days=rng.randint(0, 200), seconds=rng.randint(0, 86399))
        names = file_plan(rng, text.positive)
        if rng.random() < 0.05:
            names += [f"tables/part_{k:03d}.csv" for k in range(rng.randint(101, 140))]
        files = {name: make_payload(name, rng, small=True) for name in names}
        related = [{"relationship": "primary_article", "identifierType": "DOI",
                    "identifier": f"https://doi.org/10.1038/s41597-0{rng.randint(10, 99)}-0{i:04d}-x"}]
        if rng.random() < 0.3:
            related.append({"relationship": "supplemental_information", "identifierType": "URL",
                            "identifier": f"https://example.org/supplement/{i}"})
        methods = None
        if text.positive and rng.random() < 0.5:
            methods = (f"<p>Images were acquired as described in the <a href=\"https://example.org/protocols/{seed}-{i}\">"
                       f"protocol</a> and graded by two readers.</p>")
        add_dataset(
            server,
            identifier,
            dataset_id=start_id + i,
            title=text.title,
            abstract=text.description if text.description.startswith("<") else f"<p>{text.description}</p>",
            keywords=text.keywords,
            published=published,
            updated=updated,
            files=files,
            shape="2020" if old else "2026",
            older_versions=rng.choice([0, 0, 0, 1, 2]),
            deleted_files=rng.choice([0, 0, 0, 1]),
            methods=methods,
            related=related,
            license=None if old else "https://spdx.org/licenses/CC0-1.0.html",
            issn="1365-294X" if rng.random() < 0.2 else None,
            stub=rng.random() < 0.03,
            positive=text.positive,
            awards=funding_plan("dryad", seed, i),
        )
    return n


def modify(server: ServerState, fraction: float, seed: int = 2) -> int:
    """Publish a new version of a fraction of the datasets: new title, files copied with
    new ids plus one new file, updated now, served in today's shape."""
    st = state_of(server)
    rng = random.Random(seed)
    ids = sorted(i for i, ds in st.datasets.items() if not ds.get("stub"))
    chosen = rng.sample(ids, max(1, int(len(ids) * fraction))) if ids else []
    now = datetime.now(timezone.utc)
    for identifier in chosen:
        ds = st.datasets[identifier]
        old = st.versions[ds["latest"]]
        vid = st.next_version_id
        st.next_version_id += 1
        v = {**old, "id": vid, "number": old["number"] + 1, "title": old["title"] + " (revised)",
             "updated": now, "file_ids": []}
        st.versions[vid] = v
        digest_type = "md5" if ds["shape"] == "2020" else "sha-256"
        for fid in old["file_ids"]:
            f = st.files[fid]
            if f["status"] == "deleted":
                continue
            served = server.files[f"dryad/{old['id']}/{f['path']}"]
            v["file_ids"].append(_add_file(server, st, vid, f["path"], served, "copied", digest_type))
        extra = ServedFile.from_bytes(f"revision of {identifier}\n".encode())
        v["file_ids"].append(_add_file(server, st, vid, f"revision_{v['number']}.csv", extra, "created", digest_type))
        ds["version_ids"].append(vid)
        ds["latest"] = vid
        ds["updated_at"] = now
        ds["shape"] = "2026"
    return len(chosen)


# ------------------------------------------------------------------ search semantics
_Q_PART = re.compile(r'(-?)"((?:[^"\\]|\\.)*)"|(\S+)')


def parse_q(q: str) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """Required phrases, excluded phrases and required prefixes of a ``q``."""
    required: list[list[str]] = []
    excluded: list[list[str]] = []
    prefixes: list[str] = []
    for m in _Q_PART.finditer(q):
        negate, phrase, word = m.group(1), m.group(2), m.group(3)
        if word is not None:
            if word in ("AND", "OR", "+"):
                continue
            negate, phrase = ("-", word[1:]) if word.startswith("-") else ("", word)
            if phrase.endswith("*") and not negate:
                prefixes.extend(tokens(phrase[:-1])[:1])
                continue
        words = tokens(phrase.replace('\\"', '"'))
        if words:
            (excluded if negate else required).append(words)
    return required, excluded, prefixes


def _text(st: DryadState, ds: dict) -> list[str]:
    v = st.versions[ds["latest"]]
    words = " ".join([v["title"], re.sub(r"<[^>]+>", " ", v["abstract"]), " ".join(v["keywords"]),
                      re.sub(r"<[^>]+>", " ", v.get("methods") or "")])
    return tokens(words)


def matches(st: DryadState, ds: dict, q: str) -> bool:
    required, excluded, prefixes = parse_q(q)
    text = _text(st, ds)
    return (all(contains(text, p) for p in required)
            and not any(contains(text, p) for p in excluded)
            and all(any(t.startswith(p) for t in text) for p in prefixes))


_ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$")


def _utc(value: str) -> datetime | None:
    if not _ISO_Z.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


# ------------------------------------------------------------------ HTTP plumbing
def _to_query(params: dict[str, str]) -> str:
    """Rails' Hash#to_query: ``key=value`` pairs escaped like CGI.escape, sorted."""
    return "&".join(sorted(urlencode({k: v}) for k, v in params.items() if v is not None))


def paging(request: web.Request, total: int, page: int, size: int) -> dict:
    """Dryad's UrlPager links: root-relative, the other parameters kept."""
    params = {k: v for k, v in request.query.items() if k != "page"}
    last = (total - 1) // size + 1 if total > 0 else 0

    def url(p: int | None) -> str:
        q = _to_query({**params, "page": str(p) if p is not None else None})
        return request.path + (f"?{q}" if q else "")

    links = {"self": request.path_qs, "first": url(None), "last": url(last)}
    if page >= 2:
        links["prev"] = url(page - 1)
    if page < last:
        links["next"] = url(page + 1)
    return {k: {"href": v} for k, v in links.items()}


def page_params(request: web.Request) -> tuple[int, int]:
    def to_i(value: str | None) -> int:  # Ruby's String#to_i: leading digits or 0
        m = re.match(r"\s*([+-]?\d+)", value or "")
        return int(m.group(1)) if m else 0

    page = to_i(request.query.get("page"))
    page = page if page > 0 else 1
    size = min(to_i(request.query["per_page"]) if "per_page" in request.query else DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return page, max(size, 1)


def _throttled(st: DryadState, kind: str, now: float) -> web.Response | None:
    limit = st.limits.get(kind)
    if not limit:
        return None
    n, period = limit
    start = math.floor(now / period) * period
    st.windows[(kind, start)] += 1
    if st.windows[(kind, start)] <= n:
        return None
    headers = {"RateLimit-Limit": str(n), "RateLimit-Remaining": "0", "RateLimit-Reset": str(math.ceil(start + period))}
    return web.Response(status=429, text="Request rejected due to rate limits.\n", headers=headers)


def _unauthorized(message: str) -> web.Response:
    return json_response(
        {"error": message}, status=401,
        headers={"WWW-Authenticate": f'Bearer realm="Doorkeeper", error="invalid_token", error_description="{message}"'},
    )


def dryad_route(handler):
    """Rack-attack throttling, then the bearer token (optional, but refused when bad)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        server = request.app[STATE_KEY]
        st = state_of(server)
        header = request.headers.get("Authorization", "")
        download = bool(re.search(r"/files/\d+/download$", request.path))
        with server.lock:
            throttled = _throttled(st, "download", time.time()) if download else None
            throttled = throttled or _throttled(st, "token" if header else "anonymous", time.time())
            if throttled is not None:
                return throttled
            bearer = None
            if header:
                scheme, _, bearer = header.partition(" ")
                bearer = bearer.strip()
                info = st.tokens.get(bearer) if scheme.lower() == "bearer" else None
                if (info is None or info["expires"] < time.time()
                        or (st.token_uses is not None and info["uses"] >= st.token_uses)):
                    st.refused.append(bearer or None)
                    return _unauthorized("The access token is invalid")
                info["uses"] += 1
        if bearer:
            request[TOKEN_KEY] = bearer
        return await handler(request)

    return wrapped


def _page_of(request: web.Request, items: list, rel: str) -> web.Response:
    page, size = page_params(request)
    chunk = items[(page - 1) * size : page * size]
    return json_response({"_links": paging(request, len(items), page, size), "count": len(chunk),
                          "total": len(items), "_embedded": {rel: chunk}})


# ------------------------------------------------------------------ routes
async def token(request: web.Request) -> web.Response:
    """Doorkeeper's token endpoint: client credentials in the form, or in Basic auth."""
    server = request.app[STATE_KEY]
    st = state_of(server)
    if request.content_type == "application/json":
        try:
            form = await request.json()
        except ValueError:
            form = {}
    else:
        form = dict(await request.post())
    client_id, secret = form.get("client_id"), form.get("client_secret")
    basic = request.headers.get("Authorization", "")
    if basic.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            pass
    if form.get("grant_type") != "client_credentials":
        return json_response({"error": "unsupported_grant_type",
                              "error_description": "The authorization grant type is not supported by the authorization server."}, 400)
    with server.lock:
        if not client_id or st.clients.get(client_id) != secret:
            return json_response(
                {"error": "invalid_client",
                 "error_description": "Client authentication failed due to unknown client, no client authentication included, "
                                      "or unsupported authentication method."},
                401,
            )
        value = secrets.token_urlsafe(32)
        st.tokens[value] = {"client": client_id, "uses": 0, "expires": time.time() + st.token_lifetime}
        st.issued.append(value)
    return json_response({"access_token": value, "token_type": "Bearer", "expires_in": st.token_lifetime,
                          "scope": "all", "created_at": int(time.time())},
                         headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@dryad_route
async def search(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    q = request.query.get("q", "")
    since, before = request.query.get("modifiedSince"), request.query.get("modifiedBefore")
    lo = _utc(since) if since is not None else None
    hi = _utc(before) if before is not None else None
    if (since is not None and lo is None) or (before is not None and hi is None):
        return web.Response(status=400, text="Unable to parse query request.")
    with server.lock:
        found = [
            ds for ds in st.datasets.values()
            if matches(st, ds, q)
            and (lo is None or ds["updated_at"] >= lo)
            and (hi is None or ds["updated_at"] <= hi)
        ]
        found.sort(key=lambda ds: ds["id"])
        rendered = [render_dataset(st, ds) for ds in found]
    return _page_of(request, rendered, "stash:datasets")


@dryad_route
async def datasets_list(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    with server.lock:
        rendered = [render_dataset(st, ds) for ds in sorted(st.datasets.values(), key=lambda d: d["id"]) if not ds.get("stub")]
    return _page_of(request, rendered, "stash:datasets")


def _find_dataset(st: DryadState, raw: str) -> dict | None:
    """A dataset from its path segment: ``doi%3A10.5061%2Fdryad.x``, ``doi:10.5061%2F...``
    or its number."""
    ident = unquote(raw)
    if ident.isdigit():
        return next((ds for ds in st.datasets.values() if ds["id"] == int(ident)), None)
    if not ident.lower().startswith("doi:"):
        ident = "doi:" + ident
    return st.datasets.get("doi:" + ident[4:])


def _not_found() -> web.Response:
    return json_response({"error": "not-found"}, 404)


def _numbered(table: dict[int, dict], raw: str) -> dict | None:
    return table.get(int(raw)) if raw.isdigit() else None


@dryad_route
async def dataset(request: web.Request) -> web.Response:
    """``/datasets/{doi}``, ``/datasets/{doi}/versions`` and ``/datasets/{doi}/download``."""
    server = request.app[STATE_KEY]
    st = state_of(server)
    rest = request.raw_path.split("?", 1)[0][len(PREFIX + "/datasets/"):]
    raw, _, sub = rest.partition("/")
    with server.lock:
        ds = _find_dataset(st, raw)
        if ds is None or ds.get("stub") or sub not in ("", "versions", "download"):
            return _not_found()
        if sub == "":
            return json_response(render_dataset(st, ds))
        versions = [render_version(st, st.versions[vid]) for vid in ds["version_ids"]]
    if sub == "versions":
        return _page_of(request, versions, "stash:versions")
    return web.Response(status=404, text="Download for this version of the dataset is unavailable")


@dryad_route
async def version_files(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    with server.lock:
        v = _numbered(st.versions, request.match_info["id"])
        if v is None:
            return _not_found()
        rendered = [render_file(st, st.files[fid]) for fid in v["file_ids"]]
    return _page_of(request, rendered, "stash:files")


def _one(table: str, render) -> Any:
    """``GET /versions/{id}`` and ``GET /files/{id}``: one record by its number."""

    @dryad_route
    async def handler(request: web.Request) -> web.Response:
        server = request.app[STATE_KEY]
        st = state_of(server)
        with server.lock:
            found = _numbered(getattr(st, table), request.match_info["id"])
            return json_response(render(st, found)) if found else _not_found()

    return handler


version = _one("versions", render_version)
file_record = _one("files", render_file)


@dryad_route
async def file_download(request: web.Request) -> web.StreamResponse:
    """Anonymous clients are refused; others are sent to storage (presigned S3 in reality)."""
    server = request.app[STATE_KEY]
    with server.lock:
        f = _numbered(state_of(server).files, request.match_info["id"])
    if f is None or f["status"] == "deleted":
        return web.Response(status=404, text="Not found")
    if not request.get(TOKEN_KEY):
        return json_response({"error": "Downloading data files requires an API token"}, 401)
    raise web.HTTPFound(location="/storage/" + quote(f"dryad/{f['version']}/{f['path']}", safe="/"))


def register(app: web.Application) -> None:
    app.router.add_post(f"{SITE}/oauth/token", token)
    app.router.add_get(f"{PREFIX}/search", search)
    app.router.add_get(f"{PREFIX}/datasets", datasets_list)
    app.router.add_get(f"{PREFIX}/datasets/{{rest:.+}}", dataset)
    app.router.add_get(f"{PREFIX}/versions/{{id}}", version)
    app.router.add_get(f"{PREFIX}/versions/{{id}}/files", version_files)
    app.router.add_get(f"{PREFIX}/files/{{id}}", file_record)
    app.router.add_get(f"{PREFIX}/files/{{id}}/download", file_download)
