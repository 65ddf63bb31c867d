"""The device lifecycle: register, update, unregister, each one atomic unit of work
whose event goes out after commit."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from ..protocol.notification import notification_key
from ..store import Device
from . import devids
from .errors import Conflict, Invalid, NotFound
from .unit import Unit

#: The texts an account may set on a device, and their longest length.
TEXT_FIELDS = ("name", "man", "mod")
MAX_TEXT = 100

#: A check of the device as it is inside the unit of work (e.g. a version the caller
#: saw); it raises to refuse.
Expectation = Callable[[Device], None]


class Forget(Protocol):
    """The notification channels, which drop an unregistered device's mailbox."""

    def forget(self, dev_id: str) -> None: ...


def new_secret() -> str:
    """A device secret: 128 bits, URL-safe, never a colon, and never a leading ``-``
    (people paste it on command lines, where ``--secret -x…`` reads as an option)."""
    while (secret := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return secret


def text_fields(fields: Mapping[str, object], *, only_given: bool = False) -> dict[str, str]:
    """The device texts among ``fields`` (all of them, blank when missing, unless
    ``only_given``), trimmed; ``Invalid`` if one is not short text."""
    out = {}
    for key in TEXT_FIELDS:
        if only_given and key not in fields:
            continue
        value = fields.get(key, "")
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise Invalid(f"{key} must be text of at most {MAX_TEXT} characters")
        out[key] = value.strip()
    return out


class Devices:
    def __init__(
        self,
        unit: Unit,
        notifier: Forget,
        hash_secret: Callable[[str], str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.unit = unit
        self.store = unit.store
        self._notifier = notifier
        self._hash = hash_secret
        self._clock = clock

    def register(self, account: str, dev_id: str, texts: Mapping[str, str]) -> tuple[Device, str]:
        """A new device of ``account`` under the canonical form of ``dev_id``, and its
        secret (shown once: only a hash is kept)."""
        dev_id = devids.canonical(dev_id)
        secret = new_secret()
        device = Device(
            dev_id=dev_id,
            account=account,
            secret_hash=self._hash(secret),
            notify_key=notification_key(secret),
            registered_at=self._clock(),
            **texts,
        )
        with self.unit.atomic():
            if self.store.get_device(dev_id) is not None:
                raise Conflict(f"device {dev_id} is already registered")
            self.store.put_device(device)
            self.unit.publish("device.registered", account=account, dev_id=dev_id)
        return device, secret

    def owned(self, account: str, dev_id: str) -> Device:
        """The device, if ``account`` owns it; otherwise ``NotFound``, which reveals nothing."""
        device = self.store.get_device(devids.lookup(dev_id))
        if device is None or device.account != account:
            raise NotFound(f"no device {dev_id}")
        return device

    def update(
        self,
        account: str,
        dev_id: str,
        changes: Mapping[str, object],
        expect: Expectation | None = None,
    ) -> Device:
        """Change a device's texts; its devId never changes (unregister and register again)."""
        texts = text_fields(changes, only_given=True)
        with self.unit.atomic():
            current = self.owned(account, dev_id)
            if "devId" in changes and devids.lookup(str(changes["devId"])) != current.dev_id:
                raise Invalid("devId cannot change; unregister and register again")
            if expect is not None:
                expect(current)
            updated = dataclasses.replace(current, **texts)  # type: ignore[arg-type]
            self.store.put_device(updated)
            self.unit.publish("device.updated", account=account, dev_id=current.dev_id)
        return updated

    def unregister(self, account: str, dev_id: str, expect: Expectation | None = None) -> Device:
        with self.unit.atomic():
            device = self.owned(account, dev_id)
            if expect is not None:
                expect(device)
            self.store.delete_device(device.dev_id)
            self.unit.publish("device.unregistered", account=account, dev_id=device.dev_id)
        self._notifier.forget(device.dev_id)
        return device
