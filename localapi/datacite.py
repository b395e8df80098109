"""DataCite on the local API server, under ``/datacite`` (set DATACITE_API_URL to it).

Shapes come from the recorded responses in ``samples/datacite/``: generated DOIs are
copies of ``doi_10.6084-m9.figshare.1449060_2026-07.json`` (2026 shape: name
identifiers, SPDX ``rightsIdentifier``, ``sizes`` in bytes) or of the Zenodo record of
``dois_list_page-number_2020.json`` (2020 shape: eu-repo access statements, licence
URIs only), with their own DOIs, clients, texts, dates, formats, rights and funding
references (``corpus.funding_plan``: NEI awards of the generated RePORTER grants and
others, in DataCite's ``fundingReferences`` shape). A share is
hosted by Zenodo, Figshare or Dryad (their prefixes and clients), the rest by other
repositories; a few are not datasets (a ``resource-type-id=dataset`` search must not
return them); some declare ``contentUrl`` links to files served under ``/storage/``.

Among the ``n`` records of :func:`generate`, a few DOIs only the search by funder
reaches (:data:`FUNDER_ONLY`: texts that hold no search term, NEI funding named by its
Crossref Funder ID, its ROR id or an NEI award under NIH) and one that only looks like
it (an award number holding ``EY`` from another funder).

``GET /dois`` behaves like DataCite's (lupo's DataciteDoisController):

* ``query``: quoted words AND-ed over titles, descriptions and subjects, with
  ``created`` / ``updated`` / ``registered`` ranges; filters ``resource-type-id``,
  ``client-id``, ``prefix``;
* funding (the search by funder): the filter ``funder-id`` keeps DOIs with a funding
  reference whose ``funderIdentifier`` is ``https://doi.org/<that id>`` (lupo's term
  filter: a funder named by its ROR id does not match); query clauses on the index's
  ``funding_references.<field>`` (``funderIdentifier``, ``funderName``, ``awardNumber``)
  are OR-ed together, a quoted value matching exactly and an unquoted one as a
  case-sensitive wildcard (``*EY*``), like Elasticsearch on keyword fields;
* cursor paging: ``page[cursor]=1`` starts, the order is ``created`` then DOI, the
  cursor is ``base64url("<created ms>,<doi>")`` without padding; ``links.next`` exists
  while a page is full and is rebuilt like lupo's (parameters sorted, ``publisher``,
  ``mailto``, ``sort``, ``include`` and ``fields`` dropped, ``affiliation`` kept); a
  cursor that does not decode answers 400;
* page numbers: ``meta.totalPages`` is capped at 10,000 records, and a page past the
  cap answers the last reachable page with a ``next`` link to itself;
* ``page[size]`` defaults to 25 and is capped at 1,000;
* ``affiliation=true`` / ``publisher=true`` switch creators' affiliations and the
  publisher from strings to objects; facet buckets in ``meta`` unless
  ``disable-facets=true``; ``include=client`` side-loads clients;
* DataCite's response headers (no rate-limit headers; a simulated limit set with
  ``ServerState.set_rate_limit(PREFIX, ..., retry_header=None)`` answers 429 with none).

``GET /dois/{doi}`` answers one DOI (``xml`` attribute included), 404 in JSON:API form.
"""

from __future__ import annotations

import base64
import binascii
import collections
import copy
import fnmatch
import functools
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

from .core import ORIGIN, STATE_KEY, ServerState, json_response, render_json
from .corpus import FUNDERS, Award, file_plan, funding_plan, generated_texts
from .payloads import make_payload
from .search import contains, in_range, parse_query, tokens

PREFIX = "/datacite"
SAMPLES = Path(__file__).with_name("samples") / "datacite"
NUMBER_WINDOW = 10_000
DEFAULT_SIZE = 25
MAX_SIZE = 1000
FIRST_CURSOR = "1"

# What lupo keeps in a `next` link (besides the page parameters); everything else is dropped.
NEXT_KEEPS = (
    "query", "provider-id", "consortium-id", "client-id", "funder-id", "affiliation-id", "resource-type-id",
    "prefix", "certificate", "published", "created", "registered", "disable-facets", "detail", "composite",
    "affiliation",
)


@functools.lru_cache(maxsize=None)
def _sample(name: str) -> dict:
    """A recorded response (cached: callers copy before changing it)."""
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@dataclass
class DataCiteState:
    # doi -> JSON:API resource; affiliations and the publisher are kept as objects and
    # rendered as strings unless a request asks for objects
    records: dict[str, dict] = field(default_factory=dict)
    clients: dict[str, dict] = field(default_factory=dict)  # client id -> `included` resource
    positive: dict[str, bool] = field(default_factory=dict)  # generated label, for demo and tests
    # DataCite plans to answer with affiliation and publisher objects by default from
    # September 2027; True simulates that (requests can still ask for either shape)
    objects_by_default: bool = False


def state_of(server: ServerState) -> DataCiteState:
    return server.sources.setdefault("datacite", DataCiteState())


def stamp(dt: datetime) -> str:
    """DataCite's timestamp form: ``2015-06-15T04:17:37.000Z``."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def created_ms(rec: dict) -> int:
    dt = datetime.strptime(rec["attributes"]["created"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def encode_cursor(rec: dict) -> str:
    raw = f"{created_ms(rec)},{rec['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    ms, doi = raw.split(",", 1)
    return int(ms), doi


# ------------------------------------------------------------------ generation
HOSTS = {
    # name: (prefix, suffix pattern, client, provider, publisher, landing page, template)
    "zenodo": ("10.5281", "zenodo.{n}", "cern.zenodo", "cern", "Zenodo", "https://zenodo.org/records/{n}", "2020"),
    "figshare": ("10.6084", "m9.figshare.{n}", "figshare.ars", "otjm", "figshare",
                 "https://figshare.com/articles/dataset/{slug}/{n}/1", "2026"),
    "dryad": ("10.5061", "dryad.{s}", "dryad.dryad", "dryad", "Dryad",
              "https://datadryad.org/dataset/doi:10.5061/dryad.{s}", "2026"),
    "other": ("10.82001", "eyerepo.{n}", "demo.eyerepo", "demo", "University Eye Clinic Data Repository",
              "https://data.eyeclinic.example/datasets/{n}", "2026"),
}
GIVEN = ["Ana", "Wei", "Olu", "Sofia", "Ravi", "Maren", "Tomasz", "Aiko", "José", "Fatima"]
FAMILY = ["Ortega", "Zhang", "Adeyemi", "Rossi", "Iyer", "Lindqvist", "Kowalski", "Tanaka", "Núñez", "Haddad"]
AFFILIATIONS = [
    ("Moorfields Eye Hospital", "https://ror.org/03zaddr67"),
    ("University of Iowa", "https://ror.org/036jqmy94"),
    ("Singapore Eye Research Institute", "https://ror.org/02crz6e12"),
]
MIME = {".zip": "application/zip", ".csv": "text/csv", ".tar": "application/x-tar", ".gz": "application/gzip",
        ".dcm": "application/dicom", ".md": "text/markdown", ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
ACCESS = ["openAccess"] * 7 + ["embargoedAccess", "restrictedAccess", "closedAccess"]
ACCESS_TEXT = {"openAccess": "Open Access", "embargoedAccess": "Embargoed Access",
               "restrictedAccess": "Restricted Access", "closedAccess": "Closed Access"}


def _creators(rng: random.Random, k: int) -> list[dict]:
    out = []
    for _ in range(k):
        if rng.random() < 0.15:
            out.append({"name": "Retinal Imaging Consortium", "nameType": "Organizational", "affiliation": [], "nameIdentifiers": []})
            continue
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        aff = [{"name": n, "affiliationIdentifier": ror, "affiliationIdentifierScheme": "ROR", "schemeUri": "https://ror.org"}
               for n, ror in rng.sample(AFFILIATIONS, rng.randint(0, 2))]
        ids = []
        if rng.random() < 0.5:
            orcid = f"0000-000{rng.randint(1, 3)}-{rng.randint(1000, 9999)}-{rng.randint(100, 999)}{rng.choice('0123456789X')}"
            ids = [{"schemeUri": "https://orcid.org", "nameIdentifier": f"https://orcid.org/{orcid}", "nameIdentifierScheme": "ORCID"}]
        out.append({"name": f"{family}, {given}", "nameType": "Personal", "givenName": given, "familyName": family,
                    "affiliation": aff, "nameIdentifiers": ids})
    return out


def _xml(rec: dict) -> str:
    a = rec["attributes"]
    title = a["titles"][0]["title"].replace("&", "&amp;").replace("<", "&lt;")
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<resource xmlns="http://datacite.org/schema/kernel-4">'
           f'<identifier identifierType="DOI">{a["doi"].upper()}</identifier><titles><title>{title}</title></titles>'
           f'<publicationYear>{a["publicationYear"]}</publicationYear></resource>')
    return base64.b64encode(xml.encode()).decode()


def add_record(server: ServerState, rec: dict, client: dict | None = None, positive: bool | None = None) -> dict:
    st = state_of(server)
    with server.lock:
        st.records[rec["id"]] = rec
        if client is not None:
            st.clients.setdefault(client["id"], client)
        if positive is not None:
            st.positive[rec["id"]] = positive
    return rec


def funding_references(awards: list[Award], rng: random.Random) -> list[dict]:
    """DataCite ``fundingReferences`` (schema 4: funderName, funderIdentifier with its
    type, awardNumber, awardUri, awardTitle). Funders are named by their Crossref Funder
    ID or their ROR id; one award in twenty is written as a number (a type the harvester
    must read or report)."""
    out = []
    for award in awards:
        name, crossref, ror, _ = FUNDERS[award.funder]
        ref: dict[str, Any] = {"funderName": name}
        if ror and rng.random() < 0.25:
            ref.update(funderIdentifier=ror, funderIdentifierType="ROR", schemeUri="https://ror.org")
        else:
            ref.update(funderIdentifier=f"https://doi.org/{crossref}", funderIdentifierType="Crossref Funder ID")
        number: Any = award.number
        if award.number.isdigit() and rng.random() < 0.3:
            number = int(award.number)
        ref["awardNumber"] = number
        if award.core:
            ref["awardUri"] = f"https://reporter.nih.gov/search/results?query={award.core}"
        if award.title:
            ref["awardTitle"] = award.title
        out.append(ref)
    return out


def make_record(rng: random.Random, n: int, host: str, text, created: datetime, resource_type: str,
                awards: list[Award] | None = None) -> tuple[dict, dict]:
    """One DOI in the real shape of its template, and its client resource."""
    prefix, suffix_t, client_id, provider, publisher, url_t, template = HOSTS[host]
    s = f"{n:x}{rng.randint(0, 0xffff):04x}"
    suffix = suffix_t.format(n=n, s=s)
    doi = f"{prefix}/{suffix}"
    slug = re.sub(r"\W+", "_", text.title)[:40]
    if template == "2026":
        sample = _sample("doi_10.6084-m9.figshare.1449060_2026-07.json")
        rec = copy.deepcopy(sample["data"])
        client = copy.deepcopy(sample["included"][0])
    else:
        sample = _sample("dois_list_page-number_2020.json")
        rec = copy.deepcopy(sample["data"][0])
        client = copy.deepcopy(next(c for c in sample["included"] if c["id"] == "cern.zenodo"))
    rec["relationships"]["provider"] = {"data": {"id": provider, "type": "providers"}}
    client["id"] = client_id
    client["attributes"]["symbol"] = client_id.upper()
    a = rec["attributes"]
    a.pop("xml", None)
    updated = created + timedelta(days=rng.randint(0, 400), seconds=rng.randint(0, 86399))
    year = created.year
    titles = [{"title": text.title}]
    if rng.random() < 0.15:
        titles.insert(0, {"title": f"{text.title.split(':')[0]} (short title)", "titleType": "AlternativeTitle"})
    descriptions = [{"description": text.description, "descriptionType": "Abstract"}]
    if rng.random() < 0.2:
        descriptions.insert(0, {"description": "Methods: images were graded by two readers.", "descriptionType": "Methods"})
    subjects = [{"subject": k} for k in text.keywords]
    subjects.append({"subject": "FOS: Clinical medicine", "schemeUri": "http://www.oecd.org/science/inno/38235147.pdf",
                     "subjectScheme": "Fields of Science and Technology (FOS)"})
    names = file_plan(rng, text.positive)
    exts = [n.rsplit(".", 1)[-1].lower() for n in names]
    total = rng.randint(10**5, 5 * 10**10)
    if host in ("figshare", "dryad"):
        formats = [MIME.get("." + e, "application/octet-stream") for e in exts]
        sizes = [f"{total} Bytes"]
    elif host == "zenodo":
        formats, sizes = [], []
    else:
        formats = rng.choice([exts, ["Darwin Core Archive"], [e.upper() for e in exts]])
        sizes = rng.choice([[f"{len(names)} files"], [str(total)], [f"{total / 10**9:.1f} GB"]])
    rights: list[dict] = []
    if host == "zenodo":
        if rng.random() < 0.8:
            rights.append({"rights": "Creative Commons Attribution 4.0 International",
                           "rightsUri": "https://creativecommons.org/licenses/by/4.0/legalcode"})
        access = rng.choice(ACCESS)
        rights.append({"rights": ACCESS_TEXT[access], "rightsUri": f"info:eu-repo/semantics/{access}"})
    elif host == "figshare":
        rights = copy.deepcopy(a["rightsList"])
    elif host == "dryad":
        rights = [{"rights": "Creative Commons Zero v1.0 Universal", "rightsUri": "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
                   "schemeUri": "https://spdx.org/licenses/", "rightsIdentifier": "cc0-1.0", "rightsIdentifierScheme": "SPDX"}]
    elif rng.random() < 0.5:
        rights = [{"rights": "Data use agreement required", "rightsUri": "https://data.eyeclinic.example/dua"},
                  {"rights": "Restricted Access", "rightsUri": "info:eu-repo/semantics/restrictedAccess"}]
    related = []
    if host == "zenodo":
        related.append({"relationType": "IsVersionOf", "relatedIdentifier": f"10.5281/zenodo.{n - 1}", "relatedIdentifierType": "DOI"})
    if rng.random() < 0.4:
        related.append({"relationType": "IsSupplementTo", "relatedIdentifier": f"https://doi.org/10.1167/IOVS.{n % 97}.{n % 13}.{n}",
                        "relatedIdentifierType": "DOI", "resourceTypeGeneral": "JournalArticle"})
    if rng.random() < 0.3:
        related.append({"relationType": "IsDocumentedBy", "relatedIdentifier": f"https://github.com/eyelab/ds{n}",
                        "relatedIdentifierType": "URL"})
    if rng.random() < 0.1:
        related.append({"relationType": "IsIdenticalTo", "relatedIdentifier": doi.upper(), "relatedIdentifierType": "DOI"})
    a.update({
        "doi": doi, "prefix": prefix, "suffix": suffix,
        "identifiers": [], "alternateIdentifiers": [],
        "creators": _creators(rng, rng.randint(1, 3)),
        "titles": titles,
        "publisher": {"name": publisher},
        "publicationYear": year if host != "other" else str(year),
        "subjects": subjects,
        "dates": [{"date": created.date().isoformat(), "dateType": "Created"},
                  {"date": updated.date().isoformat(), "dateType": "Updated"},
                  {"date": str(year), "dateType": "Issued"}],
        "types": {"ris": "DATA", "bibtex": "misc", "citeproc": "dataset", "schemaOrg": "Dataset",
                  "resourceType": "Image collection" if text.positive else "", "resourceTypeGeneral": resource_type},
        "relatedIdentifiers": related,
        "sizes": sizes,
        "formats": formats,
        "version": "1.0" if rng.random() < 0.3 else None,
        "rightsList": rights,
        "descriptions": descriptions,
        "fundingReferences": funding_references(awards or [], random.Random(f"{doi}/funding")),
        "url": url_t.format(n=n, s=s, slug=slug),
        "contentUrl": None,
        "created": stamp(created),
        "registered": stamp(created + timedelta(seconds=1)),
        "published": str(year),
        "updated": stamp(updated),
    })
    if resource_type != "Dataset":
        a["types"].update({"ris": "RPRT", "citeproc": "article", "schemaOrg": "ScholarlyArticle"})
    rec["id"] = doi
    rec["relationships"]["client"] = {"data": {"id": client_id, "type": "clients"}}
    if "media" in rec["relationships"]:
        rec["relationships"]["media"] = {"data": {"id": doi, "type": "media"}}
    return rec, client


def generate(server: ServerState, n: int, seed: int = 1, start: int = 5_000_001) -> int:
    """``n`` DOIs: about a third hosted by Zenodo, a quarter by Figshare, a sixth by
    Dryad, the rest elsewhere (some with ``contentUrl`` files); 8% are not datasets;
    some share their creation second (cursor ties are broken by DOI). From 25 on, one
    in 25 is a DOI only the search by funder reaches, and one more its decoy
    (:func:`generate_funder_only`)."""
    rng = random.Random(seed)
    # one in 25 (and one decoy) only the search by funder reaches, from 25 DOIs on
    funder_only = n // 25
    texts = generated_texts(n - funder_only - 1 if funder_only else n, seed)
    base = datetime(2015, 1, 1, tzinfo=timezone.utc)
    created = base
    for i, text in enumerate(texts):
        roll = rng.random()
        host = "zenodo" if roll < 0.35 else "figshare" if roll < 0.6 else "dryad" if roll < 0.75 else "other"
        if not (i and rng.random() < 0.1):
            created = base + timedelta(days=rng.randint(0, 3800), seconds=rng.randint(0, 86399), milliseconds=rng.randint(0, 999))
        rtype = "Dataset" if rng.random() >= 0.08 else rng.choice(["Text", "Software"])
        rec, client = make_record(rng, start + 2 * i, host, text, created, rtype, funding_plan("datacite", seed, i))
        if host == "other" and rng.random() < 0.3:
            name = file_plan(rng, text.positive)[0]
            path = server.add_file(f"datacite/{rec['attributes']['suffix']}/{name}", make_payload(name, rng, small=True))
            rec["attributes"]["contentUrl"] = [f"{ORIGIN}{quote(path)}"]
        add_record(server, rec, client, positive=text.positive)
    if funder_only:
        generate_funder_only(server, funder_only, seed)
    return n


# DOIs only the search by funder reaches: (title, description, keywords, positive, how
# the funding reference names NEI). No search term has all its words in these texts.
FUNDER_ONLY = [
    ("Adaptive optics photoreceptor mosaics in inherited retinal degenerations",
     "Montages of cone mosaics from {n} patients with inherited retinal degenerations, recorded with an adaptive "
     "optics scanning light ophthalmoscope, with cone counts. TIFF images.",
     ["adaptive optics", "photoreceptors", "inherited retinal degeneration"], True, "crossref"),
    ("Wide-field photographs from retinopathy of prematurity screening",
     "Wide-field photographs of {n} infants screened for retinopathy of prematurity, graded for plus disease. "
     "PNG images with grading tables.",
     ["retinopathy of prematurity", "telemedicine", "neonatology"], True, "award"),
    ("Visual acuity and refraction in a paediatric myopia cohort",
     "Visual acuity, cycloplegic refraction and axial length of {n} children followed for three years. "
     "Tables in CSV format; no images.",
     ["myopia", "refraction", "axial length"], False, "ror"),
    ("Keratoconus progression photographs and tomographic maps",
     "Scheimpflug maps and external photographs of {n} eyes with keratoconus over five years of follow-up.",
     ["keratoconus", "Scheimpflug", "cornea"], True, "crossref"),
]
# A DOI the funder search's award wildcard finds that is not NEI's: the spider drops it.
NOT_NEI = ("Household survey of water use in river basins",
           "Answers of {n} households to a survey of water use; tables only.", ["hydrology", "survey"], False)


def generate_funder_only(server: ServerState, n: int, seed: int = 1, start: int = 7_000_001) -> list[str]:
    """``n`` DOIs (cycling through FUNDER_ONLY) that only the search by funder reaches,
    each citing an NEI grant of the generated RePORTER corpus (by its Crossref Funder ID,
    its ROR id, or an NEI award number under NIH), and one DOI whose award number holds
    ``EY`` without being NEI's; returns the DOIs of the first kind."""
    from .corpus import CITED_GRANTS, CITED_SEED, GeneratedText
    from .nei import planned_grants

    rng = random.Random(f"funder-only/{seed}")
    grants = planned_grants(CITED_GRANTS, CITED_SEED)
    base = datetime(2016, 1, 1, tzinfo=timezone.utc)
    dois = []
    for i in range(n + 1):
        if i < n:
            title, desc, keywords, positive, how = FUNDER_ONLY[i % len(FUNDER_ONLY)]
            # an award under NIH is NEI's only by its institute code: an EY grant for those
            pool = [g for g in grants if g[0][3:5] == "EY"] if how == "award" else grants
            core, grant_title = pool[i % len(pool)]
            award = Award("nih" if how == "award" else "nei", core if how != "award" else f"5{core}-0{1 + i % 8}",
                          grant_title, core)
        else:
            (title, desc, keywords, positive), how = NOT_NEI, "other"
            award = Award("nsf", f"SURVEY-{rng.randint(1000, 9999)}-EY", None, None)
        text = GeneratedText(title=title if i < len(FUNDER_ONLY) or i == n else f"{title} ({i // len(FUNDER_ONLY) + 1})",
                             description=desc.format(n=rng.randint(40, 900)), keywords=keywords, positive=positive,
                             terms=[])
        created = base + timedelta(days=rng.randint(0, 3000), seconds=rng.randint(0, 86399))
        rec, client = make_record(rng, start + 2 * i, "other", text, created, "Dataset", [award])
        ref = rec["attributes"]["fundingReferences"][0]
        name, crossref, ror, _ = FUNDERS[award.funder]
        if how == "ror":
            ref.update(funderIdentifier=ror, funderIdentifierType="ROR", schemeUri="https://ror.org")
        elif how in ("crossref", "award", "other"):
            ref.update(funderIdentifier=f"https://doi.org/{crossref}", funderIdentifierType="Crossref Funder ID")
            ref.pop("schemeUri", None)
        add_record(server, rec, client, positive=positive)
        if i < n:
            dois.append(rec["id"])
    return dois


def modify(server: ServerState, fraction: float, seed: int = 2) -> int:
    """Touch a fraction of the DOIs (new title, later ``updated``)."""
    st = state_of(server)
    rng = random.Random(seed)
    with server.lock:
        dois = sorted(st.records)
        chosen = rng.sample(dois, max(1, int(len(dois) * fraction))) if dois else []
        now = stamp(datetime.now(timezone.utc))
        for doi in chosen:
            a = st.records[doi]["attributes"]
            a["updated"] = now
            for t in a["titles"]:
                if not t.get("titleType"):
                    t["title"] += " (revised)"
    return len(chosen)


# ------------------------------------------------------------------ search semantics
def _text(rec: dict) -> list[str]:
    a = rec["attributes"]
    parts = [t.get("title", "") for t in a.get("titles") or []]
    parts += [re.sub(r"<[^>]+>", " ", str(d.get("description", ""))) for d in a.get("descriptions") or []]
    parts += [s.get("subject", "") for s in a.get("subjects") or []]
    return tokens(" ".join(parts))


def kebab(value: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", value).lower()


_FUNDING_CLAUSE = re.compile(r'funding_references\.(\w+):(?:"((?:[^"\\]|\\.)*)"|([^\s()"]+))')


def funding_clauses(query: str) -> tuple[list[tuple[str, str, bool]], str]:
    """The ``funding_references.<field>:<value>`` clauses of a query (field, value,
    exact) and the query without them."""
    clauses = [(m.group(1), m.group(2) if m.group(2) is not None else m.group(3), m.group(2) is not None)
               for m in _FUNDING_CLAUSE.finditer(query)]
    return clauses, _FUNDING_CLAUSE.sub(" ", query)


def funding_match(rec: dict, clauses: list[tuple[str, str, bool]]) -> bool:
    """Whether one of the DOI's funding references answers one of the clauses."""
    for ref in rec["attributes"].get("fundingReferences") or []:
        for name, value, exact in clauses:
            held = ref.get(name) if isinstance(ref, dict) else None
            if held is None or isinstance(held, (dict, list)):
                continue
            held = str(held)
            if held == value if exact else fnmatch.fnmatchcase(held, value):
                return True
    return False


def funder_id_match(rec: dict, funder_id: str) -> bool:
    """lupo's ``funder-id`` filter: a reference whose funderIdentifier is the id's DOI URL."""
    bare = re.sub(r"^(https?://)?(dx\.)?doi\.org/", "", funder_id.strip())
    return funding_match(rec, [("funderIdentifier", f"https://doi.org/{bare}", True)])


def matches(rec: dict, query: str, filters: dict[str, str] | None = None) -> bool:
    """Whether a DOI answers a search (query string and filter parameters)."""
    filters = filters or {}
    a = rec["attributes"]
    if filters.get("funder-id") and not funder_id_match(rec, filters["funder-id"]):
        return False
    clauses, query = funding_clauses(query or "")
    if clauses and not funding_match(rec, clauses):
        return False
    if filters.get("resource-type-id") and kebab(a["types"].get("resourceTypeGeneral", "")) != filters["resource-type-id"].lower():
        return False
    if filters.get("client-id") and rec["relationships"]["client"]["data"]["id"] != filters["client-id"]:
        return False
    if filters.get("prefix") and a["prefix"] != filters["prefix"]:
        return False
    phrases, ranges = parse_query(query or "")
    text = _text(rec)
    if not all(contains(text, p) for p in phrases):
        return False
    return all(in_range(str(a.get(fld) or ""), lo, hi, li, hi_inc) for fld, lo, hi, li, hi_inc in ranges)


def _render(rec: dict, affiliation: bool, publisher: bool, detail: bool = False) -> dict:
    out = copy.deepcopy(rec)
    a = out["attributes"]
    if not publisher and isinstance(a.get("publisher"), dict):
        a["publisher"] = a["publisher"].get("name")
    if not affiliation:
        for c in a.get("creators") or []:
            c["affiliation"] = [x.get("name") if isinstance(x, dict) else x for x in c.get("affiliation") or []]
    if detail:
        a["xml"] = _xml(rec)
    return out


def _bucket(counter: collections.Counter, titles: dict | None = None, limit: int = 10) -> list[dict]:
    return [{"id": k, "title": (titles or {}).get(k, k), "count": v} for k, v in counter.most_common(limit)]


def facets(found: list[dict]) -> dict[str, Any]:
    """Facet buckets of ``meta`` in the recorded shape (computed over the hits)."""
    c: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    titles: dict[str, dict] = collections.defaultdict(dict)
    for rec in found:
        a = rec["attributes"]
        rtg = a["types"].get("resourceTypeGeneral", "")
        c["states"][a.get("state", "findable")] += 1
        c["resourceTypes"][kebab(rtg)] += 1
        titles["resourceTypes"][kebab(rtg)] = rtg
        c["created"][a["created"][:4]] += 1
        c["registered"][a["registered"][:4]] += 1
        c["published"][str(a.get("published"))[:4]] += 1
        c["providers"][(rec["relationships"].get("provider") or {}).get("data", {}).get("id", "")] += 1
        c["clients"][rec["relationships"]["client"]["data"]["id"]] += 1
        c["prefixes"][a["prefix"]] += 1
        for s in a.get("subjects") or []:
            c["subjects"][s.get("subject", "").lower()] += 1
        for r in a.get("rightsList") or []:
            if r.get("rightsIdentifier"):
                c["licenses"][r["rightsIdentifier"]] += 1
    return {
        "states": _bucket(c["states"], {"findable": "Findable"}),
        "resourceTypes": _bucket(c["resourceTypes"], titles["resourceTypes"]),
        "created": sorted(_bucket(c["created"], limit=50), key=lambda b: b["id"]),
        "published": sorted(_bucket(c["published"], limit=50), key=lambda b: b["id"]),
        "registered": sorted(_bucket(c["registered"], limit=50), key=lambda b: b["id"]),
        "providers": _bucket(c["providers"]),
        "clients": _bucket(c["clients"]),
        "affiliations": [],
        "prefixes": _bucket(c["prefixes"]),
        "certificates": [],
        "licenses": _bucket(c["licenses"]),
        "schemaVersions": [{"id": "4", "title": "Schema 4", "count": len(found)}] if found else [],
        "linkChecksStatus": [],
        "subjects": _bucket(c["subjects"]),
        "fieldsOfScience": [],
        "citations": [], "views": [], "downloads": [],
    }


@functools.lru_cache(maxsize=None)
def _recorded_headers() -> tuple[tuple[str, str], ...]:
    recorded = _sample("doi_10.5061-dryad.8515_2026-07.headers.json")["headers"]
    skip = {"content-length", "transfer-encoding", "content-type", "connection", "date", "status"}
    return tuple((k, v[0]) for k, v in recorded.items() if k.lower() not in skip and v)


def _headers() -> dict[str, str]:
    """DataCite's recorded response headers, without hop-by-hop and body headers."""
    return dict(_recorded_headers())


def _respond(request: web.Request, payload: Any, status: int = 200) -> web.Response:
    return render_json(request, payload, status, headers=_headers())


def _error(status: int, title: str) -> web.Response:
    return json_response({"errors": [{"status": str(status), "title": title}]}, status=status, headers=_headers())


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name, "").lower()
    return value == "true" if value in ("true", "false") else default


async def search(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    q = request.query
    try:
        size = min(MAX_SIZE, max(0, int(q.get("page[size]", DEFAULT_SIZE))))
        number = int(q["page[number]"]) if "page[number]" in q and "page[cursor]" not in q else None
    except ValueError:
        return _error(400, "page parameters must be numbers")
    cursor = q.get("page[cursor]")
    after = None
    if cursor is not None and cursor != FIRST_CURSOR:
        try:
            after = decode_cursor(cursor)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return _error(400, f"Invalid cursor: {cursor}")
    filters = {k: q[k] for k in ("resource-type-id", "client-id", "prefix", "funder-id") if k in q}
    with server.lock:
        hits = [r for r in st.records.values() if matches(r, q.get("query", ""), filters)]
        total = len(hits)
        found = list(hits)
        next_params: dict[str, str] | None = None
        if cursor is not None:
            found.sort(key=lambda r: (created_ms(r), r["id"]))
            if after is not None:
                found = [r for r in found if (created_ms(r), r["id"]) > after]
            chunk = found[:size]
            total_pages = math.ceil(total / size) if size else 0
            if size and len(chunk) == size:
                next_params = {"page[cursor]": encode_cursor(chunk[-1]), "page[size]": str(size)}
        else:
            key = q.get("sort", "-updated")
            field_ = {"name": "id", "created": "created", "updated": "updated", "published": "published"}.get(key.lstrip("-"), "updated")
            found.sort(key=lambda r: r["id"] if field_ == "id" else str(r["attributes"].get(field_)), reverse=key.startswith("-"))
            total_pages = math.ceil(min(total, NUMBER_WINDOW) / size) if size else 0
            page = max(1, number or 1)
            if size and (page - 1) * size >= NUMBER_WINDOW:
                # past the 10,000-record window: the last reachable page, and a next link to itself
                page = total_pages
                chunk = found[(page - 1) * size : page * size]
                next_params = {"page[number]": str(page), "page[size]": str(size)}
            else:
                chunk = found[(page - 1) * size : page * size]
                if size and len(chunk) == size:
                    next_params = {"page[number]": str(page + 1), "page[size]": str(size)}
            number = page
        shapes = (_flag(request, "affiliation", st.objects_by_default), _flag(request, "publisher", st.objects_by_default))
        data = [_render(r, *shapes, _flag(request, "detail")) for r in chunk]
        included = []
        if "client" in q.get("include", "").split(","):
            for cid in dict.fromkeys(r["relationships"]["client"]["data"]["id"] for r in chunk):
                if cid in st.clients:
                    included.append(copy.deepcopy(st.clients[cid]))
        meta: dict[str, Any] = {"total": total, "totalPages": total_pages}
        if cursor is None:
            meta["page"] = number
        if total and not _flag(request, "disable-facets"):
            meta.update(facets(hits))
    links = {"self": f"{ORIGIN}{request.path_qs}"}
    if next_params is not None:
        kept = {k: q[k] for k in NEXT_KEEPS if k in q}
        kept.update(next_params)
        links["next"] = f"{ORIGIN}{PREFIX}/dois?" + urlencode(sorted(kept.items()))
    body: dict[str, Any] = {"data": data}
    if included:
        body["included"] = included
    body["meta"] = meta
    body["links"] = links
    return _respond(request, body)


async def single(request: web.Request) -> web.Response:
    server = request.app[STATE_KEY]
    st = state_of(server)
    doi = request.match_info["doi"].lower()
    with server.lock:
        rec = st.records.get(doi)
        client = st.clients.get(rec["relationships"]["client"]["data"]["id"]) if rec else None
        if rec is None:
            return _error(404, "The resource you are looking for doesn't exist.")
        shapes = (_flag(request, "affiliation", st.objects_by_default), _flag(request, "publisher", st.objects_by_default))
        body: dict[str, Any] = {"data": _render(rec, *shapes, detail=True)}
        if client is not None and "client" in request.query.get("include", "").split(","):
            body["included"] = [copy.deepcopy(client)]
    return _respond(request, body)


def register(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/dois", search)
    app.router.add_get(f"{PREFIX}/dois/{{doi:.+}}", single)
