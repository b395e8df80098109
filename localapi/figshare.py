"""Figshare API v2 on the local API server, under ``/figshare/v2`` (set FIGSHARE_API_URL).

Shapes come from the recorded responses in ``samples/figshare/``: every generated
article is a copy of ``article_123456_2023-04.json`` (the full record) with its own id,
texts, dates, authors, categories and files; search answers are bare arrays of the
light records of ``search_2022-12_redacted.json`` (same keys, values from the article).

Behaviour, as documented (docs/sources/figshare.md):

* ``POST /articles/search`` with a JSON body: ``search_for`` (words and quoted phrases;
  a space is OR, ``AND`` binds groups; a word also finds longer words, like Figshare's
  stemming), ``item_type``, ``published_since`` / ``modified_since`` (a date or a
  timestamp, inclusive), ``order`` (``created_date`` by default; ``published_date``,
  ``modified_date``; anything else is 400 "Invalid value received for order"),
  ``order_direction``; ``page``/``page_size`` (default 10, at most 1000) or
  ``limit``/``offset`` (mixing them is 422); a page past ``max_results`` (1,000) is
  ``400 {"message": "Max page reached. Please narrow down your search"}``, an offset
  past it 422; a body that is not JSON is 400; ``search_for`` shorter than 3 is 422;
* ``GET /articles/{id}``: the full record, whose embedded ``files`` holds at most
  ``embed_limit`` entries (10) although ``size`` counts them all: the pitfall the
  spider must see through;
* ``GET /articles/{id}/files``: the complete list, paginated like search (page size
  10 by default, 1000 at most); 403 for embargoed and confidential files;
* ``GET /figshare/ndownloader/files/{file_id}``: like ndownloader.figshare.com, a 302
  to the file under ``/storage/figshare/...`` (Range requests there);
* ``Authorization: token <t>`` is accepted (any token, or only ``valid_tokens`` when a
  test sets them); another scheme (``Bearer``) or an unknown token is 401.

Generated articles include non-datasets (which ``item_type: 3`` must filter out),
embargoed, confidential and metadata-only records, link-only files, articles with more
files than the detail embeds, publisher portals (plos.figshare.com), records mirrored
from Zenodo (zenodo.figshare.com, Zenodo DOI) and institution repositories with a
handle and no DOI; funding in ``funding_list`` and the free-text ``funding``
(``corpus.funding_plan``).
"""

from __future__ import annotations

import copy
import functools
import json
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from envision_spiders.textutil import parse_datetime

from .core import ORIGIN, STATE_KEY, ServedFile, ServerState, json_response, render_json
from .corpus import FUNDERS, Award, file_plan, funding_plan, generated_texts
from .payloads import make_payload

PREFIX = "/figshare/v2"
DOWNLOADER = "/figshare/ndownloader"
SAMPLES = Path(__file__).with_name("samples") / "figshare"
MAX_RESULTS = 1000
EMBED_LIMIT = 10
MAX_PAGE_SIZE = 1000
ORDERS = {"published_date", "modified_date", "created_date", "views", "shares", "downloads", "cites"}

LICENSES = [
    {"value": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
    {"value": 2, "name": "CC0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"},
    {"value": 3, "name": "MIT", "url": "https://opensource.org/licenses/MIT"},
]
CATEGORIES = [
    {"id": 1401, "title": "Ophthalmology and Optometry", "parent_id": 1400},
    {"id": 1402, "title": "Medical Imaging", "parent_id": 1400},
    {"id": 13, "title": "Genetics", "parent_id": 48},
    {"id": 1403, "title": "Computer Vision", "parent_id": 1300},
]
OTHER_TYPES = [(11, "online resource"), (6, "journal contribution"), (1, "figure")]


@functools.cache
def _sample_text(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def _sample(name: str) -> Any:
    """A fresh copy of a recorded answer (read once)."""
    return json.loads(_sample_text(name))


@dataclass
class FigshareState:
    articles: dict[int, dict] = field(default_factory=dict)  # id -> full record (all files)
    positive: dict[int, bool] = field(default_factory=dict)  # generated label, for demo and tests
    files_by_id: dict[int, tuple[int, str]] = field(default_factory=dict)  # file id -> (article id, storage path)
    max_results: int = MAX_RESULTS
    embed_limit: int = EMBED_LIMIT
    valid_tokens: set[str] | None = None  # None: any token is accepted
    searches: list[dict] = field(default_factory=list)  # every search body received, for tests


def state_of(server: ServerState) -> FigshareState:
    return server.sources.setdefault("figshare", FigshareState())


# ------------------------------------------------------------------ generation
def _stamp(dt: datetime, zone: bool = True) -> str:
    text = dt.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat()
    return text + "Z" if zone else text


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:80]


def add_article(
    server: ServerState,
    article_id: int,
    *,
    title: str,
    description: str,
    tags: list[str],
    created: datetime,
    files: dict[str, ServedFile] | None = None,
    links: list[str] | None = None,
    defined_type: tuple[int, str] = (3, "dataset"),
    access: str = "open",
    portal: str = "figshare",
    positive: bool | None = None,
    rng: random.Random | None = None,
    awards: list[Award] | None = None,
) -> dict:
    """One article in the real shape; its files are registered for download too.

    ``access``: open, embargoed, confidential or metadata. ``portal``: figshare,
    plos (publisher portal, the paper's DOI), zenodo (a mirrored Zenodo record) or
    lboro (an institution repository with a handle and no DOI)."""
    st = state_of(server)
    rng = rng or random.Random(article_id)
    art = _sample("article_123456_2023-04.json")
    aid = str(article_id)
    published = created + timedelta(days=rng.randint(0, 30), seconds=rng.randint(0, 3600))
    modified = published + timedelta(days=rng.randint(0, 400), seconds=rng.randint(0, 3600))
    kind = defined_type[1].replace(" ", "_")
    host = {"plos": "plos.figshare.com", "zenodo": "zenodo.figshare.com", "lboro": "repository.lboro.ac.uk"}.get(portal, "figshare.com")
    doi = {
        "plos": f"10.1371/journal.pone.{article_id:07d}",
        "zenodo": f"10.5281/zenodo.{article_id}",
        "lboro": "",
    }.get(portal, f"10.6084/m9.figshare.{aid}.v1")
    public_html = f"https://{host}/articles/{kind}/{_slug(title)}/{aid}"
    art.update(
        {
            "id": article_id,
            "title": title,
            "description": description,
            "doi": doi,
            "handle": f"2134/{aid}.v1" if portal == "lboro" else "",
            "url": f"{ORIGIN}{PREFIX}/articles/{aid}",
            "url_public_api": f"{ORIGIN}{PREFIX}/articles/{aid}",
            "url_private_api": f"{ORIGIN}{PREFIX}/account/articles/{aid}",
            "url_private_html": f"https://figshare.com/account/articles/{aid}",
            "url_public_html": public_html,
            "figshare_url": public_html,
            "defined_type": defined_type[0],
            "defined_type_name": defined_type[1],
            "group_id": {"plos": 107, "lboro": 20438}.get(portal),
            "thumb": "",
            "created_date": _stamp(created),
            "published_date": _stamp(published),
            "modified_date": _stamp(modified),
            "timeline": {"posted": _stamp(published, zone=False), "firstOnline": _stamp(published, zone=False)},
            "tags": tags,
            "keywords": tags,
            "categories": [dict(c, path="", source_id="", taxonomy_id=10) for c in rng.sample(CATEGORIES, rng.randint(1, 2))],
            "license": dict(rng.choice(LICENSES)),
            "authors": [
                {"id": 900000 + article_id * 3 + k, "full_name": rng.choice(["Ana Silva", "Wei Zhang", "Priya Natarajan", "John O'Neil", "Fatima Zahra"]),
                 "is_active": k == 0, "url_name": "_", "orcid_id": f"0000-0002-{1000 + k:04d}-{article_id % 9000 + 1000:04d}" if k == 0 else ""}
                for k in range(rng.randint(1, 3))
            ],
            "version": 1,
            "is_public": True,
            "is_embargoed": access == "embargoed",
            "embargo_date": _stamp(datetime.now(timezone.utc) + timedelta(days=200)) if access == "embargoed" else None,
            "embargo_type": "file" if access == "embargoed" else None,
            "embargo_reason": "Pending publication of the paper" if access == "embargoed" else "",
            "embargo_title": "File(s) under embargo" if access == "embargoed" else "",
            "is_confidential": access == "confidential",
            "confidential_reason": "Patient data; request access from the authors" if access == "confidential" else "",
            "is_metadata_record": access == "metadata",
            "metadata_reason": "Data held at the hospital" if access == "metadata" else "",
            "resource_title": "",
            "resource_doi": "",
            "references": [],
        }
    )
    art["funding_list"], art["funding"] = funding_fields(article_id, awards or [])
    if portal == "plos":
        art["resource_doi"] = doi
        art["resource_title"] = f"<em>{title}</em> (journal article)"
    if rng.random() < 0.3:
        art["related_materials"] = [
            {"id": article_id, "identifier": f"10.1000/paper.{aid}", "title": "The paper", "relation": "IsSupplementTo",
             "identifier_type": "DOI", "is_linkout": False, "link": f"https://doi.org/10.1000/paper.{aid}"}
        ]
        art["references"] = [f"https://example.org/protocols/{aid}"]
    entries = []
    for k, (name, served) in enumerate((files or {}).items()):
        file_id = article_id * 100 + k
        path = server.add_file(f"figshare/{aid}/{name}", served)
        st.files_by_id[file_id] = (article_id, path[len("/storage/"):])
        entries.append(
            {
                "id": file_id,
                "name": name,
                "size": served.size,
                "is_link_only": False,
                "download_url": f"{ORIGIN}{DOWNLOADER}/files/{file_id}",
                "supplied_md5": served.md5 if k % 3 else "",
                "computed_md5": "" if k % 5 == 4 else served.md5,
                "mimetype": served.content_type,
            }
        )
    for k, link in enumerate(links or []):
        entries.append(
            {"id": article_id * 100 + 90 + k, "name": link.rsplit("/", 1)[-1] or "link", "size": 0, "is_link_only": True,
             "download_url": link, "supplied_md5": "", "computed_md5": ""}
        )
    if access == "metadata":
        entries = []
    art["files"] = entries
    art["size"] = sum(e["size"] for e in entries)
    st.articles[article_id] = art
    if positive is not None:
        st.positive[article_id] = positive
    return art


def generate(server: ServerState, n: int, seed: int = 1, start_id: int = 20_000_001) -> int:
    """``n`` articles: mostly open datasets, with the odd shapes the spider must handle."""
    rng = random.Random(seed)
    texts = generated_texts(n, seed)
    base = datetime(2014, 1, 1, tzinfo=timezone.utc)
    for i, text in enumerate(texts):
        aid = start_id + 3 * i
        created = base + timedelta(days=rng.randint(0, 4000), seconds=rng.randint(0, 86399))
        files = {name: make_payload(name, rng, small=True) for name in file_plan(rng, text.positive)}
        if rng.random() < 0.1:  # a large article: more files than the detail embeds
            for k in range(rng.randint(12, 30)):
                files[f"scans/img_{k:03d}.png"] = ServedFile.from_bytes(bytes(rng.getrandbits(8) for _ in range(64)))
        links = [f"https://github.com/example/eye-data-{seed}-{i}"] if rng.random() < 0.1 else []
        roll = rng.random()
        access = "embargoed" if roll < 0.06 else "confidential" if roll < 0.10 else "metadata" if roll < 0.13 else "open"
        roll = rng.random()
        portal = "plos" if roll < 0.08 else "zenodo" if roll < 0.13 else "lboro" if roll < 0.17 else "figshare"
        add_article(
            server,
            aid,
            title=text.title,
            description=text.description,
            tags=text.keywords,
            created=created,
            files=files,
            links=links,
            defined_type=rng.choice(OTHER_TYPES) if rng.random() < 0.07 else (3, "dataset"),
            access=access,
            portal=portal,
            positive=text.positive,
            rng=rng,
            awards=funding_plan("figshare", seed, i),
        )
    return n


def funding_fields(article_id: int, awards: list[Award]) -> tuple[list[dict], str | None]:
    """``funding_list`` (Figshare's FundingInformation: id, title, grant_code,
    funder_name, is_user_defined, url) and the free-text ``funding`` statement. Some
    depositors fill only the statement, some only the list, some both."""
    rng = random.Random(f"figshare/{article_id}/funding")
    if not awards:
        return [], None
    style = rng.choice(["list", "list", "text", "both"])
    listed = [{"id": article_id * 10 + k, "title": a.title or "", "grant_code": a.number,
               "funder_name": FUNDERS[a.funder][0], "is_user_defined": rng.choice([0, 1]), "url": ""}
              for k, a in enumerate(awards)] if style != "text" else []
    text = None
    if style != "list":
        text = "This work was supported by " + " and ".join(f"{FUNDERS[a.funder][3]} grant {a.number}" for a in awards) + "."
    return listed, text


def modify(server: ServerState, fraction: float, seed: int = 2) -> int:
    """Change a fraction of the articles: half get a new version (new title, a new file,
    ``.v2`` DOI, later published and modified dates), half a metadata-only edit (a new
    description and keyword, later ``modified_date`` only: Figshare does not version it)."""
    st = state_of(server)
    rng = random.Random(seed)
    ids = sorted(st.articles)
    chosen = rng.sample(ids, max(1, int(len(ids) * fraction))) if ids else []
    now = datetime.now(timezone.utc)
    for k, aid in enumerate(chosen):
        art = st.articles[aid]
        art["modified_date"] = _stamp(now)
        if k % 2 == 0:
            new_version(server, aid, now)
        else:
            art["description"] += "<p>Updated description.</p>"
            art["tags"] = art["tags"] + ["updated"]
            art["keywords"] = art["tags"]
    return len(chosen)


def new_version(server: ServerState, aid: int, when: datetime) -> dict:
    st = state_of(server)
    art = st.articles[aid]
    art["version"] += 1
    if art["doi"].startswith("10.6084/"):
        art["doi"] = re.sub(r"\.v\d+$", f".v{art['version']}", art["doi"])
    art["title"] += " (revised)"
    art["published_date"] = art["modified_date"] = _stamp(when)
    art["timeline"] = {**art["timeline"], "posted": _stamp(when, zone=False), "revision": _stamp(when, zone=False)}
    if not (art["is_metadata_record"] or art["is_embargoed"] or art["is_confidential"]):
        served = ServedFile.from_bytes(b"id,grade\n1,2\n")
        file_id = aid * 100 + 80 + art["version"]
        path = server.add_file(f"figshare/{aid}/addendum_v{art['version']}.csv", served)
        st.files_by_id[file_id] = (aid, path[len("/storage/"):])
        art["files"].append({"id": file_id, "name": f"addendum_v{art['version']}.csv", "size": served.size, "is_link_only": False,
                             "download_url": f"{ORIGIN}{DOWNLOADER}/files/{file_id}", "supplied_md5": served.md5,
                             "computed_md5": served.md5, "mimetype": "text/csv"})
        art["size"] += served.size
    return art


# ------------------------------------------------------------------ search semantics
_QTOKEN = re.compile(r'"([^"]*)"|([^\s()"]+)')
_TOKEN = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def parse_search_for(query: str) -> list[list[list[str]]]:
    """``search_for`` as AND-ed groups of OR-ed phrases (each a token list): a plain
    space is OR on Figshare, ``AND`` starts a new group; ``NOT`` is ignored here."""
    groups: list[list[list[str]]] = [[]]
    for m in _QTOKEN.finditer(query):
        phrase, word = m.groups()
        if word == "AND":
            groups.append([])
        elif word in ("OR", "NOT"):
            continue
        elif toks := _tokens(phrase if phrase is not None else word):
            groups[-1].append(toks)
    return [g for g in groups if g]


def _has(text: list[str], phrase: list[str]) -> bool:
    if len(phrase) == 1:  # a word also finds its longer forms (cell -> cells)
        return any(t.startswith(phrase[0]) for t in text)
    n = len(phrase)
    return any(text[i : i + n] == phrase for i in range(len(text) - n + 1))


def matches(article: dict, groups: list[list[list[str]]]) -> bool:
    text = _tokens(
        " ".join(
            [article["title"], re.sub(r"<[^>]+>", " ", article["description"]), " ".join(article.get("tags") or []),
             " ".join(c["title"] for c in article.get("categories") or [])]
        )
    )
    return bool(groups) and all(any(_has(text, p) for p in group) for group in groups)


@functools.cache
def _light_keys() -> tuple[str, ...]:
    return tuple(_sample("search_2022-12_redacted.json")[0])


def light(article: dict) -> dict:
    """The search-result shape of an article (the keys of the recorded search answer)."""
    keys = _light_keys()
    return {k: copy.deepcopy(article.get(k)) for k in keys}


def _error(message: str, status: int, code: str) -> web.Response:
    return json_response({"message": message, "code": code, "data": None}, status)


def _auth_error(request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    allowed = state_of(request.app[STATE_KEY]).valid_tokens
    if scheme != "token" or not token.strip() or (allowed is not None and token.strip() not in allowed):
        return _error("Invalid or unknown authorization info", 401, "Unauthorized")
    return None


def _paging(params: dict, max_results: int) -> tuple[int, int] | web.Response:
    """(offset, count) from page/page_size or limit/offset, or the API's error."""
    paged = any(k in params for k in ("page", "page_size"))
    offsetted = any(k in params for k in ("limit", "offset"))
    if paged and offsetted:
        return _error("Pagination by page and by offset cannot be mixed", 422, "InvalidParams")
    try:
        if offsetted:
            count, offset = int(params.get("limit", 10)), int(params.get("offset", 0))
            if offset < 0 or offset >= max_results:
                return _error(f"Offset is limited at {max_results}", 422, "InvalidParams")
        else:
            page, count = int(params.get("page", 1)), int(params.get("page_size", 10))
            if page < 1:
                return _error("Invalid value received for page", 422, "InvalidParams")
            offset = (page - 1) * count
            if page * count > max_results:
                return _error("Max page reached. Please narrow down your search", 400, "MaxPageReached")
    except (TypeError, ValueError):
        return _error("Invalid pagination parameters", 422, "InvalidParams")
    if not 1 <= count <= MAX_PAGE_SIZE:
        return _error(f"page_size/limit must be between 1 and {MAX_PAGE_SIZE}", 422, "InvalidParams")
    return offset, count


def _since(value: Any) -> datetime | None | web.Response:
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    return parsed if parsed else _error(f"Invalid date: {value!r}", 422, "InvalidParams")


async def search(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    if denied := _auth_error(request):
        return denied
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        return _error("Request body is not valid JSON", 400, "BadRequest")
    if not isinstance(body, dict):
        return _error("Request body must be a JSON object", 422, "InvalidParams")
    with server.lock:
        st.searches.append(body)
    query = body.get("search_for")
    if not isinstance(query, str) or len(query.strip()) < 3:
        return _error("search_for: minimum length is 3", 422, "InvalidParams")
    paging = _paging(body, st.max_results)
    if isinstance(paging, web.Response):
        return paging
    offset, count = paging
    order = body.get("order", "created_date")
    direction = body.get("order_direction", "desc")
    if order not in ORDERS:
        return _error("Invalid value received for order", 400, "InvalidOrder")
    if direction not in ("asc", "desc"):
        return _error("Invalid value received for order_direction", 400, "InvalidOrder")
    published_since, modified_since = _since(body.get("published_since")), _since(body.get("modified_since"))
    for bad in (published_since, modified_since):
        if isinstance(bad, web.Response):
            return bad
    item_type = body.get("item_type")
    groups = parse_search_for(query)
    with server.lock:
        found = [
            a for a in st.articles.values()
            if (item_type is None or a["defined_type"] == item_type)
            and (published_since is None or parse_datetime(a["published_date"]) >= published_since)
            and (modified_since is None or parse_datetime(a["modified_date"]) >= modified_since)
            and matches(a, groups)
        ]
        key = order if order in ("published_date", "modified_date", "created_date") else "id"
        found.sort(key=lambda a: (a[key], a["id"]), reverse=direction == "desc")
        chunk = [light(a) for a in found[offset : offset + count]]
    return render_json(request, chunk)


def _article_or_error(request: web.Request) -> dict | web.Response:
    """The article a path names, or the API's answer: 401 for a refused token, 404."""
    if denied := _auth_error(request):
        return denied
    st = state_of(request.app[STATE_KEY])
    raw = request.match_info["id"]
    art = st.articles.get(int(raw)) if raw.isdigit() else None
    return art if art is not None else _error("Entity not found: article", 404, "EntityNotFound")


async def article(request: web.Request) -> web.Response:
    art = _article_or_error(request)
    if isinstance(art, web.Response):
        return art
    st = state_of(request.app[STATE_KEY])
    shown = copy.deepcopy(art)
    hidden = art["is_embargoed"] or art["is_confidential"]
    shown["files"] = [] if hidden else shown["files"][: st.embed_limit]
    return render_json(request, shown)


async def article_files(request: web.Request) -> web.Response:
    art = _article_or_error(request)
    if isinstance(art, web.Response):
        return art
    if art["is_embargoed"] or art["is_confidential"]:
        return _error("You do not have permission to view the files of this article", 403, "Forbidden")
    params = dict(request.query)
    paging = _paging(params, 10**9)  # the listing has no result cap, only page sizes
    if isinstance(paging, web.Response):
        return paging
    offset, count = paging
    return render_json(request, art["files"][offset : offset + count])


async def download(request: web.Request) -> web.StreamResponse:
    """ndownloader: a redirect to the file in storage (403 while files are hidden)."""
    server = request.app[STATE_KEY]
    st = state_of(server)
    raw = request.match_info["file_id"]
    found = st.files_by_id.get(int(raw)) if raw.isdigit() else None
    if found is None:
        return _error("File not found", 404, "EntityNotFound")
    aid, path = found
    art = st.articles[aid]
    if art["is_embargoed"] or art["is_confidential"]:
        return _error("File is not available", 403, "Forbidden")
    raise web.HTTPFound(location="/storage/" + quote(path, safe="/"))


def register(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/articles/search", search)
    app.router.add_get(f"{PREFIX}/articles/{{id}}", article)
    app.router.add_get(f"{PREFIX}/articles/{{id}}/files", article_files)
    app.router.add_get(f"{DOWNLOADER}/files/{{file_id}}", download)
