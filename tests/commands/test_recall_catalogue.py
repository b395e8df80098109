"""The reference catalogue: the shipped file, the parser's handling of bad lines, a
curator's file added to or replacing the shipped one."""

from __future__ import annotations

from collections import Counter

import pytest

from envision_spiders.recall.catalogue import (
    CONFIDENCE,
    MODALITIES,
    SOURCES,
    load_catalogue,
    parse_catalogue,
    shipped_text,
    title_tokens,
)

HEADER = "name,source,id,doi,url,title,aliases,modality,id_confidence,source_type,listed_in,reason"


def parse(*lines: str):
    return parse_catalogue("\n".join([HEADER, *lines]) + "\n", "mine.csv")


def problem_lines(problems):
    return [(p["line"], p["problem"]) for p in problems]


# ------------------------------------------------------------------ the shipped catalogue
def test_the_shipped_catalogue_is_large_varied_and_clean():
    cat = load_catalogue()
    assert cat.problems == [] and cat.files == ["envision_spiders/recall/catalogue.csv"]
    assert len(cat.entries) >= 60
    sources = Counter(e.source for e in cat.entries)
    assert len(sources) >= 4 and set(sources) <= set(SOURCES)
    assert len({e.key for e in cat.entries}) == len(cat.entries)
    for e in cat.entries:
        assert e.modality in MODALITIES, e.name
        assert e.reason and e.listed_in, e.name
        assert e.id_confidence in CONFIDENCE
        # an identifier only where one is claimed, and a way to match every entry
        assert bool(e.id or e.doi) == (e.id_confidence != "none"), e.name
        assert e.phrases, f"{e.name} has no title phrase long enough to match by"


def test_shipped_catalogue_entries_that_the_dataset_searches_cannot_return_say_so():
    cat = load_catalogue()
    non_datasets = {e.name: e.source_type for e in cat.entries if not e.is_dataset_type}
    assert non_datasets and set(non_datasets.values()) <= {"competition", "collection"}


# ------------------------------------------------------------------ bad lines
def test_a_good_line_is_read_whole():
    entries, problems = parse('PAPILA,figshare,14798004,https://doi.org/10.6084/M9.FIGSHARE.14798004,,'
                              '"PAPILA: Dataset with fundus images",PAPILA dataset|Papila fundus,fundus,sure,,"Sci Data 2022",'
                              '"fundus photographs, both eyes"')
    assert problems == []
    (e,) = entries
    assert (e.source, e.id, e.doi, e.line) == ("figshare", "14798004", "10.6084/m9.figshare.14798004", 2)
    assert e.aliases == ("PAPILA dataset", "Papila fundus") and e.reason == "fundus photographs, both eyes"
    assert e.key == "figshare:14798004"


@pytest.mark.parametrize("line, expected", [
    ("X,nei,R01EY012345,,,Title here,,fundus,sure,,,", "unknown source 'nei' (RePORTER holds grants, not datasets)"),
    ("X,zenodoo,1,,,Title here,,fundus,sure,,,", "unknown source 'zenodoo'"),
    (",kaggle,,,,,,fundus,none,,,", "no name and no title"),
])
def test_lines_that_cannot_be_placed_are_left_out_with_their_line_number(line, expected):
    entries, problems = parse("Good one,kaggle,owner/slug,,,Good one title,,fundus,sure,,,", line)
    assert [e.name for e in entries] == ["Good one"]
    assert problems[0]["line"] == 3 and expected in problems[0]["problem"] and problems[0]["file"] == "mine.csv"


@pytest.mark.parametrize("source, ident, expected", [
    ("zenodo", "zenodo.123", "not a Zenodo record number"),
    ("figshare", "m9.figshare.1", "not a Figshare article number"),
    ("kaggle", "no-slash", "not a Kaggle owner/slug"),
    ("osf", "ABCDEFG", "not a five-character OSF id"),
    ("datacite", "not-a-doi", "not a DOI"),
    ("dryad", "10.5281/zenodo.1", "not a Dryad DOI"),
])
def test_a_malformed_identifier_is_dropped_and_the_entry_matched_by_title(source, ident, expected):
    entries, problems = parse(f"Some set,{source},{ident},,,Some retinal image set,,fundus,sure,,,")
    (e,) = entries
    assert e.id == "" and e.id_confidence == "none" and e.phrases == [("some", "retinal", "image", "set")]
    assert problems[0]["line"] == 2 and expected in problems[0]["problem"]


def test_duplicates_by_id_doi_or_title_keep_the_first_line():
    entries, problems = parse(
        "A,zenodo,123,,,Title A,,fundus,sure,,,",
        "A again,zenodo,123,,,Other title,,fundus,sure,,,",
        "B,zenodo,,10.5281/zenodo.9,,Title B,,fundus,sure,,,",
        "B again,datacite,10.5281/zenodo.9,,,Title B2,,fundus,sure,,,",
        "C,kaggle,,,,Retinal Vessel Set,,fundus,none,,,",
        "C again,kaggle,,,,retinal vessel  set!,,fundus,none,,,",
        "C elsewhere,figshare,,,,Retinal Vessel Set,,fundus,none,,,",  # another source: not the same line
    )
    assert [e.name for e in entries] == ["A", "B", "C", "C elsewhere"]
    assert problem_lines(problems) == [(3, "names the same dataset as line 2; left out"),
                                       (5, "names the same dataset as line 4; left out"),
                                       (7, "names the same dataset as line 6; left out")]


def test_everything_else_odd_is_reported_and_read_where_possible():
    entries, problems = parse(
        "Short,kaggle,o/s,,,Retinal images,HRF|two words,fundus,certain,,,",
        "Few fields,zenodo,5",
        "Many,zenodo,6,,,Title six,,oct,sure,,,,extra,fields",
        "Bad doi,figshare,7,10.6084,javascript:alert(1),Title seven,,slitlamp,sure,,,",
        "None with id,kaggle,a/b,,,Title eight,,fundus,none,,,",
        'Unclosed,kaggle,a/c,,,"Title nine,,fundus,sure,,,',
    )
    assert [e.name for e in entries] == ["Short", "Few fields", "Many", "Bad doi", "None with id"]
    short, few, many, bad, none = entries
    assert short.aliases == ("two words",) and short.id_confidence == "likely"
    assert few.id == "5" and few.title == "" and few.phrases == [("few", "fields")]
    assert bad.doi == "" and bad.url == "" and bad.modality == "slitlamp"
    assert none.id_confidence == "likely"
    found = problem_lines(problems)
    assert [n for n, _ in found] == [2, 2, 3, 4, 5, 5, 5, 6, 7]
    text = " | ".join(p for _, p in found)
    for expected in ("alias 'HRF' is too short", "id_confidence 'certain'", "3 fields where the header has 12",
                     "14 fields", "doi '10.6084' is not a DOI", "url 'javascript:alert(1)' is not an http(s) URL",
                     "modality 'slitlamp'", "an identifier with id_confidence none", "not a CSV line"):
        assert expected in text


def test_a_file_without_its_required_columns_or_any_header_yields_nothing_but_says_why():
    entries, problems = parse_catalogue("title,id\nA,1\n", "x.csv")
    assert entries == [] and "lacks name, source" in problems[0]["problem"] and problems[0]["line"] == 1
    entries, problems = parse_catalogue("# only comments\n\n", "y.csv")
    assert entries == [] and problems == [{"file": "y.csv", "line": 0, "problem": "no header line: the file holds no entry"}]


def test_garbage_never_raises():
    for text in ("\x00\x01,,\n,,\"", "name,source\n" + "\ufeff,,,\n" * 3, "name,source\n\"a\"b\",kaggle\n"):
        entries, problems = parse_catalogue(text, "g.csv")
        assert isinstance(entries, list) and isinstance(problems, list)


def test_title_tokens_fold_accents_and_punctuation():
    assert title_tokens("Chákṣu: A glaucoma-specific CHASE_DB1") == ("chaksu", "a", "glaucoma", "specific", "chase", "db1")


# ------------------------------------------------------------------ a curator's file
def test_a_curators_file_adds_to_the_shipped_one_and_replaces_what_it_names(tmp_path):
    shipped = load_catalogue()
    papila = next(e for e in shipped.entries if e.name.startswith("PAPILA"))
    mine = tmp_path / "mine.csv"
    mine.write_text("\n".join([
        HEADER,
        "Our clinic OCT,datacite,10.82001/eyerepo.1,,,Clinic OCT volumes,,oct,sure,,our repository,OCT volumes",
        f"PAPILA corrected,figshare,{papila.id},,,PAPILA corrected title,,fundus,sure,,,",
        "Broken,osf,toolong,,,Broken line title,,fundus,sure,,,",
    ]) + "\n", encoding="utf-8")
    cat = load_catalogue(mine, "add")
    assert len(cat.entries) == len(shipped.entries) + 2
    assert cat.files == ["envision_spiders/recall/catalogue.csv", str(mine)]
    names = {e.name for e in cat.entries}
    assert "Our clinic OCT" in names and "PAPILA corrected" in names and papila.name not in names
    lines = problem_lines(cat.problems)
    assert (3, f"names the same dataset as envision_spiders/recall/catalogue.csv line {papila.line}; this line replaces it") in lines
    assert any(n == 4 and "not a five-character OSF id" in p for n, p in lines)


def test_a_curators_file_can_replace_the_shipped_one(tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text(HEADER + "\nOnly one,kaggle,a/b,,,Only one retinal set,,fundus,sure,,,\n", encoding="utf-8")
    cat = load_catalogue(str(mine), "replace")
    assert [e.name for e in cat.entries] == ["Only one"] and cat.files == [str(mine)] and cat.mode == "replace"


def test_an_unreadable_curators_file_leaves_the_shipped_catalogue(tmp_path):
    cat = load_catalogue(tmp_path / "missing.csv", "replace")
    assert len(cat.entries) >= 60 and cat.problems[0]["line"] == 0
    assert "cannot be read" in cat.problems[0]["problem"]
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00name")
    assert "cannot be read" in load_catalogue(binary).problems[0]["problem"]


def test_an_unknown_mode_is_a_setting_to_fix():
    with pytest.raises(ValueError, match="RECALL_CATALOGUE_MODE='merge'"):
        load_catalogue(None, "merge")


def test_the_shipped_text_is_package_data():
    assert shipped_text().startswith("# The reference catalogue")
