"""Bad input from the user, refused before a command starts.

A misspelt setting (``-s MAX_PER_QUERYY=5``, ``DOWNLOAD_TRESHOLD`` in ``.env``), a value
that does not parse for a numeric or on/off setting, an unknown spider, ``-a`` argument
or ``--source``, or a ``RESULTS_DIR`` that does not exist each get one line saying what is wrong and what would be right — a Scrapy ``UsageError``:
no traceback, exit status 2 — instead of a traceback, a silently ignored value, or a run
that does nothing and says it succeeded.

Every project command mixes in :class:`CheckedCommand`; the pure functions below are
what it runs, and are unit-tested on their own.

Suggestions use :mod:`difflib` (the standard library's similarity ratio): a name is
called a misspelling of a known one when they are at least 80 % alike (85 % for the
environment, which holds many unrelated names).
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from scrapy.exceptions import UsageError
from scrapy.settings import BaseSettings, default_settings

from envision_spiders import paths

# Read from the environment by other parts than settings.py: credentials (never
# settings), and the variables of automation.sh and the test runner.
OTHER_ENVIRONMENT = frozenset({
    "ZENODO_TOKEN", "FIGSHARE_ACCESS_TOKEN", "OSF_TOKEN", "KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY",
    "KAGGLE_CONFIG_DIR", "DRYAD_CLIENT_ID", "DRYAD_CLIENT_SECRET", "PORTAL_URL", "PORTAL_API_KEY",
    "PYTHON", "TORCH_SPEC", "DEMO_PORT", "DEMO_RECORDS", "DEMO_DATA_DIR", "DEMO_RESULTS_DIR",
})
# Arguments scrapyd passes to every job it runs (``-a _job=<id>``).
SCRAPYD_ARGUMENTS = frozenset({"_job"})
# Settings of add-ons, read by them under their own prefix (scrapy-playwright).
ADDON_PREFIXES = ("PLAYWRIGHT_",)
CUTOFF = 0.8
ENVIRONMENT_CUTOFF = 0.85


def did_you_mean(name: str, choices: Iterable[str], cutoff: float = CUTOFF) -> str:
    """``"; did you mean X?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]}?" if close else ""


def project_settings_module():
    from envision_spiders import settings as module

    return module


def known_settings() -> set[str]:
    """Every setting name Scrapy or this project knows."""
    module = project_settings_module()
    names = {n for n in dir(default_settings) if n.isupper()}
    names |= {n for n in dir(module) if n.isupper()}
    return names | set(module.environment_names)


def expected_types() -> dict[str, type]:
    """The type each known setting must parse as (numbers and on/off switches). Scrapy's
    own numbers are checked as numbers only: it reads several whose default is a whole
    number (DOWNLOAD_DELAY = 0) as floats."""
    types: dict[str, type] = {}
    for name in dir(default_settings):
        value = getattr(default_settings, name)
        if name.isupper() and isinstance(value, (bool, int, float)):
            types[name] = bool if isinstance(value, bool) else float
    types.update({n: k for n, k in project_settings_module().environment_names.items() if k in (bool, int, float)})
    return types


_KIND = {int: "a whole number", float: "a number", bool: "on or off (1 or 0, true or false)"}


def _parses(settings: BaseSettings, name: str, kind: type) -> bool:
    try:
        if kind is bool:
            settings.getbool(name)
        elif kind is int:
            settings.getint(name)
        else:
            settings.getfloat(name)
    except (TypeError, ValueError):
        return False
    return True


def setting_problems(settings: BaseSettings, typed: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """What is wrong with the settings: names typed with ``-s`` (``typed``) or set in the
    environment (or ``.env``) that resemble a known setting without being one, and
    values that do not parse as their setting's type."""
    known = known_settings()
    module = project_settings_module()
    read_from_env = set(module.environment_names) | OTHER_ENVIRONMENT
    problems = []
    for name in typed:
        if name not in known and not name.startswith(ADDON_PREFIXES):
            hint = did_you_mean(name, known)
            if hint:
                problems.append(f"-s {name}: no such setting{hint}")
    for name in sorted(environ):
        if name in read_from_env or not name.isupper():
            continue
        hint = did_you_mean(name, read_from_env, ENVIRONMENT_CUTOFF)
        if hint:
            problems.append(f"{name} (environment or .env) is not a setting{hint}")
    for name, kind in sorted(expected_types().items()):
        value = settings.get(name)
        if not isinstance(value, str) or _parses(settings, name, kind):
            continue
        default = module.environment_defaults.get(name, getattr(default_settings, name, None))
        if value == "" and default == "":
            continue  # an empty value means "unset" for this one (POST_THRESHOLD)
        where = "-s" if name in typed else "environment or .env" if name in environ else "settings"
        example = f" (the default is {default})" if isinstance(default, (int, float)) and not isinstance(default, bool) else ""
        problems.append(f"{name}={value!r} ({where}) is not {_KIND[kind]}{example}")
    return problems


def spider_problems(spider_names: Iterable[str], name: str, arguments: Mapping[str, Any],
                    accepted: Mapping[str, Iterable[str]]) -> list[str]:
    """An unknown spider, or ``-a`` arguments the spider (every spider, for ``all``) does
    not take. ``accepted``: spider name -> its argument names."""
    spiders = sorted(spider_names)
    if name != "all" and name not in spiders:
        return [f"no spider named {name!r}{did_you_mean(name, [*spiders, 'all'])} "
                f"(spiders: {', '.join(spiders)}, or all)"]
    targets = spiders if name == "all" else [name]
    common = set.intersection(*(set(accepted[s]) for s in targets)) if targets else set()
    problems = []
    for arg in arguments:
        if arg in common or arg in SCRAPYD_ARGUMENTS:
            continue
        takers = [s for s in targets if arg in accepted[s]] or [s for s in spiders if arg in accepted[s]]
        if takers and name == "all":
            problems.append(f"-a {arg}: only {', '.join(takers)} takes it; run `scrapy crawl {takers[0]} -a {arg}=...`")
            continue
        names = sorted(common)
        problems.append(f"-a {arg}: {name} takes no such argument{did_you_mean(arg, names)} "
                        f"(arguments: {', '.join(names) or 'none'})")
    return problems


def source_problems(given: Iterable[str], sources: Iterable[str]) -> list[str]:
    known = sorted(sources)
    return [f"--source {s}: no such source{did_you_mean(s, known)} (sources: {', '.join(known)})"
            for s in given if s not in known]


def has_records(data_dir: Path, sources: Iterable[str] | None = None) -> bool:
    """True when ``data_dir/metadata`` (of these sources) holds at least one record."""
    root = data_dir / "metadata"
    folders = [root / s for s in sources] if sources else ([p for p in root.iterdir() if p.is_dir()] if root.is_dir() else [])
    for folder in folders:
        if folder.is_dir() and any(e.name.endswith(".json") and not e.name.startswith(".") for e in os.scandir(folder)):
            return True
    return False


def no_records_problem(data_dir: Path, sources: Iterable[str] | None = None) -> str | None:
    """What is wrong when ``data_dir`` holds no saved records (of ``sources``), or None."""
    if has_records(data_dir, sources):
        return None
    which = f" of {', '.join(sources)}" if sources else ""
    return (f"DATA_DIR {data_dir} holds no saved records{which} (nothing under {data_dir / 'metadata'}): "
            "run `scrapy crawl all` first, or set DATA_DIR to the folder that holds metadata/")


def folder_problems(data_dir: Path, results_dir: Path, *, needs_results: bool, makes_results: bool) -> list[str]:
    problems = []
    if needs_results and not results_dir.is_dir():
        problems.append(f"RESULTS_DIR {results_dir} does not exist: run `scrapy classify` first (it writes the "
                        "results there), or set RESULTS_DIR to the folder that holds the *_eye_imaging.json files")
    if makes_results and not results_dir.is_dir() and not results_dir.parent.is_dir():
        problems.append(f"RESULTS_DIR {results_dir}: its parent folder {results_dir.parent} does not exist either; "
                        "create it, or set RESULTS_DIR to an existing folder")
    return problems


def spider_loader(settings: BaseSettings):
    from scrapy.spiderloader import get_spider_loader

    return get_spider_loader(settings)


class CheckedCommand:
    """Mixed into every project command (before ScrapyCommand): after Scrapy applied the
    options, the settings, ``--source`` and the folders the command reads are checked,
    and the first problems end the command with one ``UsageError`` line.

    ``needs_results``: the command reads ``RESULTS_DIR``; ``makes_results``: it writes it."""

    needs_results = False
    makes_results = False

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)  # type: ignore[misc]
        settings = self.settings  # type: ignore[attr-defined]
        from scrapy.utils.conf import arglist_to_dict

        problems = setting_problems(settings, arglist_to_dict(opts.set or []), os.environ)
        given = getattr(opts, "source", None) or []
        if given:
            problems += source_problems(given, spider_loader(settings).list())
        if not problems:
            results_dir = paths.results_dir(settings, getattr(opts, "results_dir", None))
            problems += folder_problems(paths.data_dir(settings), Path(results_dir),
                                        needs_results=self.needs_results, makes_results=self.makes_results)
        problems += self.more_problems(args, opts)
        if problems:
            raise UsageError("\n".join(problems), print_help=False)

    def more_problems(self, args: list[str], opts: argparse.Namespace) -> list[str]:
        """A command's own checks (the crawl command checks its spider and arguments)."""
        return []
