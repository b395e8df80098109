"""AI-READI ADDF (CDS/CMDS v0.1.0) metadata for a record: pure builders, no I/O.

``scrapy export-addf`` writes what these build, and the portal posting reuses them
for ``publishedMetadata``::

    docs = build(record, classification, manifest)     # ADDFDocuments
    docs.description        # dataset_description.json
    docs.structure          # dataset_structure_description.json
    docs.placeholders       # required fields the source did not state (filled conservatively)
    docs.errors             # schema violations (empty when valid)

Field names follow the schemas exactly (``schema`` const URLs, ``identifier
{identifierValue, identifierType}``, ``title[{titleValue}]``, ``creator[{creatorName,
nameType, nameIdentifier, affiliation}]``, ``publicationYear`` (a 4-character string),
``date[{dateValue, dateType}]``, ``resourceType {resourceTypeValue,
resourceTypeGeneral: "Dataset"}``, ``description[{descriptionValue,
descriptionType}]``, ``language``, ``subject[{subjectValue, subjectIdentifier
{classificationCode, subjectScheme, schemeURI, valueURI}}]``, ``accessType`` (the CDS
list), ``accessDetails {description, url}``, ``rights[{rightsName, rightsURI,
rightsIdentifier}]``, ``publisher {publisherName}``, ``size``, ``format`` (MIME types),
``relatedIdentifier[...]``; ``directoryList[{directoryName, directoryType,
directoryDescription, relatedTerm, relatedStandard}]``, ``metadataFileList``).

Required fields a repository never states (``version``, ``datasetDeIdentLevel``,
``datasetConsent``, ``managingOrganization``...) are filled with the most
conservative valid value (no de-identification claimed, no consent category claimed
beyond "not elsewhere categorised", every boolean false) and listed in
``placeholders`` so a curator reviews them before anything is published.

MeSH descriptors: a small table of ophthalmic headings with their real descriptor
ids (checked against public MeSH-derived data, see ``MESH``). MIME types: Python's
``mimetypes`` built-in table (not the machine's ``/etc/mime.types``, so the output is
the same everywhere) plus the registered ``application/dicom``. Modalities come from
:mod:`envision_spiders.modality` (file types, archive members, words in names).
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from envision_spiders.modality import detect_modalities
from envision_spiders.textutil import normalize_doi, parse_datetime, strings

DD_SCHEMA = "https://schema.aireadi.org/v0.1.0/dataset_description.json"
DSD_SCHEMA = "https://schema.aireadi.org/v0.1.0/dataset_structure_description.json"
MESH_SCHEME_URI = "https://id.nlm.nih.gov/mesh/"

PUBLISHERS = {
    "zenodo": "Zenodo",
    "figshare": "Figshare",
    "dryad": "Dryad",
    "osf": "OSF",
    "kaggle": "Kaggle",
    "nei": "NIH RePORTER",
}


@dataclass(frozen=True)
class MeshTerm:
    ui: str
    heading: str

    def subject_identifier(self) -> dict[str, str]:
        return {"classificationCode": self.ui, "subjectScheme": "MeSH", "schemeURI": MESH_SCHEME_URI,
                "valueURI": MESH_SCHEME_URI + self.ui}

    def related_term_identifier(self) -> dict[str, str]:
        return {"relatedTermClassificationCode": self.ui, "relatedTermScheme": "MeSH",
                "relatedTermSchemeURI": MESH_SCHEME_URI, "relatedTermValueURI": MESH_SCHEME_URI + self.ui}


OCT = MeshTerm("D041623", "Tomography, Optical Coherence")
FUNDUS = MeshTerm("D005654", "Fundus Oculi")
CORNEA = MeshTerm("D003315", "Cornea")

# (pattern on lower-case text, descriptor). Most specific first: a keyword takes the
# first match. Descriptor ids checked against public MeSH-derived data:
# D005654 Fundus Oculi (galter-subjects-utils MeSH test data), D012160 Retina (PubTator
# annotations), D003930 Diabetic Retinopathy (tree C19.246.099.500.382), D005901,
# D008268, D002386, D009216, D015352, D009798 (ClinicalTrials.gov condition ids),
# D009885 Ophthalmology, D005128 Eye Diseases (C11), D012164 Retinal Diseases (C11.768);
# D041623, D003315, D009898, D009900 as in the MeSH browser (public mappings only
# from the EyeACT tools agreed; to be re-checked against the MeSH browser by a curator).
MESH: tuple[tuple[re.Pattern[str], MeshTerm], ...] = tuple(
    (re.compile(p), t)
    for p, t in (
        (r"diabetic retinopath", MeshTerm("D003930", "Diabetic Retinopathy")),
        (r"macular degeneration|\bamd\b|\barmd\b", MeshTerm("D008268", "Macular Degeneration")),
        (r"glaucoma", MeshTerm("D005901", "Glaucoma")),
        (r"cataract", MeshTerm("D002386", "Cataract")),
        (r"myopi", MeshTerm("D009216", "Myopia")),
        (r"dry eye", MeshTerm("D015352", "Dry Eye Syndromes")),
        (r"ocular hypertension", MeshTerm("D009798", "Ocular Hypertension")),
        (r"optical coherence tomograph|\boct(?:-?a)?\b|\bocta\b", OCT),
        (r"\bfund(?:us|i)\b|funduscop", FUNDUS),
        (r"optic dis[ck]", MeshTerm("D009898", "Optic Disk")),
        (r"optic nerve", MeshTerm("D009900", "Optic Nerve")),
        (r"\bcornea", CORNEA),
        (r"retinal diseases?|retinopath", MeshTerm("D012164", "Retinal Diseases")),
        (r"\bretina[l]?\b", MeshTerm("D012160", "Retina")),
        (r"eye diseases?|ocular diseases?", MeshTerm("D005128", "Eye Diseases")),
        (r"ophthalmolog", MeshTerm("D009885", "Ophthalmology")),
    )
)


def mesh_term(text: str) -> MeshTerm | None:
    """The first (most specific) MeSH descriptor a phrase names, or None."""
    low = (text or "").lower()
    for pattern, term in MESH:
        if pattern.search(low):
            return term
    return None


def mesh_terms(text: str) -> list[MeshTerm]:
    """Every MeSH descriptor of the table a text mentions, in table order."""
    low = (text or "").lower()
    return [t for p, t in MESH if p.search(low)]


# ------------------------------------------------------------------ formats
_MIME = mimetypes.MimeTypes(filenames=())
_MIME_EXTRA = {
    ".dcm": "application/dicom",  # registered (RFC 3240)
    ".dicom": "application/dicom",
    ".tgz": "application/gzip",
    ".gz": "application/gzip",
    ".zst": "application/zstd",
    ".7z": "application/x-7z-compressed",
    ".rar": "application/vnd.rar",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".webp": "image/webp",
    ".jp2": "image/jp2",
}


def mime_type(ext: str) -> str:
    """The MIME type of an extension as ``filetypes.file_extension`` gives it;
    ``application/octet-stream`` for formats without one (vendor OCT files, NIfTI)."""
    ext = (ext or "").lower()
    if ext in _MIME_EXTRA:
        return _MIME_EXTRA[ext]
    last = "." + ext.rsplit(".", 1)[-1] if ext.count(".") > 1 else ext
    if ext.endswith((".tar.gz", ".tar.bz2", ".tar.xz")):
        return {"gz": "application/gzip", "bz2": "application/x-bzip2", "xz": "application/x-xz"}[ext.rsplit(".", 1)[-1]]
    guessed, _ = _MIME.guess_type("x" + last, strict=False)
    return guessed or "application/octet-stream"


def formats(file_types: Iterable[str]) -> list[str]:
    return sorted({mime_type(e) for e in file_types if e})


# ------------------------------------------------------------------ modalities
# Modalities come from envision_spiders.modality (shared with the review page and the
# classifier); their concepts become MeSH descriptors here.
MESH_OF_CONCEPT = {"oct": OCT, "fundus": FUNDUS, "cornea": CORNEA}


# ------------------------------------------------------------------ dataset_description
ACCESS_TYPES = {
    "open": "PublicOnScreenAccessAndDownload",
    "public": "PublicOnScreenAccessAndDownload",
    "restricted": "RestrictedDownload",
    "embargoed": "NonPublicAccessNoDetails",
    "closed": "NonPublicAccessNoDetails",
    "metadata-only": "NonPublicAccessNoDetails",
}
IDENTIFIER_TYPES = {
    "doi": "DOI", "url": "URL", "pmid": "PMID", "arxiv": "arXiv", "handle": "Handle", "isbn": "ISBN",
    "issn": "ISSN", "urn": "URN", "ark": "ARK", "purl": "PURL", "lsid": "LSID", "eissn": "EISSN",
    "igsn": "IGSN", "bibcode": "bibcode", "w3id": "w3id",
}
DATE_TYPES = {"created": "Created", "published": "Issued", "issued": "Issued", "publication": "Issued",
              "modified": "Updated", "updated": "Updated", "available": "Available", "accepted": "Accepted",
              "submitted": "Submitted", "collected": "Collected"}
# The schema's URL pattern is `^(https?|ftp)://[^s/$.?#].[^s]*$` (a missing backslash
# makes it refuse any "s" after the host's first two characters); a URL it refuses
# goes into the access description instead of `url`.
_SCHEMA_URL = re.compile(r"^(https?|ftp)://[^s/$.?#].[^s]*$")
# Licence ids the sources send (Zenodo "cc-by-4.0", Dryad SPDX URLs) -> SPDX ids.
SPDX_IDS = {i.lower(): i for i in (
    "CC-BY-4.0", "CC-BY-3.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0", "CC0-1.0", "MIT", "Apache-2.0", "BSD-3-Clause", "GPL-3.0-only", "ODbL-1.0",
    "ODC-By-1.0", "PDDL-1.0",
)}


@lru_cache(maxsize=1)
def description_schema() -> dict[str, Any]:
    # package data of envision_spiders (works from an egg or a wheel as well)
    with resources.files("envision_spiders").joinpath("addf_schemas/dataset_description.schema.json").open("rb") as fh:
        return json.load(fh)


def _enum(name: str) -> set[str]:
    d = description_schema()["definitions"][name]
    return {x["const"] for x in d.get("oneOf", [])} | set(d.get("enum", []))


def _relation(value: Any) -> str:
    allowed = {v.lower(): v for v in _enum("relationType")}
    text = re.sub(r"[^a-z]", "", str(value or "").lower())
    return allowed.get(text, "References")


def _identifier_type(scheme: Any, value: str) -> str:
    t = IDENTIFIER_TYPES.get(str(scheme or "").strip().lower())
    if t:
        return t
    if normalize_doi(value):
        return "DOI"
    if value.lower().startswith(("http://", "https://")):
        return "URL"
    return "Other"


def _year(record: Mapping[str, Any]) -> str | None:
    y = record.get("publication_year")
    if isinstance(y, int) and 1000 <= y <= 9999:
        return str(y)
    dates = record.get("dates") or {}
    for key in ("published", "issued", "created", "available", "modified"):
        dt = parse_datetime(dates.get(key)) if isinstance(dates, dict) else None
        if dt:
            return f"{dt.year:04d}"
    return None


def _creators(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in record.get("creators") or []:
        if isinstance(c, str):
            c = {"name": c}
        if not isinstance(c, dict):
            continue
        name = " ".join(str(c.get("name") or "").split())
        if not name:
            continue
        kind = str(c.get("name_type") or c.get("nameType") or "").lower()
        entry: dict[str, Any] = {"creatorName": name, "nameType": "Organizational" if kind.startswith("org") else "Personal"}
        orcid = str(c.get("orcid") or "").strip()
        m = re.search(r"(\d{4}-\d{4}-\d{4}-\d{3}[\dX])", orcid)
        if m:
            entry["nameIdentifier"] = [{"nameIdentifierValue": f"https://orcid.org/{m.group(1)}",
                                        "nameIdentifierScheme": "ORCID", "schemeURI": "https://orcid.org"}]
        affiliations = strings(c.get("affiliation") if isinstance(c.get("affiliation"), list) else [c.get("affiliation")])
        if affiliations:
            entry["affiliation"] = [{"affiliationName": a} for a in affiliations]
        if entry not in out:
            out.append(entry)
    return out


def _rights(license_value: Any) -> list[dict[str, Any]]:
    text = " ".join(str(license_value or "").split())
    if not text:
        return []
    entry: dict[str, Any] = {"rightsName": text}
    if text.lower().startswith(("http://", "https://")):
        entry["rightsURI"] = text
        spdx = re.search(r"spdx\.org/licenses/([A-Za-z0-9.\-+]+?)(?:\.html)?$", text)
        if spdx:
            entry["rightsName"] = spdx.group(1)
            entry["rightsIdentifier"] = {"rightsIdentifierValue": spdx.group(1), "rightsIdentifierScheme": "SPDX",
                                         "schemeURI": "https://spdx.org/licenses/"}
    elif text.lower() in SPDX_IDS:
        entry["rightsIdentifier"] = {"rightsIdentifierValue": SPDX_IDS[text.lower()], "rightsIdentifierScheme": "SPDX",
                                     "schemeURI": "https://spdx.org/licenses/"}
    return [entry]


def _size(record: Mapping[str, Any]) -> list[str]:
    out = []
    total = record.get("total_size_bytes")
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
        out.append(f"{total} bytes")
    n = record.get("file_count")
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        out.append(f"{n} files")
    return out


def _related(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    own = normalize_doi(record.get("doi"))

    def add(value: str, kind: str, relation: str) -> None:
        key = value.lower()
        if not value or key in seen or (own and normalize_doi(value) == own):
            return
        seen.add(key)
        out.append({"relatedIdentifierValue": value, "relatedIdentifierType": kind, "relationType": relation})

    for r in record.get("related_identifiers") or []:
        if isinstance(r, dict) and isinstance(r.get("identifier"), str) and r["identifier"].strip():
            value = r["identifier"].strip()
            kind = _identifier_type(r.get("scheme"), value)
            add(normalize_doi(value) or value if kind == "DOI" else value, kind, _relation(r.get("relation")))
    for doi in strings(record.get("related_dois")):
        add(doi, "DOI", "References")
    for link in strings(record.get("external_links")):
        if link.lower().startswith(("http://", "https://")):
            add(link, "URL", "References")
    return out


def dataset_description(record: Mapping[str, Any], classification: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """``dataset_description.json`` of a record, and the fields filled as placeholders."""
    placeholders: list[str] = []
    source = str(record.get("source") or "")
    doi = normalize_doi(record.get("doi"))
    url = record.get("url") if isinstance(record.get("url"), str) and record.get("url") else None
    if doi:
        identifier = {"identifierValue": doi, "identifierType": "DOI"}
    elif url:
        identifier = {"identifierValue": url, "identifierType": "URL"}
    else:
        identifier = {"identifierValue": f"{source}:{record.get('source_id')}", "identifierType": "Other"}
    title = " ".join(str(record.get("title") or "").split()) or f"{source} record {record.get('source_id')}"
    extra = record.get("extra") if isinstance(record.get("extra"), dict) else {}
    publisher = str(extra.get("publisher") or "").strip() or PUBLISHERS.get(source) or source.title() or "Unknown"
    doc: dict[str, Any] = {"schema": DD_SCHEMA, "identifier": identifier, "title": [{"titleValue": title}]}

    version = extra.get("version") or extra.get("version_number")
    if version not in (None, ""):
        doc["version"] = str(version)
    else:
        doc["version"] = "unspecified"
        placeholders.append("version")
    if doi and url:
        doc["alternateIdentifier"] = [{"alternateIdentifierValue": url, "alternateIdentifierType": "URL"}]

    creators = _creators(record)
    if not creators:
        creators = [{"creatorName": "(:unav)", "nameType": "Organizational"}]
        placeholders.append("creator")
    doc["creator"] = creators

    year = _year(record)
    if year is None:
        year = str(parse_datetime((record.get("provenance") or {}).get("harvested_at")).year) \
            if parse_datetime((record.get("provenance") or {}).get("harvested_at")) else "0000"
        placeholders.append("publicationYear")
    doc["publicationYear"] = year

    dates = []
    for key, value in (record.get("dates") or {}).items() if isinstance(record.get("dates"), dict) else []:
        dt = parse_datetime(value)
        kind = DATE_TYPES.get(str(key).lower())
        if dt and kind:
            entry = {"dateValue": dt.date().isoformat(), "dateType": kind}
            if entry not in dates:
                dates.append(entry)
    if dates:
        doc["date"] = dates

    doc["resourceType"] = {"resourceTypeValue": str(record.get("resource_type") or "Dataset").strip().title() or "Dataset",
                           "resourceTypeGeneral": "Dataset"}
    doc["datasetDeIdentLevel"] = {
        "deIdentType": "NoDeIdentification", "deIdentDirect": False, "deIdentHIPAA": False, "deIdentDates": False,
        "deIdentNonarr": False, "deIdentKAnon": False,
        "deIdentDetails": "Not stated by the source repository; nothing is claimed. Review before use.",
    }
    doc["datasetConsent"] = {
        "consentType": "ConsentSpecifiedNotElsewhereCategorised", "consentNoncommercial": False,
        "consentGeogRestrict": False, "consentResearchType": False, "consentGeneticOnly": False, "consentNoMethods": False,
        "consentsDetails": "Consent terms are not stated by the source repository; see its licence and landing page.",
    }
    placeholders += ["datasetDeIdentLevel", "datasetConsent"]

    description = str(record.get("description") or "").strip()
    if description:
        doc["description"] = [{"descriptionValue": description, "descriptionType": "Abstract"}]
    language = extra.get("language")
    if isinstance(language, str) and len(language.strip()) >= 2:
        doc["language"] = language.strip()
    else:
        doc["language"] = "en"
        placeholders.append("language")

    related = _related(record)
    if related:
        doc["relatedIdentifier"] = related
    subjects = subjects_for(record)
    if subjects:
        doc["subject"] = subjects

    affiliations = [a["affiliationName"] for c in creators for a in c.get("affiliation", [])]
    if affiliations:
        doc["managingOrganization"] = {"name": affiliations[0]}
    else:
        doc["managingOrganization"] = {"name": publisher}
        placeholders.append("managingOrganization")

    access = str(record.get("access_type") or "").strip().lower()
    access_type = ACCESS_TYPES.get(access)
    if source == "kaggle" and access_type == "PublicOnScreenAccessAndDownload":
        access_type = "PublicDownloadSelfAttestationRequired"  # an account and accepted terms
    if access_type is None:
        access_type = "Other"
        placeholders.append("accessType")
    doc["accessType"] = access_type
    details = f"Access as stated by {publisher}: {access or 'not stated'}."
    access_details: dict[str, Any] = {"description": details}
    if url and _SCHEMA_URL.match(url):
        access_details["url"] = url
    elif url:
        access_details["description"] = f"{details} Landing page: {url}"
    doc["accessDetails"] = access_details

    doc["rights"] = _rights(record.get("license"))
    doc["publisher"] = {"publisherName": publisher}
    size = _size(record)
    if size:
        doc["size"] = size
    fmt = formats(strings(record.get("file_types")))
    if fmt:
        doc["format"] = fmt
    return doc, placeholders


def subjects_for(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Keywords as subjects (with their MeSH descriptor when the table has one), then
    the MeSH headings the title names that no keyword carried."""
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    for kw in strings(record.get("keywords")):
        entry: dict[str, Any] = {"subjectValue": kw}
        term = mesh_term(kw)
        if term is not None:
            entry["subjectIdentifier"] = term.subject_identifier()
            used.add(term.ui)
        if entry not in out:
            out.append(entry)
    for term in mesh_terms(str(record.get("title") or "")):
        if term.ui not in used:
            used.add(term.ui)
            out.append({"subjectValue": term.heading, "subjectIdentifier": term.subject_identifier()})
    return out


# ------------------------------------------------------------------ structure
def dataset_structure_description(record: Mapping[str, Any], manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``dataset_structure_description.json``: one ``dataType`` directory per detected
    modality, and the metadata files."""
    directories = []
    for m in detect_modalities(record):
        entry: dict[str, Any] = {"directoryName": m.key, "directoryType": "dataType", "directoryDescription": m.summary()}
        terms = []
        for value, concept in m.terms:
            t: dict[str, Any] = {"relatedTermValue": value}
            term = MESH_OF_CONCEPT.get(concept) if concept else None
            if term is not None:
                t["relatedTermIdentifier"] = [term.related_term_identifier()]
            if t not in terms:
                terms.append(t)
        if terms:
            entry["relatedTerm"] = terms
        if m.standard:
            entry["relatedStandard"] = [{"standardName": m.standard[0], "standardDescription": m.standard[1],
                                         "standardUse": "File format of the data in this directory"}]
        directories.append(entry)
    files = [
        {"metadataFileName": "dataset_description.json", "metadataFileDescription": "Description of the dataset (AI-READI CDS v0.1.0)"},
        {"metadataFileName": "dataset_structure_description.json", "metadataFileDescription": "Structure of the dataset (AI-READI CDS v0.1.0)"},
    ]
    if manifest:
        files.append({"metadataFileName": "manifest.json",
                      "metadataFileDescription": "Downloaded files with sizes and verified checksums (envision-spiders)"})
    return {"schema": DSD_SCHEMA, "directoryList": directories, "metadataFileList": files}


@lru_cache(maxsize=1)
def structure_schema() -> dict[str, Any]:
    """The dataset_structure_description v0.1.0 rules (see addf_schemas/PROVENANCE.md),
    with the controlled lists of the vendored description schema."""
    defs = description_schema()["definitions"]
    s = {"type": "string", "minLength": 1}
    related_identifier = {
        "type": "object", "additionalProperties": False,
        "properties": {"relatedIdentifierValue": s, "relatedIdentifierType": {"$ref": "#/definitions/identifierType"},
                       "relationType": {"$ref": "#/definitions/relationType"},
                       "resourceTypeGeneral": {"$ref": "#/definitions/resourceItemType"},
                       "relatedIdentifierDescription": s},
        "required": ["relatedIdentifierValue", "relatedIdentifierType", "relationType"],
    }
    standard = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "standardName": s, "standardDescription": s, "standardUse": s,
            "standardIdentifier": {"type": "array", "uniqueItems": True, "items": {
                "type": "object", "additionalProperties": False,
                "properties": {"identifierValue": s, "identifierType": {"$ref": "#/definitions/identifierType"}},
                "required": ["identifierValue", "identifierType"]}},
            "standardRelatedIdentifier": {"type": "array", "uniqueItems": True, "items": related_identifier},
        },
    }
    term = {
        "type": "object", "additionalProperties": False,
        "properties": {"relatedTermValue": s, "relatedTermIdentifier": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "properties": {"relatedTermClassificationCode": s, "relatedTermScheme": s,
                           "relatedTermSchemeURI": s, "relatedTermValueURI": s},
            "required": ["relatedTermClassificationCode", "relatedTermScheme"]}}},
        "required": ["relatedTermValue"],
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema",
        "$id": DSD_SCHEMA,
        "type": "object", "additionalProperties": False,
        "properties": {
            "schema": {"type": "string", "const": DSD_SCHEMA},
            "directoryList": {"type": "array", "items": {"$ref": "#/definitions/directoryItem"}},
            "metadataFileList": {"type": "array", "items": {"$ref": "#/definitions/metadataFileItem"}},
        },
        "required": ["schema", "directoryList", "metadataFileList"],
        "definitions": {
            "directoryItem": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "directoryName": s,
                    "directoryType": {"type": "string", "enum": ["dataType", "modality", "device"]},
                    "directoryDescription": s,
                    "relatedIdentifier": {"type": "array", "uniqueItems": True, "items": related_identifier},
                    "relatedTerm": {"type": "array", "uniqueItems": True, "items": term},
                    "relatedStandard": {"type": "array", "uniqueItems": True, "items": standard},
                    "directoryList": {"type": "array", "items": {"$ref": "#/definitions/directoryItem"}},
                    "metadataFileList": {"type": "array", "items": {"$ref": "#/definitions/metadataFileItem"}},
                },
                "required": ["directoryName", "directoryType"],
                "if": {"properties": {"directoryType": {"const": "dataType"}}},
                "then": {"required": ["directoryDescription"]},
            },
            "metadataFileItem": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "metadataFileName": s, "metadataFileDescription": s,
                    "relatedIdentifier": {"type": "array", "uniqueItems": True, "items": related_identifier},
                    "relatedStandard": {"type": "array", "uniqueItems": True, "items": standard},
                },
                "required": ["metadataFileName", "metadataFileDescription"],
            },
            "identifierType": defs["identifierType"],
            "relationType": defs["relationType"],
            "resourceItemType": defs["resourceItemType"],
        },
    }


def validate(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Schema violations of a document, as ``path: message`` lines (empty when valid)."""
    from jsonschema import Draft7Validator

    validator = Draft7Validator(schema)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(doc))


@dataclass
class ADDFDocuments:
    description: dict[str, Any]
    structure: dict[str, Any]
    placeholders: list[str]
    errors: list[str]


def build(record: Mapping[str, Any], classification: Mapping[str, Any] | None = None,
          manifest: Mapping[str, Any] | None = None) -> ADDFDocuments:
    description, placeholders = dataset_description(record, classification)
    structure = dataset_structure_description(record, manifest)
    errors = [f"dataset_description: {e}" for e in validate(description, description_schema())]
    errors += [f"dataset_structure_description: {e}" for e in validate(structure, structure_schema())]
    return ADDFDocuments(description, structure, placeholders, errors)
