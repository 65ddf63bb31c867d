"""The protocol model: messages, media types and the DM Notification codec."""

from . import media
from .messages import (
    ARITY,
    STATUS_TEXT,
    Alert,
    AlertType,
    Command,
    ProtocolError,
    Report,
    Status,
    commands_json,
    expects_status,
    parse_commands,
    summarize_commands,
    summarize_statuses,
)

__all__ = [
    "ARITY",
    "STATUS_TEXT",
    "Alert",
    "AlertType",
    "Command",
    "ProtocolError",
    "Report",
    "Status",
    "commands_json",
    "expects_status",
    "media",
    "parse_commands",
    "summarize_commands",
    "summarize_statuses",
]
