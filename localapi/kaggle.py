"""Kaggle on the local API server, under ``/kaggle/api/v1`` (set KAGGLE_API_URL to it).

Shapes come from the recorded responses in ``samples/kaggle/``: every generated dataset
is a copy of an item of ``datasets_list_2021-06.json`` with its own ref, texts, tags,
dates and files, and every file entry a copy of an entry of
``dataset_files_list_2021-06.json`` (``url`` stays ``https://www.kaggle.com/``, which is
not a download link, as in the real answer). Datasets are served in three shapes:

* ``2021``: exactly the recorded shape; its file list comes in one answer without
  ``nextPageToken`` (as recorded);
* ``nullable``: the 2022-2023 shape of the legacy API, where each nullable field ``x``
  comes three times, ``x``, ``hasX`` and ``xNullable`` (the field layout a public client
  decoded, not a recorded answer: see the spider's docstring);
* ``current``: ``url`` in the ``/datasets/{owner}/{slug}`` form and ``thumbnailImageUrl``;
  its file list is paged with ``pageSize`` / ``pageToken`` / ``nextPageToken``.

The endpoints behave like Kaggle's legacy REST API (docs/sources/kaggle.md):

* ``GET /datasets/list?search=&sortBy=&page=``: a bare array of 20 datasets a page,
  every word of ``search`` required (title, subtitle, tags and the description that
  list items do not carry), ``sortBy`` one of hottest / votes / updated / active /
  published (400 otherwise), and nothing after page 500 (``last_page``);
* ``GET /datasets/list/{owner}/{slug}?pageSize=&pageToken=``: ``{"datasetFiles": [...],
  "errorMessage": null[, "nextPageToken": ...]}``, 404 for an unknown dataset;
* ``GET /datasets/download/{owner}/{slug}/{file}`` and ``/datasets/download/{owner}/{slug}``:
  401 without valid credentials, else a 302 to a signed ``/storage/...`` URL (the file,
  or a ZIP of the whole dataset built on first use);
* credentials: ``Authorization: Bearer <token>`` or HTTP basic ``username:key``; wrong
  ones get 401 everywhere, none get 401 on downloads only (and on searches when
  ``anonymous_search`` is off);
* 429 answers in both bodies Kaggle uses (legacy ``{"code":429,...}``, new
  ``{"error":{...}}``), queued with :func:`throttle`.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import random
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from envision_spiders.filetypes import file_extension
from envision_spiders.textutil import parse_datetime, plain_text

from .core import ORIGIN, STATE_KEY, ServedFile, ServerState, json_response, render_json
from .corpus import file_plan, generated_texts
from .payloads import make_payload

PREFIX = "/kaggle/api/v1"
SAMPLES = Path(__file__).with_name("samples") / "kaggle"
PAGE_SIZE = 20
LAST_PAGE = 500
FILES_PAGE_DEFAULT = 20
FILES_PAGE_MAX = 200
SORTS = ("hottest", "votes", "updated", "active", "published")

# Credentials the local server accepts (tests pass them through the environment).
TEST_USERNAME = "curator"
TEST_KEY = "local-test-key-0123456789abcdef"
TEST_TOKEN = "KGAT_localtesttoken0123456789"

# Fields the 2022-2023 legacy API sent as ``x`` + ``hasX`` + ``xNullable``.
NULLABLE_FIELDS = (
    "subtitle", "creatorName", "creatorUrl", "totalBytes", "url", "licenseName", "description",
    "ownerName", "ownerRef", "title", "currentVersionNumber", "usabilityRating",
)
LICENSES = (
    "CC0: Public Domain",
    "Attribution 4.0 International (CC BY 4.0)",
    "CC BY-NC-SA 4.0",
    "Data files © Original Authors",
    "Other (specified in description)",
)
OWNERS = ("eyelab", "retina-group", "kmader", "andrewmvd", "ophthalmo", "paultimothymooney")


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@dataclass
class KaggleState:
    datasets: dict[str, dict] = field(default_factory=dict)  # ref -> list item, recorded shape
    descriptions: dict[str, str] = field(default_factory=dict)  # ref -> description (searchable, never listed)
    files: dict[str, list[dict]] = field(default_factory=dict)  # ref -> datasetFiles entries
    shapes: dict[str, str] = field(default_factory=dict)  # ref -> "2021" | "nullable" | "current"
    positive: dict[str, bool] = field(default_factory=dict)  # generated label, for demo and tests
    words: dict[str, set[str]] = field(default_factory=dict)  # ref -> searchable words
    users: dict[str, str] = field(default_factory=lambda: {TEST_USERNAME: TEST_KEY})
    tokens: set[str] = field(default_factory=lambda: {TEST_TOKEN})
    anonymous_search: bool = True
    last_page: int = LAST_PAGE
    throttle: list[tuple[str, str]] = field(default_factory=list)  # (429 body style, path pattern)


def state_of(server: ServerState) -> KaggleState:
    return server.sources.setdefault("kaggle", KaggleState())


def throttle(server: ServerState, *styles: str, path: str = "") -> None:
    """The next ``len(styles)`` API requests (whose path and query match the regular
    expression ``path``) answer 429, each with the body of its style: ``legacy``
    (``{"code":429,...}``) or ``new`` (``{"error":{...}}``)."""
    st = state_of(server)
    with server.lock:
        st.throttle.extend((style, path) for style in styles)


# ------------------------------------------------------------------ generation
def kaggle_time(dt: datetime, digits: int) -> str:
    """A timestamp the way Kaggle writes it: ``Z``, 0 to 7 fractional digits."""
    base = dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return base + "Z"
    fraction = f"{dt.microsecond:06d}0"[:digits]
    return f"{base}.{fraction}Z"


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50].strip("-") or "dataset"


def _file_entry(template: dict, ref: str, owner: str, name: str, size: int, created: str) -> dict:
    entry = copy.deepcopy(template)
    ext = file_extension(name)
    entry.update(
        {
            "ref": name,
            "datasetRef": ref,
            "ownerRef": owner,
            "name": name,
            "creationDate": created,
            "fileType": "." + ext.rsplit(".", 1)[-1] if ext else "",
            "totalBytes": size,
        }
    )
    if ext != ".csv":
        entry["columns"] = []
    return entry


def add_dataset(
    server: ServerState,
    ref: str,
    *,
    dataset_id: int,
    title: str,
    subtitle: str,
    description: str,
    keywords: list[str],
    updated: datetime,
    files: dict[str, ServedFile],
    shape: str = "2021",
    digits: int = 3,
    license_name: str = "CC0: Public Domain",
    owner_name: str | None = None,
    creator: tuple[str, str] | None = None,
    positive: bool | None = None,
    template_index: int = 0,
) -> dict:
    """Add one dataset in the recorded shape; its files are registered for download."""
    st = state_of(server)
    owner, slug = ref.split("/", 1)
    items = _sample("datasets_list_2021-06.json")
    listing = _sample("dataset_files_list_2021-06.json")["datasetFiles"]
    item = copy.deepcopy(items[template_index % len(items)])
    tag_template = copy.deepcopy(items[0]["tags"][0])
    tags = []
    for kw in keywords:
        tag = dict(tag_template)
        tag.update({"ref": kw, "name": kw, "description": None, "fullPath": f"subject > health and fitness > health > {kw}"})
        tags.append(tag)
    creator_name, creator_ref = creator or (owner_name or owner.replace("-", " ").title(), owner)
    entries = []
    created = kaggle_time(updated, 7)
    for name, served in files.items():
        server.add_file(f"kaggle/{ref}/{name}", served)
        entries.append(_file_entry(listing[0] if name.endswith(".csv") else listing[1], ref, owner, name, served.size, created))
    item.update(
        {
            "id": dataset_id,
            "ref": ref,
            "title": title,
            "subtitle": subtitle,
            "description": None,
            "creatorName": creator_name,
            "creatorUrl": creator_ref,
            "ownerName": owner_name or creator_name,
            "ownerRef": owner,
            "totalBytes": sum(f.size for f in files.values()),
            "url": f"{ORIGIN}/kaggle/{ref}",
            "lastUpdated": kaggle_time(updated, digits),
            "licenseName": license_name,
            "currentVersionNumber": 1,
            "isPrivate": False,
            "tags": tags,
            "files": [],
            "versions": [],
        }
    )
    with server.lock:
        st.datasets[ref] = item
        st.descriptions[ref] = description
        st.files[ref] = entries
        st.shapes[ref] = shape
        st.words.pop(ref, None)
        if positive is not None:
            st.positive[ref] = positive
    return item


def generate(server: ServerState, n: int, seed: int = 1, start_id: int = 2_000_001) -> int:
    """``n`` datasets: a third in each shape, some re-uploads whose subtitle names the
    original (a link or a DOI), one in ten with hundreds of files (a paged file list)."""
    rng = random.Random(seed)
    texts = generated_texts(n, seed)
    base = datetime(2017, 1, 1, tzinfo=timezone.utc)
    for i, text in enumerate(texts):
        owner = rng.choice(OWNERS)
        ref = f"{owner}/{_slugify(text.title)}-{seed}-{i}"
        names = file_plan(rng, text.positive)
        files = {name: make_payload(name, rng, small=True) for name in names}
        if i % 10 == 4:
            # an image folder listed file by file: more than one page of 200 (every shape)
            for k in range(rng.randint(210, 450)):
                files[f"images/train/img_{k:04d}.png"] = ServedFile.from_bytes(b"\x89PNG\r\n\x1a\n" + bytes([k % 251]) * 24)
        subtitle = plain_text(text.description).split(". ")[0]
        if len(subtitle) > 80:
            subtitle = subtitle[:80].rsplit(" ", 1)[0]
        mirror = rng.random()
        if mirror < 0.15:
            subtitle = f"Mirror of https://physionet.org/content/{_slugify(text.title)[:20]}/1.0.0/"
        elif mirror < 0.22:
            subtitle = f"Re-upload of doi:10.5281/zenodo.{7000000 + i}, {subtitle[:40]}"
        updated = base + timedelta(days=rng.randint(0, 3000), seconds=rng.randint(0, 86399), microseconds=rng.randint(0, 999999))
        add_dataset(
            server,
            ref,
            dataset_id=start_id + i,
            title=text.title,
            subtitle=subtitle,
            description=text.description,
            keywords=text.keywords,
            updated=updated,
            files=files,
            shape=("2021", "nullable", "current")[i % 3],
            digits=rng.choice((0, 2, 3, 3, 7)),
            license_name=rng.choice(LICENSES),
            owner_name=owner.replace("-", " ").title() if rng.random() < 0.5 else None,
            positive=text.positive,
            template_index=i,
        )
    return n


def modify(server: ServerState, fraction: float, seed: int = 2) -> int:
    """Touch a fraction of the datasets (new version: title, ``lastUpdated`` now)."""
    st = state_of(server)
    rng = random.Random(seed)
    refs = sorted(st.datasets)
    chosen = rng.sample(refs, max(1, int(len(refs) * fraction))) if refs else []
    now = kaggle_time(datetime.now(timezone.utc), 7)
    with server.lock:
        for ref in chosen:
            item = st.datasets[ref]
            item["lastUpdated"] = now
            item["title"] += " (revised)"
            item["currentVersionNumber"] = int(item.get("currentVersionNumber") or 1) + 1
            st.words.pop(ref, None)
    return len(chosen)


# ------------------------------------------------------------------ search semantics
_TOKEN = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower()))


def searchable_words(item: dict, description: str) -> set[str]:
    text = " ".join(
        [item.get("title") or "", item.get("subtitle") or "", plain_text(description)]
        + [t.get("name") or "" for t in item.get("tags") or []]
    )
    return _tokens(text)


def matches(st: KaggleState, ref: str, search: str) -> bool:
    """Every word of ``search`` in the title, subtitle, tags or description."""
    words = st.words.get(ref)
    if words is None:
        words = st.words[ref] = searchable_words(st.datasets[ref], st.descriptions.get(ref, ""))
    return _tokens(search) <= words


def _sort_key(sort_by: str):
    if sort_by == "updated":
        return lambda it: (parse_datetime(it["lastUpdated"]), it["id"])
    if sort_by == "published":
        return lambda it: it["id"]
    if sort_by == "active":
        return lambda it: (it.get("kernelCount") or 0, it["id"])
    return lambda it: (it.get("voteCount") or 0, it["id"])  # hottest, votes


def render_item(item: dict, shape: str) -> dict:
    """A list item in one of the served shapes."""
    out = copy.deepcopy(item)
    if shape == "current":
        owner_slug = out["ref"]
        out["url"] = f"{ORIGIN}/kaggle/datasets/{owner_slug}"
        out["thumbnailImageUrl"] = f"{ORIGIN}/kaggle/thumbnails/{owner_slug}.png"
    elif shape == "nullable":
        for name in NULLABLE_FIELDS:
            value = out.get(name)
            cap = name[0].upper() + name[1:]
            out[f"{name}Nullable"] = value
            out[f"has{cap}"] = value is not None
            if value is None:
                out[name] = 0 if name in ("totalBytes", "currentVersionNumber", "usabilityRating") else ""
        for tag in out.get("tags") or []:
            for name in ("name", "description", "fullPath"):
                value = tag.get(name)
                tag[f"{name}Nullable"] = value
                tag["has" + name[0].upper() + name[1:]] = value is not None
                if value is None:
                    tag[name] = ""
    return out


# ------------------------------------------------------------------ HTTP
def _error(status: int, message: str) -> web.Response:
    return json_response({"code": status, "message": message}, status=status)


def credentials_of(request: web.Request, st: KaggleState) -> str:
    """``anonymous``, ``valid`` or ``invalid``."""
    header = request.headers.get("Authorization", "")
    if not header:
        return "anonymous"
    scheme, _, value = header.partition(" ")
    if scheme == "Bearer":
        return "valid" if value.strip() in st.tokens else "invalid"
    if scheme == "Basic":
        try:
            user, _, key = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return "invalid"
        return "valid" if user in st.users and st.users[user] == key else "invalid"
    return "invalid"


def _gate(request: web.Request, *, need_auth: bool) -> web.Response | None:
    """429 (queued), 401 (wrong credentials, or none where they are needed), or None."""
    server = request.app[STATE_KEY]
    st = state_of(server)
    style = None
    with server.lock:
        for i, (kind, pattern) in enumerate(st.throttle):
            if re.search(pattern, request.path_qs):
                style = st.throttle.pop(i)[0]
                break
    if style == "new":
        body = {"error": {"code": 429, "message": "Too many requests", "status": "RESOURCE_EXHAUSTED"}}
        return json_response(body, status=429)
    if style is not None:
        return json_response({"code": 429, "message": "TooManyRequests"}, status=429)
    who = credentials_of(request, st)
    if who == "invalid" or (who == "anonymous" and need_auth):
        return _error(401, "Unauthenticated")
    return None


async def list_datasets(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    refused = _gate(request, need_auth=not st.anonymous_search)
    if refused is not None:
        return refused
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        return _error(400, "Invalid page")
    sort_by = request.query.get("sortBy", "hottest")
    if sort_by not in SORTS or page < 1:
        return _error(400, f"Invalid sortBy or page: {sort_by!r}, {page}")
    search = request.query.get("search", "")
    if page > st.last_page:
        return render_json(request, [])
    with server.lock:
        found = [st.datasets[r] for r in st.datasets if matches(st, r, search)]
        found.sort(key=_sort_key(sort_by), reverse=True)
        chunk = [render_item(it, st.shapes.get(it["ref"], "2021")) for it in found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]]
    return render_json(request, chunk)


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset_of(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, value = text.partition(":")
        return int(value) if kind == "offset" else None
    except (ValueError, UnicodeDecodeError):
        return None


async def list_files(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    refused = _gate(request, need_auth=False)
    if refused is not None:
        return refused
    ref = f"{request.match_info['owner']}/{request.match_info['slug']}"
    with server.lock:
        entries = list(st.files.get(ref, ())) if ref in st.datasets else None
        shape = st.shapes.get(ref, "2021")
    if entries is None:
        return _error(404, "Not found")
    if shape == "2021":
        return render_json(request, {"datasetFiles": entries, "errorMessage": None})
    try:
        size = max(1, min(FILES_PAGE_MAX, int(request.query.get("pageSize", FILES_PAGE_DEFAULT))))
    except ValueError:
        return _error(400, "Invalid pageSize")
    token = request.query.get("pageToken", "")
    offset = _offset_of(token) if token else 0
    if offset is None:
        return _error(400, "Invalid pageToken")
    chunk = entries[offset : offset + size]
    more = offset + size < len(entries)
    body = {"datasetFiles": chunk, "errorMessage": None, "nextPageToken": _page_token(offset + size) if more else ""}
    return render_json(request, body)


async def download(request: web.Request) -> web.StreamResponse:
    """One file, or the whole dataset as one ZIP (built on first use; its size is not
    the files' total): 401 without valid credentials, else a 302 to signed storage."""
    server = request.app[STATE_KEY]
    st = state_of(server)
    refused = _gate(request, need_auth=True)
    if refused is not None:
        return refused
    owner, slug = request.match_info["owner"], request.match_info["slug"]
    ref = f"{owner}/{slug}"
    name = request.match_info.get("file")
    path = f"kaggle/{ref}/{name}" if name else f"kaggle/.archives/{ref}/{slug}.zip"
    with server.lock:
        if ref not in st.datasets or (name and path not in server.files):
            return _error(404, "Not found")
        if path not in server.files:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for entry in st.files.get(ref, ()):
                    served = server.files[f"kaggle/{ref}/{entry['name']}"]
                    zf.writestr(entry["name"], served.read(0, served.size))
            server.files[path] = ServedFile.from_bytes(buf.getvalue(), content_type="application/zip")
    raise web.HTTPFound(location="/storage/" + quote(path, safe="/") + "?X-Goog-Signature=local")


def register(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/datasets/list", list_datasets)
    app.router.add_get(f"{PREFIX}/datasets/list/{{owner}}/{{slug}}", list_files)
    app.router.add_get(f"{PREFIX}/datasets/download/{{owner}}/{{slug}}", download)
    app.router.add_get(f"{PREFIX}/datasets/download/{{owner}}/{{slug}}/{{file:.+}}", download)
