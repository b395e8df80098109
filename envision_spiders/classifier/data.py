"""envision-classifier's own labelled examples, the training data of the default model.

``envision_classifier.classifier`` holds four lists: EYE_IMAGING_EXAMPLES (label 1) and
three kinds of negatives (label 0): EYE_SOFTWARE_EXAMPLES (code, model weights),
OTHER_EYE_DATA_EXAMPLES (reviews, eye tracking, genetics, questionnaires) and
NEGATIVE_EXAMPLES (everything else). The default model keeps the kind of each negative
as a training target of its own (see :mod:`.recipe`): the eye-related negatives share
the vocabulary of the positives, and a linear model separates them better when it does
not have to lump them with radar data and gravestones.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from functools import lru_cache

from .text import training_text

# (list name in envision_classifier.classifier, kind, binary label)
LISTS = (
    ("EYE_IMAGING_EXAMPLES", "eye_imaging", 1),
    ("EYE_SOFTWARE_EXAMPLES", "eye_software", 0),
    ("OTHER_EYE_DATA_EXAMPLES", "other_eye_data", 0),
    ("NEGATIVE_EXAMPLES", "negative", 0),
)
KINDS = tuple(kind for _, kind, _ in LISTS)
POSITIVE_KIND = "eye_imaging"


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
