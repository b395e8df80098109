"""How far predicted probabilities are from observed frequencies.

A probability is calibrated when, among the records given p = 0.8, about 80 % are eye
imaging. The reliability table bins predictions by probability (equal-width bins) and
compares each bin's mean prediction with its share of positives; the expected
calibration error (ECE) is the count-weighted mean gap. Both are computed on
predictions for examples the model did not train on (cross-validation folds or a
labelled file).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_BINS = 10


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    # bins [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]: 1.0 falls in the last bin
    return np.minimum((p * bins).astype(int), bins - 1)


def reliability_table(probabilities: Sequence[float], labels: Sequence[int], bins: int = DEFAULT_BINS) -> list[dict]:
    """One row per non-empty bin: its range, count, mean predicted probability and
    observed fraction of positives."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    idx = _bin_index(p, bins)
    rows = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        if not n:
            continue
        rows.append({
            "bin": [round(b / bins, 4), round((b + 1) / bins, 4)],
            "count": n,
            "mean_predicted": round(float(p[mask].mean()), 4),
            "fraction_positive": round(float(y[mask].mean()), 4),
        })
    return rows


def expected_calibration_error(probabilities, labels, bins: int = DEFAULT_BINS):
    """The count-weighted mean gap of the bins: a bin's count times the gap between its mean
    prediction and its share of positives is the gap between its sums. Along the last axis,
    so that rows of resampled predictions (the bootstrap of :mod:`.evaluate`) are scored at
    once; a float for one row."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    if not p.shape[-1]:
        return 0.0
    idx = _bin_index(p, bins)
    gaps = sum(np.abs(np.where(idx == b, p - y, 0.0).sum(axis=-1)) for b in range(bins))
    ece = gaps / p.shape[-1]
    return float(ece) if np.ndim(ece) == 0 else ece
