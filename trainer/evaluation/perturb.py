"""How other sites' exports differ, as fixed, named perturbations for the robustness table.

Each perturbation maps a uint8 radiograph (grey or RGB, original size) and its bool lung mask
to the perturbed pair; only the black border moves the lungs (the image is framed by black
film, so the mask is framed too). Parameters are fixed so the table can be re-measured:
gamma 0.5 / 2.0, brightness +60, contrast x0.5 around the image mean, JPEG quality 30, a
black border of 12 % of each side, burnt-in text and arrows (seeded positions, also over
the lungs: the lung under a label is still lung).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Perturbation = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _lut(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    return np.clip(table, 0, 255).astype(np.uint8)[image]


def gamma(g: float) -> Perturbation:
    table = 255.0 * (np.arange(256) / 255.0) ** g
    return lambda image, mask: (_lut(image, table), mask)


def brightness(delta: float) -> Perturbation:
    table = np.arange(256) + delta
    return lambda image, mask: (_lut(image, table), mask)


def contrast(factor: float) -> Perturbation:
    def apply(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = float(image.mean())
        return _lut(image, (np.arange(256) - mean) * factor + mean), mask
    return apply


def jpeg(quality: int) -> Perturbation:
    def apply(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok, enc = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return cv2.imdecode(enc, cv2.IMREAD_UNCHANGED).reshape(image.shape), mask
    return apply


def black_border(fraction: float) -> Perturbation:
    def apply(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = mask.shape
        dy, dx = int(round(fraction * h)), int(round(fraction * w))
        pad = ((dy, dy), (dx, dx)) + ((0, 0),) * (image.ndim - 2)
        return np.pad(image, pad), np.pad(mask, ((dy, dy), (dx, dx)))
    return apply


def burnt_in_text(seed: int = 0) -> Perturbation:
    def apply(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = np.ascontiguousarray(image.copy())
        h, w = mask.shape
        scale = max(h, w) / 512
        colour = (255,) * (3 if out.ndim == 3 else 1)
        for word in ("R", "PORTABLE", "AP SUPINE", "12/03/2020 08:41"):
            x, y = int(rng.uniform(0.05, 0.7) * w), int(rng.uniform(0.1, 0.95) * h)
            cv2.putText(out, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9 * scale, colour,
                        max(1, int(2 * scale)), cv2.LINE_AA)
        x, y = int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h)
        cv2.arrowedLine(out, (x, y), (int(x + 0.12 * w), int(y - 0.08 * h)), colour, max(1, int(3 * scale)),
                        cv2.LINE_AA, tipLength=0.3)
        return out, mask
    return apply


PERTURBATIONS: dict[str, Perturbation] = {
    "gamma 0.5": gamma(0.5),
    "gamma 2.0": gamma(2.0),
    "brightness +60": brightness(60),
    "contrast x0.5": contrast(0.5),
    "JPEG q30": jpeg(30),
    "12% black border": black_border(0.12),
    "burnt-in text": burnt_in_text(0),
}
