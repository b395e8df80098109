"""Small pure helpers for the field mapping every spider shares.

HTML is stripped with lxml (a real parser: entities, broken markup, nested tags), not
regular expressions. libxml2 refuses a text node over 10 MB unless told otherwise, and
then lxml's HTML parser returns an empty tree without an error: a 10 MB description
became "" silently. The parser here allows huge trees, a parse that yields no text from
a text that has some is logged and the text kept with its markup, and a text longer
than ``MAX_TEXT_CHARS`` is cut with a log line. DOIs are normalised one way for the whole project; timestamps of
every shape the APIs send (``Z`` or not, offsets, 7 fractional digits, bare dates or
years) parse with one function.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import unquote

import lxml.html
from lxml import etree

logger = logging.getLogger(__name__)

# A plain text longer than this is cut (a description; real ones are a few kilobytes).
MAX_TEXT_CHARS = 1_000_000
_PARSERS = threading.local()  # lxml parsers are not shared between threads
_TAG = re.compile(r"<[^>]*>")

_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
    "blockquote", "pre", "section", "article", "header", "footer", "dd", "dt", "hr",
}
_WS = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Bidirectional controls (embeddings, overrides, isolates, LRM/RLM): invisible, and able
# to make a title or a file name read as something else (``U+202E`` "gpj.exe").
BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)
# Markup: a tag (<p>, </p>, <br/>, <!-- -->) or an entity (&amp; &#39; &#x27;). Plain text such
# as "p<0.05 and R&D" holds neither and is not parsed as HTML (it would lose text).
_LOOKS_LIKE_HTML = re.compile(
    r"</?[a-zA-Z][a-zA-Z0-9]*"  # a tag name
    r"(?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*"  # its attributes
    r"\s*/?>"
    r"|<!--"
    r"|&(?:[a-zA-Z][a-zA-Z0-9]{1,31}|#\d{1,7}|#[xX][0-9a-fA-F]{1,6});"
)


def strip_bidi(text: str) -> str:
    """``text`` without bidirectional control characters."""
    return BIDI_CONTROLS.sub("", text)


def _clean_ws(text: str) -> str:
    text = strip_bidi(_CONTROL.sub(" ", text))
    paragraphs = []
    for block in re.split(r"\n\s*\n|\n", text):
        block = _WS.sub(" ", block).strip()
        if block:
            paragraphs.append(block)
    return "\n".join(paragraphs)


def html_to_text(value: Any) -> tuple[str, list[str]]:
    """Plain text of an HTML fragment (blocks on their own lines, spaces collapsed)
    and the http(s) links it contains, in order, without repeats.

    Anything that is not a string (None, a number, a list from a broken API) yields
    ``("", [])`` or its string form, never an exception.
    """
    if value is None:
        return "", []
    if not isinstance(value, str):
        value = " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    links: list[str] = []
    value = _CONTROL.sub(" ", value)  # NUL and other control characters never reach a record
    if _LOOKS_LIKE_HTML.search(value):
        try:
            root = lxml.html.fragment_fromstring(value, create_parent="div", parser=_html_parser())
        except (etree.ParserError, ValueError):
            root = None
        if root is not None:
            for bad in root.xpath("//script|//style"):
                bad.drop_tree()
            for a in root.iter("a"):
                href = (a.get("href") or "").strip()
                if href.lower().startswith(("http://", "https://")):
                    links.append(href)
            for el in root.iter():
                if isinstance(el.tag, str) and el.tag.lower() in _BLOCK_TAGS:
                    el.tail = "\n" + (el.tail or "")
                    if el.tag.lower() in ("br", "hr"):
                        continue
                    el.text = "\n" + (el.text or "")
            parsed = root.text_content()
            if parsed.strip() or not _TAG.sub("", value).strip():
                value = parsed
            else:  # the parser lost the text: keep it with its markup rather than nothing
                logger.warning("an HTML text of %d characters parsed to nothing; kept with its markup", len(value))
    text = _clean_ws(value)
    if len(text) > MAX_TEXT_CHARS:
        logger.warning("a text of %d characters was cut to %d (MAX_TEXT_CHARS)", len(text), MAX_TEXT_CHARS)
        text = text[:MAX_TEXT_CHARS]
    links.extend(m.group(0).rstrip(".,;:") for m in _URL_IN_TEXT.finditer(text))
    return text, list(dict.fromkeys(links))


def _html_parser() -> lxml.html.HTMLParser:
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = lxml.html.HTMLParser(huge_tree=True)
    return parser


def plain_text(value: Any) -> str:
    return html_to_text(value)[0]


_NAME_KEYS = ("name", "full_name", "fullName", "text", "value", "title")


def name_text(value: Any) -> str:
    """A name (a creator's, an affiliation's) as plain text whatever its shape: text as
    it is; an object by its ``name`` (or ``full_name``, ``text``, ...), else its family
    and given names; a list as its names joined by "; ". Anything else, or an object
    without a name, is "" (never ``str()`` of an object)."""
    if isinstance(value, str):
        return plain_text(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        for key in _NAME_KEYS:
            text = name_text(value.get(key)) if not isinstance(value.get(key), (dict, list)) else ""
            if text:
                return text
        family = name_text(value.get("familyName") or value.get("family_name") or value.get("lastName"))
        given = name_text(value.get("givenName") or value.get("given_name") or value.get("firstName"))
        return f"{family}, {given}" if family and given else family or given
    if isinstance(value, list):
        return "; ".join(dict.fromkeys(t for t in (name_text(v) for v in value if not isinstance(v, list)) if t))
    return ""


_DOI_PREFIX = re.compile(
    r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/|https?://doi\.org/|info:doi/)", re.IGNORECASE
)
_DOI_SHAPE = re.compile(r"^10\.\d{4,9}/\S+$")


def normalize_doi(value: Any) -> str | None:
    """``https://doi.org/10.5281/ZENODO.1`` -> ``10.5281/zenodo.1``; None when it is not a DOI."""
    if not isinstance(value, str):
        return None
    doi = value.strip()
    if re.search(r"%2f|%3a", doi, re.IGNORECASE):  # a DOI percent-encoded for a URL path
        doi = unquote(doi)
    for _ in range(2):
        doi = _DOI_PREFIX.sub("", doi).strip()
    doi = doi.lower().rstrip(".")
    return doi if _DOI_SHAPE.match(doi) else None


def dois_in(values: Any) -> list[str]:
    """Normalised DOIs among strings, without repeats, order kept."""
    out = []
    for v in values or []:
        d = normalize_doi(v)
        if d and d not in out:
            out.append(d)
    return out


def related_dois_and_links(identifiers: Any, own_doi: str | None, links: Any = ()) -> tuple[list[str], list[str]]:
    """From a record's related identifiers: its ``related_dois`` (normalised, without its
    own DOI) and its ``external_links``: ``links`` (e.g. those of the description) then
    every http(s) identifier that is not a DOI, without repeats."""
    identifiers = [i for i in as_list(identifiers) if isinstance(i, str)]
    related = [d for d in dois_in(identifiers) if d != own_doi]
    external = list(dict.fromkeys(strings(links)))
    for ident in identifiers:
        if ident.lower().startswith(("http://", "https://")) and not normalize_doi(ident) and ident not in external:
            external.append(ident)
    return related, external


_DIGEST_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"[0-9a-f]+")


def checksum(digest: Any, algorithm: Any = None) -> str | None:
    """``"<algorithm>:<hex>"`` for every source's checksum shape, or None.

    Accepts ``"md5:<hex>"`` (Zenodo), a bare digest with its algorithm (Figshare's md5,
    Dryad's ``digest`` + ``digestType`` such as ``sha-256``, OSF's ``extra.hashes``), or
    a bare digest alone (told by its length). A digest that does not add up (wrong
    length for its algorithm, not hex) is None rather than a wrong checksum."""
    if not isinstance(digest, str):
        return None
    value = digest.strip().lower()
    if ":" in value and algorithm is None:
        algorithm, _, value = value.partition(":")
    algo = re.sub(r"[^a-z0-9]", "", str(algorithm or "").lower())
    if not algo:
        algo = {v: k for k, v in _DIGEST_LENGTHS.items()}.get(len(value), "")
    if _DIGEST_LENGTHS.get(algo) != len(value) or not _HEX.fullmatch(value):
        return None
    return f"{algo}:{value}"


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_datetime(value: Any) -> datetime | None:
    """Parse the timestamps the seven APIs send; aware datetimes in UTC, or None.

    Accepts ``2024-08-29T16:18:19.637219+00:00``, ``...Z``, zone-less (taken as UTC),
    up to 7+ fractional digits (Kaggle), ``2023-08-01`` and a bare year ``2006``.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and 1000 <= value <= 9999:
        dt = datetime(int(value), 1, 1)
    elif isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        if re.fullmatch(r"\d{4}", s):
            return datetime(int(s), 1, 1, tzinfo=timezone.utc)
        if re.fullmatch(r"\d{4}-\d{2}", s):
            s += "-01"
        s = s.replace(" ", "T", 1) if re.match(r"\d{4}-\d{2}-\d{2} \d", s) else s
        s = re.sub(r"[zZ]$", "+00:00", s)
        s = _FRACTION.sub(r"\1", s)
        # Python 3.10's fromisoformat wants exactly 3 or 6 fractional digits
        m = re.search(r"\.(\d{1,5})(?=[+-]\d\d:?\d\d$|$)", s)
        if m:
            s = s[: m.start(1)] + m.group(1).ljust(6, "0") + s[m.end(1):]
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def iso(value: Any) -> str | None:
    """Normalised ISO-8601 UTC string of a timestamp, or None."""
    dt = parse_datetime(value)
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def year_of(value: Any) -> int | None:
    dt = parse_datetime(value)
    return dt.year if dt else None


def as_list(value: Any) -> list:
    """A list whatever the API sent: None -> [], a scalar -> [scalar]."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def strings(value: Any) -> list[str]:
    """The non-empty strings of a list (other types dropped), stripped, without repeats."""
    out: list[str] = []
    seen: set[str] = set()  # a list lookup made this quadratic (20,000 file names: 1.6 s)
    for v in as_list(value):
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            s = " ".join(strip_bidi(str(v)).split())
            if s and s not in seen:
                seen.add(s)
                out.append(s)
    return out


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def safe_url(value: Any) -> str:
    """``value`` when it is an http(s) URL, else "" (a ``javascript:`` or ``data:`` link
    from a hostile record never becomes a link)."""
    if not isinstance(value, str):
        return ""
    url = value.strip()
    if re.match(r"^https?://[^\s/]", url, re.IGNORECASE) and not re.search(r"[\s\x00-\x1f\x7f]", url):
        return url
    return ""
