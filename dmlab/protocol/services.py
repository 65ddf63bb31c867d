"""The existing OMA DM services beside FUMO, as OMA published them: SCOMO, LAWMO,
DiagMon and DCMO. Identifiers, node names, result codes and state values, shared
by the virtual device (which behaves by them) and the server (whose jobs use them).

Where each fact comes from:

* The MOIDs are OMA's (``urn:oma:mo:oma-<name>:1.0``; the DDFs are published by
  OMNA as ``mo_scomo-v1_0.ddf``, ``mo_diagmon-v1_0.ddf`` …).
* SCOMO node names are those of the SCOMO 1.0 DDF (OMA-SUP-MO_SCOMO-V1_0): Download/<x>
  with PkgID, Name, PkgURL, Description, Status, EnvType, PkgType and Operations
  (Download, DownloadInstall, DownloadInstallInactive); Inventory with Delivered and
  Deployed. Deployed component nodes, states, statuses and result codes agree with a
  public SCOMO client implementation (MediaTek's DM client); the alert type and the
  ``SCOMO1`` instance follow the DM 2.0 specification's own example.
* LAWMO node names, State values, result codes and alert type agree with the same
  public client (OMA-TS-LAWMO-V1_0 is the reference).
* DCMO's node names (Property, Group, Description, Attached, Enabled, DCMOConfig,
  Operations/Enable and Disable) and its alert type (DM 2.0 specification example).
* DiagMon: only the MOID could be confirmed; everything else is a lab choice.

Every detail the lab could not confirm is a lab choice in the registry,
:data:`dmlab.protocol.provenance.CHOICES` (topic "Service MOs").
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

SCOMO: Final = "urn:oma:mo:oma-scomo:1.0"
LAWMO: Final = "urn:oma:mo:oma-lawmo:1.0"
DIAGMON: Final = "urn:oma:mo:oma-diagmon:1.0"
DCMO: Final = "urn:oma:mo:oma-dcmo:1.0"

#: Generic alert types that carry an operation's result (DM 1.2: alert 1226).
SCOMO_ALERT: Final = "urn:oma:at:scomo:1.0:OperationComplete"
LAWMO_ALERT: Final = "urn:oma:at:lawmo:1.0:OperationComplete"
DCMO_ALERT: Final = "urn:oma:at:dcmo:1.0:OperationComplete"
DIAGMON_ALERT: Final = "urn:oma:at:diagmon:1.0:OperationComplete"  # lab choice
DIAGMON_TRAP_ALERT: Final = "urn:oma:at:diagmon:1.0:Trap"  # lab choice

#: MO instance names (the DM 2.0 ClientURI's MIID).
SCOMO_INSTANCE: Final = "SCOMO1"
LAWMO_INSTANCE: Final = "LAWMO1"
DIAGMON_INSTANCE: Final = "DIAGMON1"


# SCOMO ---------------------------------------------------------------------------


class ScomoResult(IntEnum):
    """SCOMO result codes (1250-1299, 1450-1499, 1550-1599 are vendor ranges)."""

    SUCCESSFUL = 1200
    CLIENT_ERROR = 1400
    USER_CANCELLED = 1401
    DOWNLOAD_FAILED = 1402
    ALTERNATE_DOWNLOAD_AUTH_FAILED = 1403
    DOWNLOAD_OUT_OF_MEMORY = 1404
    INSTALL_FAILED = 1405
    INSTALL_OUT_OF_MEMORY = 1406
    PACKAGE_VALIDATION_FAILED = 1407
    REMOVE_FAILED = 1408
    ACTIVATE_FAILED = 1409
    DEACTIVATE_FAILED = 1410
    NOT_IMPLEMENTED = 1411
    UNDEFINED_ERROR = 1412
    UNSUPPORTED_ENVIRONMENT = 1413
    DOWNLOAD_SERVER_ERROR = 1500
    DOWNLOAD_SERVER_UNAVAILABLE = 1501


class DownloadStatus(IntEnum):
    """``Download/<x>/Status``."""

    IDLE = 10
    DOWNLOAD_FAILED = 20
    DOWNLOAD_PROGRESSING = 30
    DOWNLOAD_COMPLETE = 40
    INSTALL_PROGRESSING = 50
    INSTALL_FAILED_WITH_DATA = 60
    INSTALL_FAILED_WITHOUT_DATA = 70


class DeployedState(IntEnum):
    """``Inventory/Deployed/<x>/State``."""

    INACTIVE = 10
    ACTIVE = 20


class DeployedStatus(IntEnum):
    """``Inventory/Deployed/<x>/Status``."""

    IDLE = 10
    REMOVE_FAILED = 20
    REMOVE_PROGRESSING = 30
    ACTIVATE_FAILED = 40
    ACTIVATE_PROGRESSING = 50
    DEACTIVATE_FAILED = 60
    DEACTIVATE_PROGRESSING = 70


#: Executable nodes under ``Download/<x>/Operations``.
SCOMO_DOWNLOAD_OPERATIONS: Final = ("Download", "DownloadInstall", "DownloadInstallInactive")
#: Executable nodes under ``Inventory/Deployed/<x>/Operations``.
SCOMO_DEPLOYED_OPERATIONS: Final = ("Activate", "Deactivate", "Remove")


# LAWMO ---------------------------------------------------------------------------


class LawmoState(IntEnum):
    """LAWMO's ``State`` node."""

    FULLY_LOCKED = 10
    PARTIALLY_LOCKED = 20
    UNLOCKED = 30


class LawmoResult(IntEnum):
    SUCCESSFUL = 1200
    WIPE_SUCCESSFUL = 1201
    WIPE_WITH_LIST_ITEMS_SUCCESSFUL = 1202
    CLIENT_ERROR = 1400
    USER_CANCELLED = 1401
    FULLY_LOCK_FAILED = 1402
    PARTIALLY_LOCK_FAILED = 1403
    UNLOCK_FAILED = 1404
    WIPE_FAILED = 1405
    WIPE_NOT_PERFORMED = 1406


LAWMO_OPERATIONS: Final = ("FullyLock", "PartiallyLock", "UnLock", "FactoryReset", "Wipe")


# DCMO ----------------------------------------------------------------------------


class DcmoResult(IntEnum):
    SUCCESSFUL = 1200
    CLIENT_ERROR = 1400  # lab choice for every failed Enable/Disable (dcmo-failure-code)


DCMO_OPERATIONS: Final = ("Enable", "Disable")


# DiagMon (lab choices, see diagmon-tree) -----------------------------------------


class DiagMonResult(IntEnum):
    SUCCESSFUL = 1200
    CLIENT_ERROR = 1400


#: ``Functions/<name>/Operations``: take a reading now; arm or disarm its trap.
DIAGMON_OPERATIONS: Final = ("Collect", "ArmTrap", "DisarmTrap")
