"""Media types and header names used on the wire."""

from typing import Final

#: The change request's own type for a package 2 (commands from the server).
COMMANDS: Final = "application/vnd.omadm-cmd+json"
#: DM 2.0's names for package 2 and package 3; accepted on input.
DM20_REQUEST: Final = "application/vnd.oma.dm.request+json"
DM20_RESPONSE: Final = "application/vnd.oma.dm.response+json"
#: DM 2.0 package 0, the binary DM Notification (lab choice of name).
NOTIFICATION: Final = "application/vnd.oma.dm.notification"
JSON: Final = "application/json"
HTML: Final = "text/html"
FORM: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"
#: Every device request names its DevInfo DevID in this header (brief §2).
DEVID_HEADER: Final = "OMADM-DevID"

#: Bodies a device may send with a package 1 or 3.
DEVICE_BODY_TYPES: Final = frozenset({JSON, DM20_RESPONSE, DM20_REQUEST, COMMANDS})


def base(content_type: str | None) -> str:
    """The media type without parameters, lower-cased ("" when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()
