"""Number formatting shared by tables, verdicts and plots."""

from __future__ import annotations

import math

DASH = "—"


def is_num(x) -> bool:
    """True for a finite int/float (bools excluded)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def num(x, digits: int = 3) -> str:
    """``digits`` significant figures, no scientific notation for everyday magnitudes."""
    if not is_num(x):
        return DASH if x is None else str(x)
    if x == 0:
        return "0"
    if isinstance(x, int) and abs(x) < 10**9:
        return f"{x:,}"
    mag = math.floor(math.log10(abs(x)))
    if mag >= 6 or mag < -4:
        return f"{x:.{max(digits - 1, 0)}e}"
    decimals = max(digits - 1 - mag, 0)
    return f"{x:,.{decimals}f}"


def metric(x, se=None) -> str:
    """A quality metric in [0, 1]: four decimals, with ``± se`` when known."""
    if not is_num(x):
        return DASH
    return f"{x:.4f} ± {se:.4f}" if is_num(se) else f"{x:.4f}"


def count(n) -> str:
    """1234567 -> '1.23M', 5200 -> '5.2k'."""
    if not is_num(n):
        return DASH
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:g}"


def seconds(s) -> str:
    """Seconds, three significant figures."""
    return DASH if not is_num(s) else f"{num(s)} s"


def micros(us) -> str:
    """Microseconds, switching to ms above 10 ms."""
    if not is_num(us):
        return DASH
    return f"{num(us / 1000)} ms" if us >= 10_000 else f"{num(us)} µs"


def pct(x, signed: bool = True) -> str:
    """A ratio as a percentage: 0.123 -> '+12.3%'."""
    if not is_num(x):
        return DASH
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"
