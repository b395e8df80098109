"""Shared test fixtures: the local API server, crawls in a subprocess, spiders in-process.

No test touches the internet: APIs are served on 127.0.0.1 by localapi,
and callback tests replay recorded responses with scrapy-mock (cassettes under
tests/fixtures/cassettes, never recorded: see ``vcr_settings`` below).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import vcr

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "localapi" / "samples"

# Callback tests build crawlers in this process: give them the reactor the project uses.
from scrapy.utils.reactor import install_reactor, is_reactor_installed  # noqa: E402

if not is_reactor_installed():
    install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")

# Nothing in the test suite may reach a model hub or the internet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


CASSETTES = ROOT / "tests" / "fixtures" / "cassettes"
CASSETTE_SPECS = ROOT / "tests" / "fixtures" / "cassette_specs"


@pytest.fixture(scope="session")
def vcr_settings():
    """scrapy-mock replays cassettes; record_mode "none" means a request without a
    recorded answer fails the test instead of going to the network (in CI and here)."""
    return vcr.VCR(
        serializer="yaml",
        decode_compressed_response=True,
        cassette_library_dir=str(CASSETTES),
        record_mode="none",
    )


def _cassettes() -> dict[tuple[str, str], str]:
    """(method, URL) -> the cassette of the recorded sample that answers it, from
    ``tests/fixtures/cassette_specs`` (``make_cassettes.py`` writes one cassette per
    sample, named after it)."""
    index = {}
    for spec_file in sorted(CASSETTE_SPECS.glob("*.json")):
        for spec in json.loads(spec_file.read_text()):
            index[(spec.get("method", "GET"), spec["url"])] = str(Path(spec["sample"]).with_suffix(".yaml"))
    return index


def cassette_for(method: str, url: str) -> str:
    """The cassette (relative to ``tests/fixtures/cassettes``) holding the recorded sample
    that answers ``method url``. Cassettes are keyed by the sample they come from and found
    by the request, never by a test's name: renaming a test orphans nothing."""
    try:
        return _cassettes()[(method, url)]
    except KeyError:
        pytest.fail(f"no recorded sample answers {method} {url}: add it to tests/fixtures/cassette_specs/ "
                    "and run tests/fixtures/make_cassettes.py")


@pytest.fixture
def response(vcr_settings, url):
    """scrapy-mock's ``response`` fixture (the recorded answer to ``GET url`` as a Scrapy
    response), with the cassette found by :func:`cassette_for` instead of named after the
    running test."""
    from scrapy_mock import MockSession

    with vcr_settings.use_cassette(cassette_for("GET", url)):
        yield MockSession().get(url)


def replay(vcr_settings, url: str, *, method: str = "GET", body: Any = None):
    """Like :func:`response`, for any method (Figshare and RePORTER search with POST): the
    recorded answer to ``method url body`` as a Scrapy TextResponse."""
    from scrapy.http import Request, TextResponse
    from scrapy_mock import MockSession

    payload = json.dumps(body) if body is not None and not isinstance(body, str) else body
    with vcr_settings.use_cassette(cassette_for(method, url)):
        raw = MockSession().request(method, url, data=payload)
    return TextResponse(url=url, body=raw.content, encoding="utf-8",
                        request=Request(url, method=method, body=payload or b""))


def sample(path: str) -> Any:
    return json.loads((SAMPLES / path).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def localapi_server():
    from localapi import LocalAPIServer

    server = LocalAPIServer().start()
    yield server
    server.stop()


@pytest.fixture
def api(localapi_server):
    """The local API server, emptied for this test (records, files, faults, counters)."""
    state = localapi_server.state
    with state.lock:
        state.sources.clear()
        state.files.clear()
        state.faults.clear()
        state.rate_windows.clear()
    state.reset_counters()
    return localapi_server


def crawl_env(api_server, data_dir: Path, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_KEY", "_SECRET"))}
    env.update(api_server.api_settings() if api_server else {})
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "RESULTS_DIR": str(data_dir / "results"),
            "POLITENESS_SCALE": "0",
            "CLASSIFY_ENABLED": "0",
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({k: str(v) for k, v in settings.items()})
    return env


def run_crawl(
    api_server,
    spider: str,
    data_dir: Path,
    *args: str,
    timeout: float = 240,
    **settings: Any,
) -> subprocess.CompletedProcess:
    """``scrapy crawl <spider>`` in a subprocess, as a curator runs it."""
    cmd = [sys.executable, "-m", "scrapy", "crawl", spider, *args]
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env=crawl_env(api_server, data_dir, **settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def crawl_in_process(
    api_server,
    spider: str,
    data_dir: Path,
    *args: str,
    **settings: Any,
) -> subprocess.CompletedProcess:
    """``scrapy crawl <spider>`` as :func:`run_crawl` runs it, in this process: the same
    environment (``settings.py`` is evaluated again under it and ``os.environ`` is that
    environment while the crawl runs, so tokens and settings come from where they come
    from in a real run), the same ``-a name=value`` / ``-s NAME=value`` arguments, run id,
    log and exit status (the project's crawl command's own report decides it), through
    Scrapy's AsyncCrawlerRunner on this process's asyncio reactor. A crawl in a
    subprocess pays a new Python and the import of Scrapy and the project (seconds per
    crawl, several times that on a loaded machine); use this where a test checks what a
    component does in a whole crawl, and :func:`run_crawl` where the process itself is
    the subject (command line, exit of the process, signals). The result has
    ``returncode`` and ``stderr`` (the crawl's log) like run_crawl's, and ``crawler``."""
    import io
    import logging
    from unittest import mock

    from scrapy.crawler import AsyncCrawlerRunner

    from envision_spiders.commands.crawl import Command
    from envision_spiders.extensions.runsummary import new_run_id

    spargs: dict[str, str] = {}
    overrides: dict[str, str] = {}
    options = iter(args)
    for option in options:
        target = {"-a": spargs, "-s": overrides}.get(option)
        if target is None:
            raise ValueError(f"crawl_in_process takes -a and -s arguments only, not {option!r}")
        name, _, value = next(options).partition("=")
        target[name] = value
    log = io.StringIO()
    env = crawl_env(api_server, data_dir, **settings)
    with mock.patch.dict(os.environ, env, clear=True):
        project = _project_settings()
        for name, value in overrides.items():
            project.set(name, value, priority="cmdline")
        run_id = project.get("RUN_ID") or new_run_id()
        project.set("RUN_ID", run_id, priority="cmdline")
        handler = logging.StreamHandler(log)
        handler.setLevel(project.get("LOG_LEVEL"))
        handler.setFormatter(logging.Formatter(project.get("LOG_FORMAT"), project.get("LOG_DATEFORMAT")))
        root = logging.getLogger()
        level = root.level
        root.addHandler(handler)
        root.setLevel(min(level or logging.WARNING, handler.level))
        command = Command()
        command.settings = project
        runner = AsyncCrawlerRunner(project)
        crawler = runner.create_crawler(spider)
        try:
            _run_on_reactor(lambda: runner.crawl(crawler, **spargs))
        except Exception:
            logging.getLogger(__name__).exception("the crawl failed to start")
            command.exitcode = 1
        finally:
            if runner.bootstrap_failed:
                command.exitcode = 1
            command._report(run_id, [spider])
            root.removeHandler(handler)
            root.setLevel(level)
    result = subprocess.CompletedProcess(["scrapy", "crawl", spider, *args], command.exitcode, "", log.getvalue())
    result.crawler = crawler
    return result


def _project_settings():
    """The project's settings as a new process computes them: ``settings.py`` evaluated
    again under the current ``os.environ`` (the module the test process imported read
    the environment once, at its import)."""
    import importlib.util

    from scrapy.settings import Settings

    spec = importlib.util.spec_from_file_location("_envision_settings_under_test", ROOT / "envision_spiders" / "settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = Settings()
    settings.setmodule(module, priority="project")
    return settings


def scrapy_in_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``scrapy <args>`` with environment ``env``, in this process, for the commands that
    run no crawler (post, download, report, classify, export-addf, ...): Scrapy's own
    command line (``scrapy.cmdline.execute``) with the settings a new process would
    compute, run from the repository root with ``os.environ`` set to ``env``; stdout,
    stderr (the log) and the exit status are captured as ``subprocess.run`` gives them,
    and the process-wide logging set-up of the command is undone afterwards. A traceback
    escaping the command is printed to stderr with exit status 1, as Python would."""
    import contextlib
    import io
    import logging
    import traceback
    from unittest import mock

    from scrapy import cmdline
    from scrapy.utils import log as scrapy_log
    from twisted.python import log as twisted_log

    out, err = io.StringIO(), io.StringIO()
    observers = list(twisted_log.theLogPublisher.observers)
    levels = {name: logging.getLogger(name).level for name in scrapy_log.DEFAULT_LOGGING["loggers"]}
    root_level = logging.root.level
    cwd = os.getcwd()
    code: int | str | None = 0
    with mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            os.chdir(ROOT)
            cmdline.execute(["scrapy", *args], _project_settings())
        except SystemExit as exc:
            code = exc.code
        except Exception:
            traceback.print_exc()
            code = 1
        finally:
            os.chdir(cwd)
            scrapy_log._uninstall_scrapy_root_handler()
            for observer in list(twisted_log.theLogPublisher.observers):
                if observer not in observers:
                    twisted_log.removeObserver(observer)
            logging.captureWarnings(False)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            logging.root.setLevel(root_level)
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): printed, status 1
        err.write(f"{code}\n")
        code = 1
    return subprocess.CompletedProcess(["scrapy", *args], code, out.getvalue(), err.getvalue())


_REACTOR_STARTED = False


def _run_on_reactor(start) -> Any:
    """Run what ``start()`` returns (a coroutine or task) on the asyncio loop of the reactor installed above, the reactor
    marked running (Scrapy's downloads and threads need that) but never blocking in
    ``reactor.run()``: each in-process crawl runs the loop until its own end."""
    import asyncio

    from twisted.internet import reactor

    global _REACTOR_STARTED
    if not _REACTOR_STARTED:
        reactor.startRunning(installSignalHandlers=False)
        _REACTOR_STARTED = True
    loop = reactor._asyncioEventloop
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(start())


def pytest_sessionfinish(session):
    """Stop the reactor that in-process crawls started (its thread pool would keep the
    process alive)."""
    if _REACTOR_STARTED:
        from twisted.internet import reactor

        reactor.stop()
        reactor._asyncioEventloop.run_forever()  # until the shutdown triggers have run


def last_summary(data_dir: Path, spider: str) -> dict:
    runs = sorted((data_dir / "runs").glob(f"*/{spider}.json"))
    assert runs, f"no run summary for {spider} under {data_dir}/runs"
    return json.loads(runs[-1].read_text())


def saved_records(data_dir: Path, source: str) -> dict[str, dict]:
    folder = data_dir / "metadata" / source
    return {json.loads(p.read_text())["source_id"]: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def saved_mtimes(data_dir: Path, source: str) -> dict[str, int]:
    """When each saved record of a source was last written (file name -> mtime in ns): two
    snapshots around a re-run show which records it rewrote."""
    return {p.name: p.stat().st_mtime_ns for p in (data_dir / "metadata" / source).glob("*.json")}


def make_spider(spidercls, data_dir: Path, *, open_state: bool = True, spider_kwargs: dict | None = None, **settings: Any):
    """A spider bound to a crawler with the project's settings, for callback tests."""
    from scrapy.utils.project import get_project_settings
    from scrapy.utils.test import get_crawler

    from envision_spiders.extensions.state import CrawlState

    values = get_project_settings().copy_to_dict()
    values.update({"DATA_DIR": str(data_dir), "POLITENESS_SCALE": 0, "CLASSIFY_ENABLED": False})
    values.setdefault(spidercls.api_setting, "http://127.0.0.1:9/api")
    values.update(settings)
    crawler = get_crawler(spidercls, values)
    spider = spidercls.from_crawler(crawler, **(spider_kwargs or {}))
    crawler.spider = spider
    if open_state:
        CrawlState.of(crawler).spider_opened(spider)
    return spider


def models_cache() -> Path:
    """Where the test suite keeps the default classifier between sessions and shares it
    between parallel workers: ``CLASSIFIER_MODELS_DIR`` when set, else a folder of the
    user's cache (``$XDG_CACHE_HOME``, default ``~/.cache``) named after the model's
    fingerprint. A changed input (recipe, training records, library versions) is another
    folder, so branches checked out side by side never rebuild each other's model and a
    stale model is never used; the repository itself stays untouched."""
    configured = os.environ.get("CLASSIFIER_MODELS_DIR")
    if configured:
        return Path(configured)
    from envision_spiders.classifier.model import fingerprint, input_versions

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "envision-spiders" / "test-models" / fingerprint(input_versions())


def pytest_collection_finish(session):
    """Build the default classifier before the first test when a selected test needs it,
    outside any test's timeout: the build is a fixed cost of the session (about a minute
    of CPU, several on a loaded machine), not part of the test that happens to come
    first. Under pytest-xdist every worker gets here; one builds, the others wait on the
    build's file lock."""
    if session.config.option.collectonly:
        return
    names = [getattr(item, "fixturenames", ()) for item in session.items]
    if any("classifier_models" in n for n in names):
        from envision_spiders.classifier import build_default_model
        from envision_spiders.classifier.encoder import Encoder

        # a cold build encodes every example the cross-validation tests need (as written,
        # with the fp32 encoder; through the field's lexicon and the records with files, with
        # the quantized one): keep the encoders' answers instead of encoding them all again
        # for example_embeddings
        answers: dict[bool, dict[str, object]] = {False: {}, True: {}}
        encode = Encoder.encode

        def keeping(self, texts):
            sentence, layers = encode(self, texts)
            kept = answers[self.quantized]
            for text, s, l in zip(texts, sentence, layers):
                kept.setdefault(text, l if self.quantized else s)
            return sentence, layers

        with mock.patch.object(Encoder, "encode", keeping):
            build_default_model(models_cache())
        if any("example_embeddings" in n for n in names):
            raw, lexical = example_texts()
            if all(t in answers[False] for t in raw) and all(t in answers[True] for t in lexical):
                import numpy as np

                save_embeddings(embeddings_path(raw, lexical), np.stack([answers[False][t] for t in raw]),
                                np.stack([answers[True][t] for t in lexical]))


@pytest.fixture(scope="session")
def classifier_models() -> Path:
    """A models folder holding the default classifier, built from packaged parts only
    (HF_HUB_OFFLINE=1 above: no hub) the first time any session needs it, then reused:
    see :func:`models_cache`. ``build_default_model`` holds a file lock while it builds,
    so parallel workers (pytest-xdist) wait for one build and load its result."""
    from envision_spiders.classifier import build_default_model

    root = models_cache()
    build_default_model(root)
    return root


@pytest.fixture(scope="session")
def default_classifier(classifier_models):
    from envision_spiders.classifier import shared_classifier

    return shared_classifier("", classifier_models)


class CachedEncoder:
    """Stands in for :class:`envision_spiders.classifier.encoder.Encoder` with the real
    encoders' own answers for the texts :func:`example_embeddings` computed them for: the
    sentence embedding of the texts as written (the fp32 encoder's: the embedding head's
    input) and the last-layers embedding of the texts the text head reads (the quantized
    encoder's). A part it was not computed for is NaN, so a head fitted on it fails, and a
    text it knows neither way fails the test at once (nothing is made up)."""

    def __init__(self, raw: list[str], sentence, lexical: list[str], layers) -> None:
        import numpy as np

        self._raw = {text: i for i, text in enumerate(raw)}
        self._lexical = {text: i for i, text in enumerate(lexical)}
        self._sentence = np.vstack([sentence, np.full((1, sentence.shape[1]), np.nan, dtype=sentence.dtype)])
        self._layers = np.vstack([layers, np.full((1, layers.shape[1]), np.nan, dtype=layers.dtype)])

    def __call__(self, model_dir=None, batch_size: int = 64, quantized: bool = False) -> "CachedEncoder":
        return self  # used where the code constructs Encoder(path)

    def encode(self, texts):
        missing = [t[:60] for t in texts if t not in self._raw and t not in self._lexical]
        assert not missing, f"no cached embedding for {len(missing)} texts, e.g. {missing[:3]}"
        no_row = -1  # the NaN row
        return (self._sentence[[self._raw.get(t, no_row) for t in texts]],
                self._layers[[self._lexical.get(t, no_row) for t in texts]])


def example_texts() -> tuple[list[str], list[str]]:
    """The texts cross-validation encodes: the examples (built-in and the project's
    extras) as written (the embedding head, fp32 encoder), and rewritten by the field's
    lexicon with the records with files as the text head reads them (quantized encoder)."""
    from envision_spiders.classifier.data import builtin_examples, extra_examples, file_examples
    from envision_spiders.classifier.head import prepare_texts
    from envision_spiders.classifier.text import record_text

    raw = list(builtin_examples().texts) + list(extra_examples().texts)
    files = prepare_texts([record_text(r) for r in file_examples().records])
    return list(dict.fromkeys(raw)), list(dict.fromkeys(prepare_texts(raw) + files))


def embeddings_path(raw: list[str], lexical: list[str]) -> Path:
    import hashlib

    digest = hashlib.sha256("\x00".join(raw + ["\x01"] + lexical).encode()).hexdigest()[:16]
    return models_cache() / f"example-embeddings-{digest}.npz"


def save_embeddings(path: Path, sentence, layers) -> None:
    """Written once (under a file lock, then renamed into place) by whichever process
    has the embeddings first."""
    import numpy as np
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, sentence=sentence, layers=layers)
            os.replace(tmp, path)


@pytest.fixture(scope="session")
def example_embeddings() -> CachedEncoder:
    """The frozen backbone's embeddings of :func:`example_texts`, computed by the real
    encoders (by the default model's cold build, which encodes them anyway, or here: a few
    minutes of CPU) and kept with the test model (:func:`models_cache`: the same
    fingerprint covers the examples, the packages and the recipe), so cross-validation
    measures its folds and heads without encoding the same texts again in every session."""
    import numpy as np

    raw, lexical = example_texts()
    path = embeddings_path(raw, lexical)
    if not path.exists():
        from envision_spiders.classifier.encoder import Encoder
        from envision_spiders.classifier.model import _backbone_path

        save_embeddings(path, Encoder(_backbone_path()).encode(raw)[0],
                        Encoder(_backbone_path(), quantized=True).encode(lexical)[1])
    saved = np.load(path)
    return CachedEncoder(raw, saved["sentence"], lexical, saved["layers"])
