"""GDCM as the last decoder for compressed DICOM pixel data that pydicom's plugins refuse.

12-bit JPEG Extended (1.2.840.10008.1.2.4.51, e.g. pydicom's JPEG-lossy.dcm) is valid DICOM,
but pylibjpeg stops at its scan header and pydicom will not hand 12-bit JPEG Extended to
GDCM; GDCM's own reader decodes it. Imported only when such a file comes. GDCM's trace is
switched off and its bundled libjpeg, which prints "Unsupported JPEG data precision 12" on
its way to the 12-bit codec, writes to a muted stderr: nothing but our own one-line error
may reach the user. (The mute is process-wide for the few milliseconds of one decode.)
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

import numpy as np

_DTYPES = {"UINT8": np.uint8, "INT8": np.int8, "UINT16": np.uint16, "INT16": np.int16,
           "UINT32": np.uint32, "INT32": np.int32}


def gdcm_available() -> bool:
    try:
        import gdcm  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _muted_stderr() -> Iterator[None]:
    """C libraries print straight to file descriptor 2; point it at /dev/null meanwhile."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def decode_with_gdcm(data: bytes, rows: int, columns: int) -> np.ndarray | None:
    """Stored values (rows x columns, single-sample) of the DICOM file ``data``, or None
    when GDCM cannot decode it either."""
    import gdcm

    gdcm.Trace.WarningOff()
    gdcm.Trace.ErrorOff()
    gdcm.Trace.DebugOff()
    handle, path = tempfile.mkstemp(suffix=".dcm")  # GDCM's Python reader wants a file name
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        reader = gdcm.ImageReader()
        reader.SetFileName(path)
        with _muted_stderr():
            if not reader.Read():
                return None
            image = reader.GetImage()
            buffer = image.GetBuffer().encode("utf-8", errors="surrogateescape")
        fmt = image.GetPixelFormat()
        dtype = _DTYPES.get(fmt.GetScalarTypeAsString())
        if dtype is None or fmt.GetSamplesPerPixel() != 1:
            return None
        if (image.GetDimension(1), image.GetDimension(0)) != (rows, columns):
            return None
        values = np.frombuffer(buffer, dtype=dtype)
        if values.size != rows * columns:
            return None
        return values.reshape(rows, columns).copy()
    except Exception:
        return None
    finally:
        os.unlink(path)
