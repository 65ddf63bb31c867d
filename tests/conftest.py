"""Fixtures for the end-to-end suite: a real lab (uvicorn + TLS in a thread),
raw HTTPS clients, and device registration. Plain helpers live in helpers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dmlab import Lab
from dmlab.device import Behaviour

from helpers import ACCOUNT, HASH_COST, RIVAL, Clients, Registered, new_dev_id


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST) as running:
        running.add_account(*RIVAL)
        yield running


@pytest.fixture
def fresh_lab() -> Iterator[Lab]:
    """A lab of one's own, for tests that read the whole trace or every listing."""
    with Lab(hash_cost=HASH_COST) as running:
        running.add_account(*RIVAL)
        yield running


@pytest.fixture
def clients(lab: Lab) -> Iterator[Clients]:
    made = Clients(lab)
    yield made
    made.close()


@pytest.fixture
def register(lab: Lab):
    """``register(account=..., attach=True, behaviour=...)`` → :class:`Registered`."""

    def make(
        account: str = ACCOUNT[0],
        *,
        attach: bool = True,
        dev_id: str | None = None,
        behaviour: Behaviour | None = None,
        fw_version: str = "1.0.0",
    ) -> Registered:
        dev_id = dev_id or new_dev_id()
        answer = lab.operators[account].register(
            dev_id, name="test", man="dmlab", mod="Virtual Device"
        )
        device = None
        if attach:
            device = lab.attach_device(
                dev_id,
                answer["secret"],
                account=account,
                behaviour=behaviour or Behaviour(),
                fw_version=fw_version,
            )
        return Registered(dev_id, answer["secret"], account, device)

    yield make
    lab.settle()
