"""JSON as the lab reads every body: bounded depth, no NaN, no lone surrogates."""

from __future__ import annotations

import json
from typing import Any

#: The deepest nesting of arrays and objects a JSON body may have. DM bodies need
#: about 5 (a GET status's Data holds a subtree); without a limit, 1000 nested
#: brackets made json.loads (or whatever walked the value later) hit Python's
#: recursion limit: a 500, or a connection dropped without an answer.
MAX_DEPTH = 32


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


def _check_text(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone surrogate") from None


#: One decoder for every body: ``json.loads`` with these hooks would build a new one
#: per call.
_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)


def _decode(text: bytes | bytearray) -> tuple[str, bool]:
    """Bytes as ``json.loads`` reads them (UTF-8, -16 or -32, by the first bytes, lone
    surrogates passed through), and whether they held no lone surrogate."""
    encoding = json.detect_encoding(text)
    try:
        return text.decode(encoding), True
    except UnicodeDecodeError:
        return text.decode(encoding, "surrogatepass"), False


def parse_json(text: str | bytes) -> Any:
    """Strict ``json.loads``: at most ``MAX_DEPTH`` levels, no NaN or Infinity (not JSON;
    a JSON answer that echoed them would fail), no lone surrogates (``"\\ud800"``
    parses, but no UTF-8 page, store or answer can hold it). Each is a ``ValueError``."""
    if isinstance(text, bytes | bytearray):
        source, clean = _decode(text)
    elif text.startswith("\ufeff"):  # as json.loads says it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    else:
        source, clean = text, False
    try:
        value = _DECODER.decode(source)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    # The walk below finds nothing in a text that has no lone surrogate as it is, no
    # ``\\u`` escape that could spell one, and no more opening brackets than
    # ``MAX_DEPTH`` (each level of nesting needs one; those inside strings only count
    # too many): most DM bodies, skipped at a fraction of the walk's cost.
    if clean and "\\u" not in source and source.count("[") + source.count("{") <= MAX_DEPTH:
        return value
    _check_text(value)
    if not isinstance(value, (list, dict)):
        return value
    level, depth = [value], 0
    while level:  # containers only, one nesting level at a time
        depth += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        below: list[Any] = []
        for item in level:
            for child in [*item, *item.values()] if isinstance(item, dict) else item:
                if isinstance(child, (list, dict)):
                    below.append(child)
                else:
                    _check_text(child)
        level = below
    return value
