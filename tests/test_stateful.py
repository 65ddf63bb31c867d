"""Random sequences of API calls from several accounts and devices, checked against
a model after every step (hypothesis' ``RuleBasedStateMachine``).

The app runs in process (``httpx.ASGITransport`` on a private event loop) so a
few hundred sequences take seconds. What must hold whatever the order:

- every session is in exactly one of pending, active, completed, as in the model;
- a device only ever sees (lists, starts, reports, aborts) its own sessions;
- pending sessions start oldest first, and each starts exactly once;
- a spent id (or a completed session's id) is a 409, a foreign or unknown one a 404.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dmlab.events import Event
from dmlab.protocol import AlertType, media
from dmlab.server import build_services, create_app
from dmlab.store import MemoryStore, State

from helpers import HASH_COST

ACCOUNTS = {"alpha": "alpha-pw", "beta": "beta-pw"}
FWV = "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/FwV"
JOBS = {
    "get": {"CMD": [["GET", FWV]]},
    "fumo": {"job": "firmware-update", "params": {"version": "2.0.0"}},
}
BASE = "https://dmlab.test"
#: True three times in four: most reports are aimed right, so sessions get to their end.
MOSTLY = st.sampled_from([True, True, True, False])


@dataclass
class ModelSession:
    key: str
    dev_id: str
    account: str
    job: str
    state: State = State.PENDING
    ids: list[str] = field(default_factory=list)  # every id it has had; the last is current
    round: int = 0  # rounds handed out so far
    ok: bool = True
    result: str | None = None
    started: int = 0  # when it became active: a device resumes its earliest one

    @property
    def current(self) -> str:
        return self.ids[-1]

    def due(self) -> int:
        """Statuses due for the round in hand (END gets none)."""
        return 2 if self.job == "fumo" else 1


class DMServer(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Deterministic session ids, so that hypothesis can replay and shrink a run.
        counter = itertools.count(0x5E55)
        self.services = build_services(
            store=MemoryStore(),
            hash_cost=HASH_COST,
            ids=lambda: f"{next(counter) * 0x9E3779B1 % 2**64:016x}",
        )
        for name, password in ACCOUNTS.items():
            self.services.add_account(name, password)
        self.started: Counter[str] = Counter()
        self.services.events.subscribe(self._count)
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(self.services)), base_url=BASE, timeout=30
        )
        self.devices: dict[str, tuple[str, str]] = {}  # dev_id -> (account, secret)
        self.sessions: dict[str, ModelSession] = {}  # key -> session (deleted devices' dropped)
        self.gone: set[str] = set()  # ids of sessions deleted with their device
        self.serial = itertools.count(490154203237518)
        self.starts = itertools.count(1)

    def _count(self, event: Event) -> None:
        if event.kind == "session.started":
            self.started[event.data["key"]] += 1

    def teardown(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    # HTTP ------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        *,
        auth: tuple[str, str],
        body: Any = None,
        content_type: str = media.JSON,
        accept: str = media.JSON,
    ) -> httpx.Response:
        headers = {"Accept": accept}
        content = None
        if body is not None:
            content, headers["Content-Type"] = json.dumps(body).encode(), content_type
        if ":" in auth[0] and auth[0] in self.devices:
            headers[media.DEVID_HEADER] = auth[0]
        return self.loop.run_until_complete(
            self.client.request(method, path, content=content, headers=headers, auth=auth)
        )

    def as_device(self, dev_id: str, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.call(
            method,
            path,
            auth=(dev_id, self.devices[dev_id][1]),
            body=body,
            content_type=media.DM20_RESPONSE,
            accept=media.COMMANDS,
        )

    def pick(self, items: list[str], index: int) -> str:
        return sorted(items)[index % len(items)]

    def mine(self, dev_id: str, state: State) -> list[ModelSession]:
        return [s for s in self.sessions.values() if s.dev_id == dev_id and s.state is state]

    def every_id(self) -> list[str]:
        return [i for s in self.sessions.values() for i in s.ids] + sorted(self.gone)

    def handed_out(self, session: ModelSession, answer: httpx.Response) -> None:
        """A package 2 (200/201): the session is active under the id in the answer."""
        assert answer.status_code in (200, 201), answer.text
        new_id = answer.json()["SessionID"]
        assert new_id not in self.every_id() or new_id == session.key
        if new_id != session.key:
            session.ids.append(new_id)
        if session.state is State.PENDING:
            session.started = next(self.starts)
        session.state, session.round = State.ACTIVE, session.round + 1

    # Rules ------------------------------------------------------------------------------
    @precondition(lambda self: len(self.devices) < 5)  # a few devices, many sessions
    @rule(account=st.sampled_from(sorted(ACCOUNTS)))
    def register(self, account: str) -> None:
        dev_id = f"IMEI:{next(self.serial)}"
        answer = self.call(
            "POST", "/devices/new", auth=(account, ACCOUNTS[account]), body={"devId": dev_id}
        )
        assert answer.status_code == 201, answer.text
        self.devices[dev_id] = (account, answer.json()["secret"])

    @precondition(lambda self: self.devices)
    @rule(
        index=st.integers(0, 50),
        job=st.sampled_from(sorted(JOBS)),
        as_other=st.sampled_from([False, False, False, True]),
    )
    def queue(self, index: int, job: str, as_other: bool) -> None:
        dev_id = self.pick(list(self.devices), index)
        owner = self.devices[dev_id][0]
        account = next(a for a in ACCOUNTS if a != owner) if as_other else owner
        answer = self.call(
            "POST",
            f"/devices/{dev_id}/sessions",
            auth=(account, ACCOUNTS[account]),
            body={**JOBS[job], "notify": False},
        )
        if as_other:  # another account's device does not exist for it
            assert answer.status_code == 404, answer.text
            return
        assert answer.status_code == 202, answer.text
        key = answer.json()["SessionID"]
        assert key not in self.every_id()
        self.sessions[key] = ModelSession(key, dev_id, owner, job, ids=[key])

    @precondition(lambda self: self.devices)
    @rule(index=st.integers(0, 50), by_alert=st.booleans())
    def start_next(self, index: int, by_alert: bool) -> None:
        dev_id = self.pick(list(self.devices), index)
        if by_alert:
            answer = self.as_device(
                dev_id, "POST", "/alert", {"Alert": [{"AlertType": AlertType.CLIENT_INITIATED}]}
            )
        else:
            answer = self.as_device(dev_id, "POST", "/sessions/next")
            active = sorted(self.mine(dev_id, State.ACTIVE), key=lambda s: s.started)
            if active:  # lab choice session-resume: the round in hand comes again
                assert answer.status_code == 200, answer.text
                assert answer.json()["SessionID"] == active[0].current, "resumes the earliest"
                return
        pending = self.mine(dev_id, State.PENDING)
        if not pending:
            assert answer.status_code == 204, answer.text
            return
        oldest = pending[0]  # dicts keep insertion order: the model's queue is FIFO
        assert answer.json()["SessionID"] == oldest.key, "pending sessions start oldest first"
        self.handed_out(oldest, answer)

    @precondition(lambda self: self.devices and self.sessions)
    @rule(index=st.integers(0, 50), pick_id=st.integers(0, 500), aim=st.booleans())
    def start_by_id(self, index: int, pick_id: int, aim: bool) -> None:
        dev_id = self.pick(list(self.devices), index)
        own = [s.key for s in self.mine(dev_id, State.PENDING)]
        session_id = self.pick(own if aim and own else self.every_id(), pick_id)
        answer = self.as_device(dev_id, "POST", f"/sessions/id/{session_id}")
        session = self._by_id(session_id)
        if session is None or session.dev_id != dev_id:
            assert answer.status_code == 404, answer.text
        elif session.state is State.PENDING:
            self.handed_out(session, answer)
        else:
            assert answer.status_code == 409, answer.text

    @precondition(lambda self: self.devices and self.sessions)
    @rule(
        index=st.integers(0, 50), pick_id=st.integers(0, 500), right=MOSTLY, ok=MOSTLY, aim=MOSTLY
    )
    def report(self, index: int, pick_id: int, right: bool, ok: bool, aim: bool) -> None:
        dev_id = self.pick(list(self.devices), index)
        own = [s.current for s in self.mine(dev_id, State.ACTIVE)]
        session_id = self.pick(own if aim and own else self.every_id(), pick_id)
        session = self._by_id(session_id)
        due = session.due() if session is not None else 1
        statuses = [{"sc": 200 if ok else 500} for _ in range(due if right else due + 1)]
        if session is not None and session.job == "fumo" and session.round == 1 and ok:
            statuses[:2] = [{"sc": 200, "Data": "1.0.0"}, {"sc": 200, "Data": 10}]
        answer = self.as_device(dev_id, "PUT", f"/sessions/id/{session_id}", {"Status": statuses})
        if session is None or session.dev_id != dev_id:
            assert answer.status_code == 404, answer.text
        elif session.state is not State.ACTIVE or session_id != session.current:
            assert answer.status_code == 409, answer.text
        elif not right:
            assert answer.status_code == 400, answer.text
        else:
            session.ok = session.ok and ok
            more = session.job == "fumo" and session.round == 1 and ok
            if more:
                assert [c[0] for c in answer.json()["CMD"]] == ["HGET", "EXEC", "END"]
                self.handed_out(session, answer)
            else:
                assert answer.status_code == 204, answer.text
                session.state = State.COMPLETED
                session.result = "OK" if session.ok else "failure"
                assert answer.headers["OMADM-Result"] == session.result

    @precondition(lambda self: self.devices and self.sessions)
    @rule(index=st.integers(0, 50), pick_id=st.integers(0, 500), by_device=st.booleans())
    def abort(self, index: int, pick_id: int, by_device: bool) -> None:
        dev_id = self.pick(list(self.devices), index)
        account = self.devices[dev_id][0]
        session_id = self.pick(self.every_id(), pick_id)
        if by_device:
            answer = self.as_device(dev_id, "DELETE", f"/session/id/{session_id}")
        else:
            answer = self.call(
                "DELETE", f"/session/id/{session_id}", auth=(account, ACCOUNTS[account])
            )
        session = self._by_id(session_id)
        visible = session is not None and (
            session.dev_id == dev_id if by_device else session.account == account
        )
        if not visible:
            assert answer.status_code == 404, answer.text
        elif session.state is State.COMPLETED or session_id != session.current:
            assert answer.status_code == 409, answer.text
        else:
            assert answer.status_code == 200, answer.text
            # The store keeps "aborted"; the CR's brief result shows a failure.
            assert answer.json()["Result"] == "failure" and answer.json()["Reason"] == "aborted"
            session.state, session.result = State.COMPLETED, "aborted"

    @precondition(lambda self: self.devices)
    @rule(index=st.integers(0, 50))
    def generic_alert(self, index: int) -> None:
        dev_id = self.pick(list(self.devices), index)
        answer = self.as_device(
            dev_id,
            "POST",
            "/alert",
            {
                "Alert": [
                    {
                        "AlertType": "org.openmobilealliance.dm.firmwareupdate.downloadandupdate",
                        "Data": 200,
                    }
                ]
            },
        )
        assert answer.status_code == 204, answer.text

    @precondition(lambda self: len(self.devices) > 3)  # rarer: it wipes sessions out
    @rule(index=st.integers(0, 50))
    def delete_device(self, index: int) -> None:
        dev_id = self.pick(list(self.devices), index)
        account = self.devices[dev_id][0]
        answer = self.call("DELETE", f"/devices/{dev_id}", auth=(account, ACCOUNTS[account]))
        assert answer.status_code == 204, answer.text
        del self.devices[dev_id]
        for key in [k for k, s in self.sessions.items() if s.dev_id == dev_id]:
            self.gone.update(self.sessions.pop(key).ids)

    def _by_id(self, session_id: str) -> ModelSession | None:
        return next((s for s in self.sessions.values() if session_id in s.ids), None)

    # Invariants ---------------------------------------------------------------------------
    @invariant()
    def store_matches_model(self) -> None:
        store = self.services.store
        seen: dict[str, State] = {}
        for account in ACCOUNTS:
            for state in State:
                for s in store.sessions_of_account(account, state):
                    assert s.key not in seen, f"{s.key} is both {seen[s.key]} and {state}"
                    seen[s.key] = state
                    model = self.sessions[s.key]
                    assert (s.dev_id, s.account, s.session_id, list(s.ids)) == (
                        model.dev_id,
                        model.account,
                        model.current,
                        model.ids,
                    )
                    if state is State.COMPLETED:
                        assert s.result is not None and s.result.value == model.result
        assert seen == {k: s.state for k, s in self.sessions.items()}
        for session_id in self.gone:
            assert store.session_by_id(session_id) is None

    @invariant()
    def each_session_started_once(self) -> None:
        for key, session in self.sessions.items():
            expected = (
                0
                if session.state is State.PENDING
                or (session.result == "aborted" and session.round == 0)
                else 1
            )
            assert self.started[key] == expected, (key, session, self.started[key])

    @invariant()
    def devices_see_only_their_own(self) -> None:
        for dev_id in self.devices:
            for listing in ("pending", "completed"):
                answer = self.as_device(dev_id, "GET", f"/sessions/{listing}")
                assert answer.status_code == 200
                entries = answer.json()["Sessions"]
                assert {e["DevID"] for e in entries} <= {dev_id}
                if listing == "pending":  # a FIFO queue, oldest first
                    assert [e["SessionID"] for e in entries] == [
                        s.current for s in self.mine(dev_id, State.PENDING)
                    ]
                else:  # in order of completion, which the model does not keep
                    assert sorted(e["SessionID"] for e in entries) == sorted(
                        s.current for s in self.mine(dev_id, State.COMPLETED)
                    )


DMServer.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
test_dm_server = DMServer.TestCase
