"""OSF on the local API server, under ``/osf/v2`` (set OSF_API_URL to it).

Shapes come from the recorded responses in ``samples/osf/`` (OSF's test server, the
same software as api.osf.io): each node is a copy of ``node_detail_2026-02.json``
with its own id, texts, dates, licence and relationships; files and folders are
copies of the entries of ``folder_files_page1_2026-02.json`` and
``node_files_osfstorage_root_2026-02.json`` (dates with and without ``Z`` as
recorded, md5 and sha256 of the served bytes). No registration was recorded: a
registration is a node copy with the attributes of OSF's RegistrationSerializer
(``date_registered``, ``withdrawn``, ``embargoed``, ...; a withdrawn one hides its
tags, licence, files and identifiers, as OSF does).

It behaves like OSF's API (osf.io ``api/base``): ``/nodes/`` and ``/registrations/``
with ``filter[field][op]`` (title and description: case-insensitive substring, an
empty value matching everything; tags: case-insensitive equality; ``date_created`` /
``date_modified`` with ``gt``/``gte``/``lt``/``lte``/``eq``; ``public``; ``category``;
``id`` lists; ``filter[title,description]`` ORs fields; an unknown field is a 400),
JSON:API paging (``page``, ``page[size]`` capped at 100, default 10, ``links.first/
last/prev/next``, the total in ``links.meta`` or, from version 2.3 on, in the
top-level ``meta``; a page past the end is a 404), ``embed=identifiers`` /
``embed=license``, node and registration detail, osfstorage listings with folders and
pages, download links (``/osf/download/{id}/``) redirecting to ``/storage/osf/...``,
private nodes seen only with a Bearer token (its owner's), and answers typed
``application/vnd.api+json``. The hourly limit is the core's rate window:
``state.set_rate_limit("/osf/v2", [(100, 3600)])`` (scaled down in tests).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from envision_spiders.textutil import parse_datetime

from .core import ORIGIN, STATE_KEY, ServedFile, ServerState, render_json
from .corpus import file_plan, generated_texts, pick_fraction
from .payloads import make_payload

PREFIX = "/osf/v2"
WEB = "/osf"  # the web host's paths (osf.io/{guid}/, osf.io/download/{id}/)
SAMPLES = Path(__file__).with_name("samples") / "osf"
API = ORIGIN + PREFIX
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
CONTENT_TYPE = "application/vnd.api+json"
GUID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # OSF guids: 5 of these
# Licence names as OSF lists them (/v2/licenses/); the ids are made up here.
LICENSES = {
    "0000000000000000000000c4": ("CC-By Attribution 4.0 International", "https://creativecommons.org/licenses/by/4.0/legalcode"),
    "0000000000000000000000c0": ("CC0 1.0 Universal", "https://creativecommons.org/publicdomain/zero/1.0/legalcode"),
    "0000000000000000000000a1": ("MIT License", "http://opensource.org/licenses/MIT"),
    "0000000000000000000000f0": ("No license", ""),
}
CATEGORIES = ["project", "data", "analysis", "software", "methods and measures", ""]
SUBJECTS = [[{"id": "584240da54be81056cecac48", "text": "Medicine and Health Sciences"},
             {"id": "584240d954be81056cec9e5c", "text": "Ophthalmology"}]]
# fields of the list endpoints' filters, and how a bare filter[field] compares
FILTERABLE = {
    "id": "in", "title": "icontains", "description": "icontains", "tags": "iexact", "category": "eq",
    "public": "eq", "date_created": "eq", "date_modified": "eq",
}
DATE_FIELDS = ("date_created", "date_modified")
_FILTER_KEY = re.compile(r"^filter\[(?P<fields>[\w\s,]+)\](?:\[(?P<op>\w+)\])?$")


def _sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def stamp(dt: datetime, zone: bool = False) -> str:
    """OSF's timestamp shapes: ``2019-08-10T16:36:04.608531`` and the same with ``Z``."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + ("Z" if zone else "")


@dataclass
class OSFState:
    records: dict[str, dict] = field(default_factory=dict)  # guid -> node or registration resource
    folders: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # guid -> folder id ("" root) -> entries
    identifiers: dict[str, list[dict]] = field(default_factory=dict)  # guid -> identifier resources
    downloads: dict[str, str] = field(default_factory=dict)  # file id or file guid -> path under /storage/
    files: dict[str, dict[str, ServedFile]] = field(default_factory=dict)  # guid -> materialized path -> file
    positive: dict[str, bool] = field(default_factory=dict)  # generated label, for demo and tests


def state_of(server: ServerState) -> OSFState:
    return server.sources.setdefault("osf", OSFState())


# ------------------------------------------------------------------ building resources
def _rewrite(obj: Any, pairs: list[tuple[str, str]]) -> Any:
    text = json.dumps(obj)
    for old, new in pairs:
        text = text.replace(old, new)
    return json.loads(text)


def _hosts(kind: str, guid: str, template_guid: str) -> list[tuple[str, str]]:
    return [
        (f"https://api.test.osf.io/v2/nodes/{template_guid}/", f"{API}/{kind}/{guid}/"),
        ("https://api.test.osf.io/v2", API),
        ("https://files.us.test.osf.io", ORIGIN + WEB + "/wb"),
        ("https://mfr.us.test.osf.io", ORIGIN + WEB + "/mfr"),
        ("https%3A%2F%2Ftest.osf.io", quote(ORIGIN + WEB, safe="")),
        ("https://test.osf.io", ORIGIN + WEB),
        (f"/{template_guid}/", f"/{guid}/"),
    ]


def _relation(kind: str, guid: str) -> dict:
    return {"links": {"related": {"href": f"{API}/{kind}/{guid}/", "meta": {}}}, "data": {"id": guid, "type": kind}}


def add_record(
    server: ServerState,
    guid: str,
    *,
    kind: str = "nodes",
    title: str,
    description: str,
    tags: list[str],
    created: datetime,
    modified: datetime | None = None,
    category: str = "project",
    public: bool = True,
    license_id: str | None = None,
    doi: str | None = None,
    ark: str | None = None,
    parent: str | None = None,
    subjects: list | None = None,
    files: dict[str, ServedFile] | None = None,
    withdrawn: bool = False,
    article_doi: str | None = None,
    positive: bool | None = None,
) -> dict:
    """One node or registration in the real shape; its files are served for download too."""
    st = state_of(server)
    template = _sample("node_detail_2026-02.json")["data"]
    rec = copy.deepcopy(template)
    rec["id"], rec["type"] = guid, kind
    modified = modified or created
    attrs = rec["attributes"]
    attrs.update(
        {
            "title": title,
            "description": description,
            "category": category,
            "date_created": stamp(created),
            "date_modified": stamp(modified),
            "tags": list(tags),
            "public": public,
            "registration": kind == "registrations",
            "node_license": {"copyright_holders": ["The authors"], "year": str(created.year)} if license_id else None,
            "subjects": subjects or [],
            "current_user_permissions": [],
            "current_user_is_contributor": False,
            "current_user_is_contributor_or_group_member": False,
        }
    )
    rels = _rewrite(template["relationships"], _hosts(kind, guid, "brfza"))
    root = guid
    if parent is not None:
        parent_rec = st.records[parent]
        rels["parent"] = _relation(kind, parent)
        root = (parent_rec["relationships"].get("root") or {}).get("data", {}).get("id", parent)
    rels["root"] = _relation(kind, root)
    if license_id:
        rels["license"] = {"links": {"related": {"href": f"{API}/licenses/{license_id}/", "meta": {}}},
                           "data": {"id": license_id, "type": "licenses"}}
    rec["links"] = {"html": f"{ORIGIN}{WEB}/{guid}/", "self": f"{API}/{kind}/{guid}/", "iri": f"{ORIGIN}{WEB}/{guid}"}
    if kind == "registrations":
        _make_registration(rec, rels, created, withdrawn, article_doi)
    rec["relationships"] = rels
    st.records[guid] = rec
    st.identifiers[guid] = [
        {"id": f"{guid}{i}", "type": "identifiers", "attributes": {"category": category_, "value": value},
         "links": {"self": f"{API}/identifiers/{guid}{i}/"},
         "relationships": {"referent": _relation(kind, guid)}}
        for i, (category_, value) in enumerate((("doi", doi), ("ark", ark)))
        if value
    ]
    st.folders[guid] = _tree(st, server, kind, guid, files or {}, created)
    if positive is not None:
        st.positive[guid] = positive
    return rec


def _make_registration(rec: dict, rels: dict, created: datetime, withdrawn: bool, article_doi: str | None) -> None:
    attrs = rec["attributes"]
    registered = created + timedelta(days=3)
    for name in ("settings", "draft_registrations", "registrations", "preprints"):
        rels.pop(name, None)  # HideIfRegistration
    rels["registered_from"] = _relation("nodes", rec["id"][::-1])
    attrs.update(
        {
            "date_registered": stamp(registered),
            "date_withdrawn": stamp(registered + timedelta(days=30)) if withdrawn else None,
            "withdrawn": withdrawn,
            "withdrawal_justification": "Registered by mistake." if withdrawn else None,
            "embargoed": False,
            "embargo_end_date": None,
            "pending_embargo_approval": False,
            "pending_embargo_termination_approval": False,
            "pending_registration_approval": False,
            "pending_withdrawal": False,
            "archiving": False,
            "registration_supplement": "Open-Ended Registration",
            "registered_meta": {},
            "article_doi": article_doi,
        }
    )
    if withdrawn:  # HideIfWithdrawal
        for name in ("category", "fork", "collection", "access_requests_enabled", "node_license", "tags", "public",
                     "current_user_permissions", "pending_embargo_approval", "pending_embargo_termination_approval",
                     "embargoed", "pending_registration_approval", "archiving", "pending_withdrawal",
                     "embargo_end_date", "custom_citation", "registered_meta", "subjects"):
            attrs.pop(name, None)
        for name in ("files", "license", "identifiers", "children", "wikis", "forks", "logs", "parent", "root",
                     "linked_nodes", "linked_registrations", "citation", "registered_from"):
            rels.pop(name, None)


def _file_id(key: str) -> str:
    """A stable 24-hex id, shaped like OSF's file ids."""
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def _tree(st: OSFState, server: ServerState, kind: str, guid: str, files: dict[str, ServedFile], created: datetime) -> dict[str, list[dict]]:
    """osfstorage of a node: the folders of every path and its files, as listing entries."""
    file_tpl = _sample("folder_files_page1_2026-02.json")["data"][0]
    folder_tpl = _sample("node_files_osfstorage_root_2026-02.json")["data"][0]
    root_id = _file_id(f"{guid}/")
    tree: dict[str, list[dict]] = {"": []}
    folder_ids: dict[str, str] = {"": ""}
    st.files[guid] = dict(files)

    def folder(path: str) -> str:  # "a/b" -> folder id, created with its parents
        if path in folder_ids:
            return folder_ids[path]
        parent_path, _, name = path.rpartition("/")
        parent_id = folder(parent_path)
        fid = _file_id(f"{guid}/{path}/")
        entry = _rewrite(folder_tpl, _hosts(kind, guid, "y8t6r") + [
            ("5d4ef2104e90e100146f7e53", fid), ("5d4ef1d916465c001433cae2", parent_id or root_id),
            ("/many-files/", f"/{path}/"), ('"many-files"', json.dumps(name)),
        ])
        tree[parent_id].append(entry)
        tree[fid] = []
        folder_ids[path] = fid
        return fid

    for i, (path, served) in enumerate(sorted(files.items())):
        parent_path, _, name = path.rpartition("/")
        parent_id = folder(parent_path) if parent_path else ""
        fid = _file_id(f"{guid}/{path}")
        when = created + timedelta(minutes=i)
        entry = _rewrite(file_tpl, _hosts(kind, guid, "y8t6r") + [
            ("5d4ef2744e90e100146f7e5d", fid), ("5d4ef2104e90e100146f7e53", parent_id or root_id),
        ])
        attrs = entry["attributes"]
        attrs.update(
            {
                "name": name,
                "materialized_path": "/" + path,
                "size": served.size,
                "date_created": stamp(when, zone=True),  # as recorded: created with Z,
                "date_modified": stamp(when),  # modified without
                "extra": {"hashes": {"md5": served.md5, "sha256": served.sha256}, "downloads": 0},
            }
        )
        entry["relationships"]["node"] = entry["relationships"]["target"] = _relation(kind, guid)
        tree[parent_id].append(entry)
        storage = server.add_file(f"osf/{guid}/{fid}", served)
        st.downloads[fid] = storage.removeprefix("/storage/")
    return tree


def _guid(rng: random.Random, taken: dict) -> str:
    while True:
        guid = "".join(rng.choice(GUID_ALPHABET) for _ in range(5))
        if guid not in taken:
            return guid


def _small(rng: random.Random) -> ServedFile:
    return ServedFile.from_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randint(16, 64))))


def generate(server: ServerState, n: int, seed: int = 1) -> int:
    """``n`` records: mostly public projects and components, a quarter registrations
    (some withdrawn), a few private nodes; files in the root or in folders, a few
    nodes with hundreds of files (listing pages), one with folders nested deeper than
    a spider should walk and one with many sibling folders."""
    st = state_of(server)
    rng = random.Random(seed)
    texts = generated_texts(n, seed)
    base = datetime(2015, 1, 1, tzinfo=timezone.utc)
    last_node = None
    for i, text in enumerate(texts):
        guid = _guid(rng, st.records)
        kind = "registrations" if rng.random() < 0.25 else "nodes"
        created = base + timedelta(days=rng.randint(0, 3000), seconds=rng.randint(0, 86399), microseconds=rng.randint(0, 999999))
        modified = created + timedelta(days=rng.randint(0, 300), seconds=rng.randint(0, 86399))
        names = file_plan(rng, text.positive)
        layout = i % 10
        if layout < 4:
            paths = names
        elif layout < 8:
            paths = [f"data/{name}" for name in names]
        else:
            paths = [f"raw/visit {1 + j % 2}/{name}" for j, name in enumerate(names)]
        files = {p: make_payload(p, rng, small=True) for p in paths}
        if i % 23 == 7:  # hundreds of files: several listing pages
            files.update({f"images/img_{j:04d}.png": _small(rng) for j in range(230)})
        if i % 31 == 11:  # deeper than any spider walks
            files["l1/l2/l3/l4/l5/l6/l7/deep.csv"] = _small(rng)
        if i % 37 == 13:  # more sibling folders than a listing budget
            files.update({f"site {j:02d}/scan.tif": _small(rng) for j in range(14)})
        registration = kind == "registrations"
        withdrawn = registration and rng.random() < 0.12
        license_id = rng.choice([None, *LICENSES]) if not withdrawn else None
        parent = last_node if kind == "nodes" and last_node and rng.random() < 0.15 else None
        add_record(
            server,
            guid,
            kind=kind,
            title=text.title,
            description=text.description,
            tags=text.keywords,
            created=created,
            modified=modified,
            category=rng.choice(CATEGORIES) if kind == "nodes" else rng.choice(["project", "data"]),
            public=not (kind == "nodes" and rng.random() < 0.06),
            license_id=license_id,
            doi=f"10.17605/OSF.IO/{guid.upper()}" if registration or rng.random() < 0.4 else None,
            ark=f"c7605/osf.io/{guid}" if registration and rng.random() < 0.5 else None,
            parent=parent,
            subjects=SUBJECTS if text.positive and rng.random() < 0.5 else None,
            files={} if withdrawn else files,
            withdrawn=withdrawn,
            article_doi=f"10.1167/iovs.{rng.randint(10, 99)}.{rng.randint(1, 15)}.{rng.randint(1, 40)}" if registration and rng.random() < 0.3 else None,
            positive=text.positive,
        )
        if kind == "nodes":
            last_node = guid
    return n


def modify(server: ServerState, fraction: float, seed: int = 2) -> int:
    """Touch a fraction of the records (new title, ``date_modified`` now)."""
    st = state_of(server)
    chosen = pick_fraction(st.records, fraction, seed)
    now = stamp(datetime.now(timezone.utc))
    for guid in chosen:
        attrs = st.records[guid]["attributes"]
        attrs["date_modified"] = now
        attrs["title"] += " (revised)"
    return len(chosen)


# ------------------------------------------------------------------ filters
class FilterError(ValueError):
    pass


def parse_filters(query) -> list[list[tuple[str, str, str]]]:
    """``filter[f1,f2][op]=v`` parameters as AND-ed groups of OR-ed (field, op, value).
    As in Django's QueryDict, the last value of a repeated key wins."""
    groups = []
    for key in dict.fromkeys(query.keys()):
        m = _FILTER_KEY.match(key)
        if not m:
            if key.startswith("filter["):
                raise FilterError(f"'{key}' is not a valid filter.")
            continue
        value = query.getall(key)[-1]
        group = []
        for name in (f.strip() for f in m.group("fields").split(",") if f.strip()):
            if name not in FILTERABLE:
                raise FilterError(f"'{name}' is not a valid field for this endpoint.")
            op = m.group("op") or FILTERABLE[name]
            allowed = {"eq", "ne", "gt", "gte", "lt", "lte"} if name in DATE_FIELDS else {FILTERABLE[name], "eq", "ne", "contains", "icontains"}
            if op not in allowed:
                raise FilterError(f"'{op}' is not a valid operator for '{name}'.")
            if name in DATE_FIELDS and parse_datetime(value) is None:
                raise FilterError(f"Value '{value}' is not valid for a date.")
            group.append((name, op, value))
        groups.append(group)
    return groups


def matches(record: dict, name: str, op: str, value: str) -> bool:
    """One filter on one record, with OSF's semantics."""
    attrs = record["attributes"]
    if name == "id":
        return record["id"] in [v.strip() for v in value.strip("[]").split(",")]
    if name == "public":  # a withdrawn registration hides it but stays public
        result = bool(attrs.get("public", True)) == (value.strip().lower() in ("true", "1"))
        return (not result) if op == "ne" else result
    if name not in attrs:  # other hidden (withdrawn) fields match nothing
        return False
    have = attrs[name]
    if name in DATE_FIELDS:
        mine, theirs = parse_datetime(have), parse_datetime(value)
        if mine is None or theirs is None:
            return False
        if op == "eq" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return theirs <= mine < theirs + timedelta(days=1)  # a bare date is that whole day
        return {"eq": mine == theirs, "ne": mine != theirs, "gt": mine > theirs, "gte": mine >= theirs,
                "lt": mine < theirs, "lte": mine <= theirs}[op]
    if name == "tags":
        result = value.strip().lower() in [str(t).lower() for t in have or []]
    elif op in ("icontains", "contains"):
        result = (value.lower() in str(have or "").lower()) if op == "icontains" else value in str(have or "")
    else:
        result = str(have) == value
    return (not result) if op == "ne" else result


def visible(record: dict, token: bool) -> bool:
    """Public records for everyone; private ones only for their owner (any token here)."""
    return record["attributes"].get("public", True) is not False or token


# ------------------------------------------------------------------ answers
def _render(request: web.Request, payload: Any, status: int = 200) -> web.Response:
    return render_json(request, payload, status, content_type=CONTENT_TYPE)


def _error(request: web.Request, status: int, detail: str, parameter: str | None = None) -> web.Response:
    err: dict[str, Any] = {"detail": detail}
    if parameter:
        err["source"] = {"parameter": parameter}
    return _render(request, {"errors": [err], "meta": {"version": "2.0"}}, status)


def _version(request: web.Request) -> tuple[int, int]:
    raw = request.query.get("version") or ""
    if not raw:
        m = re.search(r"version=(\d+\.\d+)", request.headers.get("Accept", ""))
        raw = m.group(1) if m else "2.0"
    try:
        major, minor = raw.split(".", 1)
        return int(major), int(minor)
    except ValueError:
        return 2, 0


def _token(request: web.Request) -> bool:
    return request.headers.get("Authorization", "").startswith("Bearer ")


def _with_embeds(st: OSFState, record: dict, embeds: list[str]) -> dict:
    out = copy.copy(record)
    if not embeds:
        return out
    rels = record["relationships"]
    out["embeds"] = {}
    if "identifiers" in embeds and "identifiers" in rels:
        idents = st.identifiers.get(record["id"], [])
        out["embeds"]["identifiers"] = {
            "data": idents,
            "links": {"first": None, "last": None, "prev": None, "next": None, "meta": {"total": len(idents), "per_page": 10}},
        }
    if "license" in embeds and "license" in rels:
        lid = rels["license"]["data"]["id"]
        name, url = LICENSES[lid]
        out["embeds"]["license"] = {"data": {"id": lid, "type": "licenses",
                                             "attributes": {"name": name, "text": f"{name} (text)", "url": url, "required_fields": []},
                                             "links": {"self": f"{API}/licenses/{lid}/"}}}
    elif "license" in embeds:
        out["embeds"]["license"] = {"errors": [{"detail": "Not found."}]}
    return out


def _embeds(request: web.Request) -> list[str] | web.Response:
    embeds = [e for v in request.query.getall("embed", []) for e in v.split(",") if e]
    bad = [e for e in embeds if e not in ("identifiers", "license")]
    if bad:
        return _error(request, 400, f"The following fields are not embeddable: {', '.join(bad)}", "embed")
    return embeds


def _paged(request: web.Request, items: list[dict]) -> web.Response:
    try:
        size = int(request.query.get("page[size]", DEFAULT_PAGE_SIZE))
    except ValueError:
        size = DEFAULT_PAGE_SIZE
    size = DEFAULT_PAGE_SIZE if size < 1 else min(size, MAX_PAGE_SIZE)
    pages = max(1, math.ceil(len(items) / size))
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = -1
    if not 1 <= page <= pages:
        return _error(request, 404, "Invalid page.")

    def link(n: int) -> str:
        params = [(k, v) for k, v in request.query.items() if k != "page"]
        if n > 1:
            params.append(("page", str(n)))
        query = urlencode(params)
        return f"{ORIGIN}{request.path}" + (f"?{query}" if query else "")

    links: dict[str, Any] = {
        "first": link(1) if page > 1 else None,
        "last": link(pages) if page < pages else None,
        "prev": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < pages else None,
    }
    version = _version(request)
    body: dict[str, Any] = {"data": items[(page - 1) * size : page * size], "links": links}
    if version >= (2, 3):
        body["meta"] = {"total": len(items), "per_page": size, "version": "%d.%d" % version}
    else:
        links["meta"] = {"total": len(items), "per_page": size}
        body["meta"] = {"version": "2.0"}
    return _render(request, body)


async def list_view(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    st = state_of(request.app[STATE_KEY])
    try:
        groups = parse_filters(request.query)
    except FilterError as exc:
        return _error(request, 400, str(exc), "filter")
    embeds = _embeds(request)
    if isinstance(embeds, web.Response):
        return embeds
    token = _token(request)
    with request.app[STATE_KEY].lock:
        found = [
            r for r in st.records.values()
            if r["type"] == kind and visible(r, token) and all(any(matches(r, *f) for f in group) for group in groups)
        ]
        # OSF's default order: most recently modified first
        found.sort(key=lambda r: (r["attributes"]["date_modified"], r["id"]), reverse=True)
        found = [_with_embeds(st, r, embeds) for r in found]
    return _paged(request, found)


def _record_for(request: web.Request) -> dict | web.Response:
    st = state_of(request.app[STATE_KEY])
    rec = st.records.get(request.match_info["guid"])
    if rec is None or rec["type"] != request.match_info["kind"]:
        return _error(request, 404, "Not found.")
    if not visible(rec, _token(request)):
        return _error(request, 401, "Authentication credentials were not provided.")
    return rec


async def detail(request: web.Request) -> web.Response:
    rec = _record_for(request)
    if isinstance(rec, web.Response):
        return rec
    embeds = _embeds(request)
    if isinstance(embeds, web.Response):
        return embeds
    return _render(request, {"data": _with_embeds(state_of(request.app[STATE_KEY]), rec, embeds), "meta": {"version": "2.0"}})


async def listing(request: web.Request) -> web.Response:
    rec = _record_for(request)
    if isinstance(rec, web.Response):
        return rec
    if rec["attributes"].get("withdrawn"):
        return _error(request, 403, "This registration has been withdrawn.")
    tree = state_of(request.app[STATE_KEY]).folders.get(rec["id"], {})
    entries = tree.get(request.match_info.get("folder", ""))
    if entries is None:
        return _error(request, 404, "Not found.")
    return _paged(request, list(entries))


async def download(request: web.Request) -> web.StreamResponse:
    """``osf.io/download/{id}/``: a redirect to the file's storage (WaterButler there)."""
    path = state_of(request.app[STATE_KEY]).downloads.get(request.match_info["id"])
    if path is None:
        return _error(request, 404, "Not found.")
    raise web.HTTPFound(location="/storage/" + quote(path, safe="/"))


def register(app: web.Application) -> None:
    kinds = "{kind:nodes|registrations}"
    app.router.add_get(f"{PREFIX}/{kinds}/", list_view)
    app.router.add_get(f"{PREFIX}/{kinds}/{{guid}}/", detail)
    app.router.add_get(f"{PREFIX}/{kinds}/{{guid}}/files/osfstorage/", listing)
    app.router.add_get(f"{PREFIX}/{kinds}/{{guid}}/files/osfstorage/{{folder}}/", listing)
    app.router.add_get(f"{WEB}/download/{{id}}/", download)
