"""The project's settings plus the benchmarks' instrumentation (bench/instrument.py).

Crawls started by the benchmarks set ``SCRAPY_SETTINGS_MODULE=bench.bench_settings``;
nothing else changes: same spiders, middlewares, pipelines and politeness.
"""

from envision_spiders.settings import *  # noqa: F401,F403
from envision_spiders.settings import EXTENSIONS, SPIDER_MIDDLEWARES

SPIDER_MIDDLEWARES = {**SPIDER_MIDDLEWARES, "bench.instrument.SearchPages": 1000}
EXTENSIONS = {**EXTENSIONS, "bench.instrument.Timeline": 900}
