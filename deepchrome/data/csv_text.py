"""Vectorised CSV text: numbers to bytes with numpy, byte-identical to ``str(int)`` and ``'%.6g' % float``.

Every field of a row gets a fixed-width *slot* of a ``uint8`` matrix [rows, width] plus a mask of the
bytes in use; ``matrix[mask]`` read row by row is the CSV text. Digits are right-aligned in their slot
(digit ``j`` of a number, counted from the right, sits ``j`` bytes from the slot's end), so every slot
is filled with whole-column integer arithmetic and no Python loop runs over values.

``%.6g`` rounds the exact binary value to 6 significant digits, halves to even. Here the value is
scaled into [1e5, 1e6) by a power of ten that is exact in double precision (one rounding, relative
error <= 2**-53, so < 1.2e-10 absolute) and rounded with ``rint``; a value whose scaled fraction
lies within 1e-6 of a half, or that needs a power beyond 10**22, is rounded by Python's own
``'%.5e'`` instead (a handful per million). The result is the digits and exponent ``%.6g`` uses.
"""

from __future__ import annotations

import numpy as np

_POW10 = np.array([10**i for i in range(20)], dtype=np.uint64)
_POW10_FLOAT = np.array([float(10**i) for i in range(23)])  # exact doubles
_ZERO = ord("0")
#: How close to a rounding tie (in units of the 6th significant digit) a value is rounded by Python.
_TIE_MARGIN = 1e-6

Slot = tuple[np.ndarray, np.ndarray]
"""``(bytes, used)``: uint8 [rows, width] and bool [rows, width]."""


def constant(text: bytes, rows: int, used: np.ndarray | None = None) -> Slot:
    """A slot holding ``text`` on every row, or only on rows where ``used`` is true.

    Parameters
    ----------
    text
        The bytes of the slot.
    rows
        Number of rows.
    used
        Optional bool [rows]; rows where it is false leave the slot empty.
    """
    chars = np.broadcast_to(np.frombuffer(text, dtype=np.uint8), (rows, len(text)))
    mask = np.ones((rows, len(text)), dtype=bool) if used is None else np.repeat(used[:, None], len(text), axis=1)
    return chars, mask


def count_digits(values: np.ndarray) -> np.ndarray:
    """Decimal digits of non-negative integers (0 has one digit).

    Parameters
    ----------
    values
        Unsigned integer array.

    Returns
    -------
    numpy.ndarray
        int64 array of the same shape, 1..20.
    """
    count = np.ones(values.shape, dtype=np.int64)
    top = int(values.max(initial=0))
    for power in _POW10[1:]:
        if int(power) > top:
            break
        count += values >= power.astype(values.dtype)
    return count


def digit_slot(values: np.ndarray, widths: np.ndarray) -> Slot:
    """The last ``widths`` decimal digits of ``values``, right-aligned (zero-padded where wider).

    Parameters
    ----------
    values
        Non-negative integers [rows].
    widths
        int64 [rows]: how many digits each row shows (0 shows none).

    Returns
    -------
    Slot
        ``(bytes, used)`` of width ``max(widths)``.
    """
    # 32-bit division is about twice as fast as 64-bit; most slots fit.
    small = int(values.max(initial=0)) < 2**32
    rest = values.astype(np.uint32 if small else np.uint64)
    ten = rest.dtype.type(10)
    width = int(widths.max(initial=0))
    chars = np.empty((len(values), width), dtype=np.uint8)
    for j in range(width):
        rest, digit = np.divmod(rest, ten)
        chars[:, width - 1 - j] = digit
    chars += _ZERO
    return chars, widths[:, None] > np.arange(width - 1, -1, -1)


def integer_slots(values: np.ndarray) -> list[Slot]:
    """Slots writing integers exactly as ``str(int(v))``.

    Parameters
    ----------
    values
        Integer array [rows], signed or unsigned, up to 64 bits.
    """
    rows = len(values)
    if np.issubdtype(values.dtype, np.unsignedinteger):
        negative = np.zeros(rows, dtype=bool)
        magnitude = values.astype(np.uint64)
    else:
        signed = values.astype(np.int64)
        negative = signed < 0
        magnitude = np.abs(signed).astype(np.uint64)  # -2**63 wraps to 2**63, its magnitude
    slots = [constant(b"-", rows, negative)] if negative.any() else []
    return [*slots, digit_slot(magnitude, count_digits(magnitude))]


def _scale(values: np.ndarray, power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values * 10**power`` with one rounding, and where that needed an inexact power (|power| > 22)."""
    inexact = np.abs(power) > 22
    factor = _POW10_FLOAT[np.minimum(np.abs(power), 22)]
    with np.errstate(over="ignore", under="ignore"):  # both branches are computed, one is kept
        return np.where(power >= 0, values * factor, values / factor), inexact


def _significant_digits(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Six significant digits and decimal exponent of finite non-negative doubles, as ``%.5e`` rounds.

    Returns
    -------
    mantissa, exponent
        int64 arrays with ``values ~= mantissa * 10**(exponent - 5)``; ``mantissa`` in
        [100000, 999999], or 0 (with exponent 0) for zero.
    """
    zero = values == 0
    safe = np.where(zero, 1.0, values)
    exponent = np.floor(np.log10(safe)).astype(np.int64)
    scaled, inexact = _scale(safe, 5 - exponent)
    exponent = exponent + (scaled >= 1e6) - (scaled < 1e5)  # log10 may miss by one next to a power of ten
    scaled, inexact = _scale(safe, 5 - exponent)
    mantissa = np.rint(scaled)
    carry = mantissa >= 1e6  # 999999.5 and above round up to 1.00000e(exponent + 1)
    mantissa = np.where(carry, 1e5, mantissa).astype(np.int64)
    exponent = exponent + carry
    near_tie = np.abs(scaled - np.floor(scaled) - 0.5) < _TIE_MARGIN
    unsure = ~zero & (near_tie | inexact | (scaled < 1e5) | (scaled >= 1e6))
    for i in np.flatnonzero(unsure):
        digits, _, power_text = (f"{float(values[i]):.5e}").partition("e")
        mantissa[i] = int(digits.replace(".", ""))
        exponent[i] = int(power_text)
    mantissa[zero] = 0
    exponent[zero] = 0
    return mantissa, exponent


def general_float_slots(values: np.ndarray) -> list[Slot]:
    """Slots writing finite floats exactly as ``'%.6g' % float(v)``.

    Parameters
    ----------
    values
        Floating-point array [rows] without NaN or infinity.
    """
    values = values.astype(np.float64)
    rows = len(values)
    negative = np.signbit(values)
    mantissa, exponent = _significant_digits(np.abs(values))
    fixed = (exponent >= -4) & (exponent < 6)
    # Fixed notation shows 5 - exponent decimals, scientific shows 5; both then drop trailing zeros.
    decimals = np.where(fixed, 5 - exponent, 5)
    scale = _POW10[decimals].astype(np.int64)
    whole, fraction = np.divmod(mantissa, scale)
    trailing = np.zeros(rows, dtype=np.int64)
    for j in range(1, 10):
        trailing += (fraction > 0) & (fraction % 10**j == 0)
    shown = np.where(fraction > 0, decimals - trailing, 0)
    fraction //= _POW10[trailing].astype(np.int64)
    whole_u = whole.astype(np.uint64)
    slots = [
        constant(b"-", rows, negative),
        digit_slot(whole_u, count_digits(whole_u)),
        constant(b".", rows, shown > 0),
        digit_slot(fraction, shown),
    ]
    scientific = ~fixed
    if scientific.any():
        power = np.abs(exponent).astype(np.uint64)
        slots += [
            constant(b"e", rows, scientific),
            constant(b"-", rows, scientific & (exponent < 0)),
            constant(b"+", rows, scientific & (exponent >= 0)),
            digit_slot(power, np.where(scientific, np.maximum(count_digits(power), 2), 0)),
        ]
    return slots


def join_slots(slots: list[Slot]) -> bytes:
    """The text of ``slots`` laid side by side, row after row.

    Parameters
    ----------
    slots
        ``(bytes, used)`` pairs with the same number of rows.
    """
    chars = np.concatenate([chars for chars, _ in slots], axis=1)
    mask = np.concatenate([mask for _, mask in slots], axis=1)
    return chars[mask].tobytes()


__all__ = ["Slot", "constant", "count_digits", "digit_slot", "general_float_slots", "integer_slots", "join_slots"]
