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
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..store import Store

# scrypt cost: n=2**14, r=8, p=1 is the interactive-login setting from the
# scrypt paper (about 16 MiB and some tens of milliseconds here).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_CACHE_SIZE = 50_000
#: Brute force: this many failed logins for one name within WINDOW seconds
#: lock that name out for LOCKOUT seconds (correct credentials included).
MAX_FAILURES = 10
WINDOW = 60.0
LOCKOUT = 60.0

Kind = Literal["account", "device"]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Kind
    name: str  # the account name, or the device's DevID
    account: str  # the account that owns it (itself for an account)


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
        actual = hashlib.scrypt(
            secret.encode(),
            salt=base64.b64decode(salt),
            dklen=len(expected),
            n=int(n),
            r=int(r),
            p=int(p),
        )
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


class LockedOut(Exception):
    """Too many failed logins for this name; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"locked out for {retry_after:.0f} s")
        self.retry_after = retry_after


class Throttle:
    """Counts failed logins per name and refuses a name for a while after too many.

    Keyed by name rather than address: every lab client is on loopback. The
    price, acceptable in a lab, is that anyone can lock a name out for a minute.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_failures: int = MAX_FAILURES
    ) -> None:
        self._clock = clock
        self._max_failures = max_failures
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def check(self, names: tuple[str, ...]) -> None:
        now = self._clock()
        with self._lock:
            for name in names:
                until = self._locked_until.get(name, 0.0)
                if until > now:
                    raise LockedOut(until - now)
                self._locked_until.pop(name, None)

    def failed(self, names: tuple[str, ...]) -> None:
        now = self._clock()
        with self._lock:
            for name in names:
                times = self._failures.setdefault(name, deque())
                times.append(now)
                while times and times[0] < now - WINDOW:
                    times.popleft()
                if len(times) >= self._max_failures:
                    self._locked_until[name] = now + LOCKOUT
                    times.clear()
            if len(self._failures) > _CACHE_SIZE:  # bound memory under a spray of names
                self._failures.clear()


class Authenticator:
    def __init__(
        self, store: Store, *, cost: dict[str, int] | None = None, throttle: Throttle | None = None
    ) -> None:
        self._store = store
        self._cost = cost
        self.throttle = throttle or Throttle()
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._verified: OrderedDict[bytes, tuple[Principal, str]] = OrderedDict()

    def hash(self, secret: str) -> str:
        return hash_secret(secret, cost=self._cost)

    def authenticate(self, header: str | None) -> Principal | None:
        """The principal for these credentials, ``None`` if they are wrong or absent;
        raises :class:`LockedOut` for a name under brute-force lockout."""
        credentials = basic_credentials(header)
        if credentials is None:
            return None
        names = self._claimed_names(credentials)
        self.throttle.check(names)
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
        self.throttle.failed(names)
        return None

    def _claimed_names(self, credentials: str) -> tuple[str, ...]:
        """The names a failed login counts against: the account or device it names.

        An account name ends at the first colon, a DevID at the last, so both
        readings are tried; one that names nobody falls back to the DevID reading,
        which keeps a prefix such as ``IMEI`` from collecting every device's failures.
        """
        account = credentials.partition(":")[0]
        dev_id = credentials.rpartition(":")[0]
        names = tuple(
            n
            for n, known in (
                (account, self._store.get_account(account)),
                (dev_id, self._store.get_device(dev_id)),
            )
            if known
        )
        return names or (dev_id,)

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
