"""Where the project's two folders are: ``DATA_DIR`` and ``RESULTS_DIR``.

Every component, command and benchmark asks these two functions, so the default (``data``,
``results``: relative to the working directory, as ``settings.py`` sets them) and the rule
"an empty setting means the default" live in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = "data"
DEFAULT_RESULTS_DIR = "results"


def data_dir(settings: Mapping[str, Any] | Any) -> Path:
    """``DATA_DIR`` of these settings (Scrapy ``Settings`` or a plain mapping); ``data``
    when it is unset or empty."""
    return Path(settings.get("DATA_DIR") or DEFAULT_DATA_DIR)


def results_dir(settings: Mapping[str, Any] | Any, override: str | Path | None = None) -> Path:
    """``RESULTS_DIR`` of these settings, unless a command's own option (``override``, e.g.
    ``--results-dir``) names another folder; ``results`` when neither is set."""
    return Path(override or settings.get("RESULTS_DIR") or DEFAULT_RESULTS_DIR)
