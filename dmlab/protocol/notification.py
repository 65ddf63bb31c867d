"""The DM Notification (package 0): the server's signed request to call home.

A server cannot open a session; it can only ask the device to open one. The
request travels outside any session (SMS, push, a socket), so the device must
authenticate it on its own: a SHA-256 digest keyed by a shared secret, a
timestamp against replay after a while, and a notification id against replay
within that while. :class:`NotificationGuard` applies those checks in order.

DM 2.0 form (brief §5), big-endian::

    header  16 bits: version (4) | option count (5) | reserved (7, zero)
    options in rising option number, each:
        1 byte: number delta (4 bits) | value length (4 bits)
        [delta extension] [length extension]      CoAP style (RFC 7252 §3.1)
        value

The DM 1.2 form (:func:`encode_dm12`) is here for the backward-compatibility
story: an MD5 digest in front of a fixed 64-bit header and the server id.

The specification fixes the header, the option numbers, the 4-bit delta, the
PREFERRED-CON-TYPE values and the digest rule. Where it could not be confirmed
(VER's value, the length's width and extensions, TIMESTAMP's length, the
one-byte PREFERRED-CON-TYPE) the code names the lab choice from
:mod:`dmlab.protocol.provenance` it follows, and :func:`describe` says per row
which is which. One principle runs through the decoders: they accept exactly
what the encoders produce (canonical form), so a decoded message re-encodes to
the same bytes and a teaching table never hides an ambiguity.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final, Literal

__all__ = [
    "DIGEST_SIZE",
    "DM12_DIGEST_SIZE",
    "MAX_NOTIFICATION_SIZE",
    "MAX_SERVER_ID_BYTES",
    "VERSION",
    "ConType",
    "Notification",
    "NotificationError",
    "NotificationGuard",
    "NotificationRejected",
    "Option",
    "RejectReason",
    "decode",
    "decode_dm12",
    "describe",
    "encode",
    "encode_dm12",
    "notification_key",
    "verify_digest",
    "verify_dm12",
]

#: Header version nibble. Lab choice ``notification-version``: 2, for DM 2.0.
VERSION: Final = 2
#: Whole notifications larger than this are refused before parsing. Lab choice:
#: 1 KiB is far above any valid message (about 330 bytes at most) yet small
#: enough to travel in a handful of SMS segments or one push payload.
MAX_NOTIFICATION_SIZE: Final = 1024
#: Lab choice: the DM 1.2 header counts the server id in 8 bits, so capping
#: DM 2.0 ids at 255 bytes lets one DMAcc server id serve both forms.
MAX_SERVER_ID_BYTES: Final = 255
#: What ``notification_key`` puts before the UTF-8 password (lab choice
#: ``notification-secret``): the label's ASCII bytes, then one zero byte.
NOTIFICATION_KEY_LABEL: Final = b"dmlab notification key\0"
#: SHA-256 output size; the SHA256-DIGEST option carries exactly this much.
DIGEST_SIZE: Final = 32
#: MD5 output size (128 bits), the DM 1.2 digest in front of the trigger.
DM12_DIGEST_SIZE: Final = 16

_HEADER_SIZE: Final = 2  # the 16-bit DM 2.0 header
_VERSION_SHIFT: Final = 12  # version sits in the top 4 of 16 bits
_COUNT_SHIFT: Final = 7  # option count sits in the next 5 bits
_COUNT_MASK: Final = 0x1F  # 5 bits: at most 31 options
_RESERVED_MASK: Final = 0x7F  # the low 7 bits, which must be zero

# Lab choice ``option-framing``: a CoAP-style nibble extension (RFC 7252 §3.1),
# used for both delta and length:
# nibbles 0..12 are the value itself; 13 means "one more byte, value - 13";
# 14 means "two more bytes, value - 269" (269 = 13 + 256, where the one-byte
# form stops); 15 is reserved and makes the message invalid.
_EXT8: Final = 13
_EXT16: Final = 14
_EXT16_BASE: Final = 269
_RESERVED_NIBBLE: Final = 15
_MAX_EXTENDED: Final = _EXT16_BASE + 0xFFFF  # the largest value two bytes can say

_UINT16_MAX: Final = 0xFFFF
# Lab choice ``timestamp-length``: POSIX seconds in 4 bytes until 2106, 8 after.
_TIMESTAMP_SHORT: Final = 4
_TIMESTAMP_LONG: Final = 8


class Option(IntEnum):
    """DM 2.0 notification option numbers (brief §5); the wire order is rising."""

    SERVER_ID = 1
    PREFERRED_CON_TYPE = 2
    NOTIFICATION_ID = 3
    SHA256_DIGEST = 4
    TIMESTAMP = 5
    REQ_MOS = 6


class ConType(IntEnum):
    """PREFERRED-CON-TYPE values (specification); on the wire one byte (lab choice
    ``con-type-encoding``), so "any available" is the byte 0x00, never an empty value."""

    ANY_AVAILABLE = 0x00
    CELLULAR = 0x01
    WLAN = 0x02
    WIRELINE = 0x03


class NotificationError(ValueError):
    """Bytes that are not a well-formed notification, or fields that cannot be one."""


RejectReason = Literal["malformed", "wrong-server", "digest", "stale", "replayed"]


class NotificationRejected(Exception):
    """A notification the client must drop, and why (one of :data:`RejectReason`)."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _is_uint(value: object, most: int) -> bool:
    # bool is an int subclass; True as a notification id would be a bug, not a 1.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most


@dataclass(frozen=True, slots=True)
class Notification:
    """The fields of a DM 2.0 notification.

    ``digest`` is filled in by :func:`decode` only; :func:`encode` always
    computes a fresh one. It takes no part in equality: the same request signed
    with two secrets is still the same request.
    """

    server_id: str
    notification_id: int | None = None
    preferred_con_type: ConType | int | None = None
    timestamp: int | None = None
    req_mos: bool = False
    version: int = VERSION
    digest: bytes | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.server_id, str) or not self.server_id:
            raise NotificationError("server_id must be a non-empty string")
        try:
            raw_id = self.server_id.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates have no UTF-8 form
            raise NotificationError("server_id cannot be encoded as UTF-8") from None
        if len(raw_id) > MAX_SERVER_ID_BYTES:
            raise NotificationError(
                f"server_id is longer than {MAX_SERVER_ID_BYTES} bytes in UTF-8"
            )
        if self.notification_id is not None and not _is_uint(self.notification_id, _UINT16_MAX):
            raise NotificationError("notification_id must be an integer from 0 to 65535")
        if self.preferred_con_type is not None:
            if not _is_uint(self.preferred_con_type, max(ConType)):
                raise NotificationError(
                    "preferred_con_type must be 0x00 (any), 0x01 (cellular), 0x02 (WLAN) "
                    "or 0x03 (wireline)"
                )
            object.__setattr__(self, "preferred_con_type", ConType(self.preferred_con_type))
        if self.timestamp is not None and not _is_uint(
            self.timestamp, 2 ** (8 * _TIMESTAMP_LONG) - 1
        ):
            raise NotificationError("timestamp must be POSIX seconds from 0 to 2**64-1")
        if not isinstance(self.req_mos, bool):
            raise NotificationError("req_mos must be a bool")
        if not _is_uint(self.version, 0xF):  # a 4-bit field
            raise NotificationError("version must be an integer from 0 to 15")
        digest_ok = isinstance(self.digest, bytes) and len(self.digest) == DIGEST_SIZE
        if self.digest is not None and not digest_ok:
            raise NotificationError(f"digest must be {DIGEST_SIZE} bytes")


# --- encoding ---------------------------------------------------------------


def _nibble(value: int) -> tuple[int, bytes]:
    """Split a delta or length into its 4-bit nibble and extension bytes."""
    if value < _EXT8:
        return value, b""
    if value < _EXT16_BASE:
        return _EXT8, bytes([value - _EXT8])
    if value <= _MAX_EXTENDED:
        return _EXT16, (value - _EXT16_BASE).to_bytes(2, "big")
    raise NotificationError(f"{value} is too large for an option delta or length")


def _options(n: Notification) -> list[tuple[Option, bytes]]:
    out = [(Option.SERVER_ID, n.server_id.encode("utf-8"))]
    if n.preferred_con_type is not None:
        out.append((Option.PREFERRED_CON_TYPE, bytes([n.preferred_con_type])))
    if n.notification_id is not None:
        out.append((Option.NOTIFICATION_ID, n.notification_id.to_bytes(2, "big")))
    out.append((Option.SHA256_DIGEST, bytes(DIGEST_SIZE)))  # zeroed until signed
    if n.timestamp is not None:
        size = _TIMESTAMP_SHORT if n.timestamp < 2 ** (8 * _TIMESTAMP_SHORT) else _TIMESTAMP_LONG
        out.append((Option.TIMESTAMP, n.timestamp.to_bytes(size, "big")))
    if n.req_mos:
        out.append((Option.REQ_MOS, b""))
    return out


def _compute_digest(zeroed: bytes, secret: bytes, auth_data: bytes) -> bytes:
    # Brief §5: SHA-256(server secret || notification with zeroed digest || auth
    # data). Plain concatenation rather than HMAC, because that is the DM 2.0 rule.
    return hashlib.sha256(bytes(secret) + zeroed + bytes(auth_data)).digest()


def encode(n: Notification, secret: bytes, auth_data: bytes = b"") -> bytes:
    """The wire bytes of ``n``, signed with ``secret`` (and ``auth_data``)."""
    options = _options(n)
    out = bytearray(
        ((n.version << _VERSION_SHIFT) | (len(options) << _COUNT_SHIFT)).to_bytes(2, "big")
    )
    previous = 0
    digest_at = -1
    for number, value in options:
        delta, delta_ext = _nibble(number - previous)
        length, length_ext = _nibble(len(value))
        out += bytes([delta << 4 | length]) + delta_ext + length_ext
        if number is Option.SHA256_DIGEST:
            digest_at = len(out)
        out += value
        previous = number
    out[digest_at : digest_at + DIGEST_SIZE] = _compute_digest(bytes(out), secret, auth_data)
    return bytes(out)


# --- decoding ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    """One contiguous piece of a message, for :func:`describe`."""

    offset: int
    raw: bytes
    field: str
    value: Any
    source: str


@dataclass(frozen=True, slots=True)
class _Parsed:
    notification: Notification
    digest_at: int | None  # offset of the 32 digest bytes, if present


def _extended(nibble: int, data: bytes, pos: int, what: str) -> tuple[int, int]:
    """Resolve a delta or length nibble; returns (value, position after it)."""
    if nibble < _EXT8:
        return nibble, pos
    if nibble == _RESERVED_NIBBLE:
        raise NotificationError(f"option {what} nibble 15 is reserved")
    size = 1 if nibble == _EXT8 else 2
    if pos + size > len(data):
        raise NotificationError(
            f"truncated: option {what} extension needs {size} byte(s) at offset {pos}"
        )
    extra = int.from_bytes(data[pos : pos + size], "big")
    return extra + (_EXT8 if nibble == _EXT8 else _EXT16_BASE), pos + size


def _wire_name(number: Option) -> str:
    return number.name.replace("_", "-")


def _option_value(number: Option, value: bytes) -> Any:
    """Check one option's value and turn it into its Python form."""
    name = _wire_name(number)
    if number is Option.SERVER_ID:
        if not value:
            raise NotificationError("SERVER-ID is empty")
        if len(value) > MAX_SERVER_ID_BYTES:
            raise NotificationError(
                f"SERVER-ID is {len(value)} bytes; the limit is {MAX_SERVER_ID_BYTES}"
            )
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise NotificationError("SERVER-ID is not valid UTF-8") from None
    if number is Option.PREFERRED_CON_TYPE:
        if len(value) != 1:
            raise NotificationError(f"PREFERRED-CON-TYPE must be 1 byte, got {len(value)}")
        if value[0] > max(ConType):
            raise NotificationError(
                f"PREFERRED-CON-TYPE {value[0]:#04x} is none of 0x00-0x03 "
                "(any, cellular, WLAN, wireline)"
            )
        return ConType(value[0])
    if number is Option.NOTIFICATION_ID:
        if len(value) != 2:
            raise NotificationError(f"NOTIFICATION-ID must be 2 bytes, got {len(value)}")
        return int.from_bytes(value, "big")
    if number is Option.SHA256_DIGEST:
        if len(value) != DIGEST_SIZE:
            raise NotificationError(f"SHA256-DIGEST must be {DIGEST_SIZE} bytes, got {len(value)}")
        return value
    if number is Option.TIMESTAMP:
        if len(value) not in (_TIMESTAMP_SHORT, _TIMESTAMP_LONG):
            raise NotificationError(f"TIMESTAMP must be 4 or 8 bytes, got {len(value)}")
        stamp = int.from_bytes(value, "big")
        if len(value) == _TIMESTAMP_LONG and stamp < 2 ** (8 * _TIMESTAMP_SHORT):
            raise NotificationError(
                "TIMESTAMP uses 8 bytes for a value that fits in 4 (not minimal)"
            )
        return stamp
    if value:  # REQ-MOS, a flag
        raise NotificationError(f"{name} is a flag and must be empty, got {len(value)} bytes")
    return True


_OPTION_FIELDS: Final = {
    Option.SERVER_ID: "server_id",
    Option.PREFERRED_CON_TYPE: "preferred_con_type",
    Option.NOTIFICATION_ID: "notification_id",
    Option.SHA256_DIGEST: "digest",
    Option.TIMESTAMP: "timestamp",
    Option.REQ_MOS: "req_mos",
}


def _checked_bytes(data: bytes) -> bytes:
    """Bytes within the size limit, whichever form (DM 2.0 or 1.2) they claim to be."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise NotificationError(f"a notification is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_NOTIFICATION_SIZE:
        raise NotificationError(
            f"notification is {len(data)} bytes; the limit is {MAX_NOTIFICATION_SIZE}"
        )
    return data


def _parse(data: bytes, rows: list[_Row] | None = None) -> _Parsed:
    """Parse and check a notification. The teaching rows, which take most of the
    work, are built only when :func:`describe` passes a list to collect them:
    a device checking a notification needs the fields, not their descriptions."""
    data = _checked_bytes(data)
    if len(data) < _HEADER_SIZE:
        raise NotificationError(
            f"truncated: {len(data)} byte(s), the header alone is {_HEADER_SIZE}"
        )
    word = int.from_bytes(data[:_HEADER_SIZE], "big")
    version = word >> _VERSION_SHIFT
    count = (word >> _COUNT_SHIFT) & _COUNT_MASK
    reserved = word & _RESERVED_MASK
    if version != VERSION:
        raise NotificationError(f"unsupported version {version}; this lab speaks version {VERSION}")
    if reserved:
        raise NotificationError(f"reserved header bits must be zero, got {reserved:#04x}")
    if rows is not None:
        rows.append(
            _Row(
                0,
                data[:_HEADER_SIZE],
                "header",
                f"version {version}, {count} option(s), reserved 0",
                _SOURCES["header"],
            )
        )

    fields: dict[str, Any] = {}
    number = 0
    pos = _HEADER_SIZE
    digest_at: int | None = None
    for index in range(1, count + 1):
        if pos >= len(data):
            raise NotificationError(f"truncated: option {index} of {count} is missing")
        start = pos
        delta, pos = _extended(data[pos] >> 4, data, pos + 1, "delta")
        length, pos = _extended(data[start] & 0x0F, data, pos, "length")
        # Deltas are unsigned, so options cannot run backwards on the wire: a
        # zero delta (the same number again) is the only way to break the order.
        if delta == 0:
            if number == 0:
                raise NotificationError("unknown option number 0")
            raise NotificationError(f"duplicate option {_wire_name(Option(number))}")
        number += delta
        if number not in _OPTION_FIELDS:
            raise NotificationError(f"unknown option number {number}")
        option = Option(number)
        if pos + length > len(data):
            raise NotificationError(
                f"truncated: {_wire_name(option)} claims {length} bytes, {len(data) - pos} remain"
            )
        value = data[pos : pos + length]
        parsed = _option_value(option, value)
        fields[_OPTION_FIELDS[option]] = parsed
        if rows is not None:
            rows.extend(_option_rows(option, delta, length, data[start:pos], pos, value, parsed))
        if option is Option.SHA256_DIGEST:
            digest_at = pos
        pos += length
    if pos != len(data):
        raise NotificationError(f"{len(data) - pos} trailing byte(s) after the last option")
    if "server_id" not in fields:
        raise NotificationError("SERVER-ID is required")
    return _Parsed(Notification(version=version, **fields), digest_at)


def _option_rows(
    option: Option, delta: int, length: int, header: bytes, at: int, value: bytes, parsed: Any
) -> list[_Row]:
    """:func:`describe`'s rows for one option: its header, then its value if it has one."""
    start = at - len(header)
    layout = f"delta {delta} (option {int(option)}), length {length}"
    rows = [
        _Row(
            start, header, f"{_wire_name(option)} option header", layout, _SOURCES["option header"]
        )
    ]
    if length:
        shown = (
            parsed.hex()
            if isinstance(parsed, bytes)
            else f"{parsed:#04x} {parsed.name}"
            if isinstance(parsed, ConType)
            else parsed
        )
        rows.append(_Row(at, value, _wire_name(option), shown, _SOURCES[option]))
    return rows


#: What confirms each row of :func:`describe`: the specification, or a named lab
#: choice (ids from :mod:`dmlab.protocol.provenance`) where it could not be confirmed.
_SOURCES: Final[dict[object, str]] = {
    "header": "specification (layout); lab choice notification-version (VER = 2)",
    "option header": "specification (4-bit delta); lab choice option-framing (length)",
    Option.SERVER_ID: "specification",
    Option.PREFERRED_CON_TYPE: "specification (0x00-0x03); lab choice con-type-encoding",
    Option.NOTIFICATION_ID: "specification",
    Option.SHA256_DIGEST: "specification",
    Option.TIMESTAMP: "specification (POSIX time); lab choice timestamp-length",
}


def decode(data: bytes) -> Notification:
    """Parse a notification; the digest is returned, not checked (see :func:`verify_digest`)."""
    return _parse(data).notification


def verify_digest(data: bytes, secret: bytes, auth_data: bytes = b"") -> bool:
    """Whether ``data`` carries a digest made with ``secret``.

    False, not an exception, for bytes that do not parse or carry no digest:
    either way nothing vouches for them.
    """
    try:
        parsed = _parse(data)
    except NotificationError:
        return False
    return _digest_matches(bytes(data), parsed.digest_at, secret, auth_data)


def _digest_matches(raw: bytes, at: int | None, secret: bytes, auth_data: bytes) -> bool:
    """Whether the digest at offset ``at`` of ``raw`` is the one ``secret`` makes."""
    if at is None:
        return False
    zeroed = raw[:at] + bytes(DIGEST_SIZE) + raw[at + DIGEST_SIZE :]
    return hmac.compare_digest(
        raw[at : at + DIGEST_SIZE], _compute_digest(zeroed, secret, auth_data)
    )


def describe(data: bytes) -> list[dict[str, Any]]:
    """A field-by-field table of a notification for teaching.

    One row per contiguous piece (``offset``, ``bytes`` as hex, ``field``,
    ``value``, and ``source``: whether the specification fixes the row or a named
    lab choice does); the rows cover every byte once, in order, so
    ``pandas.DataFrame(describe(data))`` reads like a packet dissector.
    Raises :class:`NotificationError` for bytes that do not parse.
    """
    rows: list[_Row] = []
    _parse(data, rows)
    return [
        {
            "offset": r.offset,
            "bytes": r.raw.hex(),
            "field": r.field,
            "value": r.value,
            "source": r.source,
        }
        for r in rows
    ]


# --- the client's checks ----------------------------------------------------


class NotificationGuard:
    """What a device does with a notification before it calls home.

    Checks run cheapest and least revealing first: parse, server id, digest,
    freshness, replay. Only a notification that passes all of them is
    remembered, so a forged or stale copy can never "use up" a real id.
    """

    # A fleet holds one guard per device (issue 15): slots and a plain dict (insertion
    # ordered too) instead of an instance dict and an OrderedDict: 971 -> 746 bytes.
    __slots__ = (
        "_auth_data",
        "_clock",
        "_floor",
        "_lock",
        "_remember",
        "_secret",
        "_seen",
        "max_age",
        "server_id",
    )

    def __init__(
        self,
        server_id: str,
        secret: bytes,
        *,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.time,
        remember: int = 1024,
        auth_data: bytes = b"",
    ) -> None:
        if not server_id:
            raise ValueError("server_id must be non-empty")
        if not secret:
            raise ValueError("a guard without a secret cannot authenticate anything")
        if not max_age > 0:
            raise ValueError("max_age must be positive")
        if remember < 1:
            raise ValueError("remember must be at least 1")
        self.server_id = server_id
        self._secret = bytes(secret)
        self._auth_data = bytes(auth_data)
        self.max_age = max_age
        self._clock = clock
        self._remember = remember
        # Insertion-ordered, so the oldest key is dropped first once full; each
        # with its notification's timestamp.
        self._seen: dict[object, float] = {}
        # Replay rule: a notification is never accepted twice. An id forgotten
        # while still fresh (the memory was full) raises this floor to its
        # timestamp; anything not newer than the floor is refused, since the
        # device can no longer tell whether it saw it. Ids forgotten once stale
        # need no floor: freshness refuses them.
        self._floor = float("-inf")
        self._lock = threading.Lock()

    def rekey(self, secret: bytes, auth_data: bytes = b"") -> None:
        """Use another Auth/Noti secret and auth data from now on (a server rotated them);
        the replay memory stays."""
        if not secret:
            raise ValueError("a guard without a secret cannot authenticate anything")
        with self._lock:
            self._secret, self._auth_data = bytes(secret), bytes(auth_data)

    @property
    def remembered(self) -> int:
        """How many notification keys the replay memory holds now (≤ ``remember``)."""
        with self._lock:
            return len(self._seen)

    def check(self, data: bytes) -> Notification:
        """The notification, if the device should act on it; else :class:`NotificationRejected`."""
        try:
            parsed = _parse(data)
        except NotificationError as exc:
            raise NotificationRejected("malformed", str(exc)) from None
        n = parsed.notification
        if n.server_id != self.server_id:
            raise NotificationRejected(
                "wrong-server", f"from {n.server_id!r}, expected {self.server_id!r}"
            )
        if n.digest is None:
            raise NotificationRejected("digest", "no SHA256-DIGEST option")
        with self._lock:
            secret, auth_data = self._secret, self._auth_data
        if not _digest_matches(bytes(data), parsed.digest_at, secret, auth_data):
            raise NotificationRejected(
                "digest", "SHA256-DIGEST does not match the device's notification key"
            )
        if n.timestamp is None:
            raise NotificationRejected("stale", "no TIMESTAMP option, so freshness cannot be shown")
        age = self._clock() - n.timestamp
        if age > self.max_age:
            raise NotificationRejected("stale", f"{age:.0f} s old; the limit is {self.max_age:g} s")
        if -age > self.max_age:
            raise NotificationRejected(
                "stale", f"{-age:.0f} s in the future; the limit is {self.max_age:g} s"
            )
        # Lab choice: a notification without an id is remembered by its digest,
        # so an exact copy is still caught within max_age.
        key: object = (
            ("id", n.notification_id) if n.notification_id is not None else ("digest", n.digest)
        )
        with self._lock:
            if key in self._seen:
                what = (
                    "this exact notification"
                    if n.notification_id is None
                    else f"id {n.notification_id}"
                )
                raise NotificationRejected("replayed", f"{what} was already accepted")
            if n.timestamp <= self._floor:
                raise NotificationRejected(
                    "replayed",
                    "not newer than a notification this device has forgotten (it remembers "
                    f"{self._remember}), so it cannot be shown not to be a replay",
                )
            self._seen[key] = n.timestamp
            horizon = self._clock() - self.max_age
            while self._seen and next(iter(self._seen.values())) < horizon:
                del self._seen[next(iter(self._seen))]  # stale now: freshness refuses it
            if len(self._seen) > self._remember:
                forgotten = self._seen.pop(next(iter(self._seen)))
                self._floor = max(self._floor, forgotten)
        return n


# --- DM 1.2 (OMA-TS-DM_Notification-V1_2, General Package #0) ----------------

_DM12_HEADER_SIZE: Final = 8  # the fixed 64 bits before the server id
_DM12_MIN_SIZE: Final = DM12_DIGEST_SIZE + _DM12_HEADER_SIZE
# Bit positions in the 64-bit header, counted from the least significant bit:
# version 10 | ui-mode 2 | initiator 1 | future-use 27 | session id 16 | id length 8.
_DM12_VERSION_SHIFT: Final = 54
_DM12_UI_SHIFT: Final = 52
_DM12_INITIATOR_SHIFT: Final = 51
_DM12_RESERVED_SHIFT: Final = 24
_DM12_RESERVED_MASK: Final = (1 << 27) - 1
_DM12_SESSION_SHIFT: Final = 8


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _dm12_digest(server_id: str, password: str, nonce: bytes, trigger: bytes) -> bytes:
    # Spec: H(B64(H(server-identifier:password)):nonce:B64(H(trigger))), H = MD5.
    # The nonce goes in as its raw bytes (the spec's formula and the brief write
    # plain "nonce"; libdmclient does the same), not base64-encoded.
    credentials = _b64(hashlib.md5(f"{server_id}:{password}".encode()).digest())
    trigger_hash = _b64(hashlib.md5(trigger).digest())
    return hashlib.md5(credentials + b":" + bytes(nonce) + b":" + trigger_hash).digest()


def encode_dm12(
    server_id: str,
    session_id: int,
    password: str,
    nonce: bytes,
    *,
    ui_mode: int = 0,
    initiator: int = 1,
    version: int = 12,
    vendor_specific: bytes = b"",
) -> bytes:
    """A DM 1.2 General Package #0: MD5 digest, 64-bit header, server id, vendor bytes.

    ``version`` counts tenths (12 means 1.2, the brief's choice). A published
    copy of the DM 1.2 notification text asks for 11 and libdmclient accepts
    only 11; pass ``version=11`` to talk to such clients.
    ``ui_mode``: 0 not specified, 1 background, 2 informative, 3 ask the user.
    ``initiator``: 0 the user asked, 1 the server did.
    """
    try:
        raw_id = server_id.encode("utf-8") if isinstance(server_id, str) else b""
    except UnicodeEncodeError:
        raw_id = b""
    if not raw_id or len(raw_id) > 0xFF:  # the 8-bit length-identifier
        raise NotificationError("server_id must be 1 to 255 bytes in UTF-8")
    if not _is_uint(session_id, _UINT16_MAX) or session_id == 0:
        # The spec maps session ids 1..FFFF to the SessionID element.
        raise NotificationError("session_id must be an integer from 1 to 65535")
    if not _is_uint(ui_mode, 3):
        raise NotificationError("ui_mode must be 0 to 3")
    if not _is_uint(initiator, 1):
        raise NotificationError("initiator must be 0 or 1")
    if not _is_uint(version, 0x3FF):  # 10 bits
        raise NotificationError("version must be 0 to 1023")
    header = (
        version << _DM12_VERSION_SHIFT
        | ui_mode << _DM12_UI_SHIFT
        | initiator << _DM12_INITIATOR_SHIFT
        | session_id << _DM12_SESSION_SHIFT
        | len(raw_id)
    )
    trigger = header.to_bytes(_DM12_HEADER_SIZE, "big") + raw_id + bytes(vendor_specific)
    if DM12_DIGEST_SIZE + len(trigger) > MAX_NOTIFICATION_SIZE:
        raise NotificationError(f"notification would exceed {MAX_NOTIFICATION_SIZE} bytes")
    return _dm12_digest(server_id, password, nonce, trigger) + trigger


def decode_dm12(data: bytes) -> dict[str, Any]:
    """The fields of a DM 1.2 package #0; the digest is returned, not checked."""
    data = _checked_bytes(data)
    if len(data) < _DM12_MIN_SIZE:
        raise NotificationError(
            f"truncated: {len(data)} byte(s), digest and header need {_DM12_MIN_SIZE}"
        )
    header = int.from_bytes(data[DM12_DIGEST_SIZE:_DM12_MIN_SIZE], "big")
    reserved = (header >> _DM12_RESERVED_SHIFT) & _DM12_RESERVED_MASK
    if reserved:
        raise NotificationError("the 27 future-use bits must be zero")
    session_id = (header >> _DM12_SESSION_SHIFT) & _UINT16_MAX
    if session_id == 0:
        raise NotificationError("session id 0 is outside 1..FFFF")
    id_length = header & 0xFF
    if id_length == 0:
        raise NotificationError("server identifier length is 0")
    end = _DM12_MIN_SIZE + id_length
    if end > len(data):
        remain = len(data) - _DM12_MIN_SIZE
        raise NotificationError(
            f"truncated: server identifier claims {id_length} bytes, {remain} remain"
        )
    try:
        server_id = data[_DM12_MIN_SIZE:end].decode("utf-8")
    except UnicodeDecodeError:
        raise NotificationError("server identifier is not valid UTF-8") from None
    return {
        "digest": data[:DM12_DIGEST_SIZE],
        "version": header >> _DM12_VERSION_SHIFT,
        "ui_mode": (header >> _DM12_UI_SHIFT) & 0b11,
        "initiator": (header >> _DM12_INITIATOR_SHIFT) & 1,
        "session_id": session_id,
        # How the client writes it into SessionID: upper-case hex, no leading zeros.
        "session_id_hex": f"{session_id:X}",
        "server_id": server_id,
        "vendor_specific": data[end:],
    }


def verify_dm12(data: bytes, server_id: str, password: str, nonce: bytes) -> bool:
    """Whether a DM 1.2 package #0 was made with this server id, password and nonce.

    False for bytes that do not parse, as with :func:`verify_digest`.
    """
    try:
        decode_dm12(data)
    except NotificationError:
        return False
    raw = bytes(data)
    expected = _dm12_digest(server_id, password, nonce, raw[DM12_DIGEST_SIZE:])
    return hmac.compare_digest(raw[:DM12_DIGEST_SIZE], expected)


def notification_key(secret: str) -> bytes:
    """The Auth/Noti secret of a device's notification digests, derived one-way from
    its password (auth data empty).

    Lab choice ``notification-secret`` (option ``derived``): the server must compute
    digests but keeps only a hash of the password, so both sides derive this key from
    it. The specification's way (option ``dmacc``) provisions a separate secret and
    auth data in DMAcc ``<x>/Auth/Noti``; :func:`encode`, :func:`verify_digest` and
    :class:`NotificationGuard` take both, whichever way they were provisioned.
    """
    return hashlib.sha256(NOTIFICATION_KEY_LABEL + secret.encode()).digest()
