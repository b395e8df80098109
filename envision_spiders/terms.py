"""The search terms every spider uses (``SEARCH_TERMS`` or the 47 shared ones)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_TERMS_FILE = Path(__file__).with_name("search_terms.txt")


def read_terms(path: str | Path) -> list[str]:
    """One term per line; blank lines and ``#`` comments are skipped; order kept, no repeats.

    Raises ValueError with a clear message when the file is missing or holds no term.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"SEARCH_TERMS file {p} cannot be read: {exc.strerror or exc}") from exc
    terms: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        term = " ".join(line.split("#", 1)[0].split())
        if term and term.lower() not in seen:
            seen.add(term.lower())
            terms.append(term)
    if not terms:
        raise ValueError(f"SEARCH_TERMS file {p} holds no search term")
    return terms


def load_terms(setting: str | None) -> list[str]:
    return read_terms(setting or DEFAULT_TERMS_FILE)
