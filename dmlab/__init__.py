"""dmlab: an executable lab for the RESTful OMA DM 2.0 API of an OMA change request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .runtime import Device, Lab, Operator, OperatorError

__all__ = ["Device", "Lab", "Operator", "OperatorError", "__version__"]

_RUNTIME = frozenset({"Device", "Lab", "Operator", "OperatorError"})


def __getattr__(name: str) -> Any:
    """The runtime (server, TLS, threads) loads on first use, not on ``import dmlab``:
    ``python -m dmlab.choices`` and other small modules then run without it, and
    without runpy's warning about a module imported before it ran as ``__main__``."""
    if name in _RUNTIME:
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'dmlab' has no attribute {name!r}")
