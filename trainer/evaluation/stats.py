"""Paired comparison of two evaluations on the same images (e.g. FP32 vs INT8).

Following the MedSAM protocol the paper uses, each metric is compared with the Wilcoxon
signed-rank test on per-image differences; "INT8 costs nothing" means p > 0.05 together
with a mean difference whose 95% confidence interval is narrow around zero. The interval is
the t interval of the mean paired difference (b - a), which for the hundreds of images of a
validation set agrees with a bootstrap interval and, unlike it, is deterministic.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

from trainer.evaluation.evaluate import EvalResult

__all__ = ["ALPHA", "compare_results", "format_comparison", "paired_test"]

ALPHA = 0.05


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Statistics of ``b - a`` for paired finite values (NaN pairs must be removed already).

    Returns mean_a, mean_b, mean_diff, ci95 ([low, high] or None for fewer than 2 pairs),
    p_wilcoxon (1.0 when every difference is zero, None when it cannot be computed), n and a
    ``note`` explaining any special case.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    diff = b - a
    n = int(diff.size)
    out: dict[str, Any] = {
        "n": n,
        "mean_a": float(a.mean()) if n else None,
        "mean_b": float(b.mean()) if n else None,
        "mean_diff": float(diff.mean()) if n else None,
        "ci95": None,
        "p_wilcoxon": None,
        "note": "",
    }
    if n == 0:
        out["note"] = "no image has this metric in both results"
        return out
    if n > 1:
        sem = float(diff.std(ddof=1)) / math.sqrt(n)
        half = float(stats.t.ppf(0.975, n - 1)) * sem
        out["ci95"] = [out["mean_diff"] - half, out["mean_diff"] + half]
    if not np.any(diff):
        out["p_wilcoxon"] = 1.0
        out["note"] = "all differences are zero (identical results): p = 1 by definition"
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-sample and tie warnings: p is still valid
            p = float(stats.wilcoxon(b, a).pvalue)
    except ValueError as exc:
        out["note"] = f"Wilcoxon test not possible: {exc}"
        return out
    out["p_wilcoxon"] = None if math.isnan(p) else p
    return out


def _finite(row: dict[str, Any], metric: str) -> float | None:
    value = row.get(metric)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def compare_results(a: EvalResult, b: EvalResult) -> dict[str, Any]:
    """Pair the per-image rows of ``a`` and ``b`` by name and test every shared metric.

    A pair enters a metric's test only when both values are finite (an HD95 of NaN, i.e.
    one empty mask, drops that image from the HD95 test only; such pairs are counted in
    ``n_excluded``). Differences are ``b - a``.
    """
    rows_a = {r["name"]: r for r in a.rows}
    rows_b = {r["name"]: r for r in b.rows}
    names = sorted(set(rows_a) & set(rows_b))
    shared = [m for m in a.metric_names() if m in set(b.metric_names())]
    metrics: dict[str, Any] = {}
    for metric in shared:
        va, vb = [], []
        for name in names:
            x, y = _finite(rows_a[name], metric), _finite(rows_b[name], metric)
            if x is not None and y is not None:
                va.append(x)
                vb.append(y)
        result = paired_test(np.asarray(va), np.asarray(vb))
        result["n_excluded"] = len(names) - len(va)
        p = result["p_wilcoxon"]
        result["significant"] = bool(p is not None and p < ALPHA)
        metrics[metric] = result
    return {
        "n_pairs": len(names),
        "only_in_a": sorted(set(rows_a) - set(rows_b)),
        "only_in_b": sorted(set(rows_b) - set(rows_a)),
        "a": a.summary.get("model", {}),
        "b": b.summary.get("model", {}),
        "prompt": a.summary.get("prompt"),
        "alpha": ALPHA,
        "difference": "b - a",
        "metrics": metrics,
    }


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_comparison(cmp: dict[str, Any]) -> str:
    """Plain-text table: mean a, mean b, mean difference with 95% CI, Wilcoxon p, n."""
    name_a = cmp["a"].get("name", "a")
    name_b = cmp["b"].get("name", "b")
    lines = [
        f"a = {name_a}, b = {name_b}; {cmp['n_pairs']} paired images; difference = b - a",
        f"{'metric':<18}{'mean a':>10}{'mean b':>10}{'diff':>10}{'95% CI':>22}{'p':>9}{'n':>6}",
    ]
    for metric, r in cmp["metrics"].items():
        ci = "-" if r["ci95"] is None else f"[{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}]"
        diff = "-" if r["mean_diff"] is None else f"{r['mean_diff']:+.4f}"
        p = "-" if r["p_wilcoxon"] is None else f"{r['p_wilcoxon']:.3g}"
        mark = " *" if r["significant"] else ""
        lines.append(
            f"{metric:<18}{_num(r['mean_a']):>10}{_num(r['mean_b']):>10}{diff:>10}{ci:>22}"
            f"{p:>9}{r['n']:>6}{mark}"
        )
    notes = sorted({r["note"] for r in cmp["metrics"].values() if r["note"]})
    lines.extend(f"note: {n}" for n in notes)
    lines.append(f"* p < {cmp['alpha']} (Wilcoxon signed-rank, two-sided)")
    if cmp["only_in_a"] or cmp["only_in_b"]:
        lines.append(
            f"unpaired images left out: {len(cmp['only_in_a'])} only in a, "
            f"{len(cmp['only_in_b'])} only in b"
        )
    return "\n".join(lines)
