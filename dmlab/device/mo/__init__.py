"""Management objects with behaviour, beside FUMO: SCOMO, LAWMO, DiagMon, DCMO.

Each module holds one MO: the nodes it adds to the device's tree and what its
executable nodes do. The executor hands every EXEC on one of their MOIDs to
:meth:`ServiceObject.exec`; the identifiers, codes and lab choices they use are
in :mod:`dmlab.protocol.services`.
"""

from __future__ import annotations

from ..tree import ManagementTree
from ._base import ExecContext, Outcome, ServiceError, ServiceObject
from .dcmo import Dcmo
from .diagmon import DiagMon
from .lawmo import Lawmo
from .scomo import Scomo

__all__ = [
    "Dcmo",
    "DiagMon",
    "ExecContext",
    "Lawmo",
    "Outcome",
    "Scomo",
    "ServiceError",
    "ServiceObject",
    "install",
]


def install(
    tree: ManagementTree,
    *,
    capabilities: tuple[str, ...],
    diagnostics: tuple[str, ...],
    free_space: int,
) -> dict[str, ServiceObject]:
    """Add the four service MOs to a tree; their EXEC handlers by MOID."""
    objects: list[ServiceObject] = [
        Scomo(tree, free_space=free_space),
        Lawmo(tree),
        DiagMon(tree, functions=diagnostics, free_space=free_space),
        Dcmo(tree, capabilities=capabilities),
    ]
    return {obj.moid: obj for obj in objects}
