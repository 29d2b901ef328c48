"""The compare view (View > Compare models, ``lungsam gui --compare A B``): two models on the
same image and the same live box, their masks, timings, sizes and the Dice/IoU between them."""

from app.gui.compare.side import CompareSide
from app.gui.compare.window import DEFAULT_A, DEFAULT_B, CompareWindow, agreement

__all__ = ["DEFAULT_A", "DEFAULT_B", "CompareSide", "CompareWindow", "agreement"]
