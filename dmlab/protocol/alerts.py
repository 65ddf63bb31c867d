"""Generic alerts: how a device reports the outcome of work, and how a server reads one.

DM 2.0 (specification §4, §6.6): a generic alert has ``AlertType`` and optionally
``SourceURI`` (the node the alert is about), ``TargetURI`` (a further address the alert
concerns), ``Mark``, ``DataType`` and ``Data``, a JSON object whose content is the
enabler's business; data carried over from DM 1.x sits under ``"DM1x"``. The server
never answers one. Every management object that reports asynchronously builds its
alert with :func:`generic_alert`, and a server reads the result code back with
:func:`result_code`.

FUMO (lab choice ``fumo-alert``): no DM 2.0 alert type for FUMO could be confirmed,
so the lab follows DM 2.0's naming, ``urn:oma:at:fumo:1.0:<Operation>``, with the
FUMO result code as ``{"DM1x": code}`` and ``DataType: "int"``, as the specification's
own DCMO example does. A server also reads FUMO 1.0's DM 1.2 names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .messages import Alert, AlertType, Mark

#: The key under which DM 1.x data (a result code, a DM 1.x payload) travels in ``Data``.
DM1X: Final = "DM1x"

#: FUMO's operations and the alert type each reports with (lab choice fumo-alert).
FUMO_ALERT_TYPES: Final[dict[str, str]] = {
    "DownloadAndUpdate": AlertType.FUMO_DOWNLOAD_AND_UPDATE,
    "Download": AlertType.FUMO_DOWNLOAD,
    "Update": AlertType.FUMO_UPDATE,
}
#: FUMO 1.0's DM 1.2 alert types, read by the server from older devices.
DM12_FUMO_ALERT_TYPES: Final[dict[str, str]] = {
    "DownloadAndUpdate": "org.openmobilealliance.dm.firmwareupdate.downloadandupdate",
    "Download": "org.openmobilealliance.dm.firmwareupdate.download",
    "Update": "org.openmobilealliance.dm.firmwareupdate.update",
}


def generic_alert(
    alert_type: str,
    source_uri: str,
    *,
    result: int | None = None,
    data: Mapping[str, Any] | None = None,
    data_type: str | None = None,
    ok: bool | None = None,
    mark: Mark | None = None,
    target_uri: str | None = None,
) -> Alert:
    """A generic alert about ``source_uri``.

    ``result`` is a DM 1.x-style result code, sent as ``{"DM1x": result}`` with
    ``DataType: "int"``; ``data`` is any other ``Data`` object. ``ok`` picks the
    ``Mark`` (``informational`` when the work succeeded, ``critical`` when it failed)
    unless ``mark`` names one.
    """
    body: dict[str, Any] = dict(data or {})
    if result is not None:
        body[DM1X] = int(result)
        data_type = data_type or "int"
    if mark is None and ok is not None:
        mark = "informational" if ok else "critical"
    return Alert(
        alert_type=alert_type,
        source_uri=source_uri,
        target_uri=target_uri,
        mark=mark,
        data_type=data_type,
        data=body or None,
    )


def result_code(alert: Alert | Any) -> int | None:
    """The result code an alert (or its ``Data``) reports: ``Data.DM1x``, or a bare
    number (DM 1.2 style)."""
    data = alert.data if isinstance(alert, Alert) else alert
    if isinstance(data, Mapping):
        data = data.get(DM1X)
    return data if isinstance(data, int) and not isinstance(data, bool) else None


def fumo_operation(alert_type: str) -> str | None:
    """The FUMO operation an alert type reports on, in either naming; ``None`` for others."""
    for table in (FUMO_ALERT_TYPES, DM12_FUMO_ALERT_TYPES):
        for operation, name in table.items():
            if name == alert_type:
                return operation
    return None
