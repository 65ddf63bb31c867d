"""The session state machine: pending → active → completed, one id per round.

Every transition reads and writes the store inside one ``transaction()``, so
two devices (or two requests of one device) racing for the same session see
exactly one winner; the loser gets a :class:`Conflict`. Events go out only
after the transaction commits (:class:`Unit`).

Sessions end on their own too. A pending one queued with a time to live, and an
active one whose device sends nothing for ``active_ttl`` seconds (its
``idle_until`` deadline, moved on by every round), complete as expired. No timer
runs per session: whatever reads or writes a session first checks its deadline,
in the same transaction, and :meth:`SessionEngine.expire_idle` (run periodically
by the server, off its event loop) sweeps the rest from an index of deadlines. A
report racing the expiry therefore either lands before it (and moves the
deadline on) or finds the session expired, never both. Deadlines are stored, so
a session left active by a crash expires after the restart.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..caps import DEFAULT as DEFAULT_CAPS
from ..caps import PENDING_RETRY_AFTER, Caps, OverCap, option
from ..choices import Choices
from ..protocol import Alert, AlertType, Command, Report, expects_status
from ..store import AlertRecord, Device, JobSpec, Origin, Page, Result, Round, Session, State
from . import jobs
from .errors import Conflict, Expired, NotFound, SpentSession, StatusMismatch
from .limits import SessionLimits
from .unit import Unit


class Notify(Protocol):
    """How the engine asks a device to call in (the server's package 0 channels)."""

    def notify(self, device: Device, *, session: str = ...) -> object: ...


def _ends(commands: tuple[Command, ...]) -> bool:
    return bool(commands) and commands[-1].name == "END"


#: What a client-initiated session runs when it opens no pending work (lab choice
#: alert-opens=new-session): the server reads what the device is and runs.
CLIENT_JOB = JobSpec("inventory")
#: Pending sessions read at a time while looking for a device's next live one, after
#: the oldest (read alone first: it is nearly always live, and the one started).
_START_PAGE = 16
#: Expired pending sessions moved out per listing request, at most (a backlog after a
#: long outage is worked off over several requests, never by one).
SWEEP_BATCH = 500


def new_session_id() -> str:
    """Unguessable: knowing one's own ids says nothing about another device's."""
    return secrets.token_hex(8)


class SessionEngine:
    def __init__(
        self,
        unit: Unit,
        notifier: Notify,
        *,
        ids: Callable[[], str] = new_session_id,
        clock: Callable[[], float] = time.time,
        choices: Choices | None = None,
        caps: Caps = DEFAULT_CAPS,
        limits: SessionLimits | None = None,
    ) -> None:
        choices = choices if choices is not None else Choices()
        #: How many sessions a device, and an account, may have pending (dmlab/caps.py).
        self.caps = caps
        self.limits = limits if limits is not None else SessionLimits()
        #: Lab choice session-ids: one id for the whole session instead of one per round.
        self.stable_ids = choices.is_("session-ids", "stable")
        #: Lab choice put-retry: a repeated identical PUT on the id it spent is answered again.
        self.replay_puts = choices.is_("put-retry", "replay")
        #: Lab choice end-report: ``none`` completes every session as its END is handed
        #: out; ``report`` only for a device that follows the specification.
        self.end_needs_report = choices.is_("end-report", "report")
        #: Lab choice alert-opens: a client-initiated alert always starts a new session.
        self.alert_starts_new = choices.is_("alert-opens", "new-session")
        #: Lab choice brief-result: only the CR's OK and failure are shown.
        self.cr_results = choices.is_("brief-result", "ok-failure")
        #: Lab choice session-resume: POST /sessions/next re-sends an active session's round.
        self.resumes = choices.is_("session-resume", "next")
        self.unit = unit
        self.store = unit.store
        self.notifier = notifier
        self._ids = ids
        self._clock = clock

    # Queueing (flows 1 and 4) -------------------------------------------------
    def queue(
        self,
        device: Device,
        job: JobSpec,
        origin: Origin,
        *,
        notify: bool = True,
        ttl: float | None = None,
    ) -> Session:
        now = self._clock()
        with self.unit.atomic():
            self._within_caps(device)
            session = Session(
                key=self._fresh_id(),
                dev_id=device.dev_id,
                account=device.account,
                job=job,
                origin=origin,
                created_at=now,
                expires_at=None if ttl is None else now + ttl,
            )
            session = dataclasses.replace(session, session_id=session.key)
            self.store.put_session(session)
        self._publish("session.queued", session, job=job.describe(), origin=origin.value)
        if notify:
            self.notifier.notify(device, session=session.session_id)
        return session

    def _within_caps(self, device: Device) -> None:
        """Raise :class:`OverCap` if one more pending session would take the device or
        its account over its cap (inside the queueing transaction: two racing requests
        cannot both take the last place). Counted on the listings' index; sessions
        whose time to live has ended are moved out before a refusal."""
        limits = (
            ("pending_per_device", {"dev_id": device.dev_id}, f"device {device.dev_id}"),
            ("pending_per_account", {"account": device.account}, f"account {device.account}"),
        )
        for cap, scope, who in limits:
            allowed = getattr(self.caps, cap)
            if self.store.count_pending(**scope) < allowed:
                continue
            if self.sweep_expired() and self.store.count_pending(**scope) < allowed:
                continue
            raise OverCap(
                cap,
                f"{who} has {allowed} sessions pending, its cap ({option(cap)}): one must "
                "start, be aborted or expire before another is queued",
                retry_after=PENDING_RETRY_AFTER,
            )

    # Starting (package 1 → package 2) -------------------------------------------
    def start_next(
        self, dev_id: str, base_url: str, *, end_completes: bool = False, resume: bool = False
    ) -> Session | None:
        """Start the oldest pending session of a device, or ``None`` if it has none.

        ``end_completes``: the device follows the DM 2.0 specification, which sends no
        package 3 after a package 2 holding END; such a package completes the session
        as it is handed out (lab choice end-report, which under ``none`` does so for
        every device).

        ``resume``: a device that still has an active session gets that session's
        current round again, under its current id, instead of a new session (lab
        choice session-resume; ``POST /sessions/next`` asks for it, ``POST /alert``
        does not)."""
        with self.unit.atomic():
            return self._start_next(dev_id, base_url, end_completes, resume)

    def _start_next(
        self, dev_id: str, base_url: str, end_completes: bool, resume: bool
    ) -> Session | None:
        """:meth:`start_next` inside its transaction (the pages are read in it, not in
        transactions of their own: on the SQL stores, savepoints)."""
        if resume and self.resumes:
            active = self._live_page(State.ACTIVE, dev_id=dev_id, limit=1).items
            if active:
                return self._touch(active[0])
        after, limit = 0, 1
        while True:  # pages, not the whole queue: only expired ones are skipped
            page = self._live_page(State.PENDING, dev_id=dev_id, after=after, limit=limit)
            if page.items:
                return self._start(page.items[0], base_url, end_completes)
            if page.after is None:
                return None
            after, limit = page.after, _START_PAGE

    def start(
        self, dev_id: str, session_id: str, base_url: str, *, end_completes: bool = False
    ) -> Session:
        with self.unit.atomic():
            session = self._own(dev_id, session_id)
            lapsed = self._expire_if_due(session)
            if not lapsed:
                if session.result is Result.EXPIRED:
                    raise self._expired(session, session_id)
                if session.state is not State.PENDING:
                    raise Conflict(
                        f"session {session_id} {self._stands(session)}; "
                        "only a pending session can be started"
                    )
                return self._start(session, base_url, end_completes)
        raise self._expired(session, session_id)  # after the expiry is committed

    def take_alerts(
        self,
        device: Device,
        alerts: tuple[Alert, ...],
        base_url: str,
        *,
        end_completes: bool = False,
    ) -> Session | None:
        """``POST /alert``: record the alerts and, if one opens a session, start that
        session (:meth:`_open_by_alert`), in one transaction: both are kept or neither,
        and their events go out together after it. The session started, if any."""
        with self.unit.atomic():
            session = None
            if any(a.opens_session for a in alerts):
                session = self._open_by_alert(device, alerts, base_url, end_completes)
            self.record_alerts(device, alerts, session.key if session else None)
            return session

    def _open_by_alert(
        self, device: Device, alerts: tuple[Alert, ...], base_url: str, end_completes: bool
    ) -> Session | None:
        """The session a session-opening alert to ``POST /alert`` starts (lab choice
        alert-opens), inside :meth:`take_alerts`'s transaction: the device's oldest pending
        one, or ``None``; under ``new-session`` a client-initiated alert (one that answers no
        notification) starts a new client-initiated session instead, and pending sessions
        stay queued."""
        kinds = {a.alert_type for a in alerts}
        if (
            self.alert_starts_new
            and AlertType.CLIENT_INITIATED in kinds
            and AlertType.SERVER_INITIATED not in kinds
        ):
            return self._begin(device, CLIENT_JOB, Origin.CLIENT, base_url, end_completes)
        return self._start_next(device.dev_id, base_url, end_completes, resume=False)

    def begin(
        self,
        device: Device,
        job: JobSpec,
        origin: Origin,
        base_url: str,
        end_completes: bool = False,
    ) -> Session:
        """Create a session and start it at once (flows 2 and 3)."""
        with self.unit.atomic():
            return self._begin(device, job, origin, base_url, end_completes)

    def _begin(
        self, device: Device, job: JobSpec, origin: Origin, base_url: str, end_completes: bool
    ) -> Session:
        """:meth:`begin` inside its transaction."""
        now = self._clock()
        key = self._fresh_id()
        session = Session(
            key=key,
            dev_id=device.dev_id,
            account=device.account,
            job=job,
            origin=origin,
            created_at=now,
            session_id=key,
        )
        self._publish("session.queued", session, job=job.describe(), origin=origin.value)
        return self._start(session, base_url, end_completes)

    def _start(self, session: Session, base_url: str, end_completes: bool = False) -> Session:
        step = jobs.next_step(session.job, (), base_url)
        now = self._clock()
        if step.commands is None:
            # A job with nothing to do still ends properly, with its reason.
            ended = dataclasses.replace(
                session,
                state=State.COMPLETED,
                result=Result.OK,
                started_at=now,
                ended_at=now,
                reason=step.reason,
            )
            self.store.put_session(ended)
            self._publish("session.completed", ended, result=Result.OK.value)
            return ended
        started = dataclasses.replace(
            session,
            state=State.ACTIVE,
            started_at=now,
            rounds=(Round(session.session_id, step.commands),),
            idle_until=now + self.limits.active_ttl,
        )
        self._publish("session.started", started, commands=len(step.commands))
        if self._completes_on_end(end_completes, step.commands):
            started = self._complete(started, now, step.reason)
        self.store.put_session(started)
        return started

    # Reporting (package 3 → next package 2 or the end) ------------------------------
    def report(
        self,
        dev_id: str,
        session_id: str,
        report: Report,
        base_url: str,
        expect: Callable[[Session], None] | None = None,
        *,
        end_completes: bool = False,
    ) -> Session:
        """Take package 3 on ``session_id``; the session after it (the next round, or
        completed). The alerts it carries are recorded with it, in the same transaction.

        A report repeated with the same statuses and alerts on the id it spent (its
        answer was lost) returns the session as that report left it, changing nothing
        (lab choice put-retry)."""
        with self.unit.atomic():
            session = self._own(dev_id, session_id)
            lapsed = self._expire_if_due(session)
            if not lapsed:
                return self._report(session, session_id, report, base_url, expect, end_completes)
        raise self._expired(session, session_id)  # after the expiry is committed

    def _report(
        self,
        session: Session,
        session_id: str,
        report: Report,
        base_url: str,
        expect: Callable[[Session], None] | None,
        end_completes: bool,
    ) -> Session:
        """:meth:`report`'s transition, inside its transaction."""
        if expect is not None:
            expect(session)
        if self.replay_puts and self._repeats(session, session_id, report):
            return session
        if session.state is State.PENDING:
            raise Conflict(f"session {session_id} has not been started")
        if session.result is Result.EXPIRED:
            raise self._expired(session, session_id)
        if session.state is State.COMPLETED:
            raise Conflict(f"session {session_id} {self._stands(session)}")
        self._require_current(session, session_id)
        current = session.rounds[-1]
        wanted = expects_status(current.commands)
        if len(report.statuses) != wanted:
            raise StatusMismatch(
                f"{wanted} command(s) were sent, so {wanted} status(es) are due "
                f"in order; got {len(report.statuses)}",
            )
        reported = Round(current.session_id, current.commands, report.statuses, report.alerts)
        done = (*session.rounds[:-1], reported)
        ended_by_device = current.commands and current.commands[-1].name == "END"
        step = jobs.Step(None) if ended_by_device else jobs.next_step(session.job, done, base_url)
        now = self._clock()
        if step.commands is None:
            ok = all(s.ok for r in done for s in (r.statuses or ()))
            result = Result.OK if ok else Result.FAILURE
            ended = dataclasses.replace(
                session,
                rounds=done,
                state=State.COMPLETED,
                result=result,
                ended_at=now,
                reason=step.reason or session.reason,
                idle_until=None,
            )
            self.store.put_session(ended)
            self._publish("session.completed", ended, result=result.value)
            self._record_report_alerts(ended, report)
            return ended
        new_id = session_id if self.stable_ids else self._fresh_id()
        continued = dataclasses.replace(
            session,
            session_id=new_id,
            rounds=(*done, Round(new_id, step.commands)),
            idle_until=now + self.limits.active_ttl,
        )
        self._publish("session.continued", continued, previous=session_id)
        if self._completes_on_end(end_completes, step.commands):
            continued = self._complete(continued, now, step.reason)
        self.store.put_session(continued)
        self._record_report_alerts(continued, report)
        return continued

    def _completes_on_end(self, end_completes: bool, commands: tuple[Command, ...]) -> bool:
        """Whether handing out ``commands`` ends the session: they end with END and no
        package 3 will follow (lab choice end-report)."""
        return (end_completes or not self.end_needs_report) and _ends(commands)

    @staticmethod
    def _repeats(session: Session, session_id: str, report: Report) -> bool:
        """Whether ``report`` repeats the one ``session_id``'s round already took: that
        round is the last one reported (the one before the round in force, or the last
        round of a completed session) and took the same statuses and alerts."""
        if session.state is State.COMPLETED:
            answered = session.rounds[-1:] if session.result in (Result.OK, Result.FAILURE) else ()
        elif session.state is State.ACTIVE and session.session_id != session_id:
            answered = session.rounds[-2:-1]
        else:
            return False
        return any(
            r.session_id == session_id
            and r.statuses == report.statuses
            and r.alerts == report.alerts
            for r in answered
        )

    def _record_report_alerts(self, session: Session, report: Report) -> None:
        if report.alerts:
            device = self.store.get_device(session.dev_id)
            if device is not None:
                self.record_alerts(device, report.alerts, session.key)

    def _complete(self, session: Session, now: float, reason: str) -> Session:
        """A session whose last package ends with END, for a device that will send no
        package 3: complete now, judged by the statuses reported so far."""
        ok = all(s.ok for r in session.rounds for s in (r.statuses or ()))
        result = Result.OK if ok else Result.FAILURE
        ended = dataclasses.replace(
            session,
            state=State.COMPLETED,
            result=result,
            ended_at=now,
            reason=reason or session.reason,
            idle_until=None,
        )
        self._publish("session.completed", ended, result=result.value)
        return ended

    def abort(
        self,
        dev_id: str | None,
        account: str,
        session_id: str,
        expect: Callable[[Session], None] | None = None,
    ) -> Session:
        """End a pending or active session as aborted (DM 1.2's alert 1223)."""
        with self.unit.atomic():
            session = self._visible(dev_id, account, session_id)
            lapsed = self._expire_if_due(session)
            if not lapsed:
                if expect is not None:
                    expect(session)
                if session.state is State.COMPLETED:
                    raise Conflict(f"session {session_id} {self._stands(session, already=True)}")
                self._require_current(session, session_id)
                aborted = dataclasses.replace(
                    session,
                    state=State.COMPLETED,
                    result=Result.ABORTED,
                    ended_at=self._clock(),
                    idle_until=None,
                )
                self.store.put_session(aborted)
        if lapsed:  # after the expiry is committed
            raise Conflict(f"session {session_id} has already expired")
        self._publish("session.aborted", aborted)
        return aborted

    def brief(self, session: Session) -> dict[str, Any]:
        """The session as the server shows it (lab choice brief-result): under
        ``ok-failure`` an aborted or expired session is a failure, its ``Reason`` saying
        which; the store keeps how it really ended."""
        if self.cr_results and session.result in (Result.ABORTED, Result.EXPIRED):
            assert session.result is not None
            why = "; ".join(filter(None, (session.result.value, session.reason)))
            session = dataclasses.replace(session, result=Result.FAILURE, reason=why)
        return session.brief()

    def visible(self, dev_id: str | None, account: str, session_id: str) -> Session:
        """A session by any of its ids, if it is the device's (``dev_id``) or, for an
        account (``dev_id`` None), one of its devices'; else ``NotFound``. One past its
        deadline is expired first."""
        session = self._visible(dev_id, account, session_id)
        if session.state is State.COMPLETED:
            return session
        with self.unit.atomic():
            session = self._visible(dev_id, account, session_id)
            if self._expire_if_due(session):
                session = self.store.get_session(session.key) or session
        return session

    def _visible(self, dev_id: str | None, account: str, session_id: str) -> Session:
        session = self.store.session_by_id(session_id)
        if (
            session is None
            or session.account != account
            or (dev_id is not None and session.dev_id != dev_id)
        ):
            raise NotFound(f"no session {session_id}")
        return session

    # Listings -------------------------------------------------------------------
    def pending(self, dev_id: str) -> list[Session]:
        """Pending sessions of a device, oldest first, after moving expired ones out."""
        with self.unit.atomic():
            sessions = self.store.sessions_of_device(dev_id, State.PENDING)
            live = [s for s in sessions if not self._expire_if_due(s)]
        return live

    def pending_of_account(self, account: str) -> list[Session]:
        """Pending sessions of all of an account's devices, after moving expired ones out:
        one pass over those sessions, not one query per device (an account may have
        thousands of devices, few of them with pending work)."""
        with self.unit.atomic():
            sessions = self.store.sessions_of_account(account, State.PENDING)
            return [s for s in sessions if not self._expire_if_due(s)]

    def pending_page(
        self, *, dev_id: str | None = None, account: str | None = None, after: int = 0, limit: int
    ) -> Page[Session]:
        """One page of a device's (or an account's) pending sessions, oldest first; those
        that expired are moved out as the page is read, so it may hold fewer than
        ``limit`` (only ``after`` None ends the list)."""
        with self.unit.atomic():
            return self._live_page(
                State.PENDING, dev_id=dev_id, account=account, after=after, limit=limit
            )

    def _live_page(
        self,
        state: State,
        *,
        dev_id: str | None = None,
        account: str | None = None,
        after: int = 0,
        limit: int,
    ) -> Page[Session]:
        """A page of pending or active sessions, those past their deadline moved out as
        it is read (inside the caller's transaction)."""
        page = self.store.sessions_page(
            state, dev_id=dev_id, account=account, after=after, limit=limit
        )
        return Page([s for s in page.items if not self._expire_if_due(s)], page.after)

    def completed_page(
        self,
        *,
        dev_id: str | None = None,
        account: str | None = None,
        after: int = 0,
        limit: int,
        newest_first: bool = False,
    ) -> Page[Session]:
        """One page of completed sessions, in the order they completed, after moving
        out pending and active sessions that expired (bounded batches:
        :meth:`sweep_expired`, :meth:`sweep_idle`)."""
        self.sweep_expired()
        self.sweep_idle()
        return self.store.sessions_page(
            State.COMPLETED,
            dev_id=dev_id,
            account=account,
            after=after,
            limit=limit,
            newest_first=newest_first,
        )

    def pending_count(self, dev_id: str) -> int:
        """How many sessions the device has pending (read on its index)."""
        return self.store.count_pending(dev_id=dev_id)

    def sweep_expired(self, *, batch: int = SWEEP_BATCH) -> int:
        """Complete as expired up to ``batch`` pending sessions whose time to live has
        ended, read from an index of those deadlines (never every pending session);
        how many."""
        if not self.store.due_sessions(self._clock(), 1):
            return 0  # the usual case: a read, no write transaction
        with self.unit.atomic():
            due = self.store.due_sessions(self._clock(), batch)
            return sum(self._expire_if_due(s) for s in due)

    def sweep_idle(self, *, batch: int = SWEEP_BATCH) -> int:
        """Complete as expired up to ``batch`` active sessions idle past their deadline,
        read from an index of those deadlines; how many (the periodic sweep and the
        completed listing run it)."""
        if not self.store.idle_sessions(self._clock(), 1):
            return 0  # the usual case: a read, no write transaction
        with self.unit.atomic():
            due = self.store.idle_sessions(self._clock(), batch)
            return sum(self._expire_if_due(s) for s in due)

    def active_page(
        self, *, dev_id: str | None = None, account: str | None = None, after: int = 0, limit: int
    ) -> Page[Session]:
        """One page of a device's (or an account's) active sessions, in the order they
        started; those idle past their deadline are moved out as the page is read, so it
        may hold fewer than ``limit`` (lab choice active-listing)."""
        with self.unit.atomic():
            return self._live_page(
                State.ACTIVE, dev_id=dev_id, account=account, after=after, limit=limit
            )

    def active_count(self, dev_id: str) -> int:
        """How many of a device's sessions are active and within their deadline (a
        read: the sweep or the next look at them moves the others out)."""
        now = self._clock()
        return sum(
            1
            for s in self.store.sessions_of_device(dev_id, State.ACTIVE)
            if s.idle_until is None or s.idle_until > now
        )

    def completed(self, dev_id: str) -> list[Session]:
        self.pending(dev_id)
        self.sweep_idle()
        return self.store.sessions_of_device(dev_id, State.COMPLETED)

    def expire_idle(self, *, batch: int = SWEEP_BATCH) -> int:
        """Complete as expired every active session idle past its deadline, ``batch``
        per transaction (so a backlog after a long outage never holds the store for
        long); how many. The server runs this periodically on a worker thread."""
        total = 0
        while done := self.sweep_idle(batch=batch):
            total += done
            if done < batch:
                break
        return total

    def record_alerts(
        self, device: Device, alerts: tuple[Alert, ...], session_key: str | None = None
    ) -> None:
        now = self._clock()
        for alert in alerts:
            self.store.add_alert(AlertRecord(device.dev_id, alert, now, session_key))
            self.unit.publish(
                "alert.received",
                account=device.account,
                dev_id=device.dev_id,
                alert=str(alert),
                alert_type=alert.alert_type,
                data=alert.data,
                source=alert.source_uri,
            )

    # Helpers --------------------------------------------------------------------
    def _own(self, dev_id: str, session_id: str) -> Session:
        session = self.store.session_by_id(session_id)
        if session is None or session.dev_id != dev_id:
            raise NotFound(f"no session {session_id} for this device")
        return session

    @staticmethod
    def _require_current(session: Session, session_id: str) -> None:
        if session.session_id != session_id:
            raise SpentSession(
                f"session id {session_id} is spent; the session continues as {session.session_id}"
            )

    def _expire_if_due(self, session: Session) -> bool:
        """Complete ``session`` as expired if its deadline has passed: a pending one's
        time to live, an active one's idle deadline. Call inside ``atomic()``, on a
        record read in that transaction."""
        if session.state is State.PENDING:
            deadline, reason = session.expires_at, session.reason
        elif session.state is State.ACTIVE:
            deadline = session.idle_until
            reason = f"the device sent nothing for {self.limits.active_ttl:g} s (active TTL)"
        else:
            return False
        # The clock is read only for a session that has a deadline.
        if deadline is None or deadline > (now := self._clock()):
            return False
        expired = dataclasses.replace(
            session,
            state=State.COMPLETED,
            result=Result.EXPIRED,
            ended_at=now,
            reason=reason,
            idle_until=None,
        )
        self.store.put_session(expired)
        self._publish("session.expired", expired)
        return True

    def _expired(self, session: Session, session_id: str) -> Expired:
        if session.started_at is None:
            return Expired(f"session {session_id} expired before it was started")
        return Expired(
            f"session {session_id} expired: its device sent nothing for "
            f"{self.limits.active_ttl:g} s; POST /sessions/next gets the next pending session"
        )

    def _touch(self, session: Session) -> Session:
        """The device is back for its active session: its deadline moves on."""
        touched = dataclasses.replace(session, idle_until=self._clock() + self.limits.active_ttl)
        self.store.put_session(touched)
        self._publish("session.resumed", touched)
        return touched

    def _fresh_id(self) -> str:
        while True:
            candidate = self._ids()
            if self.store.session_by_id(candidate) is None:
                return candidate

    @staticmethod
    def _stands(session: Session, *, already: bool = False) -> str:
        """How the session stands, for a 409's detail: how a finished one really ended
        (``was aborted``, ``has expired``, ``is completed (OK)``), not a state and a
        result that read as a contradiction (``completed (aborted)``)."""
        yet = " already" if already else ""
        if session.result is Result.ABORTED:
            return f"was{yet} aborted"
        if session.result is Result.EXPIRED:
            return f"has{yet} expired"
        if session.state is State.COMPLETED and session.result is not None:
            return f"is{yet} completed ({session.result.value})"
        return f"is{yet} {session.state.value}"

    def _publish(self, kind: str, session: Session, **data: object) -> None:
        self.unit.publish(
            kind,
            account=session.account,
            dev_id=session.dev_id,
            session=session.session_id,
            key=session.key,
            **data,
        )
