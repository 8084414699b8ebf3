"""Group fairness figures, as fairlearn defines them (fairlearn is a test-only oracle).

- demographic parity difference: the largest minus the smallest selection rate
  (share of positive predictions) across the groups of the sensitive attribute;
- equalized odds difference: the larger of the true-positive-rate spread and the
  false-positive-rate spread across groups ("worst case").

A rate whose denominator is empty in a group (no positives for the TPR, no
negatives for the FPR) counts as 0.0, as fairlearn's zero-division default does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _rate(numerator: int, denominator: int) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def group_rates(y_true: Sequence[bool] | np.ndarray, y_pred: Sequence[bool] | np.ndarray,
                groups: Sequence[Any] | np.ndarray) -> dict[str, dict[str, float]]:
    """Per group: count, selection_rate, true_positive_rate, false_positive_rate.
    ``y_true``/``y_pred`` are booleans (True = the positive class)."""
    truth = np.asarray(y_true, dtype=bool)
    predicted = np.asarray(y_pred, dtype=bool)
    labels = np.asarray([str(g) for g in groups], dtype=object)
    if not (len(truth) == len(predicted) == len(labels)):
        raise ValueError("y_true, y_pred and groups must have the same length")
    out: dict[str, dict[str, float]] = {}
    for group in sorted(set(labels.tolist())):
        mask = labels == group
        t, p = truth[mask], predicted[mask]
        tp, fn = int(np.sum(t & p)), int(np.sum(t & ~p))
        fp, tn = int(np.sum(~t & p)), int(np.sum(~t & ~p))
        out[group] = {"count": float(mask.sum()), "selection_rate": _rate(int(p.sum()), len(p)),
                      "true_positive_rate": _rate(tp, tp + fn), "false_positive_rate": _rate(fp, fp + tn)}
    return out


def _spread(rates: dict[str, dict[str, float]], key: str) -> float:
    values = [r[key] for r in rates.values()]
    return float(max(values) - min(values)) if values else 0.0


def figures(rates: dict[str, dict[str, float]]) -> dict[str, float]:
    """The two differences from ``group_rates``."""
    return {
        "demographic_parity_difference": _spread(rates, "selection_rate"),
        "equalized_odds_difference": max(_spread(rates, "true_positive_rate"),
                                         _spread(rates, "false_positive_rate")),
    }


def demographic_parity_difference(y_pred: Sequence[bool] | np.ndarray, groups: Sequence[Any] | np.ndarray) -> float:
    return figures(group_rates(np.zeros(len(y_pred), dtype=bool), y_pred, groups))["demographic_parity_difference"]


def equalized_odds_difference(y_true: Sequence[bool] | np.ndarray, y_pred: Sequence[bool] | np.ndarray,
                              groups: Sequence[Any] | np.ndarray) -> float:
    return figures(group_rates(y_true, y_pred, groups))["equalized_odds_difference"]
