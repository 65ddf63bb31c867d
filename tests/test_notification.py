"""The DM Notification (package 0): wire format, digest, the client's guard, DM 1.2."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlab.protocol.notification import (
    DIGEST_SIZE,
    MAX_NOTIFICATION_SIZE,
    ConType,
    Notification,
    NotificationError,
    NotificationGuard,
    NotificationRejected,
    Option,
    decode,
    decode_dm12,
    describe,
    encode,
    encode_dm12,
    verify_digest,
    verify_dm12,
)

SECRET = b"notification secret of srv"
NOW = 1_750_000_000  # a fixed POSIX time for the guard's clock


class Clock:
    """A settable clock, so freshness tests do not depend on the machine's time."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def guard(**kwargs: object) -> NotificationGuard:
    kwargs.setdefault("clock", Clock())
    return NotificationGuard("srv", SECRET, **kwargs)  # type: ignore[arg-type]


def fresh(notification_id: int | None = 7, **kwargs: object) -> bytes:
    fields: dict[str, object] = {
        "server_id": "srv",
        "notification_id": notification_id,
        "timestamp": NOW,
    }
    fields.update(kwargs)
    return encode(Notification(**fields), SECRET)  # type: ignore[arg-type]


def header(version: int, count: int, reserved: int = 0) -> bytes:
    return ((version << 12) | (count << 7) | reserved).to_bytes(2, "big")


# --- wire format -------------------------------------------------------------


def test_known_notification_bytes() -> None:
    n = Notification("srv", notification_id=0x1234, timestamp=0x6853_4A80, req_mos=True)
    data = encode(n, SECRET)
    # version 2, 5 options: 0010 00101 0000000 = 0x2280
    assert data[:2] == bytes([0x22, 0x80])
    assert data[2:6] == bytes([0x13]) + b"srv"  # SERVER-ID: delta 1, length 3
    assert data[6:9] == bytes([0x22, 0x12, 0x34])  # NOTIFICATION-ID: delta 2 (1 → 3), length 2
    assert data[9:11] == bytes([0x1D, 32 - 13])  # SHA256-DIGEST: delta 1, length 13 + 19
    assert data[43:48] == bytes([0x14, 0x68, 0x53, 0x4A, 0x80])  # TIMESTAMP: delta 1, 4 bytes
    assert data[48:] == bytes([0x10])  # REQ-MOS: delta 1, empty
    assert len(data) == 49

    zeroed = data[:11] + bytes(32) + data[43:]
    assert data[11:43] == hashlib.sha256(SECRET + zeroed).digest()
    assert hashlib.sha256(SECRET + zeroed + b"auth").digest() == encode(n, SECRET, b"auth")[11:43]


def test_minimal_notification_has_server_id_and_digest_only() -> None:
    data = encode(Notification("s"), SECRET)
    assert data[:2] == header(2, 2)
    assert data[2:4] == bytes([0x11]) + b"s"
    assert data[4:6] == bytes([0x3D, 19])  # the digest is option 4: delta 3 from SERVER-ID
    assert len(data) == 6 + DIGEST_SIZE
    assert decode(data) == Notification("s")


def test_preferred_con_type_is_one_byte_from_the_specifications_four() -> None:
    # Issue 17 point 5: 0x00-0x03 (any, cellular, WLAN, wireline), one byte each;
    # "any available" is the byte 0x00, not an empty value.
    assert [(c.name, c.value) for c in ConType] == [
        ("ANY_AVAILABLE", 0),
        ("CELLULAR", 1),
        ("WLAN", 2),
        ("WIRELINE", 3),
    ]
    for con_type in ConType:
        rows = describe(encode(Notification("s", preferred_con_type=con_type), SECRET))
        assert [r["bytes"] for r in rows[3:5]] == ["11", f"{con_type:02x}"]
        assert rows[4]["value"] == f"{con_type:#04x} {con_type.name}"
        assert "con-type-encoding" in str(rows[4]["source"])
    back = decode(encode(Notification("s", preferred_con_type=0), SECRET))
    assert back.preferred_con_type is ConType.ANY_AVAILABLE
    for bad in (4, 256):
        with pytest.raises(NotificationError, match="0x03"):
            Notification("s", preferred_con_type=bad)


def test_integer_encodings() -> None:
    # TIMESTAMP takes 4 bytes until 2106, then 8.
    late = encode(Notification("s", timestamp=2**32), SECRET)
    assert late[-9:] == bytes([0x18]) + (2**32).to_bytes(8, "big")
    assert decode(late).timestamp == 2**32


def test_long_server_id_uses_length_extension() -> None:
    sid = "x" * 255
    data = encode(Notification(sid), SECRET)
    assert data[2:4] == bytes([0x1D, 255 - 13])
    assert decode(data).server_id == sid


server_ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=80).filter(
    lambda s: len(s.encode()) <= 255
)
notifications = st.builds(
    Notification,
    server_id=server_ids,
    notification_id=st.none() | st.integers(0, 0xFFFF),
    preferred_con_type=st.none() | st.sampled_from(ConType),
    timestamp=st.none() | st.integers(0, 2**64 - 1),
    req_mos=st.booleans(),
)


@given(n=notifications, secret=st.binary(max_size=64), auth=st.binary(max_size=64))
def test_round_trip(n: Notification, secret: bytes, auth: bytes) -> None:
    data = encode(n, secret, auth)
    back = decode(data)
    assert back == n
    assert back.digest is not None and back.digest in data
    assert verify_digest(data, secret, auth)
    # Canonical form: re-encoding the decoded fields gives the same bytes.
    assert encode(back, secret, auth) == data


def test_digest_is_not_part_of_equality() -> None:
    a = decode(encode(Notification("srv", notification_id=1), b"one"))
    b = decode(encode(Notification("srv", notification_id=1), b"two"))
    assert a == b and a.digest != b.digest


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server_id": ""}, "non-empty"),
        ({"server_id": "x" * 256}, "255"),
        ({"server_id": "\ud800"}, "UTF-8"),
        ({"server_id": "s", "notification_id": 65536}, "65535"),
        ({"server_id": "s", "notification_id": -1}, "65535"),
        ({"server_id": "s", "notification_id": True}, "65535"),
        ({"server_id": "s", "preferred_con_type": 4}, "0x03"),
        ({"server_id": "s", "timestamp": -1}, "POSIX"),
        ({"server_id": "s", "version": 16}, "0 to 15"),
        ({"server_id": "s", "digest": b"short"}, "32 bytes"),
    ],
)
def test_invalid_fields(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(NotificationError, match=message):
        Notification(**kwargs)  # type: ignore[arg-type]


def _digest_option() -> bytes:
    return bytes([0x3D, 19]) + bytes(32)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"\x22", "truncated"),
        (header(1, 1) + b"\x11s", "unsupported version 1"),
        (header(3, 1) + b"\x11s", "unsupported version 3"),
        (header(2, 1, reserved=1) + b"\x11s", "reserved header bits"),
        (header(2, 0), "SERVER-ID is required"),
        (header(2, 2) + b"\x11s", "truncated: option 2 of 2"),
        (header(2, 1) + b"\x13s", "truncated: SERVER-ID claims 3 bytes, 1 remain"),
        (header(2, 1) + b"\x11s!", "1 trailing byte"),
        (header(2, 1) + b"\x01s", "unknown option number 0"),
        (header(2, 2) + b"\x11s\x01t", "duplicate option SERVER-ID"),
        (header(2, 2) + b"\x11s\x60", "unknown option number 7"),
        (header(2, 1) + b"\xf1s", "nibble 15 is reserved"),
        (header(2, 1) + b"\x1fs", "nibble 15 is reserved"),
        (header(2, 1) + b"\x1d", "extension needs 1 byte"),
        (header(2, 1) + b"\x1e\x00", "extension needs 2 byte"),
        (header(2, 1) + b"\x1e\x00\x00" + b"s" * 269, "SERVER-ID is 269 bytes; the limit is 255"),
        (header(2, 1) + b"\x10", "SERVER-ID is empty"),
        (header(2, 1) + b"\x11\xff", "not valid UTF-8"),
        (header(2, 2) + b"\x11s" + b"\x10", "PREFERRED-CON-TYPE must be 1 byte, got 0"),
        (header(2, 2) + b"\x11s" + b"\x12\x00\x01", "PREFERRED-CON-TYPE must be 1 byte, got 2"),
        (header(2, 2) + b"\x11s" + b"\x11\x04", "0x04 is none of 0x00-0x03"),
        (header(2, 2) + b"\x11s" + b"\x21\x01", "NOTIFICATION-ID must be 2 bytes, got 1"),
        (header(2, 2) + b"\x11s" + b"\x33" + bytes(3), "SHA256-DIGEST must be 32 bytes, got 3"),
        (header(2, 2) + b"\x11s" + b"\x45" + bytes(5), "TIMESTAMP must be 4 or 8 bytes"),
        (header(2, 2) + b"\x11s" + b"\x48" + bytes(8), "TIMESTAMP uses 8 bytes"),
        (header(2, 2) + b"\x11s" + b"\x51x", "REQ-MOS is a flag"),
        (header(2, 3) + b"\x11s" + _digest_option() + b"\x00", "duplicate option SHA256-DIGEST"),
        (b"\x00" * (MAX_NOTIFICATION_SIZE + 1), "1025 bytes; the limit is 1024"),
    ],
)
def test_decode_rejects(data: bytes, message: str) -> None:
    with pytest.raises(NotificationError, match=message):
        decode(data)
    assert not verify_digest(data, SECRET)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(NotificationError, match="bytes, not str"):
        decode("hello")  # type: ignore[arg-type]


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(NotificationError, ValueError)


@given(st.binary(max_size=80))
def test_decode_never_crashes_on_garbage(data: bytes) -> None:
    with contextlib.suppress(NotificationError):
        decode(data)


# --- digest ------------------------------------------------------------------


def test_digest_breaks_on_every_single_byte_change() -> None:
    data = fresh(notification_id=0xBEEF, preferred_con_type=3, req_mos=True)
    assert verify_digest(data, SECRET)
    for i in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            changed = bytearray(data)
            changed[i] ^= flip
            assert not verify_digest(bytes(changed), SECRET), (i, flip)


@settings(max_examples=200)
@given(n=notifications, position=st.integers(0), flip=st.integers(1, 255))
def test_digest_breaks_on_any_change_property(n: Notification, position: int, flip: int) -> None:
    data = bytearray(encode(n, SECRET))
    data[position % len(data)] ^= flip
    assert not verify_digest(bytes(data), SECRET)


def test_wrong_secret_or_auth_data_fails() -> None:
    data = encode(Notification("srv", notification_id=1), SECRET, b"auth")
    assert verify_digest(data, SECRET, b"auth")
    assert not verify_digest(data, SECRET + b"!", b"auth")
    assert not verify_digest(data, SECRET)
    assert not verify_digest(data, b"", b"auth")


def test_message_without_digest_does_not_verify() -> None:
    data = header(2, 1) + b"\x11s"
    assert decode(data).digest is None
    assert not verify_digest(data, SECRET)


# --- the guard ---------------------------------------------------------------


def test_guard_accepts_a_fresh_notification_exactly_once() -> None:
    g = guard()
    data = fresh(notification_id=42)
    n = g.check(data)
    assert (n.server_id, n.notification_id, n.timestamp) == ("srv", 42, NOW)
    with pytest.raises(NotificationRejected) as info:
        g.check(data)
    assert info.value.reason == "replayed"
    assert "42" in info.value.detail


def test_guard_replay_is_by_id_not_by_bytes() -> None:
    g = guard()
    g.check(fresh(notification_id=42, timestamp=NOW))
    with pytest.raises(NotificationRejected, match="replayed"):
        g.check(fresh(notification_id=42, timestamp=NOW + 1, req_mos=True))
    g.check(fresh(notification_id=43))


def test_guard_remembers_id_less_notifications_by_digest() -> None:
    g = guard()
    data = fresh(notification_id=None)
    g.check(data)
    with pytest.raises(NotificationRejected, match="replayed"):
        g.check(data)
    g.check(fresh(notification_id=None, timestamp=NOW + 1))


def _reason(g: NotificationGuard, data: bytes) -> str:
    with pytest.raises(NotificationRejected) as info:
        g.check(data)
    assert str(info.value).startswith(info.value.reason + ": ")
    return info.value.reason


def test_guard_rejects_forged() -> None:
    g = guard()
    assert (
        _reason(g, encode(Notification("srv", notification_id=1, timestamp=NOW), b"guess"))
        == "digest"
    )
    data = bytearray(fresh(notification_id=1))
    data[12] ^= 1  # inside the digest value
    assert _reason(g, bytes(data)) == "digest"
    # An unsigned message that parses is still a forgery.
    assert _reason(g, header(2, 1) + bytes([0x13]) + b"srv") == "digest"


def test_guard_rejects_wrong_server() -> None:
    other = encode(Notification("evil", notification_id=1, timestamp=NOW), SECRET)
    assert _reason(guard(), other) == "wrong-server"


@pytest.mark.parametrize("data", [b"", b"\x22\x80", header(1, 1) + b"\x11s", b"x" * 2000])
def test_guard_rejects_malformed(data: bytes) -> None:
    assert _reason(guard(), data) == "malformed"


def test_guard_rejects_stale_future_and_undated() -> None:
    g = guard(max_age=60.0)
    assert _reason(g, fresh(notification_id=1, timestamp=NOW - 61)) == "stale"
    assert _reason(g, fresh(notification_id=2, timestamp=NOW + 61)) == "stale"
    assert _reason(g, fresh(notification_id=3, timestamp=None)) == "stale"
    g.check(fresh(notification_id=4, timestamp=NOW - 60))
    g.check(fresh(notification_id=5, timestamp=NOW + 60))


def test_guard_uses_its_clock() -> None:
    clock = Clock()
    g = guard(clock=clock, max_age=10.0)
    data = fresh(notification_id=9)
    clock.now = NOW + 11
    assert _reason(g, data) == "stale"
    clock.now = NOW
    g.check(data)


def test_rejected_notifications_do_not_use_up_their_id() -> None:
    clock = Clock()
    g = guard(clock=clock, max_age=60.0)
    assert (
        _reason(g, encode(Notification("srv", notification_id=5, timestamp=NOW), b"guess"))
        == "digest"
    )
    assert _reason(g, fresh(notification_id=5, timestamp=NOW - 600)) == "stale"
    other = encode(Notification("evil", notification_id=5, timestamp=NOW), SECRET)
    assert _reason(g, other) == "wrong-server"
    assert g.remembered == 0
    g.check(fresh(notification_id=5))
    assert g.remembered == 1


def test_guard_checks_auth_data() -> None:
    g = guard(auth_data=b"device nonce")
    n = Notification("srv", notification_id=1, timestamp=NOW)
    assert _reason(g, encode(n, SECRET)) == "digest"
    g.check(encode(n, SECRET, b"device nonce"))


def test_guard_memory_is_bounded_and_an_old_notification_is_never_accepted() -> None:
    g = guard(remember=3)
    for i in range(1, 101):
        g.check(fresh(notification_id=i, timestamp=NOW - 100 + i))
        assert g.remembered == min(i, 3)
    for i in (98, 99, 100):  # the newest three are still known
        assert _reason(g, fresh(notification_id=i, timestamp=NOW - 100 + i)) == "replayed"
    # The oldest were forgotten, yet still fresh: refused, never accepted twice.
    assert _reason(g, fresh(notification_id=1, timestamp=NOW - 99)) == "replayed"
    assert _reason(g, fresh(notification_id=555, timestamp=NOW - 3)) == "replayed"
    g.check(fresh(notification_id=101, timestamp=NOW))  # newer ones still are


def test_guard_is_thread_safe() -> None:
    g = guard()
    data = fresh(notification_id=77)
    accepted: list[int] = []
    rejected: list[str] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        try:
            accepted.append(g.check(data).notification_id or 0)
        except NotificationRejected as exc:
            rejected.append(exc.reason)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert accepted == [77]
    assert rejected == ["replayed"] * 15


@pytest.mark.parametrize("kwargs", [{"max_age": 0.0}, {"remember": 0}])
def test_guard_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        guard(**kwargs)
    with pytest.raises(ValueError):
        NotificationGuard("srv", b"")


# --- describe ----------------------------------------------------------------


def _assert_covers(data: bytes, rows: list[dict[str, object]]) -> None:
    assert set(rows[0]) == {"offset", "bytes", "field", "value", "source"}
    offset = 0
    for row in rows:
        assert row["offset"] == offset
        offset += len(bytes.fromhex(str(row["bytes"])))
    assert offset == len(data)
    assert bytes.fromhex("".join(str(r["bytes"]) for r in rows)) == data


def test_describe_known_notification() -> None:
    n = Notification(
        "srv", notification_id=0x1234, preferred_con_type=2, timestamp=NOW, req_mos=True
    )
    data = encode(n, SECRET)
    rows = describe(data)
    _assert_covers(data, rows)
    assert [r["field"] for r in rows] == [
        "header",
        "SERVER-ID option header",
        "SERVER-ID",
        "PREFERRED-CON-TYPE option header",
        "PREFERRED-CON-TYPE",
        "NOTIFICATION-ID option header",
        "NOTIFICATION-ID",
        "SHA256-DIGEST option header",
        "SHA256-DIGEST",
        "TIMESTAMP option header",
        "TIMESTAMP",
        "REQ-MOS option header",
    ]
    values = {r["field"]: r["value"] for r in rows}
    assert values["header"] == "version 2, 6 option(s), reserved 0"
    assert values["SERVER-ID"] == "srv"
    assert values["NOTIFICATION-ID"] == 0x1234
    assert values["PREFERRED-CON-TYPE"] == "0x02 WLAN"
    sources = {r["field"]: r["source"] for r in rows}
    assert sources["SERVER-ID"] == "specification"
    assert "notification-version" in str(sources["header"])
    assert "option-framing" in str(sources["SERVER-ID option header"])
    assert "timestamp-length" in str(sources["TIMESTAMP"])
    assert values["TIMESTAMP"] == NOW
    assert values["SHA256-DIGEST"] == decode(data).digest.hex()  # type: ignore[union-attr]
    assert values["SHA256-DIGEST option header"] == "delta 1 (option 4), length 32"
    assert values["REQ-MOS option header"] == "delta 1 (option 6), length 0"


@given(notifications)
def test_describe_covers_every_byte_once(n: Notification) -> None:
    data = encode(n, SECRET)
    _assert_covers(data, describe(data))


def test_describe_rejects_malformed() -> None:
    with pytest.raises(NotificationError):
        describe(b"\x22")


def test_option_numbers_match_the_brief() -> None:
    assert [(o.name, o.value) for o in Option] == [
        ("SERVER_ID", 1),
        ("PREFERRED_CON_TYPE", 2),
        ("NOTIFICATION_ID", 3),
        ("SHA256_DIGEST", 4),
        ("TIMESTAMP", 5),
        ("REQ_MOS", 6),
    ]


# --- DM 1.2 ------------------------------------------------------------------


def test_dm12_known_bytes_and_digest() -> None:
    data = encode_dm12("srv", 0x0ABC, "pw", b"nonce", ui_mode=2, initiator=1)
    # version 12 (0000001100) | ui 10 | initiator 1 | 27 zero bits | 0x0ABC | 3
    expected_header = (12 << 54 | 2 << 52 | 1 << 51 | 0x0ABC << 8 | 3).to_bytes(8, "big")
    assert data[16:24] == expected_header == bytes.fromhex("03280000000abc03")
    assert data[24:] == b"srv"

    def b64md5(raw: bytes) -> bytes:
        return base64.b64encode(hashlib.md5(raw).digest())

    trigger = data[16:]
    assert data[:16] == hashlib.md5(b64md5(b"srv:pw") + b":nonce:" + b64md5(trigger)).digest()


@given(
    server_id=st.text(st.characters(codec="ascii", min_codepoint=33), min_size=1, max_size=60),
    session_id=st.integers(1, 0xFFFF),
    password=st.text(max_size=20),
    nonce=st.binary(max_size=16),
    ui_mode=st.integers(0, 3),
    initiator=st.integers(0, 1),
    version=st.integers(0, 1023),
    vendor=st.binary(max_size=20),
)
def test_dm12_round_trip(
    server_id: str,
    session_id: int,
    password: str,
    nonce: bytes,
    ui_mode: int,
    initiator: int,
    version: int,
    vendor: bytes,
) -> None:
    data = encode_dm12(
        server_id,
        session_id,
        password,
        nonce,
        ui_mode=ui_mode,
        initiator=initiator,
        version=version,
        vendor_specific=vendor,
    )
    fields = decode_dm12(data)
    assert fields == {
        "digest": data[:16],
        "version": version,
        "ui_mode": ui_mode,
        "initiator": initiator,
        "session_id": session_id,
        "session_id_hex": format(session_id, "X"),
        "server_id": server_id,
        "vendor_specific": vendor,
    }
    assert verify_dm12(data, server_id, password, nonce)


def test_dm12_verification_fails_on_wrong_inputs_and_changes() -> None:
    data = encode_dm12("srv", 1, "pw", b"n1")
    assert verify_dm12(data, "srv", "pw", b"n1")
    assert not verify_dm12(data, "srv", "pw2", b"n1")
    assert not verify_dm12(data, "srv", "pw", b"n2")
    assert not verify_dm12(data, "other", "pw", b"n1")
    for i in range(len(data)):
        changed = bytearray(data)
        changed[i] ^= 0x01
        assert not verify_dm12(bytes(changed), "srv", "pw", b"n1"), i
    assert not verify_dm12(b"short", "srv", "pw", b"n1")


def test_dm12_session_id_hex_has_no_leading_zeros() -> None:
    assert decode_dm12(encode_dm12("srv", 0x00AB, "pw", b""))["session_id_hex"] == "AB"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("", 1), {}, "1 to 255 bytes"),
        (("x" * 256, 1), {}, "1 to 255 bytes"),
        (("srv", 0), {}, "1 to 65535"),
        (("srv", 0x10000), {}, "1 to 65535"),
        (("srv", 1), {"ui_mode": 4}, "ui_mode"),
        (("srv", 1), {"initiator": 2}, "initiator"),
        (("srv", 1), {"version": 1024}, "version"),
        (("srv", 1), {"vendor_specific": bytes(1000)}, "1024 bytes"),
    ],
)
def test_dm12_encode_rejects(
    args: tuple[str, int], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(NotificationError, match=message):
        encode_dm12(*args, "pw", b"", **kwargs)  # type: ignore[arg-type]


def _dm12(header64: int, rest: bytes = b"") -> bytes:
    return bytes(16) + header64.to_bytes(8, "big") + rest


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes(23), "truncated"),
        (_dm12(12 << 54 | 1 << 24 | 1 << 8 | 1, b"s"), "future-use bits"),
        (_dm12(12 << 54 | 0 << 8 | 1, b"s"), "session id 0"),
        (_dm12(12 << 54 | 1 << 8 | 0), "length is 0"),
        (_dm12(12 << 54 | 1 << 8 | 5, b"abc"), "claims 5 bytes, 3 remain"),
        (_dm12(12 << 54 | 1 << 8 | 1, b"\xff"), "UTF-8"),
        (bytes(MAX_NOTIFICATION_SIZE + 1), "limit is 1024"),
    ],
)
def test_dm12_decode_rejects(data: bytes, message: str) -> None:
    with pytest.raises(NotificationError, match=message):
        decode_dm12(data)
    assert not verify_dm12(data, "s", "pw", b"")


def test_other_versions_encode_but_do_not_decode() -> None:
    # A lab can build a version-3 notification to show a DM 2.0 client refusing it.
    data = encode(Notification("srv", version=3), SECRET)
    assert data[0] >> 4 == 3
    with pytest.raises(NotificationError, match="unsupported version 3"):
        decode(data)
    assert _reason(guard(), data) == "malformed"
