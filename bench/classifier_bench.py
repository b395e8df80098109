"""Build time and throughput of the default classifier on this machine.

    .venv/bin/python bench/classifier_bench.py [N_RECORDS]

Builds the default model into a temporary folder (timed, from packaged parts only),
then classifies N records (default 1,000, texts of the built-in examples and the probe
file, full 512-character texts) with the project's classifier and, for comparison,
with EyeImagingClassifier on the same folder (its embedding head only).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from envision_spiders.classifier import build_default_model, load_classifier  # noqa: E402
from envision_spiders.classifier.data import builtin_examples, import_envision_classifier  # noqa: E402
from envision_spiders.classifier.model import default_model_dir  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        build_default_model(tmp)
        build = time.perf_counter() - started
        texts = list(builtin_examples().texts)
        probes = [json.loads(line) for line in (ROOT / "tests/fixtures/classifier/probes.jsonl").read_text().splitlines()]
        texts += [f"{p['title']} {p['description']}" for p in probes]
        texts = (texts * (n // len(texts) + 1))[:n]
        started = time.perf_counter()
        classifier = load_classifier("", tmp)
        load = time.perf_counter() - started
        classifier.predict(texts[:64])  # warm-up
        started = time.perf_counter()
        classifier.predict(texts)
        ours = time.perf_counter() - started
        ec = import_envision_classifier()
        with contextlib.redirect_stdout(io.StringIO()):
            package = ec.EyeImagingClassifier(model_path=str(default_model_dir(tmp)), device="cpu")
        package.classify_batch(texts[:64], batch_size=64, verbose=False)
        started = time.perf_counter()
        package.classify_batch(texts, batch_size=64, verbose=False)
        theirs = time.perf_counter() - started
    print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"build {build:.1f} s; load {load:.1f} s")
    print(f"project classifier (text head): {n / ours:.1f} records/s")
    print(f"EyeImagingClassifier on the same folder (embedding head, batch 64): {n / theirs:.1f} records/s")


if __name__ == "__main__":
    main()
