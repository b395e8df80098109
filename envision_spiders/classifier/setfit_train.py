"""Full SetFit fine-tuning of the packaged MiniLM backbone (``train-classifier --setfit``).

Slow on a CPU: about 20 minutes and 4.4 GB of memory on two cores for the 891 built-in
examples with 3 iterations (335 steps); a GPU makes it a minute. The result is a SetFit
folder (SentenceTransformer files, ``model_head.pkl``, ``config_setfit.json``) that
``EyeImagingClassifier`` loads; use it with ``CLASSIFIER_MODEL=<folder>``. Its head is
SetFit's plain logistic regression, not calibrated: measure it with
``scrapy evaluate-classifier --file`` before trusting its probabilities.

envision-classifier's own ``EyeImagingClassifier.train()`` is not used: with SetFit's
default pair sampling it would run 58,148 steps (days on a CPU), it passes an argument
SetFit deprecated, and it exposes neither the number of iterations nor a seed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from .data import builtin_examples
from .model import LABELS, _backbone_path, _quiet_loading

logger = logging.getLogger(__name__)

SETFIT_NAME = "envision-setfit-minilm"


def train_setfit(output: str | Path, iterations: int = 3, max_examples: int | None = None, seed: int = 42) -> Path:
    """Fine-tune and save to ``output`` (replaced atomically); returns the folder."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    _quiet_loading()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    ex = builtin_examples()
    texts, labels = list(ex.texts), list(ex.labels)
    if max_examples:  # a quick trial: every k-th example, both classes kept
        step = max(1, len(texts) // max_examples)
        texts, labels = texts[::step][:max_examples], labels[::step][:max_examples]
    started = time.monotonic()
    model = SetFitModel.from_pretrained(str(_backbone_path()), labels=list(LABELS), device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        args = TrainingArguments(output_dir=str(tmp / "checkpoints"), batch_size=16, num_epochs=1,
                                 num_iterations=iterations, eval_strategy="no", save_strategy="no",
                                 seed=seed, report_to="none", show_progress_bar=False)
        Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": texts, "label": labels})).train()
        shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
        model.save_pretrained(str(tmp / "model"))
        old = output.parent / f".{output.name}.old-{os.getpid()}"
        if output.exists():
            os.replace(output, old)
        os.replace(tmp / "model", output)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("SetFit model trained on %d examples (%d iterations) in %.0f s: %s",
                len(texts), iterations, time.monotonic() - started, output)
    return output
