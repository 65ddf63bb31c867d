"""DevIDs in one canonical form, so one device cannot be registered twice under two spellings.

DevInfo's DevID is ``scheme:value`` for the identifiers the industry standardised, else
free text the manufacturer chooses (OMA DevInfo: "IMEI:…" for GSM, "MEID:…"/"ESN:…" for
CDMA, ``urn:uuid:…`` elsewhere). The lab's reading (a lab choice; the CR is silent):

- **IMEI** (decimal digits), **MEID** and **ESN** (hexadecimal digits): the scheme name is
  case-insensitive and written upper-case; MEID and ESN digits are written upper-case.
  Leading zeros are part of the number (these are fixed-width identifiers whose leading
  digits carry meaning, such as an IMEI's reporting-body prefix), so they are never
  dropped: ``IMEI:0123`` and ``IMEI:123`` are two devices. The length is not checked, so
  short test numbers stay usable.
- **urn:** (``urn:uuid:…``, ``urn:imei:…`` …): ``urn`` and the namespace id are
  case-insensitive (RFC 8141) and written lower-case; a UUID's hex digits too (RFC 9562).
- **Anything else** is free text and compared exactly, case included.
"""

from __future__ import annotations

import re

from .errors import InvalidDevId

#: 3 to 100 characters; no slashes, percent signs or dots-only segments, so a
#: DevID can never play tricks with the paths it appears in.
SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{2,99}")
HINT = "3 to 100 characters of letters, digits and :._- (e.g. IMEI:490154203237518 or urn:uuid:…)"
_DECIMAL, _HEX = re.compile(r"[0-9]+"), re.compile(r"[0-9A-F]+")
_DIGITS = {"IMEI": _DECIMAL, "MEID": _HEX, "ESN": _HEX}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical(dev_id: object) -> str:
    """The one spelling under which a DevID is stored and compared; ``InvalidDevId`` if
    it is not a DevID at all."""
    if not isinstance(dev_id, str) or not SHAPE.fullmatch(dev_id):
        raise InvalidDevId(f"devId is required: {HINT}")
    scheme, sep, value = dev_id.partition(":")
    upper = scheme.upper()
    if sep and upper in _DIGITS:
        value = value.upper()
        if not _DIGITS[upper].fullmatch(value):
            kind = "decimal" if upper == "IMEI" else "hexadecimal"
            raise InvalidDevId(f"an {upper} devId is {upper}: followed by {kind} digits")
        return f"{upper}:{value}"
    if sep and upper == "URN":
        nid, sep2, rest = value.partition(":")
        if not sep2 or not rest:
            raise InvalidDevId("a urn devId is urn:<namespace>:<id>")
        nid = nid.lower()
        if nid == "uuid" and _UUID.fullmatch(rest.lower()):
            rest = rest.lower()
        return f"urn:{nid}:{rest}"
    return dev_id


def lookup(dev_id: str) -> str:
    """The canonical form for finding a device: a string that is no DevID stays as
    it is (it names nothing, which the caller reports as not found)."""
    try:
        return canonical(dev_id)
    except InvalidDevId:
        return dev_id
