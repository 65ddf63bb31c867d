"""Media types and header names used on the wire."""

from typing import Final

#: The change request's own type for a package 2 (commands from the server).
COMMANDS: Final = "application/vnd.omadm-cmd+json"
#: DM 2.0's names for package 1, package 2 and package 3 (specification §6.2-6.4).
DM20_INITIATION: Final = "application/vnd.oma.dm.initiation+json"
DM20_REQUEST: Final = "application/vnd.oma.dm.request+json"
DM20_RESPONSE: Final = "application/vnd.oma.dm.response+json"
#: DM 1.x Tree and Description Serialization: the device's second MO serialization.
TNDS: Final = "application/vnd.syncml.dmtnds+xml"
#: DM 2.0 package 0, the binary DM Notification (lab choice of name).
NOTIFICATION: Final = "application/vnd.oma.dm.notification"
JSON: Final = "application/json"
HTML: Final = "text/html"
FORM: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"
#: Every device request names its DevInfo DevID in this header (brief §2).
DEVID_HEADER: Final = "OMADM-DevID"
#: A receiver answering 415 lists here the types it takes (HTTP Accept syntax).
ACCEPT_HEADER: Final = "OMADM-Accept"

#: Bodies a device may send with a package 1 or 3 (and to ``/alert``), each with what it
#: is; the server reads exactly these, and ``/openapi.json`` lists exactly these.
DEVICE_BODY_MEDIA: Final[dict[str, str]] = {
    DM20_INITIATION: "DM 2.0's package 1 type",
    DM20_RESPONSE: "DM 2.0's package 3 type",
    DM20_REQUEST: "DM 2.0's request type, accepted as a device may label any request so",
    COMMANDS: "the CR's type, accepted for devices that label every DM body so",
    JSON: "plain JSON",
}
DEVICE_BODY_TYPES: Final = frozenset(DEVICE_BODY_MEDIA)


def base(content_type: str | None) -> str:
    """The media type without parameters, lower-cased ("" when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()
