"""A long annotation day (``-m slow``): walk 1,000 images of 2048 x 2048 forward and back in
the real window, a box and a brush stroke on each (saved on every image change), and print
the curve of process RSS and box-to-mask time. Bounds: RSS < 1.25 GiB at each curve point
(sampled right after an image change), < 2 GiB at every step (transient peaks: a 2048 x 2048
image decoded and its neighbour prefetched while the masks restore), and the last tenth's
median box-to-mask time within 3x (+20 ms) of the first tenth's; on the forward walk alone
(every image met in the same state) within 1.5x (+10 ms): flat.

``LUNGSAM_LONG_IMAGES`` sets the number of images (default 1,000). The model is the tiny test
SAM (tests/sam_factory.py): this guards the window's own growth (caches, history, overlays,
store), not the encoder's speed (see benchmarks/ for the shipped model).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import drag_box, synthetic_cxr, wait_ready, wait_settled
from tests.app.gui.annotate.test_edit import brush_drag

SIDE = 2048
RSS_BOUND = 2048 << 20
SETTLED_BOUND = 1280 << 20
STEP = int(os.environ.get("LUNGSAM_LONG_CURVE_STEP", "100"))


def rss() -> int:
    """Resident set size of this process in bytes (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_images(folder, count: int) -> None:
    base = np.array(Image.fromarray(synthetic_cxr(0)).resize((SIDE, SIDE), Image.BILINEAR))
    for i in range(count):
        image = base.copy()
        image[:16, :1024] = np.unpackbits(np.array([i], ">u4").view(np.uint8))[None, :].repeat(32, 1)[:, :1024] * 255
        Image.fromarray(image).save(folder / f"case{i:04d}.png", compress_level=1)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_long_session_stays_bounded_and_flat(qtbot, gui_model, make_window, tmp_path):
    count = int(os.environ.get("LUNGSAM_LONG_IMAGES", "1000"))
    folder = tmp_path / "day"
    folder.mkdir()
    start = time.monotonic()
    make_images(folder, count)
    made = time.monotonic() - start
    window = make_window([folder], autosave_ms=10**8)
    order = [*range(count), *reversed(range(count))]
    curve: list[tuple[int, float, float]] = []  # step, RSS MiB, box-to-mask ms
    times: list[float] = []
    peak = 0
    for step, index in enumerate(order):
        window.go_to(index)
        wait_ready(qtbot, window, timeout=60000)
        x0 = 200 + (step % 7) * 20
        sent = time.perf_counter()
        drag_box(qtbot, window, (x0, 300, 1900 - x0, 1800), steps=2)
        wait_settled(qtbot, window, timeout=60000)
        times.append(time.perf_counter() - sent)
        window.on_tool_brush()
        brush_drag(window, [(600.5, 900.5), (700.5, 1000.5)])
        window.on_tool_box()
        peak = max(peak, rss())
        if step % STEP == 0 or step == len(order) - 1:
            curve.append((step, rss() / 2**20, statistics.median(times[-100:]) * 1000))
    window.save_current(reason="close")
    tenth = max(1, len(times) // 10)
    first, last = statistics.median(times[:tenth]), statistics.median(times[-tenth:])
    # the fair comparison: the forward walk meets every image in the same state (never seen),
    # the walk back meets images that restore a saved box and brush stroke first
    forward = times[:count]
    fw_tenth = max(1, count // 10)
    fw_first, fw_last = statistics.median(forward[:fw_tenth]), statistics.median(forward[-fw_tenth:])
    print(f"\nlong session: {count} images {SIDE}x{SIDE} (made in {made:.0f} s), {len(order)} steps "
          f"forward and back in {time.monotonic() - start - made:.0f} s; peak RSS {peak / 2**20:.0f} MiB "
          f"(bound {RSS_BOUND >> 20} MiB); box-to-mask median first tenth {first * 1000:.0f} ms, "
          f"last tenth {last * 1000:.0f} ms; forward walk only: first tenth {fw_first * 1000:.0f} ms, "
          f"last tenth {fw_last * 1000:.0f} ms")
    settled = max(mib for _step, mib, _ms in curve)
    print(f"settled RSS (curve points) at most {settled:.0f} MiB (bound {SETTLED_BOUND >> 20} MiB)")
    print("step  RSS MiB  box-to-mask ms (median of the last 100)")
    for step, mib, ms in curve:
        print(f"{step:5d}  {mib:7.0f}  {ms:6.0f}")
    assert peak < RSS_BOUND, f"peak RSS {peak / 2**20:.0f} MiB"
    assert settled * 2**20 < SETTLED_BOUND, f"settled RSS {settled:.0f} MiB"
    assert last <= 3 * first + 0.02
    assert fw_last <= 1.5 * fw_first + 0.01, (fw_first, fw_last)  # same work, image 1 or image 1,000
    assert window.project.store.verify() == []
