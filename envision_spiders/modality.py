"""What a record's files show: one module for the review page, the ADDF export and the classifier.

* :func:`file_listing` reads what is known of a record's files: its file names, the
  listings of its peeked archives and, for a results row without them, its
  ``file_types``. It says whether the listing is **complete** (every file named, every
  archive listed to its end), and when it is not, why (:attr:`FileListing.gaps`):
  archives not peeked (Dryad and Kaggle without credentials, a budget reached), a
  listing cut short, a nested archive, a file list the source truncated. Only a complete
  listing can say "no image"; an incomplete one only says what it did see.
* :func:`detect_modalities` names the imaging modalities the files show (OCT in vendor
  formats, fundus photographs, OCTA, anterior segment photographs, DICOM, NIfTI) from
  extensions (the one table, :mod:`envision_spiders.filetypes`) and words in file and
  member names, then in the title and keywords. The review page turns them into its
  modality tags, the ADDF export into ``dataType`` directories (with MeSH terms, which
  stay in :mod:`envision_spiders.addf`), and the classifier's file evidence
  (:mod:`envision_spiders.classifier.evidence`) reads the same listing.
* :func:`name_facts` counts file and member names that name the eye (``fundus_0001.jpg``,
  ``OD``/``OS``, ``bscan``, ``macula``) or another body site (``chest``, ``CT``, ``knee``).

Pure functions, no I/O. Names come from the internet: nothing here trusts their
length, characters or number (at most :data:`NAME_LIMIT` names are read per record).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envision_spiders.filetypes import (
    AMBIGUOUS_DEVICE_FORMATS,
    ARCHIVE,
    DEVICE_FORMATS,
    IMAGING,
    MEDICAL,
    VIDEO,
    basename,
    category_of_extension,
    content_extension,
    file_extension,
)
from envision_spiders.textutil import strings

NAME_LIMIT = 5000  # file and member names read per record (a Kaggle record may list 10,000)
DICOM = frozenset({".dcm", ".dicom"})
VOLUMES = frozenset({".nii", ".nii.gz", ".mgz", ".mnc", ".nrrd", ".nhdr", ".mha", ".mhd"})


# ------------------------------------------------------------------ the listing
@dataclass
class FileListing:
    """What is known of a record's files (see the module doc)."""

    known: bool = False  # anything at all: names, archive members or file types
    complete: bool = False  # every file named and every archive listed to its end
    file_count: int = 0  # the record's own files (archives count as one each)
    counts: Counter = field(default_factory=Counter)  # content extension -> files and archive members
    names: list[str] = field(default_factory=list)  # file names and sampled member names
    gaps: list[str] = field(default_factory=list)  # why the listing is not complete, plain text

    def count(self, extensions: Iterable[str]) -> int:
        return sum(self.counts.get(e, 0) for e in extensions)

    def of_category(self, category: str) -> int:
        return sum(n for ext, n in self.counts.items() if category_of_extension(ext) == category)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _archive_name(entry: Mapping[str, Any]) -> str:
    return str(entry.get("name") or "") if isinstance(entry.get("name"), (str, int)) else ""


def file_listing(record: Mapping[str, Any], archives: list[Mapping[str, Any]] | None = None) -> FileListing:
    """The :class:`FileListing` of a saved record (``files``, ``archives``, ``extra``), a
    results row (``file_names``, ``file_types``, ``file_count``) or a labelled JSON line
    with either. ``archives`` overrides the record's own (the review page reads them from
    the saved record)."""
    out = FileListing()
    files = [f for f in record.get("files") or [] if isinstance(f, Mapping)]
    names = [f["name"] for f in files if isinstance(f.get("name"), str)]
    if not names:
        names = strings(record.get("file_names"))
    if archives is None:
        archives = [a for a in record.get("archives") or [] if isinstance(a, Mapping)]
    declared = _int(record.get("file_count"))
    out.file_count = len(names)
    entries: dict[str, Mapping[str, Any]] = {}
    for a in archives:
        entries.setdefault(_archive_name(a), a)
        entries.setdefault(basename(_archive_name(a)), a)
    for name in names:
        ext = content_extension(name)
        out.counts[ext] += 1
        if len(out.names) < NAME_LIMIT:
            out.names.append(name)
        if category_of_extension(ext) == ARCHIVE and name not in entries and basename(name) not in entries:
            out.gaps.append(f"{plain(basename(name))}: not peeked")
    for a in archives:
        label = plain(basename(_archive_name(a))) or "an archive"
        # entries written by hand (labelled files) may carry counts without the flags
        listed = a.get("listed") is True if "listed" in a else bool(a.get("extension_counts") or a.get("members_sample"))
        if not listed:
            reason = a.get("reason") if isinstance(a.get("reason"), str) else ""
            out.gaps.append(f"{label}: not listed" + (f" ({plain(reason, 90)})" if reason else ""))
            continue
        nested = 0
        ext_counts = a.get("extension_counts") if isinstance(a.get("extension_counts"), Mapping) else {}
        for ext, n in ext_counts.items():
            n = _int(n)
            if isinstance(ext, str) and n:
                out.counts[ext] += n
                nested += n if category_of_extension(ext) == ARCHIVE else 0
        for member in strings(a.get("members_sample")):
            if len(out.names) < NAME_LIMIT:
                out.names.append(member)
        if not a.get("complete"):
            out.gaps.append(f"{label}: listing incomplete")
        elif nested:
            out.gaps.append(f"{label}: {nested} archive{'s' if nested != 1 else ''} inside, not listed")
        if _int(a.get("extension_overflow")):
            out.gaps.append(f"{label}: some extensions not counted")
    if names and not archives:
        # a results row: members of archives are folded into file_types, not into names
        for ext in strings(record.get("file_types")):
            if ext.startswith(".") and ext not in out.counts:
                out.counts[ext] += 1
    if not names and not archives:
        for ext in strings(record.get("file_types")):  # DataCite formats, a row without names
            if ext.startswith("."):
                out.counts[ext] += 1
        if out.counts:
            out.gaps.append("file types known, file names not")
    extra = record.get("extra") if isinstance(record.get("extra"), Mapping) else {}
    if extra.get("files_complete") is False:
        out.gaps.append("the source's file list was cut")
    if extra.get("files_truncated"):
        out.gaps.append("the source's file list was cut")
    if extra.get("files_error"):
        out.gaps.append("the source refused the file list")
    if declared is not None and declared > len(names):
        out.gaps.append(f"{declared - len(names)} files not named")
    out.known = bool(names or out.counts)
    out.complete = bool(names) and not out.gaps
    return out


def plain(text: Any, limit: int = 60) -> str:
    """A name or reason for plain-text evidence: control and format characters (RTL
    overrides among them) removed, whitespace collapsed, cut to ``limit`` characters."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]", "", str(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"




# ------------------------------------------------------------------ names
# Words in file and member names (split at separators, case changes and digits):
# ``RET012OD.jpg`` -> ret, 012, od; ``patient1_OS_bscan_064.png`` -> patient, 1, os, bscan, 064.
_NAME_TOKENS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# Left out: "eye" (eye-tracking cameras write eye0.mp4, face sets crop left_eye.png),
# "iris"/"pupil" (biometrics, eye tracking). "disc" is weak (below).
EYE_NAME_WORDS = frozenset({
    "ocular", "optic", "fundus", "fundi", "retina", "retinal", "retinography",
    "macula", "macular", "fovea", "foveal", "cornea", "corneal", "slitlamp", "faf", "ffa", "icga", "drusen",
    "glaucoma", "cataract", "keratoconus", "optomap", "spectralis", "cirrus", "topcon", "optos", "choroid",
    "choroidal", "vitreous", "rnfl", "gcl", "gcipl", "onh", "meibography", "ophthalmic", "ophthalmology", "retcam",
    "ilm", "rpe",
})
# OCT words name a method used on many organs (intravascular OCT frames are "oct_0001.png"
# and "bscan_012.tif" too): counted apart from the eye words
OCT_NAME_WORDS = frozenset({"oct", "octa", "bscan", "bscans", "cscan", "ascan", "enface"})
LATERALITY_WORDS = frozenset({"od", "os", "ou"})
NON_EYE_NAME_WORDS = frozenset({
    "chest", "lung", "lungs", "cxr", "xray", "ct", "mri", "brain", "flair", "dwi", "pet", "knee", "hip", "spine",
    "lumbar", "cardiac", "heart", "coronary", "ivus", "ecg", "ekg", "echo", "liver", "kidney", "renal", "prostate",
    "breast", "mammo", "mammogram", "skin", "derm", "dermoscopy", "wsi", "histology", "colon", "polyp", "polyps",
    "endoscopy", "dental", "tooth", "teeth", "bone", "hand", "foot", "ear", "otoscopy", "fetal", "fetus", "cervix",
    "abdomen",
})
# eye words that count only in the name of a picture (a raster image: .jpg, .png, .tif):
# "disc" names optic disc photographs (0001_disc.jpg), but intervertebral discs in
# spine scans too, which are DICOM or NIfTI volumes
WEAK_EYE_WORDS = frozenset({"disc"})
# eye words that name another organ too: the stomach's and the uterus's fundus, the
# kidney's macula densa and the inner ear's maculae. For the classifier they name the eye
# only when the record's own text does not name that other organ, in file names
# (``fundus_varices_001.jpg`` in a record of gastric varices; :func:`eye_words_in_context`)
# and in the text itself (``classifier.language``)
_FUNDUS_ELSEWHERE = re.compile(r"\b(stomach|gastr\w*|endoscop\w*|varices|uter(?:us|ine)|gallbladder)\b", re.IGNORECASE)
AMBIGUOUS_EYE_WORDS = {
    "fundus": _FUNDUS_ELSEWHERE,
    "fundi": _FUNDUS_ELSEWHERE,
    # not "kidney" or "renal": eye studies of kidney disease image the macula too
    "macula": re.compile(r"\b(densa|utric\w*|saccul\w*|vestibul\w*)\b", re.IGNORECASE),
}


def names_other_organ(word: str, text: str | None) -> bool:
    """``word`` (lower case) is an eye word of :data:`AMBIGUOUS_EYE_WORDS` and ``text`` names
    the other organ it can belong to."""
    other = AMBIGUOUS_EYE_WORDS.get(word)
    return other is not None and other.search(text or "") is not None


def eye_words_in_context(words: Iterable[str], text: str | None) -> set[str]:
    """Those of a record's eye name words that still name the eye beside its text."""
    return {w for w in words if not names_other_organ(w, text)}


def name_words(name: str) -> list[str]:
    """The words of a file or member name, lower case (see ``_NAME_TOKENS``)."""
    base = name.replace("\\", "/")[-200:]
    words = [w.lower() for w in _NAME_TOKENS.findall(base)]
    joined = re.sub(r"[^a-z]", "", base.lower())
    if "bscan" in joined:
        words.append("bscan")
    if "slitlamp" in joined:
        words.append("slitlamp")
    return words


@dataclass
class NameFacts:
    """What the names of a record's files and archive members say, read once.

    The eye and OCT words and OD / OS count only in names of files that can hold a
    picture (:func:`can_picture`: images, scans, video, device files, archives): a
    ``fundus_grades.csv`` describes pictures, it is not one. Another body site counts in
    any name (``chest_xray_labels.csv`` says what the dataset is about)."""

    read: int = 0  # names read
    pictured: int = 0  # of them, names of files that can hold a picture
    eye: int = 0  # pictured names with an eye word
    oct: int = 0  # pictured names with an OCT word (oct, bscan)
    laterality: int = 0  # pictured image names marked OD / OS / OU
    non_eye: int = 0  # names (any) with a word of another body site
    eye_examples: list[str] = field(default_factory=list)
    eye_words: Counter = field(default_factory=Counter)
    non_eye_words: Counter = field(default_factory=Counter)


_IMAGE_CATEGORIES = (IMAGING, MEDICAL, VIDEO)


def can_picture(ext: str) -> bool:
    """Whether a file of this extension can hold a picture: an image, a medical scan, a
    video, an ophthalmic device file, or an archive (whose members its name does not show)."""
    return category_of_extension(ext) in (*_IMAGE_CATEGORIES, ARCHIVE) or ext in DEVICE_FORMATS


def name_facts(names: Iterable[str], limit: int = NAME_LIMIT) -> NameFacts:
    """:class:`NameFacts` of at most ``limit`` names, each read once."""
    facts = NameFacts()
    for i, name in enumerate(names):
        if i >= limit:
            break
        if not isinstance(name, str):
            continue
        facts.read += 1
        words = name_words(name)
        unique = set(words)
        other = {w for w in unique if w in NON_EYE_NAME_WORDS}
        if other:
            facts.non_eye += 1
            facts.non_eye_words.update(other)
        ext = file_extension(name)
        if not can_picture(ext):
            continue
        facts.pictured += 1
        category = category_of_extension(ext)
        image = category in _IMAGE_CATEGORIES
        eye = {w for w in unique if w in EYE_NAME_WORDS or (w in WEAK_EYE_WORDS and category == IMAGING)}
        if eye:
            facts.eye += 1
            facts.eye_words.update(eye)
            if len(facts.eye_examples) < 2:
                facts.eye_examples.append(plain(basename(name), 48))
        if OCT_NAME_WORDS & unique:
            facts.oct += 1
        if image and LATERALITY_WORDS & unique:
            facts.laterality += 1
    return facts


# ------------------------------------------------------------------ devices
def device_counts(listing: FileListing) -> dict[str, int]:
    """Ophthalmic device files per extension; ``.img`` only without ``.hdr`` files next to
    it (an ``.img``/``.hdr`` pair is Analyze 7.5, a medical volume of any organ)."""
    out = {}
    for ext in DEVICE_FORMATS:
        n = listing.counts.get(ext, 0)
        if ext == ".img" and listing.counts.get(".hdr", 0):
            n = 0
        if n:
            out[ext] = n
    return out


def eye_device_count(devices: Mapping[str, int]) -> int:
    return sum(n for ext, n in devices.items() if ext not in AMBIGUOUS_DEVICE_FORMATS)


# ------------------------------------------------------------------ modalities
@dataclass
class Modality:
    key: str  # the directory name a conformed dataset would use
    description: str
    # (term, concept): concept "oct", "fundus" or "cornea" for the export's MeSH terms
    terms: list[tuple[str, str | None]] = field(default_factory=list)
    standard: tuple[str, str] | None = None  # (name, description)
    evidence: Counter = field(default_factory=Counter)  # extension -> files/members

    def summary(self) -> str:
        ev = ", ".join(f"{n} {ext or 'files'}" for ext, n in self.evidence.most_common(5))
        return f"{self.description}" + (f" (detected from {ev})" if ev else "")


_WORDS = {
    "octa": re.compile(r"\bocta\b|oct-?angio|angiograph", re.I),
    "oct": re.compile(r"\boct\b|b-?scan|optical coherence", re.I),
    "fundus": re.compile(r"fundus|fundi\b|\bcfp\b|retina|retinal|funduscop", re.I),
    "anterior": re.compile(r"slit[- ]?lamp|anterior segment|cornea|corneal|keratoconus|\biris\b", re.I),
}
MODALITY_ORDER = ("retinal_oct", "retinal_octa", "retinal_photography", "anterior_segment_photography",
                  "dicom_imaging", "nifti_volumes", "ophthalmic_images")


def detect_modalities(record: Mapping[str, Any], listing: FileListing | None = None) -> list[Modality]:
    """Imaging modalities of a record, from its file types and archive members
    (:func:`file_listing`, unless given) and words in names, title and keywords."""
    listing = listing or file_listing(record)
    counts = listing.counts
    text = " ".join([str(record.get("title") or ""), " ".join(strings(record.get("keywords")))])
    names_text = " ".join(listing.names[:500])
    found: dict[str, Modality] = {}

    def add(key: str, description: str, ext: str, n: int, **kw: Any) -> None:
        m = found.get(key)
        if m is None:
            m = found[key] = Modality(key, description, **kw)
        m.evidence[ext] += n

    octa = bool(_WORDS["octa"].search(text) or _WORDS["octa"].search(names_text))
    kind = "Optical coherence tomography angiography" if octa else "Optical coherence tomography"
    for ext, n in sorted(counts.items()):
        if ext in DEVICE_FORMATS and n:
            key = "retinal_octa" if octa else "retinal_oct"
            add(key, kind, ext, n, terms=[("Optical coherence tomography", "oct")])
            devices = ", ".join(f"{DEVICE_FORMATS[e]} {e}" for e in sorted(found[key].evidence) if e in DEVICE_FORMATS)
            found[key].description = f"{kind} in device formats ({devices})"
        elif ext in DICOM and n:
            add("dicom_imaging", "DICOM images (ophthalmic photography or tomography)", ext, n,
                standard=("DICOM", "Digital Imaging and Communications in Medicine"))
        elif ext in (".nii", ".nii.gz") and n:
            add("nifti_volumes", "NIfTI image volumes", ext, n,
                standard=("NIfTI-1", "Neuroimaging Informatics Technology Initiative data format"))
    images = {ext: n for ext, n in counts.items() if n and category_of_extension(ext) == IMAGING}
    if images:
        # what the images are: words in file and member names first, then the title and
        # keywords (an OCT dataset whose title also names fundus photos: photos)
        cornea = "cornea" if re.search("cornea", text + names_text, re.I) else None
        kinds = {
            "octa": ("retinal_octa", "Optical coherence tomography angiography images (en face)",
                     [("Optical coherence tomography angiography", None), ("Optical coherence tomography", "oct")]),
            "oct": ("retinal_oct", "Optical coherence tomography images (B-scans)", [("Optical coherence tomography", "oct")]),
            "fundus": ("retinal_photography", "Fundus photographs", [("Fundus photography", "fundus")]),
            "anterior": ("anterior_segment_photography", "Slit-lamp and anterior segment photographs",
                         [("Anterior segment photography", cornea)]),
        }
        order = ["octa", "oct", "fundus", "anterior"]
        if any(ext in DEVICE_FORMATS for ext in counts):
            order = ["fundus", "anterior", "octa", "oct"]
        choice = next((k for k in order if _WORDS[k].search(names_text)), None) or \
            next((k for k in order if _WORDS[k].search(text)), None)
        if choice:
            key, desc, terms = kinds[choice]
        else:
            key, desc, terms = "ophthalmic_images", "Ophthalmic images (modality not stated in names)", []
        for ext, n in sorted(images.items()):
            add(key, desc, ext, n, terms=terms)
    return sorted(found.values(), key=lambda m: MODALITY_ORDER.index(m.key) if m.key in MODALITY_ORDER else len(MODALITY_ORDER))
