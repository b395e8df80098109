"""The project's one table of file extensions, and the helpers every source uses.

Each extension belongs to at most one category:

* ``imaging``   general raster images a fundus or slit-lamp photograph comes as;
* ``medical``   medical and ophthalmic device formats (DICOM, NIfTI, the OCT vendors'
                raw formats ``.e2e .vol .fds .fda .img .oct``);
* ``archive``   containers whose members we may list (see ``envision_spiders.archive``);
* ``genomics``  sequencing and variant files (a strong hint that "eye" data is not imaging);
* ``video``     recordings (slit-lamp or surgical videos, but also eye-tracking scene cameras);
* ``array``     numeric containers that may hold image volumes or not (``.mat .h5 .npy``);
* ``table``     spreadsheets and tabular data; ``document`` text and reports; ``code``
                source code and notebooks; ``weights`` trained model files.

The last four say what a file is not: a complete listing made of them only holds no
image (the classifier's file evidence, :mod:`envision_spiders.modality`). The counts a
record carries (``img_count``, ``medical_count``, ``archive_count``, ``genomics_count``)
are of the first four categories only. :data:`DEVICE_FORMATS` names the ophthalmic
device formats among the medical ones.

Compound extensions (``.nii.gz``, ``.tar.gz``, ``.fastq.gz``, ``.vcf.gz``) are matched
before simple ones. Extensions are taken from the basename only, so
``data.v2/scan`` has no extension and ``a/b.tar.gz`` is ``.tar.gz``.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

IMAGING = "imaging"
MEDICAL = "medical"
ARCHIVE = "archive"
GENOMICS = "genomics"
VIDEO = "video"
ARRAY = "array"
TABLE = "table"
DOCUMENT = "document"
CODE = "code"
WEIGHTS = "weights"

EXTENSIONS: dict[str, str] = {
    # imaging: photographs and generic raster formats
    **dict.fromkeys(
        [".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".bmp", ".gif", ".webp",
         ".jp2", ".j2k", ".ppm", ".pgm", ".pbm", ".pnm", ".heic", ".heif", ".raw",
         ".cr2", ".nef", ".dng", ".ome.tif", ".ome.tiff", ".svs", ".ndpi", ".czi"],
        IMAGING,
    ),
    # medical and ophthalmic device formats
    **dict.fromkeys(
        [".dcm", ".dicom", ".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".hdr",
         ".mgz", ".mnc", ".ima",
         # OCT and fundus camera vendors: Heidelberg (.e2e, .vol, .sdb), Topcon (.fds,
         # .fda), Zeiss Cirrus (.img), Bioptigen (.oct), Optovue (.oct as well)
         ".e2e", ".vol", ".sdb", ".fds", ".fda", ".img", ".oct"],
        MEDICAL,
    ),
    # archives and compressed containers
    **dict.fromkeys(
        [".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz",
         ".tar.zst", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".z01", ".zipx"],
        ARCHIVE,
    ),
    # genomics
    **dict.fromkeys(
        [".fastq", ".fq", ".fastq.gz", ".fq.gz", ".fasta", ".fa", ".fna", ".faa",
         ".fasta.gz", ".fa.gz", ".bam", ".bai", ".sam", ".cram", ".vcf", ".vcf.gz",
         ".bcf", ".gvcf", ".g.vcf.gz", ".bed", ".bigwig", ".bw", ".gff", ".gff3", ".gtf",
         ".sra", ".h5ad", ".loom", ".2bit"],
        GENOMICS,
    ),
    **dict.fromkeys([".mp4", ".avi", ".mov", ".mkv", ".wmv", ".webm", ".mpg", ".mpeg", ".m4v", ".flv"], VIDEO),
    **dict.fromkeys([".mat", ".h5", ".hdf5", ".hdf", ".npy", ".npz", ".zarr", ".nc", ".fits", ".pkl", ".pickle"],
                    ARRAY),
    **dict.fromkeys([".csv", ".tsv", ".xlsx", ".xls", ".ods", ".parquet", ".sav", ".dta", ".sas7bdat", ".rds",
                     ".rdata", ".rda", ".feather", ".arff", ".dbf", ".sqlite", ".db", ".json", ".jsonl", ".xml",
                     ".fcs", ".seg", ".mtx", ".asc", ".edf"], TABLE),
    **dict.fromkeys([".txt", ".md", ".pdf", ".doc", ".docx", ".rtf", ".odt", ".ppt", ".pptx", ".html", ".htm",
                     ".tex", ".bib", ".rst", ".yaml", ".yml", ".cfg", ".ini", ".log"], DOCUMENT),
    **dict.fromkeys([".py", ".r", ".m", ".ipynb", ".jl", ".c", ".cpp", ".h", ".hpp", ".java", ".js", ".ts",
                     ".sh", ".bat", ".ps1", ".go", ".rs", ".f90", ".sas", ".do", ".rmd", ".qmd", ".toml",
                     ".apk", ".exe", ".jar", ".whl"], CODE),
    **dict.fromkeys([".pth", ".pt", ".ckpt", ".onnx", ".pb", ".safetensors", ".keras", ".tflite", ".caffemodel"],
                    WEIGHTS),
}

# Ophthalmic device formats (all ``medical`` above) and what writes them. ``.img`` is also
# Analyze 7.5 (next to a ``.hdr``) and ``.oct`` also Thorlabs' general-purpose OCT
# systems (skin, teeth, phantoms): these two are weaker evidence of the eye.
DEVICE_FORMATS: dict[str, str] = {
    ".e2e": "Heidelberg OCT",
    ".vol": "Heidelberg OCT",
    ".sdb": "Heidelberg",
    ".fds": "Topcon OCT",
    ".fda": "Topcon OCT",
    ".img": "Zeiss Cirrus OCT",
    ".oct": "Bioptigen / Optovue / Thorlabs OCT",
}
AMBIGUOUS_DEVICE_FORMATS = frozenset({".img", ".oct"})
# Single-file compression: ``x.tsv.gz`` holds one ``x.tsv`` (``.tar.gz`` and the like are
# matched first as archives of many files).
SINGLE_FILE_COMPRESSION = (".gz", ".bz2", ".xz", ".zst")

_MAX_EXT_LEN = max(map(len, EXTENSIONS))
# Parts of split archives (.z01, .z02, ..., .7z.001, .zip.001) share the .z01 entry.
_SPLIT_PART = re.compile(r"(\.z\d\d|\.(?:zip|7z|rar|tar)\.\d{3}|\.part\d+\.rar)$", re.IGNORECASE)
_SIMPLE_EXT = re.compile(r"\.[a-z0-9]{1,10}$")


def basename(name: str) -> str:
    """Basename of a path from an API or an archive, for both / and \\ separators."""
    name = (name or "").replace("\\", "/").rstrip("/")
    return posixpath.basename(name)


def file_extension(name: str) -> str:
    """Lower-case extension of a file name, compound where the table knows it.

    Split-archive parts keep their own suffix (``.z02``, ``.7z.003``). Returns ""
    when the basename has no extension (or is a dot file such as ``.DS_Store``).
    """
    base = basename(name).lower()
    if not base or (base.startswith(".") and base.count(".") == 1):
        return ""
    split = _SPLIT_PART.search(base)
    if split and len(base) > len(split.group(1)):
        return split.group(1)
    # The longest extension of the table that ends the name without being all of it:
    # only suffixes starting at a dot (not the first character) within the last
    # _MAX_EXT_LEN characters can be one, so look those up instead of trying every entry
    # (archive listings call this for hundreds of thousands of members).
    dot = base.find(".", max(1, len(base) - _MAX_EXT_LEN))
    while dot != -1:
        if base[dot:] in EXTENSIONS:
            return base[dot:]
        dot = base.find(".", dot + 1)
    m = _SIMPLE_EXT.search(base)
    return m.group(0) if m else ""


def content_extension(name: str) -> str:
    """The extension of what a file holds: :func:`file_extension`, except that a
    single-file compression (``x.tsv.gz``, ``scan.vol.bz2``) holds its inner file."""
    ext = file_extension(name)
    if ext in SINGLE_FILE_COMPRESSION:
        inner = file_extension(basename(name)[: -len(ext)])
        if inner and category_of_extension(inner) != ARCHIVE:
            return inner
    return ext


def category_of_extension(ext: str) -> str | None:
    """Category of an extension as :func:`file_extension` returns it, or None."""
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    return ARCHIVE if ext and _SPLIT_PART.fullmatch(ext) else None


def category(name: str) -> str | None:
    """Category of a file name (imaging, medical, archive, genomics) or None."""
    return category_of_extension(file_extension(name))


def is_archive(name: str) -> bool:
    return category(name) == ARCHIVE


def count_categories(names: Iterable[str]) -> Counter:
    """Count names per category (imaging, medical, archive, genomics)."""
    counts: Counter = Counter()
    for n in names:
        c = category(n)
        if c:
            counts[c] += 1
    return counts


def extension_counts(names: Iterable[str]) -> dict[str, int]:
    """Per-extension counts, most common first (files without extension under "")."""
    return dict(Counter(file_extension(n) for n in names).most_common())


def summarize_files(files: list[Mapping[str, Any]], archives: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Derive the file statistics of a record from its files and archive listings.

    ``file_names``/``file_count``/``total_size_bytes`` describe the record's own files;
    ``file_types`` and the category counts also fold in the members of listed archives
    (each archive entry carries ``extension_counts``), as the archive issue asks.
    """
    names = [f.get("name") or "" for f in files]
    sizes = [f.get("size_bytes") for f in files]
    known_sizes = [s for s in sizes if isinstance(s, int) and s >= 0]
    ext_counter: Counter = Counter(file_extension(n) for n in names)
    for a in archives or []:
        for ext, n in (a.get("extension_counts") or {}).items():
            if isinstance(n, int):
                ext_counter[ext] += n
    cats: Counter = Counter()
    for ext, n in ext_counter.items():
        c = category_of_extension(ext)
        if c:
            cats[c] += n
    return {
        "file_names": names,
        "file_count": len(files),
        "file_types": sorted(e for e in ext_counter if e),
        "total_size_bytes": sum(known_sizes) if known_sizes else None,
        "img_count": cats[IMAGING],
        "medical_count": cats[MEDICAL],
        "archive_count": cats[ARCHIVE],
        "genomics_count": cats[GENOMICS],
    }
