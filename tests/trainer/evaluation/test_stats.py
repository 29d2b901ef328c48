"""Paired comparison: identical results, a consistent shift, NaN and unpaired images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.evaluation import EvalResult, compare_results, format_comparison, paired_test


def _result(dice: np.ndarray, hd: np.ndarray, names: list[str] | None = None) -> EvalResult:
    names = names or [f"img{i}" for i in range(len(dice))]
    rows = [
        {"name": n, "dice": float(d), "iou": float(d / (2 - d)), "hd95": float(h), "hd95_unit": "px"}
        for n, d, h in zip(names, dice, hd, strict=True)
    ]
    return EvalResult(rows, {"model": {"name": "m"}, "prompt": "union"})


def test_identical_results_have_zero_difference_and_p_one():
    rng = np.random.default_rng(0)
    a = _result(rng.uniform(0.9, 0.98, 30), rng.uniform(2, 9, 30))
    cmp = compare_results(a, a)
    assert cmp["n_pairs"] == 30
    for metric in ("dice", "iou", "hd95"):
        r = cmp["metrics"][metric]
        assert r["mean_diff"] == 0.0 and r["ci95"] == [0.0, 0.0]
        assert r["p_wilcoxon"] == 1.0 and not r["significant"]
        assert "all differences are zero" in r["note"]
    assert "p = 1" in format_comparison(cmp)


def test_consistent_shift_is_significant_with_the_right_sign():
    rng = np.random.default_rng(1)
    dice = rng.uniform(0.85, 0.95, 40)
    hd = rng.uniform(3, 10, 40)
    a = _result(dice, hd)
    b = _result(dice + 0.01 + rng.normal(0, 0.002, 40), hd - 0.5)
    cmp = compare_results(a, b)
    r = cmp["metrics"]["dice"]
    assert r["mean_diff"] == pytest.approx(0.01, abs=0.002)
    assert r["ci95"][0] > 0 and r["ci95"][1] < 0.02
    assert r["p_wilcoxon"] < 1e-6 and r["significant"]
    assert cmp["metrics"]["hd95"]["mean_diff"] == pytest.approx(-0.5)
    assert cmp["metrics"]["hd95"]["p_wilcoxon"] < 1e-6


def test_noise_without_shift_is_not_significant():
    rng = np.random.default_rng(2)
    dice = rng.uniform(0.85, 0.95, 60)
    noise = rng.normal(0, 0.003, 60)
    cmp = compare_results(_result(dice, dice), _result(dice + noise - noise.mean(), dice))
    assert cmp["metrics"]["dice"]["p_wilcoxon"] > 0.05


def test_rows_pair_by_name_and_nan_pairs_are_left_out():
    a = _result(np.array([0.9, 0.8, 0.7]), np.array([1.0, math.nan, 3.0]), ["x", "y", "z"])
    b = _result(np.array([0.95, 0.85, 0.5]), np.array([2.0, 2.0, 4.0]), ["y", "x", "w"])
    cmp = compare_results(a, b)
    assert cmp["n_pairs"] == 2 and cmp["only_in_a"] == ["z"] and cmp["only_in_b"] == ["w"]
    dice = cmp["metrics"]["dice"]
    # pairs: x (0.9 -> 0.85), y (0.8 -> 0.95)
    assert dice["mean_a"] == pytest.approx(0.85) and dice["mean_b"] == pytest.approx(0.9)
    assert dice["mean_diff"] == pytest.approx(0.05)
    hd = cmp["metrics"]["hd95"]
    assert hd["n"] == 1 and hd["n_excluded"] == 1  # y has no HD95 in a
    assert hd["ci95"] is None


def test_paired_test_of_nothing_says_so():
    r = paired_test(np.array([]), np.array([]))
    assert r["n"] == 0 and r["p_wilcoxon"] is None and r["note"]


# -- found by mutation testing (tools/mutation.sh) --------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 25])
def test_ci95_is_the_t_interval_of_the_mean_difference(n):
    from scipy import stats

    rng = np.random.default_rng(n)
    a = rng.uniform(0.8, 0.95, n)
    b = a + rng.normal(0.01, 0.02, n)
    r = paired_test(a, b)
    expected = stats.ttest_1samp(b - a, 0.0).confidence_interval(0.95)
    assert r["ci95"] == pytest.approx([expected.low, expected.high], rel=1e-9)
    assert r["ci95"][0] < r["mean_diff"] < r["ci95"][1]


def test_one_pair_has_no_interval():
    r = paired_test(np.array([0.5]), np.array([0.7]))
    assert r["n"] == 1 and r["ci95"] is None and r["mean_diff"] == pytest.approx(0.2)


def test_format_marks_only_significant_metrics_and_prints_both_bounds():
    rng = np.random.default_rng(1)
    dice = rng.uniform(0.85, 0.95, 40)
    hd = rng.uniform(3, 10, 40)
    noise = rng.normal(0, 0.5, 40)
    cmp = compare_results(_result(dice, hd), _result(dice + 0.01 + rng.normal(0, 0.002, 40), hd + noise - noise.mean()))
    assert cmp["metrics"]["dice"]["significant"] and not cmp["metrics"]["hd95"]["significant"]
    rows = {line.split()[0]: line for line in format_comparison(cmp).splitlines()[2:] if line.split()}
    assert rows["dice"].endswith(" *") and not rows["hd95"].endswith("*")
    low, high = cmp["metrics"]["dice"]["ci95"]
    assert f"[{low:+.4f}, {high:+.4f}]" in rows["dice"] and low != high


@pytest.mark.parametrize("names_b", [["x", "y"], ["x", "y", "z", "w"]])
def test_format_reports_images_unpaired_on_either_side(names_b):
    names_a = ["x", "y", "z"]
    a = _result(np.array([0.9, 0.8, 0.7]), np.array([1.0, 2.0, 3.0]), names_a)
    b = _result(np.array([0.9, 0.85, 0.6, 0.5])[: len(names_b)], np.array([1.0, 2.0, 3.0, 4.0])[: len(names_b)], names_b)
    text = format_comparison(compare_results(a, b))
    only_a, only_b = len(set(names_a) - set(names_b)), len(set(names_b) - set(names_a))
    assert f"unpaired images left out: {only_a} only in a, {only_b} only in b" in text


# --- found by mutation testing (tools/mutation.sh trainer/evaluation/stats.py) -------------


def test_a_p_value_equal_to_alpha_is_not_significant(monkeypatch):
    """Significance needs p < ALPHA (0.05), the usual strict convention."""
    from trainer.evaluation import stats as stats_module

    def p_of(value):
        return lambda a, b: {"n": len(a), "mean_a": 0.9, "mean_b": 0.91, "mean_diff": 0.01, "ci95": None,
                             "p_wilcoxon": value, "note": None}

    a, b = _result(np.array([0.9, 0.8, 0.7]), np.ones(3)), _result(np.array([0.91, 0.82, 0.73]), np.ones(3))
    monkeypatch.setattr(stats_module, "paired_test", p_of(stats_module.ALPHA))
    assert not compare_results(a, b)["metrics"]["dice"]["significant"]
    monkeypatch.setattr(stats_module, "paired_test", p_of(stats_module.ALPHA * 0.999))
    assert compare_results(a, b)["metrics"]["dice"]["significant"]


def test_a_wilcoxon_that_cannot_run_is_a_note_not_an_error(monkeypatch):
    from trainer.evaluation import stats as stats_module

    def refuses(*_args, **_kwargs):
        raise ValueError("x and y must have the same length")

    monkeypatch.setattr(stats_module.stats, "wilcoxon", refuses)
    out = paired_test(np.array([0.9, 0.8, 0.7]), np.array([0.91, 0.82, 0.69]))
    assert out["p_wilcoxon"] is None and out["note"] == "Wilcoxon test not possible: x and y must have the same length"


def test_format_prints_four_decimals_and_a_dash_for_what_is_missing():
    cmp = {
        "a": {"name": "A"}, "b": {"name": "B"}, "n_pairs": 3, "only_in_a": [], "only_in_b": [], "alpha": 0.05,
        "metrics": {
            "dice": {"mean_a": 0.91234, "mean_b": 0.9201, "mean_diff": 0.00776, "ci95": [0.001, 0.0145],
                     "p_wilcoxon": 0.0123, "n": 3, "significant": True, "note": None},
            "hd95": {"mean_a": None, "mean_b": None, "mean_diff": None, "ci95": None,
                     "p_wilcoxon": None, "n": 0, "significant": False, "note": None},
        },
    }
    rows = {line.split()[0]: line.split() for line in format_comparison(cmp).splitlines()[2:] if line.split()}
    assert rows["dice"][:4] == ["dice", "0.9123", "0.9201", "+0.0078"]
    assert rows["dice"][4:6] == ["[+0.0010,", "+0.0145]"] and rows["dice"][6:8] == ["0.0123", "3"]
    assert rows["hd95"] == ["hd95", "-", "-", "-", "-", "-", "0"]
