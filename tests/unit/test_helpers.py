"""Pure helpers: the extension table, text and date parsing, DOIs, terms, storage."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from envision_spiders import filetypes
from envision_spiders.storage import atomic_write_json, read_json, read_jsonl, safe_id, append_jsonl
from envision_spiders.terms import read_terms
from envision_spiders.textutil import html_to_text, iso, normalize_doi, parse_datetime, strings


@pytest.mark.parametrize(
    "name, ext, cat",
    [
        ("a/b/scan.nii.gz", ".nii.gz", "medical"),
        ("x.TAR.GZ", ".tar.gz", "archive"),
        ("reads.fastq.gz", ".fastq.gz", "genomics"),
        ("calls.vcf.gz", ".vcf.gz", "genomics"),
        ("sample.g.vcf.gz", ".g.vcf.gz", "genomics"),
        ("volume.E2E", ".e2e", "medical"),
        ("scan.vol", ".vol", "medical"),
        ("topcon.fds", ".fds", "medical"),
        ("topcon.fda", ".fda", "medical"),
        ("cirrus.img", ".img", "medical"),
        ("bioptigen.oct", ".oct", "medical"),
        ("slice.dcm", ".dcm", "medical"),
        ("fundus.JPG", ".jpg", "imaging"),
        ("part.z01", ".z01", "archive"),
        ("big.7z.003", ".7z.003", "archive"),
        ("c:\\data\\scan.tif", ".tif", "imaging"),
        ("data.v2/README", "", None),
        (".DS_Store", "", None),
        ("notes.txt", ".txt", "document"),
        ("labels.CSV", ".csv", "table"),
        ("volume.mat", ".mat", "array"),
        ("weights.pth", ".pth", "weights"),
        ("clip.avi", ".avi", "video"),
        ("notes.xyz", ".xyz", None),
    ],
)
def test_one_extension_table(name, ext, cat):
    assert filetypes.file_extension(name) == ext
    assert filetypes.category(name) == cat


def test_summarize_files_folds_archive_members_by_basename():
    files = [{"name": "images.zip", "size_bytes": 10}, {"name": "labels.csv", "size_bytes": 5}, {"name": "x.e2e"}]
    archives = [{"extension_counts": {".png": 1180, ".csv": 34}}]
    s = filetypes.summarize_files(files, archives)
    assert s["file_count"] == 3 and s["file_names"] == ["images.zip", "labels.csv", "x.e2e"]
    assert s["file_types"] == [".csv", ".e2e", ".png", ".zip"]
    assert (s["img_count"], s["medical_count"], s["archive_count"], s["genomics_count"]) == (1180, 1, 1, 0)
    assert s["total_size_bytes"] == 15


def test_html_to_text_keeps_paragraphs_and_links_and_survives_garbage():
    text, links = html_to_text('<p>A <em>retinal</em>&nbsp;OCT</p><p>See <a href="https://x.org/a">site</a></p><script>evil()</script>')
    assert text == "A retinal OCT\nSee site" and links == ["https://x.org/a"]
    assert html_to_text("<b>unclosed <i>tags") == ("unclosed tags", [])
    assert html_to_text(None) == ("", []) and html_to_text(["a", "b"])[0] == "a b"
    assert html_to_text("zero\x00width\u200bspace")[0] == "zero width space"
    assert html_to_text("plain https://doi.org/10.1/x. end")[1] == ["https://doi.org/10.1/x"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2024-08-29T16:18:19.637219+00:00", "2024-08-29T16:18:19.637219Z"),
        ("2019-06-03T00:56:47.1511526Z", "2019-06-03T00:56:47.151152Z"),  # Kaggle: 7 digits
        ("2021-06-16T07:56:03.46Z", "2021-06-16T07:56:03.460000Z"),
        ("2023-08-01T00:00:00", "2023-08-01T00:00:00Z"),  # RePORTER / OSF: no zone
        ("2020-12-21T12:12:00+02:00", "2020-12-21T10:12:00Z"),
        ("2006", "2006-01-01T00:00:00Z"),
        ("2023-07-21", "2023-07-21T00:00:00Z"),
        ("not a date", None),
        ("", None),
        (None, None),
    ],
)
def test_timestamps_of_every_shape(raw, expected):
    assert iso(raw) == expected


def test_parse_datetime_is_aware():
    assert parse_datetime("2023-08-01T00:00:00").tzinfo is not None


@pytest.mark.parametrize(
    "raw, doi",
    [
        ("https://doi.org/10.5281/ZENODO.123", "10.5281/zenodo.123"),
        ("http://dx.doi.org/10.5061/dryad.x", "10.5061/dryad.x"),
        ("doi:10.5061/DRYAD.8515", "10.5061/dryad.8515"),
        ("doi%3A10.5061%2Fdryad.8515", "10.5061/dryad.8515"),
        ("10.6084/m9.figshare.1449060.v1", "10.6084/m9.figshare.1449060.v1"),
        ("hash://md5/942d", None),
        ("", None),
        (42, None),
    ],
)
def test_normalize_doi(raw, doi):
    assert normalize_doi(raw) == doi


def test_strings_drops_other_types_and_repeats():
    assert strings(["a", " a ", None, 3, {"x": 1}, "b  c", True]) == ["a", "3", "b c"]
    assert strings("one") == ["one"] and strings(None) == []


def test_read_terms(tmp_path):
    p = tmp_path / "terms.txt"
    p.write_text("# comment\nretinal OCT\n\n  fundus   photography  # inline\nRETINAL oct\n")
    assert read_terms(p) == ["retinal OCT", "fundus photography"]
    p.write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no search term"):
        read_terms(p)
    with pytest.raises(ValueError, match="cannot be read"):
        read_terms(tmp_path / "missing.txt")


def test_default_terms_are_the_47_shared_ones():
    from envision_spiders.terms import default_terms

    assert len(default_terms()) == 47


@pytest.mark.parametrize(
    "sid, name",
    [("10.5061/dryad.8515", "10.5061_dryad.8515"), ("../../etc/passwd", "_.._.._etc_passwd"),
     ("a\x00b", "a_b"), ("", "_"), ("R01EY012345", "R01EY012345")],
)
def test_safe_id(sid, name):
    assert safe_id(sid) == name
    assert "/" not in safe_id(sid) and not safe_id(sid).startswith(".")


def test_atomic_write_keeps_the_old_file_when_the_disk_is_full(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"v": 1})

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        atomic_write_json(target, {"v": 2})
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"], "no temporary file left"


@pytest.fixture
def umask():
    """Set the process umask for a test (and put the old one back)."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def test_records_results_and_the_page_follow_the_users_umask(tmp_path, umask):
    """The atomic writes go through a temporary file, which ``mkstemp`` makes 0600: the
    results, records and the review page a curator shares with a group were unreadable
    to it. They follow the umask; a file that exists keeps its own mode."""
    import stat

    from envision_spiders.report import write_report
    from envision_spiders.results import write_results
    from envision_spiders.storage import record_path

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    umask(0o002)
    data, results = tmp_path / "data", tmp_path / "results"
    record = record_path(data, "zenodo", "1")
    atomic_write_json(record, {"source": "zenodo", "source_id": "1", "title": "Fundus photographs"})
    write_results(data, results)
    page = write_report(data, results)
    for path in (record, results / "zenodo_all_results.json", results / "duplicates.json", page):
        assert mode(path) == 0o664, (path, oct(mode(path)))
    umask(0o077)
    atomic_write_json(tmp_path / "private.json", {})
    assert mode(tmp_path / "private.json") == 0o600
    os.chmod(record, 0o640)  # a curator's choice survives the next rewrite
    umask(0o002)
    atomic_write_json(record, {"source": "zenodo", "source_id": "1", "title": "Fundus photographs, v2"})
    assert mode(record) == 0o640


def test_jsonl_reader_skips_a_torn_last_line(tmp_path):
    p = tmp_path / "f.jsonl"
    append_jsonl(p, {"a": 1})
    with open(p, "a") as fh:
        fh.write('{"a": 2, "b": ')
    assert read_jsonl(p) == [{"a": 1}]
    assert read_json(tmp_path / "missing.json") is None


def test_pipelines_package_is_the_projects():
    """A PyPI distribution is also called `pipelines`; ours must win (scrapy-notes §4.2)."""
    import pipelines

    from tests.conftest import ROOT

    assert Path(pipelines.__file__).resolve().parent.parent == ROOT


def test_plain_text_with_angle_brackets_and_ampersands_is_not_parsed_as_html():
    assert html_to_text("n<b and R&D, p<0.05 & x>3")[0] == "n<b and R&D, p<0.05 & x>3"
    assert html_to_text("a &amp; b <br/>c")[0] == "a & b\nc"
    assert html_to_text("x<p>y</p>")[0] == "x\ny"


def test_generated_negatives_mention_search_terms_in_passing_only():
    from localapi.corpus import generated_texts

    texts = generated_texts(300, seed=3)
    negatives = [t for t in texts if not t.positive]
    assert negatives and len(negatives) < len(texts)
    for t in negatives:
        lowered = {k.lower() for k in t.keywords}
        assert not lowered & {term.lower() for term in t.terms}, t  # not a keyword
        assert all(term.lower() not in t.title.lower() for term in t.terms), t  # not the subject
        assert all(term in t.description for term in t.terms), t  # but a search finds them
    for t in texts:
        if t.positive:
            assert t.terms[0] in t.keywords


def test_data_and_results_dirs_come_from_settings_or_their_defaults(tmp_path):
    from scrapy.settings import Settings

    from envision_spiders.paths import data_dir, results_dir

    # unset and empty both mean the default (an empty DATA_DIR= in .env is not "here")
    assert data_dir({}) == Path("data") and results_dir({}) == Path("results")
    assert data_dir({"DATA_DIR": ""}) == Path("data") and results_dir({"RESULTS_DIR": ""}) == Path("results")
    settings = Settings({"DATA_DIR": str(tmp_path / "d"), "RESULTS_DIR": str(tmp_path / "r")})
    assert data_dir(settings) == tmp_path / "d"
    assert results_dir(settings) == tmp_path / "r"
    # a command's own --results-dir wins over the setting; None or empty leaves it
    assert results_dir(settings, tmp_path / "other") == tmp_path / "other"
    assert results_dir(settings, None) == results_dir(settings, "") == tmp_path / "r"
