"""Scrapy settings for envision-spiders.

Every project setting can also come from the environment (or from ``.env``, read
with python-dotenv): ``ZENODO_API_URL=http://127.0.0.1:8765/zenodo/api scrapy crawl
zenodo`` and ``scrapy crawl zenodo -s ZENODO_API_URL=...`` do the same thing.
Tokens are deliberately *not* settings: they are read from the environment by
:mod:`envision_spiders.credentials` only where a request needs them, so Scrapy never
logs them and scrapyd never puts them on a command line.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

# .env next to scrapy.cfg (the repository root) or in the working directory. Values
# already in the environment win, so cron and scrapyd can override the file.
_ROOT = Path(__file__).resolve().parent.parent
load_dotenv(_ROOT / ".env", override=False)
load_dotenv(Path.cwd() / ".env", override=False)


# The names this module reads from the environment (or .env), with the type each value
# must have. A value that does not parse is kept here as the string it is, so that the
# commands (envision_spiders.usercheck) refuse it in one line that names it, instead of
# a traceback from this import. Lower case: Scrapy takes only upper-case names as settings.
environment_names: dict[str, type] = {}
environment_defaults: dict[str, object] = {}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _env(name: str, default: str, kind: type = str) -> str:
    environment_names[name] = kind
    environment_defaults.setdefault(name, default)
    return os.environ.get(name, default)


def _env_number(name: str, default: int | float) -> int | float | str:
    environment_defaults[name] = default
    raw = _env(name, "", type(default)).strip()
    if not raw:
        return default
    try:
        return type(default)(raw)
    except ValueError:
        return raw


def _env_int(name: str, default: int) -> int:
    return _env_number(name, default)  # type: ignore[return-value]


def _env_float(name: str, default: float) -> float:
    return _env_number(name, float(default))  # type: ignore[return-value]


def _env_bool(name: str, default: bool) -> bool:
    environment_defaults[name] = default
    value = _env(name, "", bool).strip()
    if not value:
        return default
    if value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    return value  # type: ignore[return-value] - refused by the commands' check


BOT_NAME = "envision_spiders"
SPIDER_MODULES = ["envision_spiders.spiders"]
NEWSPIDER_MODULE = "envision_spiders.spiders"
# `scrapy crawl all` and every curator command (classify, download, post, export-addf, ...).
COMMANDS_MODULE = "envision_spiders.commands"

# --- where things live --------------------------------------------------------
DATA_DIR = _env("DATA_DIR", "data")
# Every summary of one run goes to DATA_DIR/runs/RUN_ID/ (automation.sh sets one per
# run; empty: each crawl makes its own from the time it starts).
RUN_ID = _env("RUN_ID", "")
RESULTS_DIR = _env("RESULTS_DIR", "results")
# A file with one search term per line ('#' comments allowed); empty = the 47 shared terms.
SEARCH_TERMS = _env("SEARCH_TERMS", "")
# Stop paging a term after this many hits (0 = no cap).
MAX_PER_QUERY = _env_int("MAX_PER_QUERY", 0)
# Contact address sent to APIs that reward identified clients (DataCite mailto, User-Agent).
CONTACT_EMAIL = _env("CONTACT_EMAIL", "")
# The datacite spider also searches for datasets whose funding references name the
# National Eye Institute (its funder id, ROR id or name, or an NEI award number), next
# to the search terms; 0 turns that search off (docs/recall.md, "Discovery by funder").
DATACITE_FUNDER_SEARCH = _env_bool("DATACITE_FUNDER_SEARCH", True)

# --- the recall check (scrapy recall, envision_spiders.recall) ---------------------
# A curator's catalogue of known eye imaging datasets (the shipped catalogue's CSV
# format); empty = the shipped one alone. RECALL_CATALOGUE_MODE: "add" (to the shipped
# catalogue; a line naming a shipped dataset replaces that line) or "replace" it.
RECALL_CATALOGUE = _env("RECALL_CATALOGUE", "")
RECALL_CATALOGUE_MODE = _env("RECALL_CATALOGUE_MODE", "add")

# --- API roots: every URL a spider builds derives from these -------------------
ZENODO_API_URL = _env("ZENODO_API_URL", "https://zenodo.org/api")
FIGSHARE_API_URL = _env("FIGSHARE_API_URL", "https://api.figshare.com/v2")
DRYAD_API_URL = _env("DRYAD_API_URL", "https://datadryad.org/api/v2")
OSF_API_URL = _env("OSF_API_URL", "https://api.osf.io/v2")
DATACITE_API_URL = _env("DATACITE_API_URL", "https://api.datacite.org")
KAGGLE_API_URL = _env("KAGGLE_API_URL", "https://www.kaggle.com/api/v1")
# NIH RePORTER, the source of the nei spider. NIH_REPORTER_API_URL is its older name,
# still read (from the environment, or -s, where it beats NEI_API_URL's default).
NEI_API_URL = _env("NEI_API_URL", "") or _env("NIH_REPORTER_API_URL", "https://api.reporter.nih.gov/v2")
NIH_REPORTER_API_URL = NEI_API_URL
# The deepest RePORTER result a query may reach (sources say 15,000 or 10,000; the
# smaller is safe under both): past it the nei spider splits a query by fiscal years.
# NIH_REPORTER_RESULT_WINDOW is its older name, still read (when NEI_RESULT_WINDOW is not set).
NIH_REPORTER_RESULT_WINDOW = _env_int("NIH_REPORTER_RESULT_WINDOW", 10000)
NEI_RESULT_WINDOW = _env_int("NEI_RESULT_WINDOW", 10000)
if not os.environ.get("NEI_RESULT_WINDOW", "").strip():
    NEI_RESULT_WINDOW = NIH_REPORTER_RESULT_WINDOW
# Dryad's OAuth token endpoint; empty = the site root of DRYAD_API_URL + /oauth/token
# (set it when the API root is a proxy on another host than the token endpoint).
DRYAD_TOKEN_URL = _env("DRYAD_TOKEN_URL", "")
# Pages (of 200 files) read of one Kaggle dataset's file list; a longer list is cut and
# the record says so (extra.files_complete).
KAGGLE_MAX_FILE_PAGES = _env_int("KAGGLE_MAX_FILE_PAGES", 50)

# --- switches -------------------------------------------------------------------
ARCHIVE_PEEK_ENABLED = _env_bool("ARCHIVE_PEEK_ENABLED", True)
ARCHIVE_PEEK_MAX_BYTES = _env_int("ARCHIVE_PEEK_MAX_BYTES", 16 * 1024 * 1024)  # per archive
ARCHIVE_PEEK_MAX_REQUESTS = _env_int("ARCHIVE_PEEK_MAX_REQUESTS", 8)  # per archive (a ZIP needs 1 or 2)
ARCHIVE_PEEK_MAX_ARCHIVES = _env_int("ARCHIVE_PEEK_MAX_ARCHIVES", 10)  # per record
CLASSIFY_ENABLED = _env_bool("CLASSIFY_ENABLED", True)
DOWNLOAD_ENABLED = _env_bool("DOWNLOAD_ENABLED", False)
DOWNLOAD_THRESHOLD = _env_float("DOWNLOAD_THRESHOLD", 0.80)
# Downloads (``scrapy download``, or during a crawl with DOWNLOAD_ENABLED): a record
# larger than this is skipped (0 = no cap); this much disk stays free; transfers at once
# across all hosts (each host also keeps its source's pace); progress as tqdm bars on a
# terminal or a log line every DOWNLOAD_PROGRESS_INTERVAL seconds (auto | bar | log | off).
DOWNLOAD_MAX_BYTES = _env_int("DOWNLOAD_MAX_BYTES", 100 * 1024**3)
DOWNLOAD_MIN_FREE_BYTES = _env_int("DOWNLOAD_MIN_FREE_BYTES", 1024**3)
# A body whose length neither the record nor the server states is cut here; after
# DOWNLOAD_TIMEOUT seconds a transfer must average DOWNLOAD_MIN_SPEED bytes a second (a
# file of N bytes has DOWNLOAD_TIMEOUT + N / DOWNLOAD_MIN_SPEED seconds in all; 0: no limit).
DOWNLOAD_MAX_UNKNOWN_BYTES = _env_int("DOWNLOAD_MAX_UNKNOWN_BYTES", 16 * 1024**3)
DOWNLOAD_MIN_SPEED = _env_float("DOWNLOAD_MIN_SPEED", 16384)
DOWNLOAD_CONCURRENCY = _env_int("DOWNLOAD_CONCURRENCY", 8)
DOWNLOAD_PROGRESS = _env("DOWNLOAD_PROGRESS", "auto")
DOWNLOAD_PROGRESS_INTERVAL = _env_float("DOWNLOAD_PROGRESS_INTERVAL", 30)
# "" = the default offline model (built on first use under CLASSIFIER_MODELS_DIR), a
# local EyeImagingClassifier folder, or hf:fairdataihub/envision-eye-imaging-classifier[@rev]
CLASSIFIER_MODEL = _env("CLASSIFIER_MODEL", "")
CLASSIFIER_MODELS_DIR = _env("CLASSIFIER_MODELS_DIR", "")  # "" = {DATA_DIR}/models
# The classify pipeline sends records to the model in batches of this many, or of
# whatever arrived within CLASSIFY_BATCH_WAIT seconds.
CLASSIFY_BATCH_SIZE = _env_int("CLASSIFY_BATCH_SIZE", 32)
CLASSIFY_BATCH_WAIT = _env_float("CLASSIFY_BATCH_WAIT", 1.0)
# ``scrapy post``: the prob_eye_imaging a record needs to be posted to the portal; empty
# = DOWNLOAD_THRESHOLD (a curator who wants only near-certain records public while
# downloading more for review sets it higher). Seconds one POST may take in all.
# The portal's address and key are not settings: PORTAL_URL and PORTAL_API_KEY come
# from the environment (or .env) only, like the tokens.
POST_THRESHOLD = _env("POST_THRESHOLD", "", float)
PORTAL_TIMEOUT = _env_float("PORTAL_TIMEOUT", 60)

# --- curator review (envision_spiders/review, data/review/decisions.jsonl) ------
# On: ``scrapy post`` sends only records a curator accepted. Off: also confident
# EYE_IMAGING records no curator rejected or marked unsure whose text and files agree.
POST_REQUIRES_REVIEW = _env_bool("POST_REQUIRES_REVIEW", True)
# The same for ``scrapy download`` (and downloads during a crawl); off by default, so
# confident records are downloaded before review (their files help decide).
DOWNLOAD_REQUIRES_REVIEW = _env_bool("DOWNLOAD_REQUIRES_REVIEW", False)
# The name ``scrapy review`` records decisions under when --curator is not given;
# empty: the login name ($USER).
REVIEW_CURATOR = _env("REVIEW_CURATOR", "")

# --- politeness -----------------------------------------------------------------
# Each spider declares its API's documented pace (see envision_spiders/politeness.py);
# every delay, interval and window is multiplied by this. 1.0 is the real pace, 0 turns
# pacing off for the local test server, 0.01 keeps the ratios for benchmarks.
POLITENESS_SCALE = _env_float("POLITENESS_SCALE", 1.0)
# AutoThrottle slows a source down further when its API answers slowly; the floor
# is each spider's DOWNLOAD_DELAY, set from its documented limit.
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_DELAY_JITTER = 0  # a random 0.5x delay would break a documented limit
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_TIMEOUT = _env_float("DOWNLOAD_TIMEOUT", 60)
# API answers are small; a larger body is a server bug or a wrong URL.
DOWNLOAD_MAXSIZE = 64 * 1024 * 1024
DOWNLOAD_WARNSIZE = 16 * 1024 * 1024
ROBOTSTXT_OBEY = False  # these are documented public APIs, not web pages
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
# Scrapy 2.19's remote-control server runs code sent to a local port: never in an
# unattended weekly job.
REMOTE_CONTROL_ENABLED = False
USER_AGENT = "envision-spiders/0.1 (+https://github.com/EyeACT/envision-spiders)"

# --- retries ----------------------------------------------------------------------
# 429 is handled by the rate-limit middleware (it honours Retry-After and slows the
# whole host down), so it is not in this list and the two never retry the same answer.
RETRY_ENABLED = True
RETRY_TIMES = _env_int("RETRY_TIMES", 5)
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408]
RETRY_BACKOFF_BASE = _env_float("RETRY_BACKOFF_BASE", 2.0)  # seconds, doubled per attempt
RETRY_BACKOFF_MAX = _env_float("RETRY_BACKOFF_MAX", 300)  # one wait never exceeds this
RETRY_MAX_ELAPSED = _env_float("RETRY_MAX_ELAPSED", 1800)  # give up after this long in total
RATELIMIT_MAX_RETRIES = _env_int("RATELIMIT_MAX_RETRIES", 8)  # 429s in a row for one request
RATELIMIT_MAX_WAIT = _env_float("RATELIMIT_MAX_WAIT", 3600)  # cap on one Retry-After
# A source whose API host gave this many connection failures in a row (DNS lookup failed,
# connection refused or timed out), over at least UNREACHABLE_SECONDS and with no answer
# in between, is stopped with one line ("osf: api.osf.io unreachable (DNS lookup failed);
# source skipped this run") and the run ends unhealthy; the other sources go on.
# Connection failures never spend a rate budget (the server never saw them).
UNREACHABLE_TRIES = _env_int("UNREACHABLE_TRIES", 3)
UNREACHABLE_SECONDS = _env_float("UNREACHABLE_SECONDS", 10)

DOWNLOADER_MIDDLEWARES = {
    # Scrapy's RetryMiddleware (550) retries at once; ours waits with backoff and jitter
    # and records what finally fails in data/failures/.
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "envision_spiders.middlewares.retry.BackoffRetryMiddleware": 550,
    # Just before the retry middleware on the way out (lower = closer to the engine
    # for process_request): 429 handling sees the response before retries do.
    "envision_spiders.middlewares.ratelimit.RateLimitMiddleware": 560,
    # After the rate-limit wait: every request leaves with its source's credentials current
    # now (a token renewed while it waited) where they apply, the exact origin of the
    # API, and with none anywhere else; a 401 renews them (once for all refused requests).
    "envision_spiders.middlewares.credentials.CredentialsMiddleware": 570,
}

SPIDER_MIDDLEWARES = {
    # Malformed answers (bad JSON, wrong types) are logged, counted and retried, never fatal.
    "envision_spiders.middlewares.badresponse.BadResponseMiddleware": 45,
    # Archive listings (Range requests through the downloader middlewares) are put on
    # each record before it reaches the pipelines.
    "envision_spiders.middlewares.archivepeek.ArchivePeekMiddleware": 600,
    # With RENDER_LANDING_PAGES: records without a usable description get it from their
    # rendered landing page's schema.org Dataset (off: the middleware is not loaded).
    "envision_spiders.middlewares.landingpages.LandingPageMiddleware": 610,
}

ITEM_PIPELINES = {
    # file statistics are derived once, the same way for every source
    "pipelines.normalize.NormalizePipeline": 100,
    # label + probabilities (envision-classifier), batched off the reactor thread, reused
    # while record text and model are unchanged; before persist so the file carries it
    "pipelines.classify.ClassifyPipeline": 200,
    # one JSON per record under data/metadata/{source}/ (atomic, resumable)
    "pipelines.persist.PersistPipeline": 300,
    # confident EYE_IMAGING records join the download queue (after classification and
    # persistence); with DOWNLOAD_ENABLED their files are fetched during the crawl
    "pipelines.downloads.DownloadQueuePipeline": 800,
}

EXTENSIONS = {
    # a progress line per spider every PROGRESS_INTERVAL seconds instead of Scrapy's
    # "Crawled N pages"; Scrapy's settings and component dumps once per process
    "scrapy.extensions.logstats.LogStats": None,
    "envision_spiders.extensions.progress.Progress": 0,
    # what a spider remembers between runs: last successful run, failures, saved records,
    # and this run's search terms per record
    "envision_spiders.extensions.state.CrawlState": 100,
    # results/ rebuilt from every record on disk when the spider closes (before the summary)
    "envision_spiders.extensions.results.ResultsWriter": 300,
    # the summary at the end of every crawl (log + data/runs/)
    "envision_spiders.extensions.runsummary.RunSummary": 500,
}

LOG_LEVEL = _env("LOG_LEVEL", "INFO")
LOG_FORMAT = "%(asctime)s [%(name)s] %(levelname)s: %(message)s"
# seconds between two progress lines of a spider ("zenodo: term 12/47, 318 records (301
# new), 0 failures; ..."); 0: none
PROGRESS_INTERVAL = _env_float("PROGRESS_INTERVAL", 60)
FEED_EXPORT_ENCODING = "utf-8"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"

# --- rendered landing pages (scrapy-playwright), only for requests that ask for it --
RENDER_LANDING_PAGES = _env_bool("RENDER_LANDING_PAGES", False)
# Seconds a landing page may take to load (the wait for its JSON-LD is half of it).
LANDING_PAGE_TIMEOUT = _env_float("LANDING_PAGE_TIMEOUT", 30)
# The add-on enables scrapy-playwright's download handler only when RENDER_LANDING_PAGES
# is on and Chromium exists: normal crawls never start Playwright or a browser.
ADDONS = {"envision_spiders.middlewares.landingpages.LandingPagesAddon": 0}
PLAYWRIGHT_MAX_CONTEXTS = 1
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 2
PLAYWRIGHT_ABORT_REQUEST = "envision_spiders.middlewares.landingpages.abort_request"
PLAYWRIGHT_BROWSER_TYPE = "chromium"
PLAYWRIGHT_LAUNCH_OPTIONS = {
    "headless": True,
    "executable_path": _env("CHROMIUM_PATH", "/usr/bin/chromium"),
    "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"],
}
