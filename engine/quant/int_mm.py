"""``torch._int_mm`` (INT8 x INT8 -> INT32) with CUDA's shape rules met by zero padding.

On the CPU ``torch._int_mm`` takes any 2-D shape. On CUDA (cuBLASLt) it needs ``a`` (M x K)
with M > 16 and K a multiple of 8, and ``b`` (K x N) with N a multiple of 8, ``b`` column-major.
Zero rows and columns change no integer sum, so padding ``a`` with zero rows/columns and the
weight with zero rows/columns, then cutting the result back to M x N, gives exactly the
unpadded product. The weight is padded once (cached by the caller), the activation per call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: cuBLASLt's rules for torch._int_mm: more than 16 rows, inner and output sizes multiples of 8.
CUDA_MIN_ROWS = 17
CUDA_MULTIPLE = 8


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def needs_padding(device: torch.device | str) -> bool:
    """Whether ``torch._int_mm`` on ``device`` has shape rules (CUDA) or takes any shape (CPU)."""
    return torch.device(device).type == "cuda"


def padded_shape(m: int, k: int, n: int, pad: bool = True) -> tuple[int, int, int]:
    """(M, K, N) of an M x K @ K x N product after padding to the CUDA rules (unchanged if
    ``pad`` is false)."""
    if m < 1 or k < 1 or n < 1:
        raise ValueError(f"empty product {m} x {k} @ {k} x {n}")
    if not pad:
        return m, k, n
    return max(m, CUDA_MIN_ROWS), _round_up(k, CUDA_MULTIPLE), _round_up(n, CUDA_MULTIPLE)


def pad_weight_t(weight_int8: torch.Tensor, pad: bool = True) -> torch.Tensor:
    """An (N, K) int8 weight as the K' x N' right operand: column-major (the transpose of a
    contiguous N' x K' tensor), zero-padded to multiples of 8 when ``pad``."""
    n, k = weight_int8.shape
    _, k_pad, n_pad = padded_shape(1, k, n, pad)
    w = F.pad(weight_int8, (0, k_pad - k, 0, n_pad - n)) if (k_pad, n_pad) != (k, n) else weight_int8
    return w.contiguous().t()


def int_mm(q: torch.Tensor, w_t: torch.Tensor, n: int, pad: bool = True) -> torch.Tensor:
    """INT32 (M, n) = ``q`` (M, K) int8 @ ``w_t`` (K' >= K, N' >= n) int8 from :func:`pad_weight_t`.

    With ``pad`` the rows and inner dimension of ``q`` are zero-padded to the CUDA rules and
    the result cut back; without it ``q`` must already fit ``w_t`` (the CPU case).
    """
    m, k = q.shape
    k_pad = w_t.shape[0]
    m_pad = padded_shape(m, k, n, pad)[0]
    if (m_pad, k_pad) != (m, k):
        q = F.pad(q, (0, k_pad - k, 0, m_pad - m))
    acc = torch._int_mm(q, w_t)
    return acc if acc.shape == (m, n) else acc[:m, :n]
