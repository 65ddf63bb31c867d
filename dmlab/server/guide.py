"""What a third-party device needs to take part, as data the ``/docs`` page renders.

Every number here is read from the code that acts on it (the package 0 codec, the
wire models, the routes), so the guide cannot drift from what the server does; the
words around them are in ``templates/device_guide.html``. ``test_device_guide``
re-implements the notification check from the rendered page alone.
"""

from __future__ import annotations

from typing import Any

from ..protocol import media
from ..protocol import notification as package0
from ..protocol.messages import MAX_ALERTS, MAX_COMMANDS, MAX_STATUSES, AlertType
from .routes.resources import MAX_WAIT


def device_guide(server_id: str) -> dict[str, Any]:
    label = package0.NOTIFICATION_KEY_LABEL
    return {
        "server_id": server_id,
        "devid_header": media.DEVID_HEADER,
        "max_wait": f"{MAX_WAIT:g}",
        "notification_type": media.NOTIFICATION,
        "commands_type": media.COMMANDS,
        "body_types": media.DEVICE_BODY_MEDIA,
        "package1_type": media.DM20_INITIATION,
        "package3_type": media.DM20_RESPONSE,
        "server_initiated": AlertType.SERVER_INITIATED,
        "client_initiated": AlertType.CLIENT_INITIATED,
        "max_commands": MAX_COMMANDS,
        "max_statuses": MAX_STATUSES,
        "max_alerts": MAX_ALERTS,
        # package 0
        "version": package0.VERSION,
        "label_text": label.rstrip(b"\0").decode("ascii"),
        "label_hex": label.hex(" "),
        "digest_size": package0.DIGEST_SIZE,
        "max_size": package0.MAX_NOTIFICATION_SIZE,
        "ext8": package0._EXT8,
        "ext16": package0._EXT16,
        "ext16_base": package0._EXT16_BASE,
        "reserved_nibble": package0._RESERVED_NIBBLE,
        "timestamp_short": package0._TIMESTAMP_SHORT,
        "timestamp_long": package0._TIMESTAMP_LONG,
        "options": [(int(o), o.name.replace("_", "-"), OPTION_VALUES[o]) for o in package0.Option],
        "con_types": [
            (f"0x{int(c):02X}", c.name.lower().replace("_", " ")) for c in package0.ConType
        ],
    }


#: How each option's value is written (the codec's ``_options``).
OPTION_VALUES = {
    package0.Option.SERVER_ID: "the server id in UTF-8",
    package0.Option.PREFERRED_CON_TYPE: "one byte (values below)",
    package0.Option.NOTIFICATION_ID: "an unsigned 16-bit integer, 2 bytes big-endian",
    package0.Option.SHA256_DIGEST: f"{package0.DIGEST_SIZE} bytes, the digest (below)",
    package0.Option.TIMESTAMP: (
        f"POSIX seconds, unsigned big-endian in {package0._TIMESTAMP_SHORT} bytes "
        f"({package0._TIMESTAMP_LONG} from 2106 on)"
    ),
    package0.Option.REQ_MOS: "no value (length 0): list your management objects in package 1",
}
