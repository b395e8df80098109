"""A stand-in for the EyeACT envision portal's external-dataset endpoint, under ``/portal``.

``POST /portal/api/discover/dataset/external`` does what the portal's handler
(``server/api/discover/dataset/external.post.ts``, Nuxt/h3 with zod and Prisma) does:

1. 401 ``Unauthorized`` unless the ``x-api-key`` header equals the key
   (``PortalState.api_key``, random per state);
2. the body is read as JSON (400 ``Invalid JSON body`` otherwise) and validated like its
   zod schema: ``title``, ``created``, ``datasetId``, ``canonicalId``, ``description``,
   ``externalUrl``, ``studyTitle``, ``updated``, ``versionTitle`` strings, ``doi`` an
   optional string, ``data`` and ``publishedMetadata`` anything, ``files`` an array of
   ``{label: string, children: <files>}`` or ``{name: string}``,
   ``PublishedDatasetRegistrationDetails`` an object of three strings
   (``datasetSource``, ``extractionMethod``, ``extractionVersion``). Failures answer 400
   with ``statusMessage`` = the JSON of zod-style issues (``code``, ``expected``,
   ``received``, ``path``, ``message``); unknown keys are dropped, as zod does;
3. the dataset whose *stored* ``externalUrl`` equals the sent one in lower case is
   updated (HTTP 200, body ``{"statusCode": 200, "statusMessage": "Dataset updated"}``);
   a URL stored with capitals is never found again, exactly as in the portal;
4. else a dataset is created (HTTP 200, body ``{"statusCode": 201, "statusMessage":
   "Request submitted"}``; h3 sends a handler's object with status 200), with
   ``updated`` set from ``created`` (the portal's own slip) and ``datasetId`` /
   ``canonicalId`` overwritten with ``external-{id}``;
5. ``created`` / ``updated`` go through JavaScript's ``parseInt(...) * 1000`` into a
   ``Date``: a value that gives no valid date fails the database write (500).

Errors have h3's JSON shape (``statusCode``, ``statusMessage``, ``message``) and
``statusMessage`` as the HTTP reason. Every request is recorded in
``PortalState.requests`` (method, whether a key was sent and whether it was right,
the body, the answer) for tests; the key itself never is. Faults (5xx bursts, dropped
connections, 429 with Retry-After) come from the server's fault injection
(``ServerState.add_fault``), as for the source APIs.

``GET /portal/api/discover/dataset/{id}`` answers like the portal's page data
(``metadata`` from ``publishedMetadata``); ``GET /portal/_stand-in/datasets`` lists
everything stored, for the demo and for curators trying a run.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from .core import STATE_KEY, ServerState

PREFIX = "/portal"
ENDPOINT = f"{PREFIX}/api/discover/dataset/external"
STRING_FIELDS = ("title", "created", "datasetId", "canonicalId", "description", "externalUrl", "studyTitle",
                 "updated", "versionTitle")
DETAIL_FIELDS = ("datasetSource", "extractionMethod", "extractionVersion")
# JavaScript's Date holds +-8.64e15 ms around the epoch
MAX_DATE_MS = 8.64e15


@dataclass
class PortalState:
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    datasets: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1

    def find(self, external_url: str) -> dict[str, Any] | None:
        """What ``findFirst({where: {externalUrl}})`` returns: an exact match."""
        return next((d for d in self.datasets if d["externalUrl"] == external_url), None)

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]


def state_of(server: ServerState) -> PortalState:
    with server.lock:
        return server.sources.setdefault("portal", PortalState())


# ------------------------------------------------------------------ zod, as the portal uses it
def received(value: Any) -> str:
    """zod's name for a value's type."""
    if value is _MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Missing:
    pass


_MISSING = _Missing()


def _type_issue(expected: str, value: Any, path: list) -> dict[str, Any]:
    got = received(value)
    return {"code": "invalid_type", "expected": expected, "received": got, "path": path,
            "message": "Required" if got == "undefined" else f"Expected {expected}, received {got}"}


def _files(value: Any, path: list, issues: list) -> list | None:
    if not isinstance(value, list):
        issues.append(_type_issue("array", value, path))
        return None
    out = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            if isinstance(item.get("label"), str) and "children" in item:
                sub: list = []
                children = _files(item["children"], [*path, i, "children"], sub)
                if not sub:
                    out.append({"label": item["label"], "children": children})
                    continue
            if isinstance(item.get("name"), str):
                out.append({"name": item["name"]})
                continue
        issues.append({"code": "invalid_union", "path": [*path, i], "message": "Invalid input"})
    return out


def validate(body: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the parsed body with unknown keys dropped, []) or (None, issues)."""
    if not isinstance(body, dict):
        return None, [_type_issue("object", _MISSING if body is None else body, [])]
    issues: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    for key in ("title", "created", "data", "datasetId", "canonicalId", "description", "doi", "externalUrl", "files",
                "publishedMetadata", "studyTitle", "updated", "versionTitle", "PublishedDatasetRegistrationDetails"):
        value = body.get(key, _MISSING)
        if key in STRING_FIELDS:
            if isinstance(value, str):
                out[key] = value
            else:
                issues.append(_type_issue("string", value, [key]))
        elif key == "doi":
            if value is _MISSING:
                continue
            if isinstance(value, str):
                out[key] = value
            else:
                issues.append(_type_issue("string", value, [key]))
        elif key in ("data", "publishedMetadata"):
            if value is not _MISSING:
                out[key] = value
        elif key == "files":
            files = _files(body.get(key, _MISSING), [key], issues) if value is not _MISSING else None
            if value is _MISSING:
                issues.append(_type_issue("array", value, [key]))
            out[key] = files
        else:  # PublishedDatasetRegistrationDetails
            if not isinstance(value, dict):
                issues.append(_type_issue("object", value, [key]))
                continue
            details = {}
            for name in DETAIL_FIELDS:
                v = value.get(name, _MISSING)
                if isinstance(v, str):
                    details[name] = v
                else:
                    issues.append(_type_issue("string", v, [key, name]))
            out[key] = details
    return (None, issues) if issues else (out, [])


_PARSE_INT = re.compile(r"^[\s\ufeff]*([+-]?)(0[xX][0-9a-fA-F]+|\d+)")


def js_date(text: str) -> datetime | None:
    """``new Date(parseInt(text) * 1000)``; None for JavaScript's Invalid Date."""
    m = _PARSE_INT.match(text)
    if not m:
        return None
    digits = m.group(2)
    n = int(digits, 16) if digits[:2].lower() == "0x" else int(digits)
    ms = (-n if m.group(1) == "-" else n) * 1000
    if abs(ms) > MAX_DATE_MS:
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


# ------------------------------------------------------------------ answers
def h3_error(request: web.Request, status: int, message: str) -> web.Response:
    reason = re.sub(r"[^\t\x20-\x7e]", "", message)
    body = {"error": True, "url": request.path, "statusCode": status, "statusMessage": reason, "message": reason}
    return web.Response(text=json.dumps(body), status=status, reason=reason or None, content_type="application/json")


def h3_object(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data), status=200, content_type="application/json")


async def external(request: web.Request) -> web.Response:
    st = state_of(request.app[STATE_KEY])
    sent_key = request.headers.get("x-api-key")
    record: dict[str, Any] = {"method": "POST", "path": request.path, "key_sent": sent_key is not None,
                              "key_ok": sent_key == st.api_key, "body": None, "status": None, "answer": None}
    with request.app[STATE_KEY].lock:
        st.requests.append(record)

    def answer(response: web.Response) -> web.Response:
        record["status"] = response.status
        record["answer"] = json.loads(response.text) if response.text else None
        return response

    if sent_key != st.api_key:
        return answer(h3_error(request, 401, "Unauthorized"))
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError:
        return answer(h3_error(request, 400, "Invalid JSON body"))
    record["body"] = body
    parsed, issues = validate(body)
    if parsed is None:
        return answer(h3_error(request, 400, json.dumps(issues)))
    created, updated = js_date(parsed["created"]), js_date(parsed["updated"])
    if created is None or (updated is None and st.find(parsed["externalUrl"].lower()) is not None):
        # Prisma refuses an Invalid Date; h3 turns the exception into a 500
        return answer(h3_error(request, 500, "Server Error"))
    details = parsed["PublishedDatasetRegistrationDetails"]
    fields = {
        "title": parsed["title"], "automated": True, "created": created.isoformat(),
        "description": parsed["description"], "external": True, "externalUrl": parsed["externalUrl"],
        "files": parsed["files"], "studyTitle": parsed["studyTitle"], "versionTitle": parsed["versionTitle"],
    }
    for key in ("data", "publishedMetadata", "doi"):
        if key in parsed:
            fields[key] = parsed[key]
    with request.app[STATE_KEY].lock:
        existing = st.find(parsed["externalUrl"].lower())
        if existing is not None:
            existing.update(fields)
            existing["updated"] = updated.isoformat() if updated else existing.get("updated")
            existing["PublishedDatasetRegistrationDetails"] = dict(details)
            existing["update_count"] = existing.get("update_count", 0) + 1
            return answer(h3_object({"statusCode": 200, "statusMessage": "Dataset updated"}))
        new_id = st.next_id
        st.next_id += 1
        dataset = {"id": new_id, "doi": None, "data": None, "publishedMetadata": None, **fields,
                   "updated": created.isoformat(),  # the portal sets `updated` from `created` on creation
                   "PublishedDatasetRegistrationDetails": dict(details), "update_count": 0,
                   "sent_datasetId": parsed["datasetId"], "sent_canonicalId": parsed["canonicalId"]}
        dataset["datasetId"] = dataset["canonicalId"] = f"external-{new_id}"
        st.datasets.append(dataset)
    return answer(h3_object({"statusCode": 201, "statusMessage": "Request submitted"}))


async def dataset(request: web.Request) -> web.Response:
    st = state_of(request.app[STATE_KEY])
    try:
        wanted = int(request.match_info["id"])
    except ValueError:
        wanted = -1
    found = next((d for d in st.datasets if d["id"] == wanted), None)
    if found is None:
        return h3_error(request, 404, f"Dataset {request.match_info['id']} not found")
    meta = found.get("publishedMetadata") if isinstance(found.get("publishedMetadata"), dict) else {}
    return h3_object({
        "id": str(found["id"]), "title": found["title"], "created": found["created"], "data": found.get("data"),
        "description": found["description"], "doi": found.get("doi"), "external": True,
        "externalUrl": found["externalUrl"], "files": found["files"], "versionTitle": found["versionTitle"],
        "metadata": {k: meta.get(k) for k in ("contributors", "keywords", "datasetDescription",
                                               "datasetStructureDescription", "healthsheet", "readme", "studyDescription")},
    })


async def listing(request: web.Request) -> web.Response:
    st = state_of(request.app[STATE_KEY])
    return h3_object({"datasets": st.datasets, "requests": len(st.requests)})


def register(app: web.Application) -> None:
    app.router.add_post(ENDPOINT, external)
    app.router.add_get(f"{PREFIX}/api/discover/dataset/{{id}}", dataset)
    app.router.add_get(f"{PREFIX}/_stand-in/datasets", listing)
