"""Turning a search term into a precise query: every word required, nothing misread.

Zenodo and DataCite take Elasticsearch query strings, Dryad a similar syntax: each word
is sent as a quoted phrase (reserved characters such as ``-`` in ``OCT-A`` or ``_`` in
``CHASE_DB1`` stay literal) and the words are joined so that all must match. Unlike
the original tool, no exclusion (``-October``) is ever added.
"""

from __future__ import annotations


def quote_word(word: str) -> str:
    """A word as an exact query-string phrase (quotes and backslashes escaped)."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def term_query(term: str, joiner: str = " AND ") -> str:
    """Every word of a term required: ``retinal OCT`` -> ``"retinal" AND "OCT"``."""
    return joiner.join(quote_word(w) for w in term.split())
