"""Who is asking: HTTP Basic credentials of an account or of a device.

Accounts log in as ``name:password``; devices as ``devId:secret`` (a DevID such
as ``IMEI:490154203237518`` holds colons, so the secret is what follows the
*last* colon; secrets never contain one). Both are stored only as salted scrypt
hashes. Verifying scrypt on every request would cost more than the rest of a
DM exchange, so a successful check is remembered under a keyed digest of the
exact credentials, and forgotten as soon as the stored hash changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from ..store import Store

# scrypt cost: n=2**14, r=8, p=1 is the interactive-login setting from the
# scrypt paper (about 16 MiB and some tens of milliseconds here).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_CACHE_SIZE = 50_000

Kind = Literal["account", "device"]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Kind
    name: str       # the account name, or the device's DevID
    account: str    # the account that owns it (itself for an account)


def new_secret() -> str:
    """A device secret: 128 bits, URL-safe, never a colon."""
    return secrets.token_urlsafe(16)


def hash_secret(secret: str, *, cost: dict[str, int] | None = None) -> str:
    params = cost or _SCRYPT
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **params)
    return "scrypt${n}${r}${p}${salt}${digest}".format(
        **params, salt=base64.b64encode(salt).decode(), digest=base64.b64encode(digest).decode()
    )


def verify_secret(secret: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), dklen=len(expected),
                                n=int(n), r=int(r), p=int(p))
    except (ValueError, binascii.Error):
        return False
    return scheme == "scrypt" and hmac.compare_digest(actual, expected)


def basic_credentials(header: str | None) -> str | None:
    """The decoded ``user:password`` of an ``Authorization: Basic`` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded if ":" in decoded else None


class Authenticator:
    def __init__(self, store: Store, *, cost: dict[str, int] | None = None) -> None:
        self._store = store
        self._cost = cost
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._verified: OrderedDict[bytes, tuple[Principal, str]] = OrderedDict()

    def hash(self, secret: str) -> str:
        return hash_secret(secret, cost=self._cost)

    def authenticate(self, header: str | None) -> Principal | None:
        credentials = basic_credentials(header)
        if credentials is None:
            return None
        fingerprint = hmac.new(self._key, credentials.encode(), hashlib.sha256).digest()
        with self._lock:
            remembered = self._verified.get(fingerprint)
        if remembered is not None:
            principal, stored_hash = remembered
            if self._current_hash(principal) == stored_hash:
                return principal
            with self._lock:
                self._verified.pop(fingerprint, None)
        found = self._check(credentials)
        if found is not None:
            with self._lock:
                self._verified[fingerprint] = found
                while len(self._verified) > _CACHE_SIZE:
                    self._verified.popitem(last=False)
            return found[0]
        return None

    def _current_hash(self, principal: Principal) -> str | None:
        if principal.kind == "account":
            account = self._store.get_account(principal.name)
            return account.password_hash if account else None
        device = self._store.get_device(principal.name)
        return device.secret_hash if device else None

    def _check(self, credentials: str) -> tuple[Principal, str] | None:
        name, _, password = credentials.partition(":")
        account = self._store.get_account(name)
        if account is not None and verify_secret(password, account.password_hash):
            return Principal("account", name, name), account.password_hash
        dev_id, _, secret = credentials.rpartition(":")
        device = self._store.get_device(dev_id)
        if device is not None and verify_secret(secret, device.secret_hash):
            return Principal("device", dev_id, device.account), device.secret_hash
        return None


def csrf_token(key: bytes, account: str) -> str:
    """A per-account token that forms carry; a cross-site page cannot know it."""
    return hmac.new(key, b"csrf\0" + account.encode(), hashlib.sha256).hexdigest()[:32]
