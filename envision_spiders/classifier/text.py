"""The text a record is classified on, the same way for training and inference.

envision-classifier composes ``title + description + keywords`` (``extract_text``) and cuts
the result to ``MAX_TEXT_LENGTH`` characters before encoding. We do the same, on the plain
text our records carry, with whitespace collapsed. The package's own training examples
hold raw HTML (``<p>``, ``&lt;p&gt;``); they are cleaned with the same helper as the
records (:func:`envision_spiders.textutil.html_to_text`), so a model never learns from
markup that it will not see at inference.

The hash of the exact text given to the model is stored with each label: a record whose
text did not change is never classified twice by the same model.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from typing import Any

from envision_spiders.textutil import html_to_text, strings

# envision_classifier.classifier.MAX_TEXT_LENGTH; a test keeps the two equal (importing the
# package here would load torch in every process that only needs the text).
MAX_TEXT_LENGTH = 512

_ESCAPED_TAG = re.compile(r"&lt;/?[a-zA-Z][^&]{0,200}?&gt;")


def clean_text(value: Any) -> str:
    """Plain text on one line: HTML (also HTML escaped twice, as some APIs send it)
    stripped, whitespace collapsed."""
    if value is None:
        return ""
    if isinstance(value, str) and _ESCAPED_TAG.search(value):
        value = html.unescape(value)
    return " ".join(html_to_text(value)[0].split())


def compose_text(title: Any, description: Any, keywords: Any) -> str:
    """``title description keywords`` as envision-classifier composes it, cut to
    ``MAX_TEXT_LENGTH`` characters."""
    parts = [clean_text(title), clean_text(description), " ".join(clean_text(k) for k in strings(keywords))]
    return " ".join(p for p in parts if p)[:MAX_TEXT_LENGTH].rstrip()


def record_text(record: Mapping[str, Any]) -> str:
    """The text a record (a saved record, an item adapter, a labelled JSON line) is
    classified on."""
    return compose_text(record.get("title"), record.get("description"), record.get("keywords"))


def training_text(example: str) -> str:
    """One of envision-classifier's training examples as the model sees it."""
    return clean_text(example)[:MAX_TEXT_LENGTH].rstrip()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
