"""Zenodo on the local API server, under ``/zenodo/api`` (set ZENODO_API_URL to it).

Shapes come from the recorded responses in ``samples/zenodo/``: each generated record
is a copy of ``record_8173303_2026-07.json`` (2024+ shape) with its own ids, texts,
dates and files; restricted records follow ``search_2025-01_restricted_hit.json``
(``files: []`` in the hit, a listing shaped like ``record_files_2025-01.json``); a
share of records is served in the Oct-2023 transitional file shape (``filename``,
``filesize``, bare md5, ``links.download``). The search endpoint behaves like
Zenodo's: quoted words AND-ed, ``created``/``updated`` ranges, ``type``, page size
capped at 25 without a token and 100 with one (400 beyond), 400 past the
10,000-result window, ``sort=mostrecent``.
"""

from __future__ import annotations

import copy
import json
import zlib
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .core import ORIGIN, STATE_KEY, ServedFile, ServerState, json_response, render_json, serve_file
from .search import contains, in_range, parse_query, tokens
from .corpus import FUNDERS, Award, file_plan, funding_plan, generated_texts, pick_fraction
from .payloads import make_payload

PREFIX = "/zenodo/api"
SAMPLES = Path(__file__).with_name("samples") / "zenodo"
WINDOW = 10_000


def _sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@dataclass
class ZenodoState:
    records: dict[int, dict] = field(default_factory=dict)  # id -> record in the 2024+ shape
    listings: dict[int, list[dict]] = field(default_factory=dict)  # id -> /files entries
    legacy_ids: set[int] = field(default_factory=set)  # served with the Oct-2023 file shape in hits
    positive: dict[int, bool] = field(default_factory=dict)  # generated label, for demo and tests


def state_of(server: ServerState) -> ZenodoState:
    return server.sources.setdefault("zenodo", ZenodoState())


# ------------------------------------------------------------------ generation
def _file_entry(record_id: int, key: str, served: ServedFile) -> dict:
    qkey = quote(key, safe="/")
    return {
        "id": f"{record_id:08x}-{zlib.crc32(key.encode()):08x}",
        "key": key,
        "size": served.size,
        "checksum": f"md5:{served.md5}",
        "links": {"self": f"{ORIGIN}{PREFIX}/records/{record_id}/files/{qkey}/content"},
    }


def add_record(
    server: ServerState,
    record_id: int,
    *,
    title: str,
    description: str,
    keywords: list[str],
    created: datetime,
    files: dict[str, ServedFile] | None = None,
    access_right: str = "open",
    resource_type: str = "dataset",
    legacy_shape: bool = False,
    positive: bool | None = None,
    related: list[dict] | None = None,
    grants: list[dict] | None = None,
) -> dict:
    """Add one record in the real shape; files are registered for download too."""
    st = state_of(server)
    template = _sample("record_8173303_2026-07.json")
    rec = copy.deepcopy(template)
    rid = str(record_id)
    concept = str(record_id - 1)
    stamp = created.isoformat()
    rec.update(
        {
            "created": stamp,
            "modified": stamp,
            "updated": stamp,
            "id": record_id,
            "recid": rid,
            "conceptrecid": concept,
            "doi": f"10.5281/zenodo.{rid}",
            "conceptdoi": f"10.5281/zenodo.{concept}",
            "doi_url": f"https://doi.org/10.5281/zenodo.{rid}",
            "title": title,
            "revision": 1,
        }
    )
    md = rec["metadata"]
    md.update(
        {
            "title": title,
            "doi": f"10.5281/zenodo.{rid}",
            "publication_date": created.date().isoformat(),
            "description": description,
            "access_right": access_right,
            "resource_type": {"title": resource_type.title(), "type": resource_type},
            "keywords": keywords,
            "relations": {"version": [{"index": 0, "is_last": True, "parent": {"pid_type": "recid", "pid_value": concept}}]},
        }
    )
    md.pop("meeting", None)
    if related:
        md["related_identifiers"] = related
    if grants:
        md["grants"] = grants
    if access_right != "open":
        md.pop("license", None)
    base = f"{ORIGIN}{PREFIX}/records/{rid}"
    rec["links"] = {k: v.replace("https://zenodo.org/api/records/8173303", base).replace("https://zenodo.org/records/8173303", f"{ORIGIN}/zenodo/records/{rid}").replace("8173302", concept)
                    for k, v in template["links"].items() if isinstance(v, str)}
    entries = []
    for key, served in (files or {}).items():
        server.add_file(f"zenodo/{rid}/{key}", served)
        entries.append(_file_entry(record_id, key, served))
    rec["files"] = entries
    st.records[record_id] = rec
    st.listings[record_id] = entries
    if legacy_shape:
        st.legacy_ids.add(record_id)
    if positive is not None:
        st.positive[record_id] = positive
    return rec


def generate(server: ServerState, n: int, seed: int = 1, start_id: int = 1_000_001) -> int:
    """``n`` records: mostly open datasets, some restricted, some in the 2023 shape,
    a few of other resource types (which a dataset search must not return)."""
    rng = random.Random(seed)
    texts = generated_texts(n, seed)
    base = datetime(2016, 1, 1, tzinfo=timezone.utc)
    for i, text in enumerate(texts):
        rid = start_id + 2 * i
        created = base + timedelta(days=rng.randint(0, 3500), seconds=rng.randint(0, 86399))
        files = {name: make_payload(name, rng, small=True) for name in file_plan(rng, text.positive)}
        roll = rng.random()
        add_record(
            server,
            rid,
            title=text.title,
            description=text.description,
            keywords=text.keywords,
            created=created,
            files=files,
            access_right="restricted" if roll < 0.08 else "open",
            resource_type="publication" if 0.08 <= roll < 0.12 else "dataset",
            legacy_shape=0.12 <= roll < 0.25,
            positive=text.positive,
            grants=legacy_grants(funding_plan("zenodo", seed, i)),
        )
    return n


def legacy_grants(awards: list[Award]) -> list[dict]:
    """``metadata.grants`` as Zenodo's legacy serializer writes them from InvenioRDM
    funding: ``code`` (the award number), ``internal_id`` (``<funder id>::<number>``),
    ``funder`` {name, doi, acronym}, ``title``; NIH awards under the NIH funder, numbered
    as OpenAIRE imports them (``5R01EY012345-03``)."""
    out = []
    for award in awards:
        funder = "nih" if award.core else award.funder
        name, crossref, _, acronym = FUNDERS[funder]
        number = award.number
        if award.core:
            number = f"5{award.core}-{(len(award.number) % 7) + 2:02d}"
        grant: dict = {"code": number, "internal_id": f"{crossref}::{number}",
                       "funder": {"name": name, "doi": crossref, "acronym": acronym}}
        if award.title:
            grant["title"] = award.title
        out.append(grant)
    return out


def modify(server: ServerState, fraction: float, seed: int = 2) -> int:
    """Touch a fraction of the records (new title, later ``updated``)."""
    st = state_of(server)
    chosen = pick_fraction(st.records, fraction, seed)
    now = datetime.now(timezone.utc).isoformat()
    for rid in chosen:
        rec = st.records[rid]
        rec["updated"] = rec["modified"] = now
        rec["revision"] = rec.get("revision", 1) + 1
        rec["metadata"]["title"] = rec["title"] = rec["title"] + " (revised)"
    return len(chosen)


# ------------------------------------------------------------------ search semantics
def _matches(rec: dict, phrases, ranges) -> bool:
    md = rec["metadata"]
    text = tokens(" ".join([md.get("title", ""), re.sub(r"<[^>]+>", " ", md.get("description", "")), " ".join(md.get("keywords", []))]))
    if not all(contains(text, p) for p in phrases):
        return False
    for fld, lo, hi, lo_inc, hi_inc in ranges:
        value = rec.get(fld) or ""
        if not in_range(value, lo, hi, lo_inc, hi_inc):
            return False
    return True


def legacy_files(entries: list[dict]) -> list[dict]:
    """The Oct-2023 transitional file shape seen in search hits."""
    out = []
    for e in entries:
        out.append(
            {
                "id": e["id"],
                "filename": e["key"],
                "filesize": e["size"],
                "checksum": e["checksum"].split(":", 1)[1],
                "links": {"self": e["links"]["self"].rsplit("/content", 1)[0], "download": e["links"]["self"]},
            }
        )
    return out


def _hit(st: ZenodoState, rec: dict) -> dict:
    hit = copy.copy(rec)
    rid = rec["id"]
    if rec["metadata"].get("access_right") != "open":
        hit["files"] = []
    elif rid in st.legacy_ids:
        hit["files"] = legacy_files(rec["files"])
    return hit


def _ratelimit_headers() -> dict[str, str]:
    # Zenodo sends these (and a Retry-After) on ordinary answers too
    return {"X-RateLimit-Limit": "133", "X-RateLimit-Remaining": "129", "Retry-After": "58"}


async def search(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    token = request.headers.get("Authorization", "").startswith("Bearer ")
    try:
        size = int(request.query.get("size", "10"))
        page = int(request.query.get("page", "1"))
    except ValueError:
        return json_response({"message": "Invalid querystring parameters.", "status": 400}, 400)
    if size > (100 if token else 25) or size < 1 or page < 1:
        return json_response({"message": "Invalid querystring parameters.", "status": 400}, 400)
    if page * size > WINDOW:
        return json_response({"message": "Invalid querystring parameters.", "status": 400}, 400)
    phrases, ranges = parse_query(request.query.get("q", ""))
    rtype = request.query.get("type")
    with server.lock:
        found = [
            r for r in st.records.values()
            if (not rtype or r["metadata"]["resource_type"]["type"] == rtype) and _matches(r, phrases, ranges)
        ]
        found.sort(key=lambda r: r["created"], reverse=request.query.get("sort", "mostrecent") == "mostrecent")
        chunk = [_hit(st, r) for r in found[(page - 1) * size : page * size]]
    body: dict[str, Any] = {
        "hits": {"hits": chunk, "total": len(found)},
        "aggregations": _sample("search_2025-01_empty.json")["aggregations"],
        "links": {"self": f"{ORIGIN}{request.path_qs}"},
    }
    if page * size < min(len(found), WINDOW):
        nxt = dict(request.query)
        nxt["page"] = str(page + 1)
        body["links"]["next"] = f"{ORIGIN}{PREFIX}/records?" + "&".join(f"{k}={quote(v)}" for k, v in nxt.items())
    return render_json(request, body, headers=_ratelimit_headers())


async def record(request: web.Request) -> web.Response:
    st = state_of(request.app[STATE_KEY])
    rec = st.records.get(int(request.match_info["id"])) if request.match_info["id"].isdigit() else None
    if rec is None:
        return json_response({"message": "The persistent identifier does not exist.", "status": 404}, 404)
    return render_json(request, rec, headers=_ratelimit_headers())


async def listing(request: web.Request) -> web.Response:
    st = state_of(request.app[STATE_KEY])
    rid = int(request.match_info["id"]) if request.match_info["id"].isdigit() else -1
    if rid not in st.records:
        return json_response({"message": "The persistent identifier does not exist.", "status": 404}, 404)
    template = _sample("record_files_2025-01.json")
    entries = []
    for e in st.listings.get(rid, []):
        entry = copy.deepcopy(template["entries"][0])
        entry.update({"key": e["key"], "checksum": e["checksum"], "size": e["size"], "file_id": e["id"]})
        entry["links"] = {"self": e["links"]["self"].rsplit("/content", 1)[0], "content": e["links"]["self"]}
        entries.append(entry)
    body = {**template, "entries": entries,
            "links": {"self": f"{ORIGIN}{PREFIX}/records/{rid}/files", "archive": f"{ORIGIN}{PREFIX}/records/{rid}/files-archive"}}
    return render_json(request, body, headers=_ratelimit_headers())


async def content(request: web.Request) -> web.StreamResponse:
    """File content: like Zenodo, answered on the API host; here via a redirect to
    ``/storage/zenodo/...`` so redirect handling (Range kept) is exercised too."""
    server = request.app[STATE_KEY]
    rid, key = request.match_info["id"], request.match_info["key"]
    path = f"zenodo/{rid}/{key}"
    with server.lock:
        served = server.files.get(path)
    if served is None:
        return json_response({"message": "not found", "status": 404}, 404)
    if request.query.get("direct"):
        return await serve_file(request, served)
    raise web.HTTPFound(location="/storage/" + quote(path, safe="/"))


def register(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/records", search)
    app.router.add_get(f"{PREFIX}/records/{{id}}", record)
    app.router.add_get(f"{PREFIX}/records/{{id}}/files", listing)
    app.router.add_get(f"{PREFIX}/records/{{id}}/files/{{key:.+}}/content", content)
