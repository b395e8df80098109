"""The body of ``POST /api/discover/dataset/external`` for one record: pure, no I/O.

::

    body = build_body(record, classification, manifest)   # PortalBody
    body.payload        # the JSON the portal receives
    body.external_url   # its identity at the portal (lower case)
    body.digest         # sha256 of the canonical JSON: "unchanged" means the same digest

The portal validates (zod) ``title``, ``created``, ``datasetId``, ``canonicalId``,
``description``, ``externalUrl``, ``studyTitle``, ``updated``, ``versionTitle`` (strings),
``doi`` (an optional string), ``data`` and ``publishedMetadata`` (anything), ``files``
(a tree of ``{label, children}`` folders and ``{name}`` files) and
``PublishedDatasetRegistrationDetails`` ``{datasetSource, extractionMethod,
extractionVersion}``; unknown keys are dropped. It then looks for a dataset whose
*stored* ``externalUrl`` equals the sent one in lower case: updated when found, created
otherwise (and then its ``datasetId``/``canonicalId`` become ``external-{id}``).

Decisions (each the same from run to run, derived from the record, never from "now"):

* ``externalUrl``: ``https://doi.org/<concept DOI>`` in lower case when the record has a
  DOI. DOIs are case-insensitive by definition, so the lower-case link resolves, while
  landing pages may not (Figshare's title slugs, a registrant's own site). The *concept*
  DOI (Zenodo's ``conceptdoi``, Figshare's DOI without ``.vN``) makes a new version of a
  dataset update its portal entry instead of adding one. Without a DOI (Kaggle, NIH
  RePORTER, some OSF projects) the landing page, lower-cased: those hosts' paths are
  lower case or case-insensitive (``LOWERCASE_SAFE_HOSTS``); elsewhere a warning says
  the lower-case link may not resolve (the exact landing page stays in
  ``publishedMetadata.datasetDescription``). Sent with capitals it would never be
  found again and every run would add a copy.
* ``datasetId``: uuid5 of ``source:source_id`` (one per version); ``canonicalId``:
  uuid5 of the ``externalUrl`` (one per dataset, shared by its versions). The portal
  replaces both with ``external-{id}`` when it creates a dataset; they still identify
  the body in the dry-run file and in ``posted.json``.
* ``created``: the source's publication date (``published``, ``issued``, ``available``,
  ``registered``, ``created``, ``first_online``, a grant's ``project_start``...), else
  1 January of ``publication_year``, else the modified date; ``run.py`` keeps the
  earliest value ever sent for a dataset, so a Kaggle update (Kaggle states no
  creation date) or a new version does not move it. ``updated``: the source's modified
  date, else ``created``. Unix seconds as strings.
* ``data.viewCount`` is 0 (the portal's own count; a source's counter would change
  the body every week), and nothing from the classifier's probabilities enters the
  body (a retrained model would otherwise re-post every record).
* ``publishedMetadata``: ``datasetDescription`` and ``datasetStructureDescription``
  from :mod:`envision_spiders.addf` (the ``export-addf`` documents), a Markdown
  ``readme``, a ``studyDescription`` with the description and condition modules the
  portal's dataset page reads unguarded, and an empty ``healthsheet``. The portal's page
  reads ``datasetDescription.rights[0].rightsName``, so a record without a licence gets
  a rights entry saying so.
* ``files``: the record's files as a folder tree (paths split on ``/``); a peeked
  archive is a folder of its listed members, with a note when the listing is partial;
  at most ``MAX_FILE_NODES`` nodes, then a note. Sorted, so an API that lists files in
  another order does not make a record look changed.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from envision_spiders import addf
from envision_spiders.modality import Modality, detect_modalities
from envision_spiders.textutil import normalize_doi, parse_datetime, strings

ENDPOINT_PATH = "/api/discover/dataset/external"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/EyeACT/envision-spiders#portal")
SOURCE_NAMES: dict[str, str] = {**addf.PUBLISHERS, "datacite": "DataCite"}
EXTRACTION_METHOD = "Automatic Registration (envision-spiders: API search, archive listing, envision-classifier)"

# Date keys of a record's ``dates`` meaning "made public" or "created", best first.
CREATED_KEYS = ("published", "issued", "available", "registered", "created", "first_online",
                "project_start", "award_notice", "added", "budget_start")
UPDATED_KEYS = ("modified", "updated")
# Hosts whose landing-page paths are lower case or matched without regard to case, so
# the lower-case URL the portal needs still opens the page.
LOWERCASE_SAFE_HOSTS = ("zenodo.org", "osf.io", "www.kaggle.com", "kaggle.com", "reporter.nih.gov", "doi.org")
MAX_FILE_NODES = 5000
# The MeSH descriptors of addf.MESH that name diseases (the portal's "Conditions"):
# Diabetic Retinopathy, Macular Degeneration, Glaucoma, Cataract, Myopia, Dry Eye
# Syndromes, Ocular Hypertension, Retinal Diseases, Eye Diseases.
GENERIC_CONDITIONS = frozenset({"Retinal Diseases", "Eye Diseases"})
CONDITION_UIS = frozenset({"D003930", "D008268", "D005901", "D002386", "D009216", "D015352", "D009798", "D012164", "D005128"})
# Characters of a DOI kept as they are in a doi.org URL path; the others ("#", "?", "%",
# spaces, "<", ">", non-ASCII...) are percent-encoded (DOI Handbook, 3.8).
_DOI_SAFE = "/:;()[]._-~!$&'*+,=@"
_FIGSHARE_VERSIONED = re.compile(r"^(10\.6084/m9\.figshare\.\d+)\.v\d+$")


class Unpostable(ValueError):
    """A record the portal cannot take as it is (no title, no link, no date)."""


@dataclass
class PortalBody:
    payload: dict[str, Any]
    external_url: str
    source: str
    source_id: str
    created_basis: str  # which date gave ``created``
    notes: list[str] = field(default_factory=list)  # warnings a curator may act on

    @property
    def digest(self) -> str:
        return digest_of(self.payload)

    @property
    def created(self) -> int:
        return int(self.payload["created"])

    def keep_earliest_created(self, earliest: int | None) -> None:
        """Keep an earlier ``created`` sent for the same portal dataset before."""
        if isinstance(earliest, int) and not isinstance(earliest, bool) and earliest < self.created:
            self.payload["created"] = str(earliest)
            self.created_basis = "earliest sent before"


def digest_of(payload: Mapping[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def project_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("envision-spiders")
    except PackageNotFoundError:  # running from a bare checkout
        return "0+unknown"


# ------------------------------------------------------------------ identity
def concept_doi(record: Mapping[str, Any]) -> str | None:
    """The DOI naming every version of the record's dataset, else its own DOI."""
    extra = record.get("extra") if isinstance(record.get("extra"), Mapping) else {}
    for value in (extra.get("conceptdoi"), extra.get("doi_unversioned")):
        doi = normalize_doi(value)
        if doi:
            return doi
    doi = normalize_doi(record.get("doi"))
    if not doi:
        return None
    m = _FIGSHARE_VERSIONED.match(doi)
    if m:
        return m.group(1)
    if doi.startswith("10.5281/zenodo."):
        # a Zenodo version seen through DataCite: its concept is the DOI it IsVersionOf
        for r in record.get("related_identifiers") or []:
            if isinstance(r, Mapping) and str(r.get("relation") or "").lower() == "isversionof":
                concept = normalize_doi(r.get("identifier"))
                if concept and concept.startswith("10.5281/zenodo.") and concept != doi:
                    return concept
    return doi


def doi_url(doi: str) -> str:
    return "https://doi.org/" + quote(doi, safe=_DOI_SAFE)


def external_url(record: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(the lower-case ``externalUrl``, warnings); :class:`Unpostable` when the record
    has neither a DOI nor an http(s) landing page."""
    doi = concept_doi(record)
    if doi:
        return doi_url(doi).lower(), []
    url = record.get("url")
    if not isinstance(url, str) or not url.strip().lower().startswith(("http://", "https://")):
        raise Unpostable("no DOI and no http(s) landing page to link to")
    url = url.strip()
    notes = []
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if url != url.lower() and host not in LOWERCASE_SAFE_HOSTS and (parts.path + parts.query) != (parts.path + parts.query).lower():
        notes.append(f"the landing page {url} is sent in lower case (the portal matches externalUrl in lower case); "
                     "that link may not open on a case-sensitive site")
    return url.lower(), notes


def dataset_id(source: str, source_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"record:{source}:{source_id}"))


def canonical_id(url: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"dataset:{url}"))


# ------------------------------------------------------------------ dates
def _seconds(value: Any) -> int | None:
    dt = parse_datetime(value)
    return int(dt.timestamp()) if dt else None


def _dates(record: Mapping[str, Any]) -> Mapping[str, Any]:
    d = record.get("dates")
    return d if isinstance(d, Mapping) else {}


def created_of(record: Mapping[str, Any]) -> tuple[int, str]:
    """(Unix seconds, the date's name) of when the dataset was made public or created."""
    dates = _dates(record)
    for key in CREATED_KEYS:
        s = _seconds(dates.get(key))
        if s is not None:
            return s, key
    year = record.get("publication_year")
    if isinstance(year, int) and not isinstance(year, bool) and 1000 <= year <= 9999:
        return _seconds(str(year)) or 0, "publication_year"
    modified = _updated_seconds(record)
    if modified is not None:
        return modified, "modified"
    raise Unpostable("no date says when the dataset was published, created or modified")


def _updated_seconds(record: Mapping[str, Any]) -> int | None:
    dates = _dates(record)
    for value in [dates.get(k) for k in UPDATED_KEYS] + [(record.get("provenance") or {}).get("source_modified")]:
        s = _seconds(value)
        if s is not None:
            return s
    return None


# ------------------------------------------------------------------ files
class _Folder:
    __slots__ = ("children", "files")

    def __init__(self) -> None:
        self.children: dict[str, _Folder] = {}
        self.files: set[str] = set()


class _Tree:
    """Paths into a ``{label, children}`` / ``{name}`` tree of at most ``limit`` nodes."""

    def __init__(self, limit: int) -> None:
        self.root = _Folder()
        self.left = limit
        self.omitted = 0

    @staticmethod
    def parts(path: str) -> list[str]:
        return [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]

    def folder(self, parts: list[str]) -> _Folder | None:
        node = self.root
        for p in parts:
            child = node.children.get(p)
            if child is None:
                if self.left <= 0:
                    return None
                self.left -= 1
                child = node.children[p] = _Folder()
            node = child
        return node

    def add_file(self, path: str, under: _Folder | None = None) -> bool:
        """False when the node budget is spent (the caller counts what was left out)."""
        parts = self.parts(path)
        if not parts:
            return True
        node = under or self.root
        for p in parts[:-1]:
            child = node.children.get(p)
            if child is None:
                if self.left <= 0:
                    return False
                self.left -= 1
                child = node.children[p] = _Folder()
            node = child
        if parts[-1] in node.files or parts[-1] in node.children:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        node.files.add(parts[-1])
        return True

    def to_json(self, node: _Folder | None = None) -> list[dict[str, Any]]:
        node = node or self.root
        out: list[dict[str, Any]] = [
            {"label": name, "children": self.to_json(child)}
            for name, child in sorted(node.children.items(), key=lambda kv: (kv[0].lower(), kv[0]))
        ]
        out += [{"name": name} for name in sorted(node.files, key=lambda n: (n.lower(), n))]
        return out


def file_tree(record: Mapping[str, Any], manifest: Mapping[str, Any] | None = None, limit: int = MAX_FILE_NODES) -> list[dict[str, Any]]:
    """The record's files (or, when it lists none, the download manifest's) as the
    portal's tree; listed archive members as folders under their archive."""
    names = [f.get("name") for f in record.get("files") or [] if isinstance(f, Mapping) and isinstance(f.get("name"), str)]
    if not names and isinstance(manifest, Mapping):
        names = [f.get("original_name") or f.get("name") for f in manifest.get("files") or [] if isinstance(f, Mapping)]
        names = [n for n in names if isinstance(n, str)]
    if not names:
        names = strings(record.get("file_names"))
    archives = {}
    for a in record.get("archives") or []:
        if isinstance(a, Mapping) and a.get("listed") and isinstance(a.get("name"), str) and strings(a.get("members_sample")):
            archives.setdefault(a["name"], a)
    tree = _Tree(limit)
    for name in sorted(set(names), key=lambda n: (n.lower(), n)):
        archive = archives.get(name)
        if archive is None:
            if not tree.add_file(name):
                tree.omitted += 1
            continue
        folder = tree.folder(_Tree.parts(name))
        if folder is None:
            tree.omitted += 1
            continue
        members = strings(archive.get("members_sample"))
        shown = sum(1 for m in members if tree.add_file(m, folder))
        total = archive.get("member_count")
        listed_files = sum((archive.get("extension_counts") or {}).values()) if isinstance(archive.get("extension_counts"), Mapping) else 0
        more = max(listed_files - shown, 0)
        if not archive.get("complete") or more:
            note = f"… {more} more members not listed here" if more else "… the archive's listing is incomplete"
            if isinstance(total, int) and not isinstance(total, bool) and total > 0:
                note += f" ({total} members in all)"
            folder.files.add(note)
    out = tree.to_json()
    if tree.omitted:
        out.append({"name": f"… {tree.omitted} more files not listed here"})
    return out


# ------------------------------------------------------------------ texts
def _md(text: Any) -> str:
    """Source text inside Markdown: no raw HTML gets through."""
    return html.escape(str(text or "").strip(), quote=False)


def _human(n: Any) -> str | None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return None
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return None


def readme(record: Mapping[str, Any], source_name: str, link: str, modalities: list[Modality],
           placeholders: list[str]) -> str:
    title = _md(record.get("title"))
    lines = [f"# {title}", ""]
    description = _md(record.get("description"))
    if description:
        lines += [description, ""]
    facts = [f"- **Source:** {source_name}" + (f" ([landing page]({record['url']}))" if isinstance(record.get("url"), str) and record["url"].startswith(("http://", "https://")) else "")]
    doi = normalize_doi(record.get("doi"))
    if doi:
        facts.append(f"- **DOI:** [{_md(doi)}]({doi_url(doi)})")
    if doi and link != doi_url(doi).lower():
        facts.append(f"- **All versions:** {link}")
    if record.get("license"):
        facts.append(f"- **Licence:** {_md(record.get('license'))}")
    keywords = strings(record.get("keywords"))
    if keywords:
        facts.append("- **Keywords:** " + ", ".join(_md(k) for k in keywords))
    count, size = record.get("file_count"), _human(record.get("total_size_bytes"))
    if isinstance(count, int) and count:
        types = ", ".join(strings(record.get("file_types"))[:12])
        facts.append(f"- **Files:** {count}" + (f", {size}" if size else "") + (f" ({_md(types)})" if types else ""))
    lines += facts
    if modalities:
        lines += ["", "## Imaging", ""] + [f"- {_md(m.summary())}" for m in modalities]
    archives = [a for a in record.get("archives") or [] if isinstance(a, Mapping) and a.get("listed")]
    if archives:
        lines += ["", "## Inside the archives", ""]
        for a in sorted(archives, key=lambda a: str(a.get("name"))):
            counts = a.get("extension_counts") if isinstance(a.get("extension_counts"), Mapping) else {}
            top = sorted(((n, e) for e, n in counts.items() if isinstance(n, int)), key=lambda t: (-t[0], t[1]))[:6]
            members = a.get("member_count")
            lines.append(f"- {_md(a.get('name'))}: " + (f"{members} members" if isinstance(members, int) else "members")
                         + (" (" + ", ".join(f"{n} {e or 'without extension'}" for n, e in top) + ")" if top else ""))
    lines += ["", "---", "",
              f"Registered automatically by envision-spiders from the {source_name} API: the metadata is the "
              "source's, not reviewed by a curator."]
    if placeholders:
        lines.append("Not stated by the source (filled conservatively in the dataset description): "
                     + ", ".join(placeholders) + ".")
    return "\n".join(lines) + "\n"


def study_description(record: Mapping[str, Any], description: str) -> dict[str, Any]:
    summary = description.split("\n", 1)[0].strip()
    if len(summary) > 500:
        summary = summary[:497].rstrip() + "..."
    # the MeSH diseases the keywords (each its most specific heading) and the title name;
    # "Retinal Diseases" / "Eye Diseases" only when nothing more specific is named
    terms = [addf.mesh_term(k) for k in strings(record.get("keywords"))]
    terms += addf.mesh_terms(str(record.get("title") or ""))
    diseases = list(dict.fromkeys(t.heading for t in terms if t is not None and t.ui in CONDITION_UIS))
    specific = [h for h in diseases if h not in GENERIC_CONDITIONS]
    conditions = [{"conditionName": h} for h in (specific or diseases)]
    return {
        "descriptionModule": {"briefSummary": summary, "detailedDescription": description},
        "conditionsModule": {
            "keywordList": [{"keywordValue": k} for k in strings(record.get("keywords"))],
            "conditionList": conditions,
        },
    }


def _version_title(record: Mapping[str, Any], updated: int) -> str:
    extra = record.get("extra") if isinstance(record.get("extra"), Mapping) else {}
    for key in ("version", "version_number", "current_version"):
        value = extra.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return datetime.fromtimestamp(updated, timezone.utc).date().isoformat()


# ------------------------------------------------------------------ the body
def build_body(record: Mapping[str, Any], classification: Mapping[str, Any] | None = None,
               manifest: Mapping[str, Any] | None = None, *, external: str | None = None) -> PortalBody:
    """The body for a saved record. ``external``: an ``externalUrl`` this record was
    posted under before (kept, so its portal entry stays the same when, say, an OSF
    project gains a DOI)."""
    source = str(record.get("source") or "")
    source_id = str(record.get("source_id") or "")
    if not source or not source_id:
        raise Unpostable("the record has no source or source_id")
    title = " ".join(str(record.get("title") or "").split())
    if not title:
        raise Unpostable("the record has no title")
    notes: list[str] = []
    if external:
        url = external.lower()
    else:
        url, notes = external_url(record)
    created, basis = created_of(record)
    updated = _updated_seconds(record)
    if updated is None:
        updated = created
    source_name = SOURCE_NAMES.get(source, source.title())
    docs = addf.build(record, classification, manifest)
    description_doc = dict(docs.description)
    if not description_doc.get("rights"):
        description_doc["rights"] = [{"rightsName": f"Not stated by {source_name}; see the landing page"}]
    if docs.errors:
        notes.append("ADDF documents do not validate: " + "; ".join(docs.errors[:3]))
    description = str(record.get("description") or "").strip()
    validation = ("Metadata as the source states it; not reviewed by a curator."
                  + (" Filled conservatively because the source does not state them: " + ", ".join(docs.placeholders) + "."
                     if docs.placeholders else ""))
    size = record.get("total_size_bytes")
    count = record.get("file_count")
    payload: dict[str, Any] = {
        "title": title,
        "created": str(created),
        "data": {
            "size": size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0,
            "fileCount": count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else 0,
            "viewCount": 0,
            "labelingMethod": "Automatic: envision-classifier labelled the record EYE_IMAGING from its metadata, "
                              "file names and archive contents",
            "validationInfo": validation,
        },
        "datasetId": dataset_id(source, source_id),
        "canonicalId": canonical_id(url),
        "description": description,
        "externalUrl": url,
        "files": file_tree(record, manifest),
        "publishedMetadata": {
            "studyDescription": study_description(record, description),
            "readme": readme(record, source_name, url, detect_modalities(record), docs.placeholders),
            "datasetDescription": description_doc,
            "datasetStructureDescription": docs.structure,
            "healthsheet": {},
        },
        "studyTitle": title,
        "updated": str(updated),
        "versionTitle": _version_title(record, updated),
        "PublishedDatasetRegistrationDetails": {
            "datasetSource": source_name,
            "extractionMethod": EXTRACTION_METHOD,
            "extractionVersion": project_version(),
        },
    }
    doi = normalize_doi(record.get("doi"))
    if doi:
        payload["doi"] = doi
    return PortalBody(payload, url, source, source_id, basis, notes)


__all__ = [
    "ENDPOINT_PATH", "PortalBody", "SOURCE_NAMES", "Unpostable", "build_body", "canonical_id", "concept_doi",
    "created_of", "dataset_id", "digest_of", "external_url", "file_tree",
]
