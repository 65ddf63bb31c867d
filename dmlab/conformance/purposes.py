"""The test purposes: what the kit checks, each once, as data.

Like an OMA enabler test specification, every test purpose has an id, the clause
of the change request it checks (with the CR's own words, quoted exactly), its
preconditions, its steps and its verdict rule. The runners hold the code that
carries each one out, keyed by id; the README's table, the reports and the CLI's
``--only`` all read this list.

``clause`` is a section of the CR (``x.1.1``, ``x.2.3`` …), ``HTTP`` for the
conventions the CR relies on without saying so, or the id of a lab choice (a
reading of a place where the CR is silent, from the lab's registry of choices). ``strength`` says what a broken rule
costs: a MUST of the CR, what the CR states, or the DM 2.0 specification it leans
on is a FAIL; an HTTP convention or a lab reading is a WARN.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Literal

Strength = Literal["MUST", "CR", "TS", "HTTP", "reading"]
Side = Literal["server", "device"]


class Verdict(StrEnum):
    """What a test purpose concluded (OMA TestFest's categories, plus WARN)."""

    PASS = "PASS"
    FAIL = "FAIL"  # what the CR states, or a MUST, is broken
    WARN = "WARN"  # an HTTP convention or a lab reading is broken
    INCONCLUSIVE = "INCONCLUSIVE"  # could not be decided (the reason says why)
    NA = "N/A"  # does not apply to this implementation

    def __str__(self) -> str:
        return self.value


#: What a broken rule of each strength is judged.
ON_VIOLATION: dict[str, Verdict] = {
    "MUST": Verdict.FAIL,
    "CR": Verdict.FAIL,
    "TS": Verdict.FAIL,
    "HTTP": Verdict.WARN,
    "reading": Verdict.WARN,
}

#: Preconditions the kit cannot always meet; without them a purpose is INCONCLUSIVE.
SECOND_ACCOUNT = "a second account (--account NAME2:PASSWORD2)"
QUEUE = "a way to queue a session for a device (the lab's POST /devices/{devId}/sessions)"
NOTIFICATIONS = (
    "the DM Notification reaches the kit (GET /notifications: a long-poll, or its event "
    "stream where GET /choices says notification-transport=sse)"
)


@dataclass(frozen=True, slots=True)
class TestPurpose:
    id: str
    clause: str
    resource: str  # the row of the clause's table ("POST /sessions/next"), or ""
    cr: str  # the CR's words this purpose checks, quoted exactly
    title: str
    pre: tuple[str, ...]
    steps: tuple[str, ...]
    rule: str
    strength: Strength = "CR"
    side: Side = "server"
    negative: bool = False  # wrong actor, someone else's device or session, bad ids or bodies

    @property
    def on_violation(self) -> Verdict:
        return ON_VIOLATION[self.strength]

    @property
    def name(self) -> str:
        """The test's name in reports: id and clause (JUnit, HTML, CLI lines)."""
        where = f"{self.clause} {self.resource}".strip()
        return f"{self.id} [{where}]"


# The CR's words, once each (quoted exactly from its text).
PENDING = "Get list of pending Management Sessions"
COMPLETED = "Get list of completed Management Sessions with brief result (OK or failure)"
NEXT = "Start pending DM Session, and get the initial Management Commands from Server."
START = "Start pending DM Session, and get the initial Management Commands from Server"
REPORT = (
    "Report the results of performed DM Commands, and may recieve further Management "
    "Commands with newly assigned Session ID."
)
ABORT = "Abort started Management Session"
LIST = "Get list of managed device associated DM Account"
FORM = "Get device registration form in HTML"
REGISTER = "Request to register a device with form data"
INFO = "Get Device Information registered on Server (form to update info)"
UPDATE = "Update Device Information"
UNREGISTER = "Unregister a device from associated DM Account"
ALERT = (
    "Report Device event to Server, and may get further Management Commands with newly "
    "assigned Session ID."
)
TLS = "The DM Client, and Browser component MUST communication with DM Server using TLS."
SERVER_INITIATED = (
    "The DM 2.0 Client will start DM Session when it received the DM Notification Message."
)
CLIENT_INITIATED = (
    "The DM 2.0 Client will start DM Session when Device event is occurred, such as timer "
    "events, or UI interaction."
)
COMPONENT = (
    "The Browser component of DM Client will start the DM Session by sending HTTP POST "
    "request to the DM Server."
)
COMPONENT_ACCEPT = (
    "The Browser component MUST add the Accept Header with “application/vnd.omadm-cmd+json”."
)
BROWSER = (
    "When the Browser does not specify the Accept Header with “application/vnd.omadm-cmd+json”, "
    "the Server triggers the Client with Notification Message."
)

DEVICE = "a device D registered to account A"
PENDING_S = "a session S queued for D (pending)"
ACTIVE_S = "a session S queued for D and started (active)"
DONE_S = "a session S of D run to its end (completed)"
REFUSED = "refused with a 4xx"


def _p(
    id: str,
    clause: str,
    resource: str,
    cr: str,
    title: str,
    pre: tuple[str, ...],
    steps: tuple[str, ...],
    rule: str,
    strength: Strength = "CR",
    side: Side = "server",
    negative: bool = False,
) -> TestPurpose:
    return TestPurpose(id, clause, resource, cr, title, pre, steps, rule, strength, side, negative)


def _refusal(
    id: str,
    clause: str,
    resource: str,
    cr: str,
    title: str,
    pre: tuple[str, ...],
    step: str,
    unaffected: str,
) -> TestPurpose:
    """A negative purpose: the request is refused, and nothing changes."""
    return _p(
        id,
        clause,
        resource,
        cr,
        title,
        pre,
        (step, f"check: {unaffected}"),
        f"PASS if {REFUSED} and {unaffected}; FAIL otherwise",
        negative=True,
    )


S11, S12, S13 = "x.1.1", "x.1.2", "x.1.3"
GP, GC, PN, PI, PP, DS = (
    "GET /sessions/pending",
    "GET /sessions/completed",
    "POST /sessions/next",
    "POST /sessions/id/{sessionId}",
    "PUT /sessions/id/{sessionId}",
    "DELETE /session/id/{sessionId}",
)
GD, GN, PD, GI, UD, DD = (
    "GET /devices",
    "GET /devices/new",
    "POST /devices/new",
    "GET /devices/{devId}",
    "PUT /devices/{devId}",
    "DELETE /devices/{devId}",
)
B = SECOND_ACCOUNT

# fmt: off
PURPOSES: tuple[TestPurpose, ...] = (
    # --- x.1.1 Sessions -------------------------------------------------------------
    _p("TP/SESS/PEND/001", S11, GP, PENDING, "a device lists its pending session",
       (DEVICE, PENDING_S, QUEUE), ("D: GET /sessions/pending",),
       "PASS if 200 and S's id is listed; FAIL otherwise"),
    _p("TP/SESS/PEND/002", S11, GP, PENDING, "an account lists its device's pending session",
       (DEVICE, PENDING_S, QUEUE), ("A: GET /sessions/pending",),
       "PASS if 200 and S's id is listed; FAIL otherwise"),
    _p("TP/SESS/PEND/003", S11, GP, PENDING, "another account does not see the session",
       (DEVICE, PENDING_S, QUEUE, B), ("B: GET /sessions/pending",),
       "PASS if S's id is not in the answer; FAIL if it is", negative=True),
    _p("TP/SESS/PEND/004", S11, GP, PENDING, "another device does not see the session",
       (DEVICE, "a second device D2 of A", PENDING_S, QUEUE), ("D2: GET /sessions/pending",),
       "PASS if S's id is not in the answer; FAIL if it is", negative=True),
    _refusal("TP/SESS/PEND/005", S11, GP, PENDING, "no credentials, no list",
             (DEVICE, PENDING_S, QUEUE), "nobody: GET /sessions/pending without credentials",
             "S's id is not in the answer"),
    _p("TP/SESS/COMP/001", S11, GC, COMPLETED, "a completed session is listed with the brief result OK",
       (DEVICE, DONE_S + " with every status 200", QUEUE), ("D: GET /sessions/completed",),
       "PASS if S's id is listed with the result OK; FAIL otherwise"),
    _p("TP/SESS/COMP/002", S11, GC, COMPLETED, "a failed session is listed with the brief result failure",
       (DEVICE, DONE_S + " with a status 500", QUEUE), ("D: GET /sessions/completed",),
       "PASS if S's id is listed with the result failure; FAIL otherwise"),
    _p("TP/SESS/COMP/003", S11, GC, COMPLETED, "an account lists its device's completed session",
       (DEVICE, DONE_S, QUEUE), ("A: GET /sessions/completed",),
       "PASS if S's id is listed with the result OK; FAIL otherwise"),
    _p("TP/SESS/COMP/004", S11, GC, COMPLETED, "another account does not see the completed session",
       (DEVICE, DONE_S, QUEUE, B), ("B: GET /sessions/completed",),
       "PASS if S's id is not in the answer; FAIL if it is", negative=True),
    _p("TP/SESS/COMP/005", S11, GC, COMPLETED, "a pending session is not listed as completed",
       (DEVICE, PENDING_S, QUEUE), ("D: GET /sessions/completed",),
       "PASS if 200 and S's id is not listed; FAIL otherwise", negative=True),
    _refusal("TP/SESS/COMP/006", S11, GC, COMPLETED, "no credentials, no list",
             (DEVICE, DONE_S, QUEUE), "nobody: GET /sessions/completed without credentials",
             "S's id is not in the answer"),
    _p("TP/SESS/COMP/007", S11, GC, COMPLETED, "a session that did not run to its end is listed with OK or failure",
       (DEVICE, ACTIVE_S + ", then aborted", "a session S2 queued for D with a time to live of 0", QUEUE),
       ("D: DELETE /session/id/{S}", "D: GET /sessions/completed"),
       "PASS if S and S2 are each listed with the brief result OK or failure, or not listed; "
       "FAIL if either is listed with another result (lab choice brief-result)"),
    _p("TP/SESS/NEXT/001", S11, PN, NEXT, "the pending session starts with its commands",
       (DEVICE, PENDING_S + " with commands GET, GET, END", QUEUE), ("D: POST /sessions/next",),
       "PASS if 200 with a SessionID and exactly the queued commands (package 2); FAIL otherwise"),
    _p("TP/SESS/NEXT/002", S11, PN, NEXT, "with nothing pending, no session starts",
       (DEVICE, "nothing pending for D"), ("D: POST /sessions/next",),
       "PASS if 204 (or 404) without commands; FAIL if a session is claimed (any other 2xx)", negative=True),
    _p("TP/SESS/NEXT/003", S11, PN, NEXT, "a started session is no longer pending",
       (DEVICE, PENDING_S, QUEUE), ("D: POST /sessions/next", "D: GET /sessions/pending"),
       "PASS if S's id is no longer listed as pending; FAIL otherwise"),
    _refusal("TP/SESS/NEXT/004", S11, PN, NEXT, "an account cannot start a device's session",
             (DEVICE, PENDING_S, QUEUE), "A: POST /sessions/next", "S is still pending"),
    _refusal("TP/SESS/NEXT/005", S11, PN, NEXT, "a malformed package 1 is refused",
             (DEVICE, PENDING_S, QUEUE), "D: POST /sessions/next with a body that is not JSON",
             "S is still pending"),
    _p("TP/SESS/NEXT/006", S11, PN, NEXT, "another device's pending session is not started",
       (DEVICE, "a second device D2 of A", PENDING_S, QUEUE), ("D2: POST /sessions/next",),
       "PASS if no session is claimed and S is still pending; FAIL otherwise", negative=True),
    _p("TP/SESS/START/001", S11, PI, START, "the named pending session starts with its commands",
       (DEVICE, PENDING_S, QUEUE), ("D: POST /sessions/id/{S}",),
       "PASS if 200 with a SessionID and exactly the queued commands; FAIL otherwise"),
    _refusal("TP/SESS/START/002", S11, PI, START, "an unknown session id is refused",
             (DEVICE,), "D: POST /sessions/id/{an id never issued}", "no session is started"),
    _refusal("TP/SESS/START/003", S11, PI, START, "another device cannot start the session",
             (DEVICE, "a second device D2 of A", PENDING_S, QUEUE), "D2: POST /sessions/id/{S}",
             "S is still pending"),
    _refusal("TP/SESS/START/004", S11, PI, START, "another account's device cannot start the session",
             (DEVICE, PENDING_S, QUEUE, B, "a device E of account B"), "E: POST /sessions/id/{S}",
             "S is still pending"),
    _refusal("TP/SESS/START/005", S11, PI, START, "a started session cannot be started again",
             (DEVICE, ACTIVE_S, QUEUE), "D: POST /sessions/id/{S}",
             "S still takes its report"),
    _refusal("TP/SESS/START/006", S11, PI, START, "a spent id cannot be started",
             (DEVICE, DONE_S, QUEUE), "D: POST /sessions/id/{S}", "no session is started"),
    _refusal("TP/SESS/START/007", S11, PI, START, "an account cannot start a device's session",
             (DEVICE, PENDING_S, QUEUE), "A: POST /sessions/id/{S}", "S is still pending"),
    _p("TP/SESS/PUT/001", S11, PP, REPORT, "further commands come under a newly assigned session id",
       (DEVICE, ACTIVE_S + " of two rounds (the lab's firmware-update job)", QUEUE),
       ("D: PUT /sessions/id/{S} with one status per command",),
       "PASS if the answer carries further commands under a SessionID other than S; FAIL if "
       "it keeps S"),
    _p("TP/SESS/PUT/002", S11, PP, REPORT, "the last report ends the session",
       (DEVICE, ACTIVE_S + " of one round ending in END", QUEUE),
       ("D: PUT /sessions/id/{S} with one status per command", "D: GET /sessions/completed"),
       "PASS if the answer carries no further commands (204) and S is completed; FAIL otherwise"),
    _refusal("TP/SESS/PUT/003", S11, PP, REPORT, "a report with the wrong number of statuses is refused",
             (DEVICE, ACTIVE_S, QUEUE), "D: PUT /sessions/id/{S} with one status too few",
             "a correct report on S is then accepted"),
    _refusal("TP/SESS/PUT/004", S11, PP, REPORT, "a malformed report is refused",
             (DEVICE, ACTIVE_S, QUEUE), "D: PUT /sessions/id/{S} with a body that is not JSON",
             "a correct report on S is then accepted"),
    _refusal("TP/SESS/PUT/005", S11, PP, REPORT, "a report on an unknown id is refused",
             (DEVICE,), "D: PUT /sessions/id/{an id never issued}", "nothing is recorded"),
    _refusal("TP/SESS/PUT/006", S11, PP, REPORT, "a report on an ended session is refused",
             (DEVICE, DONE_S, QUEUE), "D: PUT /sessions/id/{S} again",
             "S stays completed with its result"),
    _refusal("TP/SESS/PUT/007", S11, PP, REPORT, "another device cannot report on the session",
             (DEVICE, "a second device D2 of A", ACTIVE_S, QUEUE), "D2: PUT /sessions/id/{S}",
             "a correct report by D on S is then accepted"),
    _refusal("TP/SESS/PUT/008", S11, PP, REPORT, "an account cannot report on a session",
             (DEVICE, ACTIVE_S, QUEUE), "A: PUT /sessions/id/{S}",
             "a correct report by D on S is then accepted"),
    _refusal("TP/SESS/PUT/009", S11, PP, REPORT, "a report on a session not yet started is refused",
             (DEVICE, PENDING_S, QUEUE), "D: PUT /sessions/id/{S}", "S is still pending"),
    _refusal("TP/SESS/PUT/010", S11, PP, REPORT, "the id a report replaced is spent",
             (DEVICE, ACTIVE_S + " of two rounds", QUEUE, "D reported round 1, got id S2"),
             "D: PUT /sessions/id/{S} (the old id) with other statuses than its report",
             "a correct report on S2 is then accepted"),
    _p("TP/SESS/DEL/001", S11, DS, ABORT, "a device aborts its started session (singular path)",
       (DEVICE, ACTIVE_S, QUEUE), ("D: DELETE /session/id/{S}", "D: PUT /sessions/id/{S}"),
       "PASS if the DELETE is 2xx and the report after it is refused; FAIL otherwise"),
    _p("TP/SESS/DEL/002", S11, DS, ABORT, "an account aborts its device's started session (singular path)",
       (DEVICE, ACTIVE_S, QUEUE), ("A: DELETE /session/id/{S}", "D: PUT /sessions/id/{S}"),
       "PASS if the DELETE is 2xx and the report after it is refused; FAIL otherwise"),
    _refusal("TP/SESS/DEL/003", S11, DS, ABORT, "an unknown session id is refused",
             (DEVICE,), "D: DELETE /session/id/{an id never issued}", "nothing changes"),
    _refusal("TP/SESS/DEL/004", S11, DS, ABORT, "another account cannot abort the session",
             (DEVICE, ACTIVE_S, QUEUE, B), "B: DELETE /session/id/{S}",
             "a correct report by D on S is then accepted"),
    _refusal("TP/SESS/DEL/005", S11, DS, ABORT, "another device cannot abort the session",
             (DEVICE, "a second device D2 of A", ACTIVE_S, QUEUE), "D2: DELETE /session/id/{S}",
             "a correct report by D on S is then accepted"),
    _refusal("TP/SESS/DEL/006", S11, DS, ABORT, "an ended session cannot be aborted",
             (DEVICE, DONE_S, QUEUE), "D: DELETE /session/id/{S}",
             "S stays completed with the result OK"),
    _refusal("TP/SESS/DEL/007", S11, DS, ABORT, "no credentials, no abort",
             (DEVICE, ACTIVE_S, QUEUE), "nobody: DELETE /session/id/{S} without credentials",
             "a correct report by D on S is then accepted"),
    # --- x.1.2 Devices --------------------------------------------------------------
    _p("TP/DEVS/LIST/001", S12, GD, LIST, "the account's device is listed",
       (DEVICE,), ("A: GET /devices",), "PASS if 200 and D's devId is in the answer; FAIL otherwise"),
    _p("TP/DEVS/LIST/002", S12, GD, LIST, "another account's device is not listed",
       (DEVICE, B, "a device E of account B"), ("A: GET /devices",),
       "PASS if E's devId is not in the answer; FAIL if it is", negative=True),
    _refusal("TP/DEVS/LIST/003", S12, GD, LIST, "a device cannot list an account's devices",
             (DEVICE,), "D: GET /devices", "no devId is revealed"),
    _p("TP/DEVS/FORM/001", S12, GN, FORM, "the registration form is HTML",
       ("account A",), ("A, as a browser: GET /devices/new",),
       "PASS if 200, text/html, with a <form> that POSTs; FAIL otherwise"),
    _refusal("TP/DEVS/FORM/002", S12, GN, FORM, "a device gets no registration form",
             (DEVICE,), "D: GET /devices/new", "no form is served"),
    _p("TP/DEVS/REG/001", S12, PD, REGISTER, "the form's data registers a device",
       ("account A", "the form from GET /devices/new"),
       ("A, as a browser: POST /devices/new with the form's fields and a new devId",
        "A: GET /devices"),
       "PASS if 2xx and the new devId is listed; FAIL otherwise"),
    _refusal("TP/DEVS/REG/002", S12, PD, REGISTER, "a devId already registered is refused",
             (DEVICE,), "A: POST /devices/new with D's devId",
             "D is unchanged (its credentials still work)"),
    _refusal("TP/DEVS/REG/003", S12, PD, REGISTER, "a registration without a devId is refused",
             ("account A",), "A: POST /devices/new without devId",
             "no device is added"),
    _refusal("TP/DEVS/REG/004", S12, PD, REGISTER, "a device cannot register devices",
             (DEVICE,), "D: POST /devices/new with a new devId", "no device is added"),
    _p("TP/DEVS/GET/001", S12, GI, INFO, "the device's information is answered",
       (DEVICE + " with a name",), ("A: GET /devices/{D}",),
       "PASS if 200 and the answer holds D's devId and name; FAIL otherwise"),
    _p("TP/DEVS/GET/002", S12, GI, INFO, "a browser gets a form to update the information",
       (DEVICE,), ("A, as a browser: GET /devices/{D}",),
       "PASS if 200, text/html, with a <form>; FAIL otherwise"),
    _refusal("TP/DEVS/GET/003", S12, GI, INFO, "another account's device is not shown",
             (DEVICE + " with a name", B), "B: GET /devices/{D}", "D's name is not revealed"),
    _refusal("TP/DEVS/GET/004", S12, GI, INFO, "an unknown devId is refused",
             ("account A",), "A: GET /devices/{a devId never registered}", "nothing is revealed"),
    _p("TP/DEVS/PUT/001", S12, UD, UPDATE, "the device's information is updated",
       (DEVICE,), ("A: PUT /devices/{D} with a new name", "A: GET /devices/{D}"),
       "PASS if 2xx and the new name is shown; FAIL otherwise"),
    _refusal("TP/DEVS/PUT/002", S12, UD, UPDATE, "another account cannot update the device",
             (DEVICE + " with a name", B), "B: PUT /devices/{D} with a new name",
             "D's name is unchanged"),
    _refusal("TP/DEVS/PUT/003", S12, UD, UPDATE, "a malformed update is refused",
             (DEVICE + " with a name",), "A: PUT /devices/{D} with a body that is not JSON",
             "D's name is unchanged"),
    _refusal("TP/DEVS/PUT/004", S12, UD, UPDATE, "an unknown devId cannot be updated",
             ("account A",), "A: PUT /devices/{a devId never registered}", "no device is added"),
    _p("TP/DEVS/DEL/001", S12, DD, UNREGISTER, "the device is unregistered",
       (DEVICE,), ("A: DELETE /devices/{D}", "A: GET /devices/{D}", "D: GET /sessions/pending"),
       "PASS if 2xx, then D is not found and D's credentials are refused; FAIL otherwise"),
    _refusal("TP/DEVS/DEL/002", S12, DD, UNREGISTER, "another account cannot unregister the device",
             (DEVICE, B), "B: DELETE /devices/{D}", "D is still registered"),
    _refusal("TP/DEVS/DEL/003", S12, DD, UNREGISTER, "an unknown devId cannot be unregistered",
             ("account A",), "A: DELETE /devices/{a devId never registered}", "nothing changes"),
    # --- x.1.3 Alert ----------------------------------------------------------------
    _p("TP/ALRT/001", S13, "POST /alert", ALERT, "a generic alert is taken",
       (DEVICE,), ("D: POST /alert with a FUMO generic alert",),
       "PASS if 2xx (no commands needed); FAIL otherwise"),
    _p("TP/ALRT/002", S13, "POST /alert", ALERT, "a session-opening alert gets commands",
       (DEVICE, PENDING_S, QUEUE), ("D: POST /alert with ClientInitiatedMgmt", "D: PUT the statuses"),
       "PASS if 200 with a SessionID and commands (S's, unless S is still pending: the alert "
       "opened a session of its own, lab choice alert-opens), and the report on that id is "
       "taken; FAIL otherwise"),
    _p("TP/ALRT/003", S13, "POST /alert", ALERT, "a session-opening alert with nothing pending",
       (DEVICE, "nothing pending for D"), ("D: POST /alert with ClientInitiatedMgmt",),
       "PASS if 204, or 200 with a SessionID and commands; FAIL otherwise"),
    _refusal("TP/ALRT/004", S13, "POST /alert", ALERT, "an account cannot send a device's alert",
             ("account A", PENDING_S, QUEUE), "A: POST /alert with ClientInitiatedMgmt",
             "S is still pending"),
    _refusal("TP/ALRT/005", S13, "POST /alert", ALERT, "a malformed alert is refused",
             (DEVICE, PENDING_S, QUEUE), "D: POST /alert with a body that is not JSON",
             "S is still pending"),
    _refusal("TP/ALRT/006", S13, "POST /alert", ALERT, "no credentials, no alert",
             (DEVICE, PENDING_S, QUEUE), "nobody: POST /alert without credentials",
             "S is still pending"),
    # --- x.2 TLS --------------------------------------------------------------------
    _p("TP/TLS/001", "x.2", "", TLS, "the server's URL is https",
       (), ("read the URL",), "PASS if https://; FAIL otherwise", "MUST"),
    _p("TP/TLS/002", "x.2", "", TLS, "nothing is answered over plain HTTP",
       (), ("send GET / as plain HTTP to the server's port",),
       "PASS if no HTTP answer comes back; FAIL if one does", "MUST"),
    _p("TP/TLS/003", "x.2", "", TLS, "TLS below 1.2 is refused",
       (), ("offer TLS 1.0 and 1.1 only",),
       "PASS if the handshake fails; FAIL if it succeeds; INCONCLUSIVE if this machine's "
       "TLS library cannot offer them", "MUST"),
    _p("TP/TLS/004", "x.2", "", TLS, "the certificate verifies",
       ("the CA file",), ("handshake with the CA as the only trust anchor, host name checked",),
       "PASS if it verifies; FAIL otherwise", "MUST"),
    # --- x.2.1 - x.2.4 flows, end to end ---------------------------------------------
    _p("TP/FLOW/SI/001", "x.2.1", "", SERVER_INITIATED, "server-initiated session, end to end",
       (DEVICE, QUEUE, NOTIFICATIONS),
       ("A: queue S, notifying D", "D: GET /notifications (long-poll): package 0",
        "D: POST /sessions/next with ServerInitiatedMgmt", "D: PUT statuses until the end",
        "A: GET /sessions/completed"),
       "PASS if the notification arrives, the session runs and ends OK; FAIL if the server "
       "sends no notification or the session does not run; INCONCLUSIVE without GET "
       "/notifications"),
    _p("TP/FLOW/SI/002", "notification-secret", "", SERVER_INITIATED,
       "the notification's digest verifies with the device's key",
       (DEVICE, QUEUE, NOTIFICATIONS), ("decode package 0", "check SHA256-DIGEST"),
       "PASS if the digest matches the key derived from D's secret; WARN otherwise",
       "reading"),
    _p("TP/FLOW/CI/001", "x.2.2", "", CLIENT_INITIATED, "client-initiated session, end to end",
       (DEVICE, PENDING_S + " (not notified)", QUEUE),
       ("D: POST /alert with ClientInitiatedMgmt", "D: PUT statuses until the end",
        "A: GET /sessions/completed"),
       "PASS if the session runs and ends OK; FAIL otherwise"),
    _p("TP/FLOW/BC/001", "x.2.3", "", COMPONENT, "browser-component session, end to end",
       (DEVICE, QUEUE),
       ("D's browser component: POST /devices/{D}/sessions (or /sessions/next where GET "
        "/choices says browser-entry=sessions-next), Accept: application/vnd.omadm-cmd+json",
        "D: PUT statuses until the end"),
       "PASS if the commands come back at once and the session ends OK; FAIL otherwise"),
    _p("TP/FLOW/BI/001", "x.2.4", "", BROWSER, "a browser's POST gets a page, not commands",
       (DEVICE, "the device page's session form"),
       ("A, as a browser: POST the form (no application/vnd.omadm-cmd+json)",),
       "PASS if 2xx text/html and no commands; FAIL otherwise"),
    _p("TP/FLOW/BI/002", "x.2.4", "", BROWSER, "the browser's POST notifies the device",
       (DEVICE, NOTIFICATIONS, "the device page's session form"),
       ("A, as a browser: POST the form", "D: GET /notifications (long-poll)",
        "D: POST /sessions/next, PUT until the end"),
       "PASS if the notification arrives and the session ends OK; FAIL if no notification "
       "comes; INCONCLUSIVE without GET /notifications"),
    # --- HTTP conventions the CR relies on ------------------------------------------
    _p("TP/HTTP/PROB/001", "HTTP", "", UPDATE, "errors are RFC 9457 problem details",
       (DEVICE,), ("A: GET /devices/{unknown}, Accept: application/json",),
       "PASS if application/problem+json with status and title; WARN otherwise", "HTTP"),
    _p("TP/HTTP/AUTH/001", "HTTP", "", PENDING, "a 401 names its scheme",
       (), ("nobody: GET /sessions/pending",),
       "PASS if 401 with WWW-Authenticate; WARN otherwise", "HTTP"),
    _p("TP/HTTP/ALLOW/001", "HTTP", "", UPDATE, "a 405 names the allowed methods",
       (DEVICE,), ("A: PATCH /devices/{D}",), "PASS if 405 with Allow; WARN otherwise", "HTTP"),
    _p("TP/HTTP/NEG/001", "HTTP", "", INFO, "a negotiated answer says Vary: Accept",
       (DEVICE,), ("A: GET /devices/{D} as JSON and as HTML",),
       "PASS if both answers carry Vary: Accept; WARN otherwise", "HTTP"),
    _p("TP/HTTP/NEG/002", "HTTP", "", INFO, "nothing acceptable is a 406",
       (DEVICE,), ("A: GET /devices/{D}, Accept: image/png",),
       "PASS if 406; WARN otherwise", "HTTP"),
    _p("TP/HTTP/NEG/003", "HTTP", "", COMPONENT_ACCEPT, "q=0 on the command type is honoured",
       (DEVICE, QUEUE),
       ("D: POST /devices/{D}/sessions, Accept: application/vnd.omadm-cmd+json;q=0, "
        "application/json",),
       "PASS if no commands come back; WARN otherwise", "HTTP"),
    _p("TP/HTTP/LOC/001", "HTTP", "", REGISTER, "201 and 202 answers carry Location",
       ("account A", QUEUE), ("A: POST /devices/new", "A: queue a session"),
       "PASS if both carry Location; WARN otherwise", "HTTP"),
    _p("TP/HTTP/ETAG/002", "HTTP", "", INFO, "device information carries a strong ETag",
       (DEVICE,), ("A: GET /devices/{D}",),
       "PASS if 200 with a strong ETag; WARN otherwise", "HTTP"),
    _p("TP/HTTP/CACHE/001", "HTTP", "", REGISTER, "an answer holding a secret is not stored",
       ("account A",), ("A: POST /devices/new (the answer holds the device's secret)",),
       "PASS if Cache-Control says no-store; WARN otherwise", "HTTP"),
    _p("TP/HTTP/IDEM/001", "HTTP", PP, REPORT, "a PUT repeated after a lost answer is answered again",
       (DEVICE, ACTIVE_S + " of two rounds", QUEUE, "D reported round 1; the answer was lost"),
       ("D: PUT /sessions/id/{S} again, the same statuses", "D: PUT the round it got"),
       "PASS if the repeat gets the same round 2 and the session goes on (PUT is idempotent, "
       "RFC 9110 §9.2.2; lab choice put-retry); WARN otherwise", "HTTP"),
    _p("TP/HTTP/ETAG/001", "HTTP", "", UPDATE, "If-Match is evaluated",
       (DEVICE + " with a name",), ('A: PUT /devices/{D}, If-Match: "not-current"',),
       "PASS if 412 and the name is unchanged; WARN otherwise", "HTTP"),
    # --- the device side (python -m dmlab conform device) -------------------------------
    _p("TP/DEV/NOTI/001", "x.2.1", "", SERVER_INITIATED, "a genuine notification opens a session",
       ("the device polls the checking server", "a session queued"),
       ("send a genuine package 0",),
       "PASS if the device then opens the session; FAIL if it does not", side="device"),
    _p("TP/DEV/NOTI/002", "x.2.1", "", SERVER_INITIATED, "a forged notification is ignored",
       ("the device polls the checking server",), ("send package 0 with a wrong digest",),
       "PASS if the device polls again without calling in; FAIL if it calls in", "TS", "device"),
    _p("TP/DEV/NOTI/003", "notification-freshness", "", SERVER_INITIATED, "a replayed notification is ignored",
       ("a genuine notification was acted on",), ("send the same package 0 again",),
       "PASS if the device polls again without calling in; WARN if it calls in", "reading", "device"),
    _p("TP/DEV/NOTI/004", "notification-freshness", "", SERVER_INITIATED, "a stale notification is ignored",
       ("the device polls the checking server",), ("send package 0 stamped an hour ago",),
       "PASS if the device polls again without calling in; WARN if it calls in", "reading", "device"),
    _p("TP/DEV/SESS/001", S11, PP, REPORT, "one status per command, in order",
       ("a session started by the device",), ("answer with GET, GET, END", "read the PUT"),
       "PASS if the report holds one status per command before END, in order, with the GETs' "
       "data; FAIL otherwise", side="device"),
    _p("TP/DEV/SESS/002", S11, PP, REPORT, "the device follows the newly assigned session id",
       ("a session of two rounds",), ("answer round 1 under a new id", "read the next PUT"),
       "PASS if the next report goes to the new id; FAIL otherwise", side="device"),
    _p("TP/DEV/SESS/003", S11, PP, REPORT, "after END the device stops",
       ("a session ending in END",), ("answer the END round's report with 204",),
       "PASS if no further report follows for that session; FAIL otherwise", side="device"),
    _p("TP/DEV/ALRT/001", S13, "POST /alert", ALERT, "alerts are well formed",
       ("every alert the device sends",), ("read each POST /alert and package 1",),
       "PASS if every alert has an AlertType and a known Mark; FAIL otherwise", side="device"),
    _p("TP/DEV/ALRT/002", "x.2.1", "", SERVER_INITIATED, "the call-in names ServerInitiatedMgmt",
       ("a genuine notification",), ("read the package 1 that follows",),
       "PASS if it carries a ServerInitiatedMgmt alert; FAIL otherwise", "TS", "device"),
    _p("TP/DEV/CI/001", "x.2.2", "", CLIENT_INITIATED, "a device event opens a session",
       ("the device fires a timer or UI event",), ("read POST /alert", "answer with commands"),
       "PASS if a ClientInitiatedMgmt alert arrives and its session runs to the end; FAIL if "
       "its reports are wrong; INCONCLUSIVE if the device sends none", side="device"),
    _p("TP/DEV/BC/001", "x.2.3", "", COMPONENT_ACCEPT,
       "the browser component sends Accept: application/vnd.omadm-cmd+json",
       ("the device's browser component starts a session",), ("read its POST",),
       "PASS if the POST's Accept names application/vnd.omadm-cmd+json; FAIL otherwise; "
       "INCONCLUSIVE if the browser component never posts", "MUST", "device"),
)
# fmt: on


BY_ID: dict[str, TestPurpose] = {p.id: p for p in PURPOSES}
CLAUSE_ORDER = ("x.1.1", "x.1.2", "x.1.3", "x.2", "x.2.1", "x.2.2", "x.2.3", "x.2.4", "HTTP")


def clause_key(clause: str) -> tuple[int, str]:
    """Clauses in the CR's order, then lab choices alphabetically."""
    return (
        (CLAUSE_ORDER.index(clause), "") if clause in CLAUSE_ORDER else (len(CLAUSE_ORDER), clause)
    )


def select(side: Side, only: str | None = None) -> list[TestPurpose]:
    """The purposes of one side, narrowed by ``--only``: a glob (``TP/SESS/*``),
    an id prefix (``TP/SESS/NEXT``), or several of either separated by commas."""
    chosen = [p for p in PURPOSES if p.side == side]
    if not only:
        return chosen
    patterns = [p.strip() for p in only.split(",") if p.strip()]

    def wanted(p: TestPurpose) -> bool:
        return any(
            fnmatch.fnmatchcase(p.id, pat) or p.id.startswith(pat) or p.clause == pat
            for pat in patterns
        )

    return [p for p in chosen if wanted(p)]


def change_request() -> str:
    """The change request's detailed proposal (Change 1 and 2), as the kit quotes it."""
    return resources.files(__package__).joinpath("change-request.txt").read_text("utf-8")


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def markdown_table(side: Side | None = None) -> str:
    """The README's table of test purposes (generated; a test compares it)."""
    rows = [
        "| Id | Clause | Checks | Verdict rule | If broken |",
        "|---|---|---|---|---|",
    ]
    chosen = [p for p in PURPOSES if side is None or p.side == side]
    for p in sorted(chosen, key=lambda p: (p.side != "server", clause_key(p.clause))):
        where = f"{p.clause} `{p.resource}`" if p.resource else p.clause
        rule = p.rule.replace("|", "\\|")
        rows.append(f"| `{p.id}` | {where} | {p.title} | {rule} | {p.on_violation} |")
    return "\n".join(rows)
