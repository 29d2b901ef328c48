"""Figures of the run report, each returned as a base64 PNG ready for a ``data:`` URI.

Uses matplotlib's object API with the Agg canvas (``Figure`` + ``FigureCanvasAgg``), never
``pyplot``: no global backend is switched, so the report can be written from inside the Qt
GUI or a worker thread without side effects.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 90
#: Points drawn in scatter/Q-Q plots; statistics always use every weight.
MAX_POINTS = 20_000


def _new(width: float, height: float, ncols: int = 1, nrows: int = 1) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def to_png_base64(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def loss_curve(steps: Sequence[float], losses: Sequence[float]) -> str:
    """Training loss per step, raw and as a moving average (window ~2% of the steps)."""
    fig, ax = _new(6.5, 3.2)
    ax = ax[0, 0]
    x, y = np.asarray(steps, float), np.asarray(losses, float)
    ax.plot(x, y, color="0.75", lw=0.8, label="loss")
    ax.plot(x, _smooth(y, max(1, len(y) // 50)), color="C0", lw=1.6, label="moving average")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return to_png_base64(fig)


def validation_curve(epochs: Sequence[float], series: dict[str, Sequence[float]]) -> str:
    """Validation Dice per epoch, one line per series (e.g. union and per-lung prompts)."""
    fig, ax = _new(6.5, 3.2)
    ax = ax[0, 0]
    for i, (label, values) in enumerate(series.items()):
        ax.plot(epochs, values, marker="o", ms=3, color=f"C{i}", label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation Dice")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return to_png_base64(fig)


def rank_bars(ranks: dict[str, int], initial: int | None = None) -> str:
    """Final rank per adapted layer (horizontal bars, layer order as given)."""
    names = list(ranks)
    fig, ax = _new(6.5, 1.2 + 0.22 * len(names))
    ax = ax[0, 0]
    y = np.arange(len(names))
    ax.barh(y, [ranks[n] for n in names], color="C2")
    if initial:
        ax.axvline(initial, color="0.4", ls="--", lw=1, label=f"initial rank {initial}")
        ax.legend(frameon=False, loc="lower right")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("rank")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", alpha=0.3)
    return to_png_base64(fig)


def rank_history(x: Sequence[float], totals: Sequence[int], xlabel: str) -> str:
    """Total rank budget over the rank-allocation events."""
    fig, ax = _new(6.5, 2.8)
    ax = ax[0, 0]
    ax.step(x, totals, where="post", color="C3", marker="o", ms=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("total rank (all layers)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return to_png_base64(fig)


def quant_error_figure(fp32: np.ndarray, deq: np.ndarray, seed: int = 0) -> str:
    """Paper Fig. 3: (a) error histogram with a normal fit, (b) FP32 vs INT8, (c) |error| vs
    |weight|, (d) Q-Q plot of the error against a normal distribution."""
    from scipy import stats

    error = fp32 - deq
    mu, sigma = float(error.mean()), float(error.std())
    rng = np.random.default_rng(seed)
    pick = rng.choice(error.size, size=min(error.size, MAX_POINTS), replace=False)
    fig, axes = _new(10, 7.5, ncols=2, nrows=2)
    (a, b), (c, d) = axes
    a.hist(error, bins=80, density=True, color="C0", alpha=0.75)
    if sigma > 0:
        grid = np.linspace(error.min(), error.max(), 200)
        a.plot(grid, stats.norm.pdf(grid, mu, sigma), color="C3", lw=1.5, label="normal fit")
        a.legend(frameon=False)
    a.set_title(f"(a) error FP32 - INT8: mean {mu:.2e}, std {sigma:.2e}", fontsize=9)
    a.set_xlabel("error")
    b.scatter(fp32[pick], deq[pick], s=2, alpha=0.4, color="C1")
    lim = float(np.abs(fp32[pick]).max()) if pick.size else 1.0
    b.plot([-lim, lim], [-lim, lim], color="0.3", lw=0.8, ls="--")
    r = float(np.corrcoef(fp32, deq)[0, 1]) if fp32.size > 1 and fp32.std() > 0 else float("nan")
    b.set_title(f"(b) FP32 vs dequantized INT8 (r = {r:.6f})", fontsize=9)
    b.set_xlabel("FP32 weight")
    b.set_ylabel("INT8 weight (dequantized)")
    c.scatter(np.abs(fp32[pick]), np.abs(error[pick]), s=2, alpha=0.4, color="C2")
    c.set_title("(c) |error| vs |weight|", fontsize=9)
    c.set_xlabel("|FP32 weight|")
    c.set_ylabel("|error|")
    (osm, osr), (slope, intercept, r_qq) = stats.probplot(error[pick], dist="norm")
    d.scatter(osm, osr, s=2, color="C4")
    d.plot(osm, slope * osm + intercept, color="C3", lw=1)
    d.set_title(f"(d) Q-Q plot against a normal (R^2 = {r_qq ** 2:.4f})", fontsize=9)
    d.set_xlabel("theoretical quantiles")
    d.set_ylabel("ordered errors")
    a.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    for axis, ax in (("y", c), ("y", d)):
        ax.ticklabel_format(axis=axis, style="sci", scilimits=(0, 0))
    for ax in (a, b, c, d):
        ax.grid(alpha=0.3)
    return to_png_base64(fig)


def ssim_figure(rows: list[dict[str, Any]], model_names: Sequence[str]) -> str:
    """Paper Fig. 2: per image input, ground truth, first model's prediction and its SSIM map,
    further models' SSIM maps and the difference of the last to the first.

    ``rows``: dicts with ``name``, ``image`` (HxW or HxWx3 uint8), ``gt`` (bool HxW),
    ``preds`` and ``ssim_maps`` (one per model), ``ssim`` (one mean SSIM per model).
    """
    extra = len(model_names) - 1
    ncols = 4 + extra + (1 if extra else 0)
    fig, axes = _new(2.3 * ncols, 2.5 * len(rows), ncols=ncols, nrows=len(rows))
    for i, row in enumerate(rows):
        panels = [
            (row["image"], "input", {"cmap": "gray"}),
            (row["gt"], "ground truth", {"cmap": "gray"}),
            (row["preds"][0], f"prediction ({model_names[0]})", {"cmap": "gray"}),
        ]
        for k, name in enumerate(model_names):
            title = f"SSIM {name} ({row['ssim'][k]:.3f})"
            panels.append((row["ssim_maps"][k], title, {"cmap": "viridis", "vmin": 0, "vmax": 1}))
        if extra:
            delta = row["ssim_maps"][-1] - row["ssim_maps"][0]
            span = max(float(np.abs(delta).max()), 1e-6)
            norm = TwoSlopeNorm(0.0, -span, span)
            panels.append((delta, f"dSSIM ({model_names[-1]} - {model_names[0]})",
                           {"cmap": "RdYlGn", "norm": norm}))
        for j, (img, title, kw) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, interpolation="nearest", **kw)
            ax.set_title(title, fontsize=7)
            ax.set_axis_off()
        axes[i, 0].text(0, -0.08, row["name"], transform=axes[i, 0].transAxes, fontsize=7,
                        va="top")
    return to_png_base64(fig)
