"""GDCM as the last decoder for compressed DICOM pixel data that pydicom's plugins refuse,
always in a child process.

12-bit JPEG Extended (1.2.840.10008.1.2.4.51, e.g. pydicom's JPEG-lossy.dcm) is valid DICOM,
but pylibjpeg stops at its scan header; GDCM's own reader decodes it. GDCM, however, aborts
the whole process (a C++ exception out of its JPEG codec, SIGABRT) on some corrupt JPEG data
(found by ``tests/engine/imaging/test_fuzz_io.py``), and an abort in the GUI would lose the
user's session. So GDCM never runs in our process: pydicom's own GDCM plugin is switched off
(:func:`keep_gdcm_out_of_process`), and :func:`decode_with_gdcm` runs GDCM in a child
(``python -m engine.imaging.gdcm_io FILE``, about half a second, only for the rare files that
need it). A crash there is "cannot decode"; GDCM's and libjpeg's messages ("Unsupported JPEG
data precision 12") go to the child's muted stderr: nothing but our own one-line error may
reach the user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_DTYPES = {"UINT8": np.uint8, "INT8": np.int8, "UINT16": np.uint16, "INT16": np.int16,
           "UINT32": np.uint32, "INT32": np.int32}
CHILD_SECONDS = 60.0
"""A child still decoding after this is killed and the file refused."""


def gdcm_available() -> bool:
    try:
        import gdcm  # noqa: F401
    except ImportError:
        return False
    return True


def keep_gdcm_out_of_process() -> None:
    """Remove pydicom's GDCM plugin from every pixel-data decoder (pydicom tries it FIRST for
    JPEG when python-gdcm is installed); pylibjpeg and Pillow stay."""
    from pydicom.pixels.decoders import base

    for decoder, _ in base._PIXEL_DATA_DECODERS.values():  # (decoder, the pydicom version that added it)
        if "gdcm" in getattr(decoder, "available_plugins", ()):
            try:
                decoder.remove_plugin("gdcm")
            except (ValueError, KeyError):  # already gone
                pass


def decode_with_gdcm(data: bytes, rows: int, columns: int) -> np.ndarray | None:
    """Stored values (rows x columns, single-sample) of the DICOM file ``data`` decoded by GDCM
    in a child process, or None when GDCM cannot decode it (or crashes, or hangs)."""
    handle, path = tempfile.mkstemp(suffix=".dcm")  # GDCM's Python reader wants a file name
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "engine.imaging.gdcm_io", path], stdin=subprocess.DEVNULL,
                capture_output=True, timeout=CHILD_SECONDS, env=env, check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0:
            return None
        header, _, payload = done.stdout.partition(b"\n")
        dtype = _DTYPES.get(header.decode("ascii", errors="replace"))
        if dtype is None:
            return None
        values = np.frombuffer(payload, dtype=dtype)
        if values.size != rows * columns:
            return None
        return values.reshape(rows, columns).copy()
    finally:
        os.unlink(path)


def _decode_here(path: str) -> tuple[str, bytes] | None:
    """The child's work: (GDCM scalar type, buffer) of a single-sample image, or None."""
    import gdcm

    gdcm.Trace.WarningOff()
    gdcm.Trace.ErrorOff()
    gdcm.Trace.DebugOff()
    reader = gdcm.ImageReader()
    reader.SetFileName(path)
    if not reader.Read():
        return None
    image = reader.GetImage()
    fmt = image.GetPixelFormat()
    if fmt.GetSamplesPerPixel() != 1 or fmt.GetScalarTypeAsString() not in _DTYPES:
        return None
    return fmt.GetScalarTypeAsString(), image.GetBuffer().encode("utf-8", errors="surrogateescape")


def _child_main(argv: list[str]) -> int:
    try:
        decoded = _decode_here(argv[0])
    except Exception:
        return 1
    if decoded is None:
        return 1
    kind, buffer = decoded
    sys.stdout.buffer.write(kind.encode("ascii") + b"\n" + buffer)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
