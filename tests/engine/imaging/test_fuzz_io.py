"""Hostile image files: mutated PNG, JPEG, TIFF and DICOM bytes never crash, hang or blow up memory.

Every case starts from a valid file built here (8/16-bit PNG, JPEG, 8/16-bit TIFF, DICOM
uncompressed, RLE and JPEG baseline), applies a few byte mutations drawn by hypothesis (bit
flips, boundary values in 32-bit fields, inserted or deleted runs, truncation) and loads the
result in a forked child. The child has an address-space limit (RLIMIT_AS, baseline + 2 GiB)
and the parent gives it ``CASE_SECONDS``; a case passes only when it ends in a consistent
:class:`LoadedImage` or an :class:`ImageLoadError` naming the file. A crash (signal), a hang
(killed at the time limit), an exception of any other type or "not enough memory" fails.

Run ``pytest tests/engine/imaging/test_fuzz_io.py -s`` to see the summary line with the figures.
"""

from __future__ import annotations

import io
import json
import os
import resource
import select
import signal
import struct
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pydicom
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, generate_uid

from engine.errors import ImageLoadError
from engine.imaging import MAX_PIXELS, apply_window, load_image_bytes

CASE_SECONDS = 5.0  # a case still running after this is a hang and fails the test
MEMORY_HEADROOM = 2 << 30  # address space a child may add to what it inherits
EXAMPLES_PER_SEED = 50
RNG = np.random.default_rng(2024)

# ----------------------------------------------------------------------------- seed files


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _tiff(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr)
    return buf.getvalue()


def _dicom(arr: np.ndarray, syntax: str = "raw") -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("f.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = 12 if arr.dtype == np.uint16 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PixelData = arr.tobytes()
    if syntax == "rle":
        ds.compress(RLELossless)
    elif syntax == "jpeg":
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([_jpeg(arr)])
        ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    """Valid files, each checked to load before it is mutated."""
    grey8 = RNG.integers(0, 256, (24, 32), dtype=np.uint8)
    grey12 = RNG.integers(0, 4096, (24, 32), dtype=np.uint16)
    rgb = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    return {
        "png8.png": _png(grey8),
        "png16.png": _png(grey12 * 16),
        "jpeg.jpg": _jpeg(rgb),
        "tiff8.tif": _tiff(grey8),
        "tiff16.tif": _tiff(grey12),
        "dicom_raw.dcm": _dicom(grey12),
        "dicom_rle.dcm": _dicom(grey12, "rle"),
        "dicom_jpeg.dcm": _dicom(grey8, "jpeg"),
    }


SEEDS = _seeds()

# ----------------------------------------------------------------------------- mutations

# Positions: mostly in the first few hundred bytes (headers), some anywhere (mod length).
_POS = st.one_of(st.integers(0, 400), st.integers(0, 1 << 20))
_MUTATION = st.one_of(
    st.tuples(st.just("flip"), _POS, st.integers(0, 7)),
    st.tuples(st.just("byte"), _POS, st.one_of(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]), st.integers(0, 255))),
    st.tuples(
        st.just("word"), _POS,
        st.sampled_from([0, 1, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 50_000]),
    ),
    st.tuples(st.just("insert"), _POS, st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("delete"), _POS, st.integers(1, 64)),
    st.tuples(st.just("truncate"), _POS, st.just(0)),
)
MUTATIONS = st.lists(_MUTATION, min_size=1, max_size=4)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC that can be found, so mutations reach the decoder instead of
    stopping at Pillow's checksum test."""
    import zlib

    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        (length,) = struct.unpack(">I", out[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(out[pos + 4 : end]) & 0xFFFFFFFF)
        pos = end + 4
    return bytes(out)


def mutate(data: bytes, mutations: list[tuple[str, int, object]], keep_signature: bool = False) -> bytes:
    """Apply ``mutations`` in order; ``keep_signature`` restores the format's magic bytes (and
    PNG chunk CRCs) afterwards, so most cases get past format detection into the decoders."""
    out = _apply(data, mutations)
    if keep_signature and len(out) >= 16:
        magic = slice(128, 132) if data[128:132] == b"DICM" else slice(0, 8)
        out = out[: magic.start] + data[magic] + out[magic.stop :]
        if data.startswith(b"\x89PNG"):
            out = fix_png_crcs(out)
    return out


def _apply(data: bytes, mutations: list[tuple[str, int, object]]) -> bytes:
    out = bytearray(data)
    for kind, position, value in mutations:
        if not out:
            break
        pos = position % len(out)
        if kind == "flip":
            out[pos] ^= 1 << value
        elif kind == "byte":
            out[pos] = value
        elif kind == "word":  # a 32-bit field (sizes, offsets, counts) set to a boundary value
            endian = "<" if position % 2 else ">"
            out[pos : pos + 4] = struct.pack(endian + "I", value)
        elif kind == "insert":
            out[pos:pos] = value
        elif kind == "delete":
            del out[pos : pos + value]
        else:
            del out[max(1, pos) :]
    return bytes(out)


# ----------------------------------------------------------------------------- isolated load


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _child(data: bytes, name: str, write_fd: int) -> None:
    start_kib = _status_kib("VmRSS")
    limit = _vm_size() + MEMORY_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        image = load_image_bytes(data, name, max_pixels=MAX_PIXELS)
    except ImageLoadError as exc:
        message = str(exc)
        if "not enough memory" in message:
            result = {"outcome": "memory", "detail": message}
        elif not message.startswith(name + ": "):
            result = {"outcome": "other", "detail": f"message does not name the file: {message}"}
        else:
            result = {"outcome": "refused", "detail": message}
    except BaseException as exc:
        result = {"outcome": "other", "detail": f"{type(exc).__name__}: {exc}"}
    else:
        problems = []
        if image.pixels.dtype != np.uint8 or image.pixels.ndim not in (2, 3):
            problems.append(f"pixels {image.pixels.dtype} {image.pixels.shape}")
        if image.pixels.size > MAX_PIXELS * 3:
            problems.append(f"{image.pixels.shape} is above the pixel limit")
        if image.raw is not None and not (
            np.isfinite(image.raw).all()
            and np.array_equal(apply_window(image.raw, image.window, image.invert), image.pixels)
        ):
            problems.append("raw/window do not reproduce the pixels")
        result = (
            {"outcome": "other", "detail": "; ".join(problems)}
            if problems
            else {"outcome": "loaded", "detail": f"{image.format} {image.pixels.shape}"}
        )
    result["extra_mib"] = max(0, _status_kib("VmHWM") - start_kib) / 1024
    os.write(write_fd, json.dumps(result).encode())


def load_in_child(data: bytes, name: str) -> dict[str, object]:
    """Load ``data`` in a forked child with a memory limit and a time limit.

    Returns ``{"outcome": loaded|refused|other|memory|crash|hang, "detail", "seconds",
    "extra_mib"}``; ``extra_mib`` is the child's peak resident memory above what it had
    when it started (0 when it crashed or hung).
    """
    read_fd, write_fd = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(read_fd)
            _child(data, name, write_fd)
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    hung = False
    try:
        while True:
            remaining = CASE_SECONDS - (time.monotonic() - start)
            if remaining <= 0:
                hung = True
                os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([read_fd], [], [], remaining)
            if ready:
                chunk = os.read(read_fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    if hung:
        result: dict[str, object] = {"outcome": "hang", "detail": f"still running after {CASE_SECONDS} s"}
    elif os.WIFSIGNALED(status):
        result = {"outcome": "crash", "detail": f"killed by signal {os.WTERMSIG(status)}"}
    else:
        try:
            result = json.loads(b"".join(chunks))
        except json.JSONDecodeError:
            result = {"outcome": "crash", "detail": f"child exited with status {os.WEXITSTATUS(status)}"}
    result.setdefault("extra_mib", 0.0)
    result["seconds"] = seconds
    return result


# ----------------------------------------------------------------------------- tests

TOTALS: Counter[str] = Counter()
WORST = {"seconds": 0.0, "extra_mib": 0.0}


@pytest.fixture(scope="module", autouse=True)
def fuzz_summary() -> Iterator[None]:
    start = time.monotonic()
    yield
    if TOTALS:
        other = sum(v for k, v in TOTALS.items() if k not in ("loaded", "refused"))
        print(
            f"\nimage fuzz: {sum(TOTALS.values())} mutated files tried "
            f"({len(SEEDS)} seed formats), {TOTALS['loaded']} loaded, "
            f"{TOTALS['refused']} refused with ImageLoadError, {other} other; "
            f"slowest case {WORST['seconds']:.2f} s (limit {CASE_SECONDS:.0f} s), "
            f"peak extra memory {WORST['extra_mib']:.0f} MiB (limit {MEMORY_HEADROOM >> 20} MiB), "
            f"{time.monotonic() - start:.1f} s"
        )


def check_case(data: bytes, name: str) -> None:
    result = load_in_child(data, name)
    TOTALS[str(result["outcome"])] += 1
    WORST["seconds"] = max(WORST["seconds"], float(result["seconds"]))
    WORST["extra_mib"] = max(WORST["extra_mib"], float(result["extra_mib"]))
    assert result["outcome"] in ("loaded", "refused"), (
        f"{name} ({len(data)} bytes): {result['outcome']}: {result['detail']}; "
        f"first bytes {data[:48].hex()}"
    )


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seed_file_is_valid(seed: str) -> None:
    image = load_image_bytes(SEEDS[seed], seed)
    assert image.pixels.shape[:2] == (24, 32)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("seed", sorted(SEEDS))
@settings(
    max_examples=EXAMPLES_PER_SEED,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(mutations=MUTATIONS, keep_signature=st.booleans())
def test_mutated_file_loads_or_is_refused(
    seed: str, mutations: list[tuple[str, int, object]], keep_signature: bool
) -> None:
    check_case(mutate(SEEDS[seed], mutations, keep_signature), seed)


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame size in a JPEG's SOF0 segment."""
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def _patch_png_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite IHDR's size and its CRC, so only the size is wrong."""
    import zlib

    ihdr = data[12:29]
    ihdr = ihdr[:4] + struct.pack(">II", width, height) + ihdr[12:]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF) + data[33:]


def _patch_dicom_size(data: bytes, rows: int, cols: int) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Rows, ds.Columns = rows, cols
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _patch_tiff_size(data: bytes, width: int, height: int) -> bytes:
    """Set ImageWidth/ImageLength (tags 256/257, stored as SHORT or LONG) in the first IFD."""
    out = bytearray(data)
    endian = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(endian + "I", data[4:8])[0]
    (count,) = struct.unpack(endian + "H", data[ifd : ifd + 2])
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack(endian + "HH", data[entry : entry + 4])
        if tag in (256, 257):
            value = width if tag == 256 else height
            out[entry + 2 : entry + 12] = struct.pack(endian + "HII", 4, 1, value)  # LONG
    return bytes(out)


@pytest.mark.parametrize(
    ("seed", "patch"),
    [
        ("png8.png", _patch_png_size),
        ("jpeg.jpg", _patch_jpeg_size),
        ("tiff16.tif", _patch_tiff_size),
        ("dicom_raw.dcm", lambda d, w, h: _patch_dicom_size(d, h, w)),
        ("dicom_rle.dcm", lambda d, w, h: _patch_dicom_size(d, h, w)),
        ("dicom_jpeg.dcm", lambda d, w, h: _patch_dicom_size(d, h, w)),
    ],
)
def test_huge_declared_size_is_refused_before_decoding(seed: str, patch) -> None:
    """A 60000 x 60000 header (3.6 G pixels) is refused from the header alone: fast, no memory."""
    data = patch(SEEDS[seed], 60_000, 60_000)
    result = load_in_child(data, seed)
    assert result["outcome"] == "refused", result
    assert "too large" in str(result["detail"]) and f"{MAX_PIXELS:,}" in str(result["detail"])
    assert float(result["seconds"]) < CASE_SECONDS and float(result["extra_mib"]) < 200


def _loop_tiff_pages(data: bytes) -> bytes:
    """Point the first page's "next page" offset back at itself (a one-page cycle)."""
    ifd = struct.unpack("<I", data[4:8])[0]
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    pointer = ifd + 2 + 12 * count
    return data[:pointer] + struct.pack("<I", ifd) + data[pointer + 4 :]


@pytest.mark.parametrize("seed", ["tiff8.tif", "tiff16.tif"])
def test_tiff_whose_page_list_loops_is_refused_not_walked_forever(seed: str) -> None:
    """Found by the fuzz test above: such a file used to hang the loader with growing memory."""
    result = load_in_child(_loop_tiff_pages(SEEDS[seed]), seed)
    assert result["outcome"] == "refused" and "list of pages loops" in str(result["detail"]), result


def test_time_limit_catches_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself: a loader that never returns is killed and reported as a hang."""
    import engine.imaging.loader

    monkeypatch.setattr(engine.imaging.loader, "_decode", lambda *a, **k: time.sleep(60))
    monkeypatch.setitem(globals(), "CASE_SECONDS", 0.5)
    result = load_in_child(SEEDS["png8.png"], "png8.png")
    assert result["outcome"] == "hang" and float(result["seconds"]) < 5


def test_memory_limit_stops_a_runaway_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself: a loader that allocates beyond the headroom fails, not the machine."""
    import engine.imaging.loader

    monkeypatch.setattr(engine.imaging.loader, "_decode", lambda *a, **k: np.ones(MEMORY_HEADROOM + (1 << 30), np.uint8))
    result = load_in_child(SEEDS["png8.png"], "png8.png")
    assert result["outcome"] == "other" and "MemoryError" in str(result["detail"])
