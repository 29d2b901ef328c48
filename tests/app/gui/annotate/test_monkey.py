"""A seeded monkey drives the real window through thousands of random user actions (boxes,
degenerate ones included, clicks, brush and eraser strokes, undo/redo runs, label and style
switches, image changes, saves, exports, model switches, trainer start/cancel), checking
after every step: no exception reached Qt's event loop, undo back to the start restores the
first state exactly, what was saved comes back exactly, the lungs never overlap, and the
store's rows match its mask files (sha256).

CI: ``LUNGSAM_MONKEY_ACTIONS`` (default 2,000) with a new seed each run, printed; replay a
failure with ``LUNGSAM_MONKEY_SEED=<seed>``. ``-m slow`` runs 20,000.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.project import check_project
from tests.app.conftest import click, drag_box, wait_ready, wait_settled
from tests.app.gui.annotate.test_edit import brush_drag

H, W = 96, 112  # synthetic_folder's image size


class Monkey:
    """The random actions and the invariants; ``log`` holds the last actions for the report."""

    def __init__(self, qtbot, window, rng: random.Random, models: list[str], out: Path) -> None:
        self.qtbot, self.w, self.rng, self.models, self.out = qtbot, window, rng, models, out
        self.log: list[str] = []
        self.counts: dict[str, int] = {}
        self.initial: dict[str, np.ndarray] = {}
        self.initial_prompts: dict = {}
        self.left: dict[str, dict[str, np.ndarray]] = {}  # rel -> masks when we left it
        self.exports = 0
        self.undo_runs = 0
        self.restores = 0
        window.image_shown.connect(self._arrived)
        self._arrived(window.index)

    # -- bookkeeping -----------------------------------------------------------------------
    def _arrived(self, _row: int) -> None:
        session = self.w.annotator.session
        if session is None:
            return
        if session.rel_path in self.left:  # what we saved when leaving must come back exactly
            expected = self.left[session.rel_path]
            for label in set(session.masks) | set(expected):  # no mask = an empty mask
                got = session.masks.get(label, np.zeros((H, W), bool))
                assert np.array_equal(got, expected.get(label, np.zeros((H, W), bool))), (session.rel_path, label)
            self.restores += 1
        self.initial = {k: m.copy() for k, m in session.masks.items()}
        self.initial_prompts = session.prompt_state()

    def point(self, margin: int = 0) -> tuple[float, float]:
        return (self.rng.uniform(-margin, W + margin), self.rng.uniform(-margin, H + margin))

    def settle(self) -> None:
        wait_settled(self.qtbot, self.w)
        wait_ready(self.qtbot, self.w)

    # -- actions ---------------------------------------------------------------------------
    def box(self) -> None:
        self.w.on_tool_box()
        x0, y0 = self.point(10)
        kind = self.rng.random()
        if kind < 0.15:
            x1, y1 = x0, y0  # a click, not a box
        elif kind < 0.3:
            x1, y1 = x0, y0 + self.rng.uniform(5, 40)  # zero width
        else:
            x1, y1 = self.point(10)
        drag_box(self.qtbot, self.w, (x0, y0, x1, y1), steps=self.rng.randint(1, 4))

    def click(self) -> None:
        positive = self.rng.random() < 0.6
        self.w.on_tool_positive() if positive else self.w.on_tool_negative()
        click(self.w, *self.point())

    def stroke(self) -> None:
        self.w.on_tool_brush() if self.rng.random() < 0.6 else self.w.on_tool_eraser()
        brush_drag(self.w, [self.point(5) for _ in range(self.rng.randint(1, 5))])

    def undo(self) -> None:
        self.w.on_undo()

    def redo(self) -> None:
        self.w.on_redo()

    def undo_run(self) -> None:
        """Undo everything, compare with the image's first state, redo as many steps back."""
        session = self.w.annotator.session
        if session is None or len(session.history) >= session.history.max_steps:
            return  # the oldest steps were dropped by the history's bound: no start to reach
        now = {k: m.copy() for k, m in session.masks.items()}
        now_prompts = session.prompt_state()
        steps = 0
        while self.w.annotator.undo():
            steps += 1
        assert set(session.masks) == set(self.initial)
        for label, mask in self.initial.items():
            assert np.array_equal(session.masks[label], mask), label
        assert session.prompt_state() == self.initial_prompts
        for _ in range(steps):  # exactly as many: earlier undos stay undone
            assert self.w.annotator.redo()
        assert {k: m.tobytes() for k, m in session.masks.items()} == {k: m.tobytes() for k, m in now.items()}
        assert session.prompt_state() == now_prompts
        self.undo_runs += 1

    def label(self) -> None:
        self.rng.choice([self.w.on_label_1, self.w.on_label_2, self.w.on_label_3])()

    def style(self) -> None:
        self.w.on_next_style()

    def edit_op(self) -> None:
        self.rng.choice([self.w.on_fill_holes, self.w.on_remove_islands, self.w.on_clear_label])()

    def navigate(self) -> None:
        session = self.w.annotator.session
        if session is not None:
            self.w.save_current(reason="image change")
            self.left[session.rel_path] = {k: m.copy() for k, m in session.masks.items()}
        self.w.on_next_image() if self.rng.random() < 0.5 else self.w.on_previous_image()

    def save(self) -> None:
        self.rng.choice([self.w.on_save, lambda: self.w.save_current(reason="autosave")])()

    def export(self) -> None:
        with self.qtbot.waitSignal(self.w.export_done, timeout=30000) as blocker:
            self.w.export_to(self.out / f"export{self.exports}", formats=["png", "coco"])
        assert not isinstance(blocker.args[0], Exception), blocker.args[0]
        self.exports += 1

    def model(self) -> None:
        self.w.load_model(self.rng.choice(self.models), "cpu")
        self.qtbot.waitUntil(lambda: not self.w.model_loading, timeout=30000)

    def trainer(self) -> None:
        """Start (a stand-in child that sleeps, not a real training) or cancel the run."""
        from app.gui.trainer.job import JobStep

        pane = self.w.trainer_pane
        if pane.running:
            pane.cancel()
            self.qtbot.waitUntil(lambda: not pane.running, timeout=30000)
            self.counts["trainer cancelled"] = self.counts.get("trainer cancelled", 0) + 1
            return
        pane.program = [sys.executable, "-c", "import time; time.sleep(120)"]
        pane.make_steps = lambda finetune: [JobStep("stage1", lambda: [], None)]
        if pane.start():  # else refused with a reason (no corrections yet, read-only...)
            self.counts["trainer started"] = self.counts.get("trainer started", 0) + 1

    ACTIONS = {"box": 22, "click": 8, "stroke": 14, "undo": 10, "redo": 6, "undo_run": 2,
               "label": 8, "style": 3, "edit_op": 3, "navigate": 6, "save": 4, "export": 0.3,
               "model": 0.4, "trainer": 0.3}

    def step(self, n: int) -> None:
        name = self.rng.choices(list(self.ACTIONS), weights=list(self.ACTIONS.values()))[0]
        self.log = [*self.log[-19:], f"{n}: {name}"]
        self.counts[name] = self.counts.get(name, 0) + 1
        getattr(self, name)()
        self.settle()
        self.check()

    def check(self) -> None:
        session = self.w.annotator.session
        if session is not None:
            right, left = session.masks.get("right lung"), session.masks.get("left lung")
            if right is not None and left is not None:
                assert not (right & left).any(), "the lungs overlap"
            for mask in session.masks.values():
                assert mask.shape == (H, W) and mask.dtype == bool


def run_monkey(qtbot, make_window, synthetic_folder, styled_tiny_sam, tmp_path, actions: int) -> None:
    from engine.models import save_sam_folder

    seed = int(os.environ.get("LUNGSAM_MONKEY_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\nmonkey seed {seed} (replay: LUNGSAM_MONKEY_SEED={seed})", flush=True)
    styled = save_sam_folder(tmp_path / "styled-model", *styled_tiny_sam)
    errors: list[str] = []
    hook = sys.excepthook

    def record(kind, value, tb) -> None:  # an exception reaching Qt's event loop
        import traceback

        errors.append("".join(traceback.format_exception(kind, value, tb)))

    sys.excepthook = record
    window = make_window([synthetic_folder], autosave_ms=10**8)  # saves by the seed alone
    from engine.models import default_model_name

    monkey = Monkey(qtbot, window, random.Random(seed), [default_model_name(), str(styled)], tmp_path)
    start = time.monotonic()
    blocks: list[float] = []  # seconds per 500 actions: flat, or something grows
    try:
        for n in range(actions):
            if n % 500 == 0:
                blocks.append(time.monotonic())
            try:
                monkey.step(n)
                assert not errors, errors[0]
                if n % 200 == 199 or monkey.log[-1].endswith(("save", "navigate")) and n % 20 == 0:
                    assert window.project.store.verify() == []
            except BaseException as exc:
                raise AssertionError(f"seed {seed}, after: {monkey.log}\n{exc}") from exc
        if window.trainer_pane.running:
            window.trainer_pane.cancel()
            qtbot.waitUntil(lambda: not window.trainer_pane.running, timeout=30000)
        window.save_current(reason="close")
        assert window.project.store.verify() == []
        assert check_project(synthetic_folder) == []
    finally:
        sys.excepthook = hook
    seconds = time.monotonic() - start
    per_block = [f"{b - a:.1f}" for a, b in zip(blocks, [*blocks[1:], start + seconds], strict=True)]
    versions = sum(len(window.project.store.history(r.rel_path)) for r in window.project.records)
    print(f"monkey: {actions} actions in {seconds:.1f} s (seed {seed}): {versions} versions saved, "
          f"{monkey.undo_runs} undo-to-start runs, {monkey.restores} restores compared, "
          f"{monkey.exports} exports, 0 exceptions, 0 overlaps, store verified; s per 500 actions "
          f"{per_block}; "
          f"actions {dict(sorted(monkey.counts.items()))}")


def test_monkey_2000_actions(qtbot, gui_model, synthetic_folder, styled_tiny_sam, make_window, tmp_path):
    actions = int(os.environ.get("LUNGSAM_MONKEY_ACTIONS", "2000"))
    run_monkey(qtbot, make_window, synthetic_folder, styled_tiny_sam, tmp_path, actions)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_monkey_20000_actions(qtbot, gui_model, synthetic_folder, styled_tiny_sam, make_window, tmp_path):
    run_monkey(qtbot, make_window, synthetic_folder, styled_tiny_sam, tmp_path, 20000)
