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


def parse_json(text: str | bytes) -> Any:
    """Strict ``json.loads``: at most ``MAX_DEPTH`` levels, no NaN or Infinity (not JSON;
    a JSON answer that echoed them would fail), no lone surrogates (``"\\ud800"``
    parses, but no UTF-8 page, store or answer can hold it). Each is a ``ValueError``."""
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
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
