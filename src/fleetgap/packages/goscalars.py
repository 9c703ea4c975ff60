"""Scalars as Go's go-ucfg and fmt turn them into strings (spec: epr-api §5.3).

Kept apart from the YAML reader so the schema and the model can use it without importing
each other.
"""

from __future__ import annotations

from typing import Any


def go_string(value: Any) -> str:
    """A scalar as go-ucfg turns it into a string field (`1.0` -> `1`, true -> `true`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if value is None:
        return ""
    raise TypeError(f"expected a scalar, got {type(value).__name__}")


def go_float(value: float) -> str:
    """Go's `%v` of a float64: shortest representation, `1` for 1.0."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        digits = exponent.lstrip("+-").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    return text
