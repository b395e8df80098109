"""Search semantics shared by the local APIs: tokens, phrases, query strings, ranges.

Zenodo and DataCite take Elasticsearch query strings (quoted phrases AND-ed, field
ranges such as ``created:[2020-01-01 TO 2020-07-01}``), Dryad a similar ``q``; the
local server answers them with the same simple, predictable matching: a phrase matches
when its lower-case alphanumeric tokens appear consecutively in the record's text.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"(\w+):([\[{])(\S+) TO (\S+?)([\]}])")
_PHRASE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def contains(haystack: list[str], phrase: list[str]) -> bool:
    if not phrase:
        return True
    n = len(phrase)
    first = phrase[0]
    for i, tok in enumerate(haystack):
        if tok == first and haystack[i : i + n] == phrase:
            return True
    return False


def parse_query(q: str) -> tuple[list[list[str]], list[tuple[str, str, str, bool, bool]]]:
    """The phrases (each a token list, all required) and the field ranges of a query."""
    ranges = [(m.group(1), m.group(3), m.group(4), m.group(2) == "[", m.group(5) == "]") for m in _RANGE.finditer(q)]
    rest = _RANGE.sub(" ", q)
    phrases = [tokens(m.group(1).replace('\\"', '"')) for m in _PHRASE.finditer(rest)]
    rest = _PHRASE.sub(" ", rest)
    for word in re.split(r"[\s()]+", rest):
        if word and word not in ("AND", "OR", "NOT", "+"):
            phrases.append(tokens(word))
    return [p for p in phrases if p], ranges


def in_range(value: str, lo: str, hi: str, lo_inc: bool, hi_inc: bool) -> bool:
    v = value[: len(lo)] if lo != "*" else value
    if lo != "*":
        if v < lo or (v == lo and not lo_inc):
            return False
    if hi != "*":
        v = value[: len(hi)]
        if v > hi or (v == hi and not hi_inc):
            return False
    return True
