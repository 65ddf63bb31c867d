"""Who is asking: HTTP Basic credentials of an account or of a device.

Accounts log in as ``name:password``; devices as ``devId:secret`` (a DevID such
as ``IMEI:490154203237518`` holds colons, so the secret is what follows the
*last* colon; secrets never contain one).

Two kinds of verifier, because the two kinds of secret differ:

- An account's password is chosen by a person, so it is kept as a salted scrypt
  hash, and checking it costs tens of milliseconds: that work runs in a small
  worker pool (:data:`HASH_WORKERS` threads), never on the event loop. A success
  is remembered (per process) under a keyed digest of the exact credentials.
- A device's secret is made by the server with 128 random bits, so a salted
  SHA-256 verifier (``sha256$…``) is as safe as scrypt would be: no one can
  search 2^128 guesses, online or from a stolen database (which, besides, holds
  the device's notification key, already a fast one-way function of the secret).
  Checking it costs microseconds, so a restarted server does not make its fleet
  queue behind hashing. Older ``scrypt$`` device hashes still verify, and are
  rewritten as ``sha256$`` on their first success.

A failed login always costs one scrypt, whether the name is an account, a
device or nobody (a dummy hash stands in), so timing does not tell which names
exist. Brute force is throttled by :class:`Throttle`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import anyio
import anyio.to_thread
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..core import devids
from ..store import Device, StorageFault, Store

# scrypt cost: n=2**14, r=8, p=1 is the interactive-login setting from the
# scrypt paper (about 16 MiB and some tens of milliseconds here).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_CACHE_SIZE = 50_000
#: Threads that may run scrypt at once: every core but one, which the event loop
#: keeps (on 2 cores, one: a flood of wrong secrets then waits in line, rather
#: than taking the CPU that cached logins need).
HASH_WORKERS = max(1, (os.cpu_count() or 2) - 1)

#: Brute force, per (name, client address): this many failures are free; each
#: further one doubles the wait before the next attempt (2 s, 4 s, … ``MAX_BACKOFF``).
FREE_FAILURES = 10
MAX_BACKOFF = 60.0
#: A (name, address) that fails nothing for this long starts afresh.
FORGET_AFTER = 900.0
#: Per name, from every address together: this many failures within ``WINDOW``
#: make the name accept only credentials it can check without scrypt (a device's
#: secret, an account's password proven earlier and not locked for this address)
#: for ``LOCKOUT`` seconds.
NAME_CEILING = 50
WINDOW = 60.0
LOCKOUT = 60.0
#: Bound on the throttle's tables: the oldest entries go first.
MAX_TRACKED = 10_000

Kind = Literal["account", "device"]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Kind
    name: str  # the account name, or the device's DevID
    account: str  # the account that owns it (itself for an account)
    #: A device's record as read to check its credentials in this request, so the
    #: route need not read it again (``None``: not read; never kept across requests).
    device: Device | None = field(default=None, compare=False, repr=False)


def hash_secret(secret: str, *, cost: dict[str, int] | None = None) -> str:
    """A salted scrypt hash: for passwords that a person chose."""
    params = cost or _SCRYPT
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **params)
    return "scrypt${n}${r}${p}${salt}${digest}".format(
        **params, salt=base64.b64encode(salt).decode(), digest=base64.b64encode(digest).decode()
    )


def device_verifier(secret: str) -> str:
    """A salted SHA-256 verifier: for secrets of 128 random bits (see the module doc)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.sha256(b"dmlab device secret\0" + salt + secret.encode()).digest()
    return f"sha256${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def is_cheap(encoded: str) -> bool:
    """Whether checking against ``encoded`` takes microseconds rather than scrypt."""
    return encoded.startswith("sha256$")


def verify_secret(secret: str, encoded: str) -> bool:
    try:
        scheme, *fields = encoded.split("$")
        if scheme == "sha256" and len(fields) == 2:
            salt, expected = (base64.b64decode(f) for f in fields)
            actual = hashlib.sha256(b"dmlab device secret\0" + salt + secret.encode()).digest()
            return hmac.compare_digest(actual, expected)
        if scheme != "scrypt" or len(fields) != 5:
            return False
        n, r, p, salt_text, digest = fields
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            secret.encode(),
            salt=base64.b64decode(salt_text),
            dklen=len(expected),
            n=int(n),
            r=int(r),
            p=int(p),
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


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
    """Too many failed logins; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"locked out for {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass(slots=True)
class _Pair:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class Throttle:
    """Counts failed logins per (name, client address), with backoff, and per name.

    Per address, so that a guesser elsewhere cannot lock a party out; per name
    too, because every lab client shares 127.0.0.1 and addresses are cheap. The
    per-name ceiling only withholds the *expensive* check: credentials that can be
    verified without scrypt (a device's secret, whose 128 bits no lockout needs
    to protect) still get in, so a device that fails on purpose, or a guesser
    naming it, cannot stop the real device from finishing its session or
    receiving notifications. Tables are bounded (``MAX_TRACKED``, oldest out).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        free_failures: int = FREE_FAILURES,
        name_ceiling: int = NAME_CEILING,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self._clock = clock
        self._free = free_failures
        self._ceiling = name_ceiling
        self._max = max_tracked
        self._lock = threading.Lock()
        self._pairs: OrderedDict[tuple[str, str], _Pair] = OrderedDict()
        self._names: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def check(self, names: tuple[str, ...], client: str, *, proven: bool = False) -> None:
        """Raise :class:`LockedOut` if these names may not be tried now from ``client``.
        ``proven`` credentials were checked without scrypt: only the pair lock applies."""
        now = self._clock()
        with self._guard():
            for name in names:
                pair = self._pair(name, client)
                if pair is not None and pair.locked_until > now:
                    raise LockedOut(pair.locked_until - now)
                if proven:
                    continue
                _, _, until = self._name(name) or (0, 0.0, 0.0)
                if until > now:
                    raise LockedOut(until - now)

    def failed(self, names: tuple[str, ...], client: str) -> None:
        now = self._clock()
        with self._guard():
            for name in names:
                pair = self._pair(name, client) or _Pair()
                if now - pair.last > FORGET_AFTER:
                    pair = _Pair()
                pair.failures += 1
                pair.last = now
                if pair.failures > self._free:
                    pair.locked_until = now + min(2.0 ** (pair.failures - self._free), MAX_BACKOFF)
                self._put_pair(name, client, pair)
                count, since, until = self._name(name) or (0, now, 0.0)
                if now - since > WINDOW:
                    count, since = 0, now
                count += 1
                if count >= self._ceiling:
                    until, count, since = now + LOCKOUT, 0, now
                self._put_name(name, (count, since, until))
            self._trim()

    # The tables, in this process (``SharedThrottle`` keeps them in a shared store).
    def _guard(self) -> AbstractContextManager[object]:
        return self._lock

    def _pair(self, name: str, client: str) -> _Pair | None:
        return self._pairs.get((name, client))

    def _put_pair(self, name: str, client: str, pair: _Pair) -> None:
        self._pairs.pop((name, client), None)
        self._pairs[(name, client)] = pair  # (re)inserted last: the newest

    def _name(self, name: str) -> tuple[int, float, float] | None:
        return self._names.get(name)

    def _put_name(self, name: str, entry: tuple[int, float, float]) -> None:
        self._names.pop(name, None)
        self._names[name] = entry

    def _trim(self) -> None:
        for table in (self._pairs, self._names):
            while len(table) > self._max:
                table.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pairs) + len(self._names)


class ThrottleTables(Protocol):
    """The throttle's two tables where every server process sees them (``PostgresStore``)."""

    def transaction(self) -> AbstractContextManager[None]: ...
    def login_pair(self, name: str, client: str) -> tuple[int, float, float] | None: ...
    def put_login_pair(self, name: str, client: str, pair: tuple[int, float, float]) -> None: ...
    def login_name(self, name: str) -> tuple[int, float, float] | None: ...
    def put_login_name(self, name: str, entry: tuple[int, float, float]) -> None: ...
    def trim_logins(self, keep: int) -> int: ...


class SharedThrottle(Throttle):
    """The same rules, with the tables in a database several server processes share:
    a guesser spreading attempts over the workers meets one count. Wall-clock time,
    since monotonic clocks of different processes (or hosts) do not agree."""

    def __init__(self, tables: ThrottleTables, **kwargs: Any) -> None:
        super().__init__(time.time, **kwargs)
        self._tables = tables

    def _guard(self) -> AbstractContextManager[object]:
        return self._tables.transaction()

    def _pair(self, name: str, client: str) -> _Pair | None:
        row = self._tables.login_pair(name, client)
        return None if row is None else _Pair(*row)

    def _put_pair(self, name: str, client: str, pair: _Pair) -> None:
        self._tables.put_login_pair(name, client, (pair.failures, pair.last, pair.locked_until))

    def _name(self, name: str) -> tuple[int, float, float] | None:
        return self._tables.login_name(name)

    def _put_name(self, name: str, entry: tuple[int, float, float]) -> None:
        self._tables.put_login_name(name, entry)

    def _trim(self) -> None:
        self._tables.trim_logins(self._max)

    def __len__(self) -> int:
        return self._tables.trim_logins(-1)


class Authenticator:
    def __init__(
        self,
        store: Store,
        *,
        cost: dict[str, int] | None = None,
        throttle: Throttle | None = None,
        workers: int = HASH_WORKERS,
    ) -> None:
        self._store = store
        self._cost = cost
        self.throttle = throttle if throttle is not None else Throttle()  # (may be empty)
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._verified: OrderedDict[bytes, tuple[Principal, str]] = OrderedDict()
        self._workers = workers
        self._limiter: anyio.CapacityLimiter | None = None
        self._inflight: dict[bytes, asyncio.Future[tuple[Principal, str] | None]] = {}
        self._dummy: str | None = None
        #: A store across the network: its reads wait in a worker thread, not on the
        #: event loop (see ``context.offload``).
        self.remote: bool = getattr(store, "remote", False)

    def hash(self, secret: str) -> str:
        """A scrypt hash for a password (blocking: call it off the event loop)."""
        return hash_secret(secret, cost=self._cost)

    @staticmethod
    def device_verifier(secret: str) -> str:
        return device_verifier(secret)

    async def authenticate(self, header: str | None, client: str = "") -> Principal | None:
        """The principal for these credentials, ``None`` if they are wrong or absent;
        raises :class:`LockedOut` under brute-force lockout. Scrypt runs in the
        worker pool; everything else here takes microseconds."""
        credentials = basic_credentials(header)
        if credentials is None:
            return None
        # Keyed BLAKE2b is a MAC (RFC 7693), and a third of HMAC-SHA256's cost here.
        fingerprint = hashlib.blake2b(credentials.encode(), key=self._key, digest_size=32).digest()
        proven = (
            await anyio.to_thread.run_sync(self._cheap, credentials, fingerprint)
            if self.remote
            else self._cheap(credentials, fingerprint)
        )
        if proven is not None:
            if proven.kind == "account":
                self.throttle.check((proven.name,), client, proven=True)
            return proven
        names = self._claimed_names(credentials)
        self.throttle.check(names, client)
        # One check per credentials at a time: a client opening many connections at
        # once (a restarted operator's browser, a fleet's pooled client) waits for
        # the check in flight instead of queueing one scrypt per connection.
        checking = self._inflight.get(fingerprint)
        if checking is None:
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(self._workers)
            checking = asyncio.ensure_future(
                anyio.to_thread.run_sync(self._check, credentials, limiter=self._limiter)
            )
            self._inflight[fingerprint] = checking
            checking.add_done_callback(lambda _: self._inflight.pop(fingerprint, None))
        found = await asyncio.shield(checking)
        if found is not None:
            with self._lock:
                self._verified[fingerprint] = found
                while len(self._verified) > _CACHE_SIZE:
                    self._verified.popitem(last=False)
            return found[0]
        self.throttle.failed(names, client)
        return None

    def _cheap(self, credentials: str, fingerprint: bytes) -> Principal | None:
        """Credentials proven without scrypt: remembered from an earlier success
        (and the stored hash unchanged since), or a device's ``sha256$`` verifier."""
        with self._lock:
            remembered = self._verified.get(fingerprint)
        if remembered is not None:
            principal, stored_hash = remembered
            if principal.kind == "account":
                account = self._store.get_account(principal.name)
                if account is not None and account.password_hash == stored_hash:
                    return principal
            else:
                device = self._store.get_device(principal.name)
                if device is not None and device.secret_hash == stored_hash:
                    return replace(principal, device=device)
            with self._lock:
                self._verified.pop(fingerprint, None)
        claimed, _, secret = credentials.rpartition(":")
        dev_id = devids.lookup(claimed)
        device = self._store.get_device(dev_id)
        if (
            device is not None
            and is_cheap(device.secret_hash)
            and verify_secret(secret, device.secret_hash)
        ):
            return Principal("device", dev_id, device.account, device)
        return None

    def _claimed_names(self, credentials: str) -> tuple[str, ...]:
        """The names a failed login counts against: the account or device it names.

        An account name ends at the first colon, a DevID at the last, so both
        readings are tried; one that names nobody falls back to the DevID reading,
        which keeps a prefix such as ``IMEI`` from collecting every device's failures.
        """
        account = credentials.partition(":")[0]
        dev_id = devids.lookup(credentials.rpartition(":")[0])
        names = tuple(
            n
            for n, known in (
                (account, self._store.get_account(account)),
                (dev_id, self._store.get_device(dev_id)),
            )
            if known
        )
        return names or (dev_id,)

    def _check(self, credentials: str) -> tuple[Principal, str] | None:
        """The slow check, in a worker thread: exactly one scrypt when the
        credentials are wrong (two only if both readings name an account and a
        device with an old scrypt hash), whatever the names."""
        hashed = False
        name, _, password = credentials.partition(":")
        account = self._store.get_account(name)
        if account is not None:
            hashed = True
            if verify_secret(password, account.password_hash):
                return Principal("account", name, name), account.password_hash
        claimed, _, secret = credentials.rpartition(":")
        dev_id = devids.lookup(claimed)
        device = self._store.get_device(dev_id)
        if device is not None and not is_cheap(device.secret_hash):
            hashed = True
            if verify_secret(secret, device.secret_hash):
                return Principal("device", dev_id, device.account), self._upgrade(device, secret)
        if not hashed:
            verify_secret(password, self._dummy_hash())
        return None

    def _upgrade(self, device: Device, secret: str) -> str:
        """Rewrite an old scrypt device hash as a ``sha256$`` verifier (module doc)."""
        verifier = device_verifier(secret)
        try:
            with self._store.transaction():
                current = self._store.get_device(device.dev_id)
                if current is None or current.secret_hash != device.secret_hash:
                    return device.secret_hash
                self._store.put_device(replace(current, secret_hash=verifier))
        except StorageFault:
            return device.secret_hash  # an upgrade can wait; the login is good
        return verifier

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = hash_secret(secrets.token_urlsafe(16), cost=self._cost)
        return self._dummy


class AuthMiddleware:
    """Checks the ``Authorization`` header before routing, off the event loop where
    it is slow, and leaves the outcome in ``scope["state"]["auth"]`` (a
    :class:`Principal`, ``None``, a :class:`LockedOut`, or the :class:`StorageFault`
    that kept the credentials from being checked) for the routes to read: a route
    that needs a caller answers it (a 503), one that needs nobody is served."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = Headers(scope=scope).get("authorization")
            outcome: Principal | LockedOut | StorageFault | None = None
            if header:
                client = scope.get("client") or ("", 0)
                try:
                    outcome = await self.auth.authenticate(header, client[0])
                except (LockedOut, StorageFault) as refused:
                    outcome = refused
            scope.setdefault("state", {})["auth"] = outcome
        await self.app(scope, receive, send)


def csrf_token(key: bytes, account: str) -> str:
    """A per-account token that forms carry; a cross-site page cannot know it."""
    return hmac.new(key, b"csrf\0" + account.encode(), hashlib.sha256).hexdigest()[:32]
