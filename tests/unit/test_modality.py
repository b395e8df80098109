"""What a record's files show (envision_spiders.modality): the listing, its completeness,
names, devices and modalities."""

from __future__ import annotations

from envision_spiders.modality import (
    NAME_LIMIT,
    detect_modalities,
    device_counts,
    file_listing,
    name_facts,
    name_words,
    plain,
)


def archive(name, counts, sample=(), *, listed=True, complete=True, reason=None):
    return {"name": name, "format": "zip", "listed": listed, "complete": complete,
            "member_count": sum(counts.values()) if listed else None, "members_sample": list(sample),
            "extension_counts": counts if listed else {}, "reason": reason}


def test_a_complete_listing_counts_files_and_members():
    record = {"files": [{"name": "data.zip"}, {"name": "labels.csv"}],
              "archives": [archive("data.zip", {".jpg": 300, ".csv": 1}, ["fundus/0001.jpg"])]}
    listing = file_listing(record)
    assert listing.known and listing.complete and not listing.gaps
    assert listing.counts[".jpg"] == 300 and listing.counts[".csv"] == 2 and listing.file_count == 2
    assert "fundus/0001.jpg" in listing.names


def test_no_files_at_all_is_unknown_not_empty():
    listing = file_listing({"title": "DataCite record", "files": []})
    assert not listing.known and not listing.complete


def test_what_makes_a_listing_incomplete():
    files = [{"name": "data.zip"}, {"name": "notes.txt"}]
    cases = {
        "not peeked": {"files": files, "archives": [archive("data.zip", {}, listed=False,
                                                            reason="dryad serves files only to authenticated clients")]},
        "no entry": {"files": files},
        "cut short": {"files": files, "archives": [archive("data.zip", {".png": 40}, complete=False)]},
        "nested": {"files": files, "archives": [archive("data.zip", {".png": 4, ".zip": 2})]},
        "source cut": {"files": [{"name": "a.csv"}], "extra": {"files_complete": False}},
        "osf cut": {"files": [{"name": "a.csv"}], "extra": {"files_truncated": {"reasons": ["depth"]}}},
        "count": {"files": [{"name": "a.csv"}], "file_count": 5},
    }
    for why, record in cases.items():
        listing = file_listing(record)
        assert listing.known and not listing.complete and listing.gaps, why
    dryad = file_listing(cases["not peeked"])
    assert "not listed" in dryad.gaps[0] and "authenticated" in dryad.gaps[0]
    assert file_listing(cases["cut short"]).counts[".png"] == 40  # what was seen still counts


def test_a_single_compressed_file_is_what_it_holds():
    listing = file_listing({"files": [{"name": "sumstats.tsv.gz"}, {"name": "scan.vol.gz"}]})
    assert listing.complete and listing.counts[".tsv"] == 1 and listing.counts[".vol"] == 1
    assert not file_listing({"files": [{"name": "blob.gz"}]}).complete  # .gz of what: unknown


def test_results_rows_and_type_only_records():
    row = file_listing({"file_names": ["a.zip"], "file_types": [".zip", ".png"]})
    assert row.counts[".png"] == 1
    types_only = file_listing({"file_types": [".dcm"]})
    assert types_only.known and not types_only.complete and types_only.counts[".dcm"] == 1


def test_names_that_name_the_eye_or_another_site():
    facts = name_facts(["fundus_0001.jpg", "patient012_OS_bscan_064.png", "RET001OD.jpg", "readme.txt",
                        "CT_COVID/12.png", "disc_L4L5.dcm", "macula_01.jpg", "eye0.mp4", "left_eye.png"])
    assert facts.eye == 2 and facts.oct == 1 and facts.laterality == 2 and facts.non_eye == 1
    assert "macula" in facts.eye_words and "fundus" in facts.eye_words and "ct" in facts.non_eye_words
    assert facts.eye_examples == ["fundus_0001.jpg", "macula_01.jpg"]
    assert name_words("OCT2017/CNV-1.jpeg")[:2] == ["oct", "2017"]


def test_optic_names_the_eye_and_disc_only_in_a_picture_name():
    facts = name_facts(["optic_nerve_head_01.dcm", "0001_disc.jpg", "disc/0002_disc.png", "disc_L4L5.dcm",
                        "L4_disc.nii.gz", "disc_grades.csv", "disc_scans.zip"])
    # the optic nerve in any picture; "disc" in raster images only (spine discs are volumes)
    assert facts.eye == 3 and facts.eye_words == {"optic": 1, "disc": 2}
    assert facts.eye_examples == ["optic_nerve_head_01.dcm", "0001_disc.jpg"]


def test_names_are_read_once_for_both_questions():
    facts = name_facts(["fundus_grades.csv", "chest_xray_labels.csv", "fundus_01.jpg", "images.zip"])
    assert facts.read == 4 and facts.pictured == 2  # the image and the archive
    assert facts.eye == 1  # fundus_grades.csv describes pictures, it is not one
    assert facts.non_eye == 1 and "chest" in facts.non_eye_words  # any name says what the data are about


def test_devices_and_analyze_pairs():
    assert device_counts(file_listing({"files": [{"name": "a.e2e"}, {"name": "b.img"}]})) == {".e2e": 1, ".img": 1}
    analyze = file_listing({"files": [{"name": "brain.img"}, {"name": "brain.hdr"}]})
    assert device_counts(analyze) == {}


def test_hostile_names_and_many_files_stay_bounded():
    names = [f"img_{i:05d}.png" for i in range(NAME_LIMIT + 3000)]
    listing = file_listing({"files": [{"name": n} for n in names]})
    assert listing.counts[".png"] == len(names) and len(listing.names) == NAME_LIMIT
    assert name_facts(listing.names).read == NAME_LIMIT
    hostile = "\u202eevil\x00<script>alert(1)</script>" + "x" * 500 + ".jpg"
    assert "\u202e" not in plain(hostile) and "\x00" not in plain(hostile) and len(plain(hostile)) <= 60
    facts = name_facts([hostile, 12, None])  # odd types are skipped
    assert facts.read == 1
    odd = file_listing({"files": [{"name": "a.zip"}, None, {"name": 3}],
                        "archives": ["junk", {"name": "a.zip", "listed": True, "extension_counts": [1, 2]},
                                     {"name": "b.zip", "listed": "yes", "extension_counts": {".png": "x", 4: 5}}]})
    assert odd.known and not odd.complete


def test_modalities_from_the_listing():
    found = detect_modalities({"title": "Eye data", "files": [{"name": "x.zip"}],
                               "archives": [archive("x.zip", {".e2e": 12})]})
    assert [m.key for m in found] == ["retinal_oct"] and "Heidelberg" in found[0].description
