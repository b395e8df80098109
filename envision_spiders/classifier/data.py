"""envision-classifier's own labelled examples, the training data of the default model.

``envision_classifier.classifier`` holds four lists: EYE_IMAGING_EXAMPLES (label 1) and
three kinds of negatives (label 0): EYE_SOFTWARE_EXAMPLES (code, model weights),
OTHER_EYE_DATA_EXAMPLES (reviews, eye tracking, genetics, questionnaires) and
NEGATIVE_EXAMPLES (everything else). The default model keeps the kind of each negative
as a training target of its own (see :mod:`.recipe`): the eye-related negatives share
the vocabulary of the positives, and a linear model separates them better when it does
not have to lump them with radar data and gravestones.

The default model also learns from :data:`EXTRAS_FILE`, labelled records written for this
project (package data, JSON Lines: ``title``, ``description``, ``keywords``, ``label``,
``kind``): hard negatives (eye tracking, psychophysics, ocular genetics and omics tables,
retinal electrophysiology, eye software; coronary, dental, skin, oesophageal and cochlear
OCT and other non-eye medical imaging) and eye imaging records that share their vocabulary
(OCT with genotypes, retinal videos from eye-tracking labs). :func:`training_examples` is
what the model is built from; :func:`builtin_examples` stays what cross-validation scores
(the extras join the training folds only, see :mod:`.evaluate`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .text import compose_text, training_text

# (list name in envision_classifier.classifier, kind, binary label)
LISTS = (
    ("EYE_IMAGING_EXAMPLES", "eye_imaging", 1),
    ("EYE_SOFTWARE_EXAMPLES", "eye_software", 0),
    ("OTHER_EYE_DATA_EXAMPLES", "other_eye_data", 0),
    ("NEGATIVE_EXAMPLES", "negative", 0),
)
KINDS = tuple(kind for _, kind, _ in LISTS)
POSITIVE_KIND = "eye_imaging"
KIND_LABELS = {kind: label for _, kind, label in LISTS}
# project-written training records, shipped inside this package (pyproject package-data)
EXTRAS_FILE = "hard_examples.jsonl"
# project-written training records with files and archive listings: the file evidence's
# weights are fitted on them (never the text model: see :mod:`.evidence`)
FILE_EXAMPLES_FILE = "file_examples.jsonl"


def import_envision_classifier():
    """``envision_classifier.classifier``, imported without its side effect:
    the module runs ``warnings.filterwarnings("ignore")`` at import, which would hide
    every warning of the process (an sklearn version mismatch on a pickled head among
    them). ``catch_warnings`` restores the filters as they were."""
    with warnings.catch_warnings():
        import envision_classifier.classifier as module
    return module


@dataclass(frozen=True)
class Examples:
    texts: tuple[str, ...]  # cleaned as the model sees them (training_text)
    labels: tuple[int, ...]  # 1 = EYE_IMAGING, 0 = NEGATIVE
    kinds: tuple[str, ...]  # one of KINDS

    def __len__(self) -> int:
        return len(self.texts)

    def __add__(self, other: Examples) -> Examples:
        return Examples(self.texts + other.texts, self.labels + other.labels, self.kinds + other.kinds)

    def digest(self) -> str:
        """sha256 of the examples, so a model records exactly what it learnt from."""
        payload = json.dumps([self.texts, self.labels, self.kinds], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def builtin_examples() -> Examples:
    ec = import_envision_classifier()
    texts, labels, kinds = [], [], []
    for name, kind, label in LISTS:
        for example in getattr(ec, name):
            texts.append(training_text(example))
            labels.append(label)
            kinds.append(kind)
    return Examples(tuple(texts), tuple(labels), tuple(kinds))


def extras_bytes() -> bytes:
    """The packaged extras file as shipped (its sha256 is one of the model's inputs)."""
    return resources.files(__package__).joinpath(EXTRAS_FILE).read_bytes()


def file_examples_bytes() -> bytes:
    return resources.files(__package__).joinpath(FILE_EXAMPLES_FILE).read_bytes()


def file_examples_sha256() -> str:
    return hashlib.sha256(file_examples_bytes()).hexdigest()


@dataclass(frozen=True)
class FileExamples:
    records: tuple[dict, ...]  # title, description, keywords, files, archives, extra
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.records)


def parse_labelled_records(data: bytes, source: str) -> FileExamples:
    """Labelled records with files from JSON Lines (``label`` EYE_IMAGING or NEGATIVE on
    each). Raises ValueError on a line without a usable label or text, as for the
    extras: a malformed training file must stop a build."""
    records, labels = [], []
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        obj = json.loads(line)
        label = {"EYE_IMAGING": 1, "NEGATIVE": 0}.get(obj.get("label"))
        if label is None or not isinstance(obj, dict):
            raise ValueError(f"{source} line {n}: label {obj.get('label')!r} is neither EYE_IMAGING nor NEGATIVE")
        if not compose_text(obj.get("title"), obj.get("description"), obj.get("keywords")):
            raise ValueError(f"{source} line {n}: no text")
        records.append(obj)
        labels.append(label)
    return FileExamples(tuple(records), tuple(labels))


@dataclass(frozen=True)
class TrainingData:
    """Everything the default model is built from: the texts of the text head and the
    records with files the file evidence's weights are fitted on (never the same
    records: the weights need text probabilities the text head did not learn from)."""

    texts: Examples
    files: FileExamples


def training_data() -> TrainingData:
    """The one entry point of the build (:func:`.model.build_default_model`): more
    labelled data (a curator's decisions) joins here."""
    return TrainingData(training_examples(), file_examples())


@lru_cache(maxsize=1)
def file_examples() -> FileExamples:
    """What the file evidence's weights are fitted on (:data:`FILE_EXAMPLES_FILE`)."""
    return parse_labelled_records(file_examples_bytes(), FILE_EXAMPLES_FILE)


def parse_extras(data: bytes) -> Examples:
    """Examples from JSON Lines of labelled records; each needs a ``kind`` of :data:`KINDS`
    whose label agrees with ``label``. Raises ValueError on anything else: a malformed
    training file must stop a build, not shrink the training data."""
    texts, labels, kinds = [], [], []
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        obj = json.loads(line)
        kind = obj.get("kind")
        if kind not in KIND_LABELS:
            raise ValueError(f"{EXTRAS_FILE} line {n}: kind {kind!r} is not one of {KINDS}")
        label = {"EYE_IMAGING": 1, "NEGATIVE": 0}.get(obj.get("label"))
        if label != KIND_LABELS[kind]:
            raise ValueError(f"{EXTRAS_FILE} line {n}: label {obj.get('label')!r} does not match kind {kind!r}")
        text = compose_text(obj.get("title"), obj.get("description"), obj.get("keywords"))
        if not text:
            raise ValueError(f"{EXTRAS_FILE} line {n}: no text")
        texts.append(text)
        labels.append(label)
        kinds.append(kind)
    return Examples(tuple(texts), tuple(labels), tuple(kinds))


@lru_cache(maxsize=1)
def extra_examples() -> Examples:
    """The project's own labelled records (:data:`EXTRAS_FILE`), as the model sees them
    (composed like a record: title, description, keywords)."""
    return parse_extras(extras_bytes())


def extras_sha256() -> str:
    return hashlib.sha256(extras_bytes()).hexdigest()


@lru_cache(maxsize=1)
def training_examples() -> Examples:
    """What the default model is built from: the built-in examples, then the extras."""
    a, b = builtin_examples(), extra_examples()
    return Examples(a.texts + b.texts, a.labels + b.labels, a.kinds + b.kinds)
