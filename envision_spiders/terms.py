"""The search terms every spider uses (``SEARCH_TERMS`` or the 47 shared ones)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# The packaged file inside a source checkout (for tools and tests); code that may run
# from a scrapyd egg reads it with default_terms().
DEFAULT_TERMS_FILE = Path(__file__).with_name("search_terms.txt")


def parse_terms(text: str, origin: str) -> list[str]:
    """One term per line; blank lines and ``#`` comments are skipped; order kept, no
    repeats (case-insensitive). Raises ValueError when there is no term."""
    terms: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        term = " ".join(line.split("#", 1)[0].split())
        if term and term.lower() not in seen:
            seen.add(term.lower())
            terms.append(term)
    if not terms:
        raise ValueError(f"SEARCH_TERMS file {origin} holds no search term")
    return terms


def read_terms(path: str | Path) -> list[str]:
    """The terms of a file, with a clear error when it cannot be read."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"SEARCH_TERMS file {p} cannot be read: {exc.strerror or exc}") from exc
    return parse_terms(text, str(p))


def default_terms() -> list[str]:
    """The 47 shared terms, packaged with the project (read through importlib.resources,
    so they are found inside a scrapyd egg too)."""
    text = resources.files("envision_spiders").joinpath("search_terms.txt").read_text(encoding="utf-8")
    return parse_terms(text, "envision_spiders/search_terms.txt")


def load_terms(setting: str | None) -> list[str]:
    return read_terms(setting) if setting else default_terms()
