"""EYE_IMAGING / NEGATIVE classification with envision-classifier, offline by default.

Other code loads a model with :func:`load_classifier` (or :func:`shared_classifier`, one
per process) and calls ``classify_records(records)``; see :mod:`.model` for the choice of
model (``CLASSIFIER_MODEL``), :mod:`.head` for the recipe of the default one and
docs/classifier.md for its measured accuracy and calibration. Importing this package is
cheap: torch and the model libraries load only when a model does.
"""

from .model import (
    LABELS,
    Classifier,
    ClassifierInput,
    ModelError,
    build_default_model,
    classifier_for_command,
    curated_examples,
    default_model_dir,
    load_classifier,
    models_dir,
    record_input,
    shared_classifier,
)
from .text import record_text, text_hash

__all__ = [
    "LABELS",
    "Classifier",
    "ClassifierInput",
    "ModelError",
    "build_default_model",
    "classifier_for_command",
    "curated_examples",
    "default_model_dir",
    "load_classifier",
    "models_dir",
    "record_input",
    "record_text",
    "shared_classifier",
    "text_hash",
]
