"""The scrapy-mock cassettes: one per recorded sample, named after it, and what
``tests/fixtures/make_cassettes.py`` writes from the samples (no cassette orphaned,
none stale, none named after a test)."""

from __future__ import annotations

import importlib.util

import yaml

from tests.conftest import CASSETTES, ROOT, cassette_for


def _maker():
    spec = importlib.util.spec_from_file_location("make_cassettes", ROOT / "tests" / "fixtures" / "make_cassettes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_cassette_holds_its_sample_as_make_cassettes_writes_it():
    maker = _maker()
    specs = maker.specs()
    written = {maker.cassette_name(spec): spec for spec in specs}
    on_disk = {str(p.relative_to(CASSETTES)) for p in CASSETTES.rglob("*.yaml")}
    assert on_disk == set(written), "every cassette comes from a spec, every spec has its cassette"
    for name, spec in written.items():
        assert yaml.safe_load((CASSETTES / name).read_text(encoding="utf-8")) == maker.cassette(spec), f"{name} is stale"
        assert (ROOT / "localapi" / "samples" / spec["sample"]).exists()
        # found by the request it answers, whichever test asks
        assert cassette_for(spec.get("method", "GET"), spec["url"]) == name
