"""The lung box head: where the lungs are, read off the image embedding, for zero-click use.

Why a head and not only a whole-image box: a SAM prompted with the whole image draws what
looks most like a mask there (often body or lungs plus mediastinum), and every refinement
starts from that. A small head on the encoder's output (256 x 16 x 16 for the compact model),
trained on the same data as the model, puts a both-lung box and one box per lung close to
where a user would draw them; the model's own masks then tighten them
(:mod:`engine.propose`).

Coordinate frame: boxes are x0, y0, x1, y1 divided by the model's input size (``img_size``),
in the padded square input frame of :mod:`engine.sam.preprocess` (resized long side, padding
right/bottom), so 0..1 spans the input square, not the original image.
"""

from __future__ import annotations

import torch
from torch import nn

BOX_KINDS = ("union", "image_left", "image_right")


class BoxHead(nn.Module):
    """embedding B x C x G x G -> boxes B x 3 x 4 (``BOX_KINDS`` order, input frame / img_size).

    It reads the first ``in_channels`` channels: SAM's embedding, also when a hi-res model's
    embedding carries detail features after it (:mod:`engine.sam.hires`).

    Two convolutions keep the spatial layout (the lungs' position is the answer), a strided one
    halves the grid, then an MLP regresses the twelve numbers through a sigmoid.
    """

    def __init__(self, in_channels: int = 256, grid: int = 16, width: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.in_channels, self.grid, self.width, self.hidden = in_channels, grid, width, hidden
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.GELU(),
        )
        reduced = (grid + 1) // 2
        self.regress = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * reduced * reduced, hidden),
            nn.GELU(),
            nn.Linear(hidden, len(BOX_KINDS) * 4),
        )

    def arch(self) -> dict[str, int]:
        """What :func:`box_head_from_arch` needs to rebuild this head (stored in model.json)."""
        return {"in_channels": self.in_channels, "grid": self.grid, "width": self.width, "hidden": self.hidden}

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        raw = self.regress(self.features(embedding[:, : self.in_channels])).view(-1, len(BOX_KINDS), 4)
        boxes = torch.sigmoid(raw)
        # x0 <= x1 and y0 <= y1 by construction: sort each pair
        xs, _ = torch.sort(boxes[..., 0::2], dim=-1)
        ys, _ = torch.sort(boxes[..., 1::2], dim=-1)
        return torch.stack([xs[..., 0], ys[..., 0], xs[..., 1], ys[..., 1]], dim=-1)


def box_head_from_arch(arch: dict[str, object]) -> BoxHead:
    """Rebuild a head from its recorded ``arch``; ValueError on anything but small positive ints."""
    values: dict[str, int] = {}
    for key in ("in_channels", "grid", "width", "hidden"):
        value = arch.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 4096:
            raise ValueError(f"box head {key} must be a whole number in 1..4096, not {value!r}")
        values[key] = value
    return BoxHead(**values)
