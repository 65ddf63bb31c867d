"""Firmware packages: what a FUMO PkgURL points at.

Lab choice (the brief names no format): a JSON object
``{"version": "2.0.0", "name"?, "image": <base64>, "size": n, "sha256": hex}``.
Only ``version`` is required; ``size`` and ``sha256`` are checked against the
decoded image when present, and a package failing them is corrupted (FUMO 402).
The server builds packages with :func:`lab_package`; devices read them with
:func:`parse_package`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any


class PackageError(ValueError):
    """A firmware package that fails its checks (FUMO result 402)."""


@dataclass(frozen=True, slots=True)
class Package:
    version: str
    name: str | None = None
    image: bytes = b""


def firmware_package(version: str, image: bytes = b"", *, name: str | None = None) -> bytes:
    """The body a lab server serves at a FUMO PkgURL."""
    body: dict[str, Any] = {
        "version": version,
        "image": base64.b64encode(image).decode("ascii"),
        "size": len(image),
        "sha256": hashlib.sha256(image).hexdigest(),
    }
    if name is not None:
        body["name"] = name
    return json.dumps(body).encode()


def parse_package(body: bytes | str) -> Package:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"not a JSON package: {exc}") from None
    if not isinstance(value, dict):
        raise PackageError("a package is a JSON object")
    version, name = value.get("version"), value.get("name")
    if not isinstance(version, str) or not version:
        raise PackageError('a package needs a "version" string')
    if name is not None and not isinstance(name, str):
        raise PackageError('"name" must be a string')
    try:
        image = base64.b64decode(value.get("image", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise PackageError('"image" must be base64') from None
    if "size" in value and value["size"] != len(image):
        raise PackageError(f"size {value['size']!r} does not match the image ({len(image)} bytes)")
    if "sha256" in value and value["sha256"] != hashlib.sha256(image).hexdigest():
        raise PackageError("sha256 does not match the image")
    return Package(version, name, image)


def is_version(text: str) -> bool:
    """A package version as the lab's resources accept it: 1 to 4 numbers, ``1.2.3``."""
    parts = text.split(".")
    return 1 <= len(parts) <= 4 and all(p.isdigit() and len(p) <= 6 for p in parts)


def lab_package(version: str, name: str = "firmware") -> bytes:
    """The package the lab server serves for a version: a deterministic 4 KiB image."""
    seed = hashlib.sha256(f"dmlab {name} {version}".encode()).digest()
    if name == "firmware":
        return firmware_package(version, (seed * 128)[:4096])
    return firmware_package(version, (seed * 128)[:4096], name=name)
