"""Where each rule of the lab's protocol comes from: the DM 2.0 specification, the CR, or the lab.

The change request (CR) adds REST resources on top of OMA DM 2.0 (OMA-TS-DM_Protocol-V2_0);
everything it does not restate comes from that specification. Working-group readers need to
see, point by point, which rules are the specification's, which the CR's, and which the lab
chose where both are silent or could not be confirmed. This module holds that as data:
``docs/protocol.md`` is rendered from it (:func:`markdown`), tables in the notebooks and
:func:`dmlab.protocol.notification.describe` cite its choice ids, and a test fails when the
document or a cited id drifts.

Specification rules were read from a section-by-section digest of OMA-TS-DM_Protocol-V2_0
(approved 2016), OMA's published DDF for DMAcc 1.2 and a third-party DM 2.0 client (the C++
proof of concept bendelec/Grandma), not from the specification's own text; section numbers
are the digest's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from ..caps import DEFAULT as CAPS
from ..caps import PENDING_RETRY_AFTER

Source = Literal["specification", "CR", "lab choice"]

SPEC: Final = "specification"
CR: Final = "CR"
LAB: Final = "lab choice"


@dataclass(frozen=True, slots=True)
class Point:
    """One rule the lab follows, and whose it is."""

    topic: str
    rule: str
    source: Source
    #: The summary's section (§) for specification rules, the CR's section for CR rules,
    #: the choice id for lab choices.
    ref: str


@dataclass(frozen=True, slots=True)
class Option:
    """One reading of a switchable choice: what it changes on the wire, and whether it
    departs from the CR's text (the conformance kit then fails or warns the purposes
    named in ``purposes``)."""

    value: str
    wire: str
    departs: bool = False
    #: Conformance test purposes this option makes FAIL or WARN (only when ``departs``).
    purposes: tuple[str, ...] = ()
    #: The risk this reading leaves, in a sentence a working group can weigh.
    risk: str = ""


@dataclass(frozen=True, slots=True)
class LabChoice:
    """A place where the specification and the CR are silent, or could not be confirmed.

    A choice with ``options`` is switchable (``Lab(choices=...)``, ``serve --choice``);
    the first option is the default and ``reading`` says what it does. A choice without
    options is fixed: ``reading`` is what the lab does, ``other`` what it might do."""

    id: str
    topic: str
    #: What the lab does (by default).
    reading: str
    #: The other readings a working group might take ("" when none was weighed).
    other: str
    why: str
    #: The CR (or specification) clause this choice fills, and the words it reads.
    clause: str = ""
    #: The question a working group would ask.
    question: str = ""
    options: tuple[Option, ...] = ()
    #: Where in the code the choice acts.
    where: str = ""
    #: The conformance kit's test purposes that judge this place of the CR: under an
    #: option that does not depart they pass; under one that does, its ``purposes`` fail
    #: or warn (a test runs the kit under every option).
    judged_by: tuple[str, ...] = ()

    @property
    def default(self) -> str:
        return self.options[0].value if self.options else ""

    def option(self, value: str) -> Option:
        for o in self.options:
            if o.value == value:
                return o
        raise KeyError(value)


#: Lab choice paging: the items a listing page holds unless ``limit`` asks otherwise,
#: and the most ``limit`` may ask for (the listings' only sizes, declared here once).
PAGE_DEFAULT: Final = 100
PAGE_MAX: Final = 1000

# --- the lab's choices, one row each; ids are what users and tests cite -------

CHOICES: Final[tuple[LabChoice, ...]] = (
    # Switchable readings of the CR's session resources (dmlab/choices.py)
    LabChoice(
        "session-ids",
        "Sessions",
        "every reported round spends its id; the next package comes under a new id "
        "(`Location: /sessions/id/{new}`)",
        "one id for the whole session",
        "the CR's words; a spent id tells a stale or replayed report from a current one",
        clause='CR x.1.1: PUT /sessions/id/{sessionId} answers with "a newly assigned Session ID"',
        question="does the session id change on every round?",
        options=(
            Option(
                "new-per-put",
                "each PUT's answer carries a new SessionID and Location",
                risk="the device follows a new id every round; a report whose answer was lost is "
                "resent to a spent id, which only put-retry=replay answers",
            ),
            Option(
                "stable",
                "SessionID and Location stay the same for the whole session",
                departs=True,
                purposes=("TP/SESS/PUT/001",),
                risk="the server cannot tell a retried PUT from the next round's report: after a "
                "lost answer it can take one round's statuses for the next round's",
            ),
        ),
        where="dmlab/core/sessions.py SessionEngine.report",
        judged_by=("TP/SESS/PUT/001", "TP/SESS/PUT/010"),
    ),
    LabChoice(
        "put-retry",
        "Sessions",
        "a PUT repeated with the same statuses on the id it just spent gets the same answer "
        "again (the package it was given, or 204 at the end); a different body is a 409",
        "409 for every PUT on a spent id",
        "HTTP's PUT is idempotent; when the answer to a PUT is lost the device can only "
        "retry, and a 409 leaves the session hanging (issue 12's finding)",
        clause="CR x.1.1 (PUT /sessions/id/{sessionId}); RFC 9110 §9.2.2 (idempotent methods)",
        question="what does a device do when the answer to its PUT is lost?",
        options=(
            Option(
                "replay",
                "an identical PUT on the id just spent answers 200 with the same package "
                "(or 204 at the end), not 409",
                risk="the server keeps each spent id's last answer until the next round; a "
                "different body on a spent id is still a 409",
            ),
            Option(
                "conflict",
                "an identical PUT on a spent id answers 409 like any other (PUT is then not "
                "idempotent, as HTTP, which the CR relies on, requires)",
                departs=True,
                purposes=("TP/HTTP/IDEM/001",),
                risk="a lost PUT answer costs a refusal: the retry gets 409, and only "
                "POST /sessions/next re-sending the round (session-resume=next) lets the "
                "device go on; without it the session hangs until it expires",
            ),
        ),
        where="dmlab/core/sessions.py SessionEngine.report",
        judged_by=("TP/SESS/PUT/006", "TP/SESS/PUT/010", "TP/HTTP/IDEM/001"),
    ),
    LabChoice(
        "abort-path",
        "Sessions",
        "a session is aborted at `DELETE /session/id/{id}` (the CR's spelling) and at "
        "`DELETE /sessions/id/{id}` (the plural of its other session resources)",
        "only the CR's singular spelling",
        "the CR spells this one resource in the singular, likely a slip; clients guess both",
        clause="CR x.1.1: DELETE /session/id/{sessionId}",
        question="is the plural spelling of the abort resource served?",
        options=(
            Option(
                "both",
                "DELETE on /session/id/{id} and on /sessions/id/{id} abort",
                risk="two URLs abort a session; a client that only knows the plural fails on a server "
                "that reads the CR literally",
            ),
            Option(
                "singular",
                "only DELETE /session/id/{id} aborts; the plural answers 405",
                risk="a client that spells it like every other session resource gets 405 and "
                "cannot abort",
            ),
        ),
        where="dmlab/server/routes/sessions.py (routes declared with when=)",
        judged_by=("TP/SESS/DEL/001", "TP/SESS/DEL/002", "TP/SESS/DEL/003"),
    ),
    LabChoice(
        "session-resume",
        "Sessions",
        "`POST /sessions/next` from a device that has an active session answers that "
        "session's current package 2 again, under its current id, before any pending "
        "session starts (the device lost its place: a lost answer, a restart)",
        "204 or the next pending session; the active session waits for its expiry",
        "a DM client runs one session at a time, and one that restarted mid-session "
        "knows no session id to ask for: without this its session hangs until it "
        "expires (issue 10's finding)",
        clause='CR x.1.1: POST /sessions/next "Start pending DM Session, and get the '
        'initial Management Commands from Server"',
        question="what does POST /sessions/next answer a device whose session is in progress?",
        options=(
            Option(
                "next",
                "POST /sessions/next re-sends the active session's current round (200, "
                "the same SessionID and commands) and moves its idle deadline on",
                risk="two live copies of one device (a clone, a restarted process whose old "
                "one still runs) are both handed the session in progress and race to report "
                "it; the first report wins, the other is answered as a retry or refused",
            ),
            Option(
                "none",
                "POST /sessions/next starts the oldest pending session or answers 204; an "
                "active session is reachable only by the id the device lost",
                risk="a device that lost the answer to POST /sessions/next, or restarted "
                "mid-session, cannot finish its session: it hangs until --active-ttl expires it",
            ),
        ),
        where="dmlab/core/sessions.py SessionEngine.start_next; dmlab/device/client.py "
        "VirtualDevice.resume",
        judged_by=("TP/SESS/NEXT/001", "TP/SESS/NEXT/002", "TP/SESS/START/005"),
    ),
    LabChoice(
        "active-listing",
        "Sessions",
        "`GET /sessions/active` lists the sessions started and not ended (a device its "
        "own, an account every one of its devices'), each with its idle deadline "
        "(`Expires`); a device record counts them (`active`)",
        "list them with the pending ones, marked by their State; or in no listing",
        "the CR lists pending and completed sessions only, so a started session is in "
        "neither (issue 10's finding: 97 of them after 5 crashes, the device's pending "
        "count 0); listed as pending, it would break 'a started session is no longer "
        "pending' and look like work to start",
        clause="CR x.1.1: GET /sessions/pending and GET /sessions/completed; a started "
        "session is neither",
        question="where can an account or a device see a session in progress?",
        options=(
            Option(
                "own-resource",
                "GET /sessions/active lists them; a device record counts them as `active`",
                risk="a resource the CR does not name: clients written against the CR alone "
                "do not know to look there",
            ),
            Option(
                "hidden",
                "no GET /sessions/active (404) and no count: a session in progress appears "
                "in no listing until it ends",
                risk="sessions in progress are invisible: after a crash an account cannot see, "
                "count or abort them unless it remembered their ids (issue 10's finding)",
            ),
        ),
        where="dmlab/server/routes/sessions.py (GET /sessions/active, declared with when=); "
        "dmlab/server/routes/devices.py device_json",
        judged_by=("TP/SESS/NEXT/003",),
    ),
    LabChoice(
        "active-ttl",
        "Sessions",
        "an active session whose device sends nothing for `--active-ttl` seconds (300 by "
        "default) completes as expired, recorded with its reason; the device's next PUT "
        "on it is refused with a `session-expired` problem (409)",
        "a session stays active until its device ends it or an account aborts it",
        "a device that crashed or lost its place would otherwise hold its work forever "
        "(issue 10's finding); the expiry is checked wherever the session is read and "
        "swept periodically, so it also happens after a restart",
        clause='CR x.1.1: GET /sessions/completed "with brief result (OK or failure)"; the '
        "CR says nothing of sessions that end without their device",
    ),
    LabChoice(
        "alert-opens",
        "Sessions",
        "a session-opening alert (client- or server-initiated) to `POST /alert` starts the "
        "device's oldest pending session (with nothing pending, see idle-alert-204)",
        "a client-initiated alert always starts a new client-initiated session",
        "the CR queues work per device; the oldest is the one the device was told about",
        clause='CR x.1.3: POST /alert "Report Device event to Server, and may get further '
        'Management Commands"; x.2.2 Client Initiated Session',
        question="which session does a client-initiated alert open?",
        options=(
            Option(
                "oldest-pending",
                "`POST /alert` with ClientInitiatedMgmt answers 200 with the oldest pending "
                "session's commands, or 204 when nothing is pending",
                risk="a device's UI event runs whatever work is oldest, which may not be what the "
                "user asked for",
            ),
            Option(
                "new-session",
                "`POST /alert` with ClientInitiatedMgmt always answers 200 with a new "
                "client-initiated session (the lab's inventory: GET DevInfo, GET FUMO State, "
                "END); pending sessions stay queued for `POST /sessions/next` (a "
                "ServerInitiatedMgmt alert still opens the oldest)",
                risk="queued work waits for a separate POST /sessions/next; a device that only "
                "sends alerts never runs it",
            ),
        ),
        where="dmlab/core/sessions.py SessionEngine.take_alerts",
        judged_by=("TP/ALRT/002", "TP/ALRT/003", "TP/FLOW/CI/001"),
    ),
    LabChoice(
        "brief-result",
        "Sessions",
        "the brief result is the CR's OK or failure, judged on the session's own statuses "
        "(a firmware update whose EXEC was accepted with 202 is OK even if the update later "
        "fails: its alert says so); a session that ended without running to its end is a "
        "failure whose `Reason` says aborted or expired",
        "aborted and expired as results of their own; or the job's outcome after its alert",
        'the CR lists completed sessions "with brief result (OK or failure)": a client built '
        "to it knows two values, and `Reason` keeps what a third would say",
        clause='CR x.1.1: GET /sessions/completed "Get list of completed Management Sessions '
        'with brief result (OK or failure)"',
        question="which brief results can a completed session have?",
        options=(
            Option(
                "ok-failure",
                "`Result` is `OK` or `failure`; an aborted or expired session is `failure` "
                "with `Reason` `aborted` or `expired`",
                risk="a reader must look at Reason to tell an aborted or expired session from one "
                "whose commands failed",
            ),
            Option(
                "extended",
                "`Result` is also `aborted` or `expired`, values the CR does not list",
                departs=True,
                purposes=("TP/SESS/COMP/007",),
                risk="clients written to the CR's two values meet values they do not know",
            ),
        ),
        where="dmlab/core/sessions.py SessionEngine.brief (every session the server shows)",
        judged_by=("TP/SESS/COMP/001", "TP/SESS/COMP/002", "TP/SESS/COMP/007"),
    ),
    LabChoice(
        "session-origin",
        "Sessions",
        "a session's origin is the flow that queued it; one queued by the server and "
        "then opened by the device's client-initiated alert stays server-initiated",
        "the flow that opened it",
        "the origin tells why the work exists, not who called first",
    ),
    LabChoice(
        "idle-alert-204",
        "Sessions",
        "a session-opening alert with no pending work is recorded and answered 204; a generic "
        "alert (an event report) is recorded, answered 204 and leaves pending work pending",
        "start an empty session; or open pending work on any alert",
        'the CR\'s POST /alert "may get further Management Commands": may, not must',
    ),
    LabChoice(
        "alert-body",
        "Sessions",
        '`POST /alert` carries DM 2.0\'s package 3 shape (`{"Alert": [...]}`)',
        "package 1's shape",
        "an alert outside a session is what package 3 carries after the statuses",
    ),
    LabChoice(
        "job-steps",
        "Sessions",
        "a job is a function of the statuses so far: each round's commands are planned from "
        "the previous rounds' answers",
        "all commands planned up front",
        "the CR lets each PUT's answer carry further commands; the server decides them then",
    ),
    LabChoice(
        "queue-resource",
        "REST resources",
        "a server application or script queues work with JSON to `POST /devices/{devId}/sessions` "
        '(`{"job": …}` or `{"CMD": …}`), the browser entry point',
        "a resource of its own",
        "the CR has no resource for a server application to ask for a session",
    ),
    LabChoice(
        "events-stream",
        "REST resources",
        "`GET /events` streams an account's session events as Server-Sent Events",
        "polling the session lists",
        "pages and widgets follow sessions without polling; the CR names no such resource",
    ),
    LabChoice(
        "listing-scope",
        "REST resources",
        "an account sees the sessions of all its devices; a device only its own",
        "",
        "the CR's session lists name no caller",
    ),
    LabChoice(
        "representation",
        "REST resources",
        "each resource answers JSON, or an HTML page for a browser (content negotiation on "
        "`Accept`); an account asking for the CR's command type is refused (only a device's "
        "own browser component gets commands)",
        "JSON only",
        "the CR names resources but not their representations, and has people use some",
    ),
    LabChoice(
        "problem-body",
        "REST resources",
        "every refusal has the status that fits and an RFC 9457 problem body, or an HTML page "
        "for a browser",
        "",
        "the CR names no error format",
    ),
    LabChoice(
        "body-limit",
        "REST resources",
        "a request body larger than 256 KiB is refused (413) from its Content-Length, unread",
        "",
        "nothing unbounded that a client controls",
    ),
    LabChoice(
        "paging",
        "REST resources",
        "`GET /sessions/pending`, `GET /sessions/completed` and `GET /devices` answer one page "
        f"at a time, oldest first: `limit` items ({PAGE_DEFAULT} by default, at most "
        f"{PAGE_MAX}) after an opaque `cursor`; the next page's URL comes in a "
        '`Link: <…>; rel="next"` header and a `Next` field, both absent on the last page. A '
        "page may hold fewer than `limit` items (sessions that expired as it was read); only a "
        "missing `Next` ends the list. A bad `limit` or `cursor` is a 400",
        "whole lists (each request costs everything stored); offset pages (`?page=`), which "
        "skip or repeat items while the list changes and cost the offset; a fixed page size; "
        "the next link in the header only (generated clients and saved JSON lose it) or in "
        "the body only (generic HTTP pagers read `Link`, RFC 8288)",
        "the CR's lists name no size, and nothing a client controls may be unbounded; a "
        "cursor on the order sessions entered their state (keyset, on an index) costs one "
        "page, and a walk sees every item once even while sessions are queued or completed",
        clause="CR x.1.1: GET /sessions/pending, GET /sessions/completed; CR x.1.2: GET /devices",
        question="how is a long list of sessions or devices handed out?",
        where="dmlab/server/paging.py; the stores' sessions_page and devices_page",
    ),
    LabChoice(
        "pending-caps",
        "REST resources",
        f"a device may have at most {CAPS.pending_per_device} sessions pending and an account "
        f"{CAPS.pending_per_account:,} (`dmlab serve --pending-per-device`, "
        "`--pending-per-account`); the request that would queue one more gets a 429 problem "
        f"`over-cap` with `Retry-After: {PENDING_RETRY_AFTER}`, and nothing is queued",
        "no cap (one script can queue without end, and every listing and count grows with "
        "it); a 409 or 503 instead of 429; dropping the oldest pending session instead of "
        "refusing the new one",
        "the CR queues sessions but names no limit, and nothing a client controls may be "
        "unbounded; 429 (RFC 6585) says the caller sent too much and may retry later, "
        "which is true once its device has run some of its queue",
        clause="CR x.2.1, x.2.4: a session is queued and the device notified",
        question="how many sessions may wait for one device, or one account?",
        where="dmlab/caps.py (the values); SessionEngine.queue (the check)",
    ),
    LabChoice(
        "account-auth",
        "Devices and accounts",
        "accounts and devices authenticate with HTTP Basic over TLS; a device as devId:secret "
        "and with `OMADM-DevID`",
        "client certificates; OAuth",
        "the CR names no authentication scheme; Basic is the one every client supports",
    ),
    LabChoice(
        "device-secret",
        "Devices and accounts",
        "registering a device issues a random secret, shown once; the server keeps only its hash",
        "an account-chosen password",
        "the CR does not say how a registered device learns its credentials",
    ),
    LabChoice(
        "registration-json",
        "Devices and accounts",
        "`POST /devices/new` takes form data (with a CSRF token) and also `application/json`",
        "form data only",
        'the CR asks for "form data"; a script should not need to fetch a form first',
    ),
    LabChoice(
        "devid-grammar",
        "Devices and accounts",
        "a DevID is 3 to 100 letters, digits and `:._-`, with no slashes, dot-only segments "
        "or percent signs",
        "any string",
        "a DevID sits in URLs (`/devices/{devId}`)",
    ),
    LabChoice(
        "device-fields",
        "Devices and accounts",
        "a device record holds `name`, `man` and `mod`; a PUT changes the fields it names",
        "",
        "the CR lists no fields",
    ),
    LabChoice(
        "hide-others",
        "Devices and accounts",
        "another account's device or session is answered exactly as one that does not exist "
        "(404, same wording)",
        "403",
        "a 403 would tell a stranger the device exists",
    ),
    LabChoice(
        "unregister-revokes",
        "Devices and accounts",
        "unregistering a device revokes its credentials at once and deletes its sessions",
        "",
        "the CR does not say what unregistering does to a device's access",
    ),
    LabChoice(
        "html-forms",
        "Browser flows",
        "HTML forms cannot PUT or DELETE: the device page's forms POST with a hidden "
        "`_method`; every state-changing form carries a CSRF token",
        "JavaScript sending PUT and DELETE",
        "the pages work without JavaScript",
    ),
    LabChoice(
        "data-resources",
        "REST resources",
        "`GET /firmware/{version}` (a package), `GET /firmware/{version}/url` (what an HGET "
        "writes into FUMO's PkgURL) and `PUT|POST /data/{key}` (where HPUT, HPOST and SUB "
        "deliver) are the lab's",
        "",
        "the CR's commands name ServerURIs but no resources behind them",
    ),
    LabChoice(
        "notification-version",
        "Package 0",
        "VER (4 bits) is 2; other versions are refused",
        "",
        "the specification names the field but its value could not be confirmed",
    ),
    LabChoice(
        "option-framing",
        "Package 0",
        "option length is a 4-bit nibble beside the 4-bit delta; values 13 and 14 take one or "
        "two extension bytes (CoAP, RFC 7252 §3.1); 15 is reserved",
        "an 8-bit length byte",
        "the 4-bit delta is confirmed; the length's width and any extension are not",
    ),
    LabChoice(
        "con-type-encoding",
        "Package 0",
        "PREFERRED-CON-TYPE is exactly one byte (0x00 is a byte, not an empty value); "
        "values above 0x03 are refused",
        "a minimal unsigned integer (0 as an empty value)",
        "the option is Opaque and its four values are single bytes 0x00-0x03",
    ),
    LabChoice(
        "timestamp-length",
        "Package 0",
        "TIMESTAMP is POSIX seconds in 4 bytes (8 bytes from 2106 on)",
        "8 bytes always",
        "the specification says POSIX time; the length could not be confirmed",
    ),
    LabChoice(
        "notification-secret",
        "Package 0",
        "`derived`: the Auth/Noti secret is SHA-256 of a label and the device's password, "
        "with empty auth data; the device reads both from its DMAcc Auth/Noti",
        "`dmacc`: a separate secret and auth data provisioned in DMAcc <x>/Auth/Noti/{Secret, "
        "Data} (the specification's way; the lab's device verifies either)",
        "the server stores no device password, only a hash, and still has to sign notifications",
    ),
    LabChoice(
        "notification-freshness",
        "Package 0",
        "the device drops a notification without TIMESTAMP, older or newer than 300 s, "
        "whose NOTIFICATION-ID it has accepted before, or not newer than one it forgot "
        "for lack of room (it remembers 1,024): an old notification is never accepted",
        "accept notifications without TIMESTAMP",
        "the specification makes TIMESTAMP and NOTIFICATION-ID optional for clients and "
        "leaves the replay window open",
    ),
    LabChoice(
        "notification-transport",
        "Package 0",
        "in process, a listener; across processes, a long-poll `GET /notifications` "
        "answering `application/vnd.oma.dm.notification`",
        "server-sent events; none (devices call in on a timer); SMS, WAP push, a push "
        "service (DMAcc Push)",
        "the specification lists transports in an appendix the lab cannot use on one host; "
        "a long-poll needs no listening socket on the device and passes every proxy",
        clause='CR x.2.1: the client starts a session "when it received the DM Notification '
        'Message"; x.2.4: "the Server triggers the Client with Notification Message"',
        question="how does package 0 reach a device in another process?",
        options=(
            Option(
                "long-poll",
                "the device GETs /notifications?wait=N; the answer is one package 0 "
                "(application/vnd.oma.dm.notification) or 204 after N s",
                risk="a request open per listening device, renewed every 25 s; a poll that dies "
                "unseen loses nothing (the mailbox keeps package 0)",
            ),
            Option(
                "sse",
                "the device keeps GET /notifications open as text/event-stream; each "
                "package 0 is one `notification` event, base64 in its data",
                risk="a connection open per listening device for as long as it listens; a proxy "
                "that buffers answers holds package 0 back",
            ),
            Option(
                "none",
                "no GET /notifications and no mailbox: a device in another process calls "
                "POST /sessions/next on a timer, so queued work waits up to one period; the "
                "lab's own devices too (no in-process listener is handed package 0; "
                "`Lab(call_in=…)` sets their period)",
                departs=True,
                purposes=("TP/FLOW/SI/001", "TP/FLOW/BI/002"),
                risk="queued work waits up to one timer period, and every device calls in every "
                "period even when nothing is queued",
            ),
        ),
        where="dmlab/server/routes/resources.py and notifications.py (routes declared with "
        "when=); dmlab/device/client.py VirtualDevice.listen",
        judged_by=("TP/FLOW/SI/001", "TP/FLOW/SI/002", "TP/FLOW/BI/002"),
    ),
    LabChoice(
        "notification-id-in-alert",
        "Package 1",
        'ServerInitiatedMgmt carries the NOTIFICATION-ID as `Data: {"NOTIFICATION-ID": n}`',
        "a bare number",
        "the specification says the alert carries the id, and that Data is an object, "
        "but not under which name",
    ),
    LabChoice(
        "lenient-input",
        "Package 1",
        "the server also accepts `application/json`, `application/vnd.oma.dm.response+json`, "
        "the request type and the CR's command type as a package 1 or 3 body",
        "only the specification's type for each package",
        "devices written against the CR alone cannot know which type to send",
    ),
    LabChoice(
        "mos-ddf",
        "Package 1",
        "the lab's device lists DDF only where OMA's published DDF URL is known "
        "(DMAcc 1.2); DDF is optional, MIID required",
        "",
        "a DDF URL that cannot be confirmed would mislead a server that fetches it",
    ),
    LabChoice(
        "get-data",
        "Package 3",
        'a GET status carries the value (or subtree) as `"Data"`',
        "results in a separate field",
        "the specification sends GET data in the session; the field is not confirmed",
    ),
    LabChoice(
        "session-end",
        "Package 3",
        "the answer to the last package 3 is `204` with an `OMADM-Result: OK|failure` header",
        "a package 2 holding only END",
        "the CR's response to PUT may carry commands; it does not say what ends a session",
    ),
    LabChoice(
        "end-report",
        "Package 3",
        "a device whose Accept names the specification's package 2 type and not the CR's "
        "is taken at its word: its package 2 comes as `application/vnd.oma.dm.request+json`, "
        "and one holding END completes the session as it is handed out. A device that "
        "accepts the CR's type, the lab's own included, PUTs the statuses of the commands "
        "before END, and the session completes on that PUT",
        "no package 3 after END from any device (the specification)",
        "the CR's PUT reports 'the results of performed DM Commands' and says nothing of "
        "END; the lab's jobs read the statuses of their last package",
        clause='CR x.1.1: PUT /sessions/id/{sessionId} "Report the results of performed DM '
        'Commands"; specification §2.4: no package 3 after END',
        question="is the round that ends with END reported?",
        options=(
            Option(
                "report",
                "a device accepting the CR's type PUTs the statuses of the commands before END "
                "and gets 204 with `OMADM-Result`, one round trip more; the session completes "
                "on that PUT",
                risk="one round trip more per session; a device that follows the specification "
                "(no report after END) leaves the session to the server's reading",
            ),
            Option(
                "none",
                "no device PUTs after END: the session completes as the package holding END "
                "is handed out, judged on the statuses reported before it, and a PUT after it "
                "is refused (409); the lab's device runs the commands and sends nothing more",
                departs=True,
                purposes=("TP/SESS/PUT/002", "TP/SESS/COMP/002"),
                risk="the server cannot learn the statuses of the commands in END's package",
            ),
        ),
        where="dmlab/core/sessions.py SessionEngine (end_completes); dmlab/device/client.py "
        "VirtualDevice (its choices)",
        judged_by=("TP/SESS/PUT/002", "TP/SESS/COMP/001", "TP/SESS/COMP/002"),
    ),
    LabChoice(
        "argument-order",
        "Commands",
        "ServerURI first for HGET/HPUT/HPOST; ClientURI first for EXEC, SUB and UNSUB; "
        "DEFAULT takes MOID, then ServerURI",
        "",
        "the order is confirmed for GET, HGET, HPOST and END only",
    ),
    LabChoice(
        "unknown-command",
        "Commands",
        "the device answers a command it does not know with status 501 and runs the rest; "
        "the server relays any upper-case command name so devices can be tested with one",
        "400 for the unknown command",
        "one status per command keeps package 3 aligned with package 2",
    ),
    LabChoice(
        "remote-failure-status",
        "Commands",
        "a remote answer outside 2xx to HGET, HPUT or HPOST is the command's status 500",
        "the remote answer's own status code",
        "a device status says what happened to the command; the remote server's code "
        "would be read as the device's (a remote 404 is not a missing node)",
        where="dmlab/device/executor.py",
    ),
    LabChoice(
        "default-status",
        "Commands",
        "DEFAULT gets a status (200) in package 3 like any command but END; the later fetch "
        "from the stored ServerURI reports nothing",
        "no status for DEFAULT itself",
        "package 3 has one status per command in order, END excepted",
    ),
    LabChoice(
        "hget-place",
        "Commands",
        "HGET without ClientURI stores the data under `urn:oma:mo:dmlab-ext:1.0//Downloads/<n>` "
        "(a new node per fetch) and returns that ClientURI in `URI`",
        "create a new MO instance with a client-assigned MIID",
        "the specification lets the client pick the place and return it",
    ),
    LabChoice(
        "mo-serialization-type",
        "Commands",
        "the MO serialization `[{DDF, ClientURI, CV, MOData}]` travels as `application/json`; "
        "the device can also send DM 1.x TNDS (`application/vnd.syncml.dmtnds+xml`) when "
        "`OMADM-Accept` asks for it after a 415",
        "",
        "the serialization's own media type name could not be confirmed",
    ),
    LabChoice(
        "mo-data-shape",
        "Commands",
        "MOData is an object keyed by the named node's name (an MO instance root: its "
        "children); a leaf's value is a JSON string, integer or null",
        "",
        "the specification's example serializes a whole instance only",
    ),
    LabChoice(
        "cache-validator",
        "Commands",
        "each MO instance's CV is the first 16 hex digits of SHA-256 over its canonical JSON; "
        "a ClientURI query `?cv=` equal to it answers 304 without data",
        "a change counter",
        "the specification requires a validator that changes with the instance, not its form",
    ),
    LabChoice(
        "fumo-alert",
        "Alerts",
        "FUMO results use `urn:oma:at:fumo:1.0:<Operation>` (DownloadAndUpdate, Download, "
        'Update), `DataType: "int"`, `Data: {"DM1x": <FUMO result code>}`; the server also '
        "reads FUMO 1.0's `org.openmobilealliance.dm.firmwareupdate.*` names",
        "FUMO 1.0's DM 1.2 names",
        "DM 2.0 names alert types `urn:oma:at:…` and carries DM 1.x data as `DM1x`; no FUMO "
        "alert type for DM 2.0 could be confirmed",
    ),
    LabChoice(
        "http-credentials",
        "Management objects",
        "the device's HTTP Basic name and password sit in DMAcc `<x>/Auth/Trsp/{Data, Secret}`",
        "X.509 client certificates (also in Auth/Trsp)",
        "the CR's resources use HTTP authentication; Basic is the one every client supports",
    ),
    LabChoice(
        "noti-auth-type",
        "Management objects",
        "DMAcc `<x>/Auth/Noti/Type` is 1, meaning the SHA256-DIGEST option",
        "",
        "the node is an int whose values could not be confirmed",
    ),
    LabChoice(
        "tls-floor",
        "Transport",
        "TLS 1.2 or newer only, server and device",
        "also TLS 1.1, as the specification requires",
        "a deliberate deviation: RFC 8996 deprecates TLS 1.0 and 1.1",
    ),
    LabChoice(
        "browser-entry",
        "Browser flows",
        "both browser flows POST to `/devices/{devId}/sessions`: the device is in the path, "
        "and the Accept header tells the flows apart",
        "`POST /sessions/next`, the CR's own resource that starts a session, naming the "
        "device in the form",
        "the CR does not say what the browser POSTs to; a resource under the device needs no "
        "device field in the form, and leaves the CR's session resources to the DM client",
        clause='CR x.2.3, x.2.4: the browser (component) starts the session "by sending HTTP '
        'POST request to the DM Server"',
        question="what does the browser POST to?",
        options=(
            Option(
                "device-sessions",
                "the device page's form (and the browser component) POST to "
                "/devices/{devId}/sessions; without the command type in Accept the session "
                "is queued and the device notified",
                risk="the entry is a resource the CR does not list: a server built from the CR alone "
                "offers browsers nothing to post to",
            ),
            Option(
                "sessions-next",
                "the device page's form POSTs to /sessions/next with a devId field (a "
                "person's browser: queued, device notified, an HTML page); the browser "
                "component POSTs its job there with the command type in Accept (commands "
                "at once); /devices/{devId}/sessions takes only scripts' JSON",
                risk="one resource, three callers told apart by credentials and body; the form's "
                "devId must be checked against the account (404 otherwise)",
            ),
        ),
        where="dmlab/server/routes/entry.py (routes declared with when=); device.html's form; "
        "dmlab/device/client.py VirtualDevice.browser_component",
        judged_by=("TP/FLOW/BC/001", "TP/FLOW/BI/001", "TP/FLOW/BI/002"),
    ),
    # Existing services beside FUMO (SCOMO, LAWMO, DiagMon, DCMO): dmlab/protocol/services.py
    LabChoice(
        "mo-instance-names",
        "Service MOs",
        "MO instance ids SCOMO1, LAWMO1, DIAGMON1; DCMO has one instance per capability, "
        "named after it (Camera)",
        "one instance named after the MO; DCMO instances with opaque ids",
        "the specification's examples use SCOMO1 and Capability123; the others follow them",
    ),
    LabChoice(
        "service-alert-data",
        "Service MOs",
        'a result alert\'s Data is {"DM1x": <result code>} (plus the reading for DiagMon); '
        "SCOMO's component is in TargetURI",
        "DM1x holding DM 1.x's XML text (<ResultCode>…</ResultCode><Identifier>…)",
        'the specification\'s DCMO example carries {"DM1x": 1404}; its SCOMO example wraps '
        "XML text a server would have to parse, and the component is already in TargetURI",
    ),
    LabChoice(
        "service-exec-async",
        "Service MOs",
        "EXEC on a service operation with a ServerURI answers 202 and reports by generic "
        "alert; without one the result is the status (200 or 500) in the same package 3",
        "always 202 and an alert (as the lab's FUMO does)",
        "the specification ties asynchronous EXEC to the ServerURI; the lab's jobs always give one",
    ),
    LabChoice(
        "scomo-descriptor",
        "Service MOs",
        "the server creates SCOMO's Download/<PkgID> by HGET of a JSON descriptor "
        "(PkgID, Name, PkgURL…); the device adds Status and the executable Operations itself",
        "the device pre-creates download slots the server fills",
        "DM 2.0 has no Add: HGET is the only command that creates nodes",
    ),
    LabChoice(
        "scomo-package-format",
        "Service MOs",
        "a software package is the firmware package's JSON (version, name, image, size, sha256)",
        "",
        "the lab needs bytes to download and check; the format is outside SCOMO's scope",
    ),
    LabChoice(
        "scomo-after-install",
        "Service MOs",
        "after a successful DownloadInstall, Download/<x> is removed and the component is "
        "listed under Inventory/Deployed; a failed one keeps Download/<x> with its Status",
        "keep Download/<x> (Status 10) after success",
        "the inventory stays the one place that lists what is installed",
    ),
    LabChoice(
        "lawmo-unlock-name",
        "Service MOs",
        "LAWMO's unlock operation node is UnLock",
        "Unlock",
        "public clients spell it both ways; the DDF's spelling could not be read here",
    ),
    LabChoice(
        "lawmo-wipe-selection",
        "Service MOs",
        "the server marks wipe list items by HGET of the text 'true' (GET /values/true) into "
        "AvailableWipeList/<x>/ToBeWiped; thresholds are written the same way",
        "an MO serialization of the whole wipe list",
        "DM 2.0 writes a leaf only by HGET from a URL, so the server must serve the value",
    ),
    LabChoice(
        "dcmo-failure-code",
        "Service MOs",
        "a failed DCMO Enable or Disable reports 1400 (client error); an unknown capability "
        "is a 404 status on the EXEC, with no alert",
        "",
        "DCMO's failure codes could not be confirmed; 1400 is every OMA MO's client error",
    ),
    LabChoice(
        "diagmon-tree",
        "Service MOs",
        "DiagMon's tree is Functions/<name>/{Value, Unit, Threshold, Trap, Operations/{Collect, "
        "ArmTrap, DisarmTrap}}; alerts urn:oma:at:diagmon:1.0:OperationComplete and …:Trap; "
        "results 1200/1400",
        "",
        "only DiagMon's MOID could be confirmed; the names follow SCOMO's and LAWMO's patterns",
    ),
)

# --- every rule, point by point --------------------------------------------------

POINTS: Final[tuple[Point, ...]] = (
    # Package 0
    Point(
        "Package 0",
        "binary, big-endian; 2-byte header: VER (4 bits), option count (5), reserved (7)",
        SPEC,
        "§6.1.1.1",
    ),
    Point("Package 0", "VER's value", LAB, "notification-version"),
    Point(
        "Package 0",
        "options in rising number, each an option delta (4 bits), a length and a value",
        SPEC,
        "§6.1.1.2",
    ),
    Point("Package 0", "option length width and extensions", LAB, "option-framing"),
    Point(
        "Package 0",
        "1 SERVER-ID (String), 2 PREFERRED-CON-TYPE, 3 NOTIFICATION-ID (2-byte Uint), "
        "4 SHA256-DIGEST (32 bytes), 5 TIMESTAMP (POSIX time), 6 REQ-MOS (no value)",
        SPEC,
        "§2.1.2",
    ),
    Point(
        "Package 0",
        "PREFERRED-CON-TYPE: 0x00 any available, 0x01 cellular, 0x02 WLAN, 0x03 wireline",
        SPEC,
        "§2.1.2.2",
    ),
    Point("Package 0", "PREFERRED-CON-TYPE on the wire", LAB, "con-type-encoding"),
    Point("Package 0", "TIMESTAMP length", LAB, "timestamp-length"),
    Point(
        "Package 0",
        "digest = SHA-256(Auth/Noti secret | notification with the digest zeroed | auth data); "
        "the client ignores a notification whose digest is wrong or whose server has no "
        "Auth/Noti",
        SPEC,
        "§2.1.2.2",
    ),
    Point("Package 0", "where the secret and auth data come from", LAB, "notification-secret"),
    Point("Package 0", "replay and freshness checks", LAB, "notification-freshness"),
    Point("Package 0", "how the notification reaches the device", LAB, "notification-transport"),
    # Package 1
    Point(
        "Package 1",
        "an HTTP POST with `Content-Type: application/vnd.oma.dm.initiation+json`, "
        "`Accept: application/vnd.oma.dm.request+json` and `OMADM-DevID`",
        SPEC,
        "§2.2, §6.2",
    ),
    Point(
        "Package 1",
        'body `{"MOS": [{"DDF", "MOID", "MIID": [...]}], "Alert": [...]}`; MOS when package '
        "0 carried REQ-MOS",
        SPEC,
        "§2.2, §6.2",
    ),
    Point(
        "Package 1",
        "alert ServerInitiatedMgmt (with the NOTIFICATION-ID), ClientInitiatedMgmt or "
        "BootstrapComplete",
        SPEC,
        "§2.2",
    ),
    Point("Package 1", "how the NOTIFICATION-ID is carried", LAB, "notification-id-in-alert"),
    Point(
        "Package 1",
        "sent to `POST /sessions/next`, `POST /sessions/id/{sessionId}` or `POST /alert`",
        CR,
        "CR x.1.1, x.1.3",
    ),
    Point("Package 1", "other body types accepted", LAB, "lenient-input"),
    Point("Package 1", "which DDF URLs the lab's device lists", LAB, "mos-ddf"),
    # Package 2
    Point(
        "Package 2",
        '`{"CMD": [[name, parameters in order], ...]}`, run in order',
        SPEC,
        "§2.3, §6.3",
    ),
    Point(
        "Package 2",
        "media type `application/vnd.omadm-cmd+json` (the specification's is "
        "`application/vnd.oma.dm.request+json`, sent to a device that asks for it alone)",
        CR,
        "CR x.2.3",
    ),
    Point(
        "Package 2",
        'a `"SessionID"` field, and a newly assigned session id for every round',
        CR,
        "CR x.1.1",
    ),
    # Package 3
    Point(
        "Package 3",
        '`{"Status": [{"sc": n, "URI": [...]}], "Alert": [...]}`: one status per command '
        "in order; none after END",
        SPEC,
        "§2.4, §6.4",
    ),
    Point(
        "Package 3",
        "`PUT /sessions/id/{sessionId}` (the specification POSTs), answered with the next "
        "package 2",
        CR,
        "CR x.1.1",
    ),
    Point(
        "Package 3",
        "no package 3 after a package 2 holding END (the client runs the commands, returns "
        "nothing)",
        SPEC,
        "§2.4, §3.9",
    ),
    Point("Package 3", "the statuses of a package ending with END", LAB, "end-report"),
    Point("Package 3", "where a GET's data travels", LAB, "get-data"),
    Point("Package 3", "how the end of a session is answered", LAB, "session-end"),
    # Commands
    Point(
        "Commands",
        "MUST: HGET, HPUT, HPOST, DELETE, EXEC, CONT, END; SHOULD: GET, SHOW, DEFAULT, SUB, UNSUB",
        SPEC,
        "§3",
    ),
    Point(
        "Commands",
        "HGET without ClientURI: the client picks the place and returns it in `URI`",
        SPEC,
        "§3.1",
    ),
    Point(
        "Commands",
        "EXEC with a ServerURI: 202 now, the generic alert later in a new session to that "
        "ServerURI",
        SPEC,
        "§3.5, §4.1",
    ),
    Point(
        "Commands",
        "DEFAULT: one ServerURI per MOID, replaced by the next DEFAULT; fetched like HGET when "
        "that MOID is needed and missing",
        SPEC,
        "§3.10",
    ),
    Point(
        "Commands",
        "HPUT/HPOST/SUB send the data at the ClientURIs; a 415 with `OMADM-Accept` is retried "
        "in a listed type; if none is supported the command's status is 406",
        SPEC,
        "§3.2, §3.3, §3.11, §4.2",
    ),
    Point(
        "Commands",
        'MO serialization `[{"DDF", "ClientURI", "CV", "MOData"}]`',
        SPEC,
        "§6.5",
    ),
    Point(
        "Commands",
        "a ClientURI `cv` field naming the current cache validator answers 304 without data",
        SPEC,
        "§10",
    ),
    Point("Commands", "parameter order", LAB, "argument-order"),
    Point("Commands", "a command the device does not know", LAB, "unknown-command"),
    Point("Commands", "DEFAULT's own status", LAB, "default-status"),
    Point("Commands", "a remote failure of HGET, HPUT or HPOST", LAB, "remote-failure-status"),
    Point("Commands", "where HGET without ClientURI stores", LAB, "hget-place"),
    Point("Commands", "media type of the MO serialization", LAB, "mo-serialization-type"),
    Point("Commands", "MOData for a node that is not an instance root", LAB, "mo-data-shape"),
    Point("Commands", "the cache validator's form", LAB, "cache-validator"),
    # Status codes
    Point(
        "Status codes",
        "202 accepted (asynchronous), 304 not modified, 404 not found, 405 command not "
        "allowed (permanent node), 406 Not Acceptable, 415 unsupported media type",
        SPEC,
        "§3, §4.1, §4.2, §5.5.1.2, §10",
    ),
    # Alerts
    Point(
        "Alerts",
        "generic alert `{AlertType, SourceURI, TargetURI, Mark, DataType, Data}`; Data is a "
        "JSON object; never answered",
        SPEC,
        "§4, §6.6",
    ),
    Point("Alerts", "generic alerts to `POST /alert`, answered 204", CR, "CR x.1.3"),
    Point("Alerts", "FUMO's alert types and data", LAB, "fumo-alert"),
    # Management objects
    Point("Management objects", "DevInfo `urn:oma:mo:oma-dm-devinfo:1.0`, DmV 2.0", SPEC, "§11.1"),
    Point(
        "Management objects",
        "DMAcc `urn:oma:mo:oma-dm-dmacc:1.2`: SrvID, SrvURI, Name, Perm, Auth/{Bootstrap, "
        "Noti/{Type, Data, Secret}, Trsp/{Data, Secret}}, Push",
        SPEC,
        "§11.2",
    ),
    Point("Management objects", "where HTTP credentials live", LAB, "http-credentials"),
    Point("Management objects", "Auth/Noti/Type's value", LAB, "noti-auth-type"),
    # Transport
    Point("Transport", "HTTPS for device and browser component", CR, "CR x.2"),
    Point("Transport", "DM client and server SHALL support TLS 1.1", SPEC, "§8.2.2"),
    Point("Transport", "the TLS versions the lab accepts", LAB, "tls-floor"),
    # REST resources and browser flows
    Point(
        "REST resources",
        "sessions, devices and alert resources; sessions listed as pending/completed with a "
        "brief result",
        CR,
        "CR x.1",
    ),
    Point("REST resources", "the session id on each round", LAB, "session-ids"),
    Point("REST resources", "a PUT repeated after its answer was lost", LAB, "put-retry"),
    Point("REST resources", "the abort resource's spellings", LAB, "abort-path"),
    Point("REST resources", "a device that lost its place in a session", LAB, "session-resume"),
    Point("REST resources", "where sessions in progress are listed", LAB, "active-listing"),
    Point("REST resources", "a session whose device went silent", LAB, "active-ttl"),
    Point("REST resources", "which session an opening alert starts", LAB, "alert-opens"),
    Point("REST resources", "an alert when nothing is pending", LAB, "idle-alert-204"),
    Point("REST resources", "the body of POST /alert", LAB, "alert-body"),
    Point("REST resources", "how a session's commands are planned", LAB, "job-steps"),
    Point("REST resources", "what the brief result judges", LAB, "brief-result"),
    Point("REST resources", "a session's origin", LAB, "session-origin"),
    Point("REST resources", "how server-side work is queued", LAB, "queue-resource"),
    Point("REST resources", "following sessions as they change", LAB, "events-stream"),
    Point("REST resources", "who sees which sessions", LAB, "listing-scope"),
    Point("REST resources", "JSON or HTML", LAB, "representation"),
    Point("REST resources", "the body of a refusal", LAB, "problem-body"),
    Point("REST resources", "the largest body", LAB, "body-limit"),
    Point("REST resources", "how long lists are handed out (pages)", LAB, "paging"),
    Point("REST resources", "how many sessions may wait", LAB, "pending-caps"),
    Point(
        "REST resources", "resources that commands fetch from or deliver to", LAB, "data-resources"
    ),
    Point(
        "Browser flows",
        "a browser component POSTs with `Accept: application/vnd.omadm-cmd+json` and gets "
        "commands; a plain browser makes the server send a notification",
        CR,
        "CR x.2.3, x.2.4",
    ),
    Point("Browser flows", "what the browser POSTs to", LAB, "browser-entry"),
    Point("Browser flows", "PUT and DELETE from HTML forms; CSRF", LAB, "html-forms"),
    # Devices and accounts (CR x.1.2)
    Point("Devices and accounts", "how accounts and devices authenticate", LAB, "account-auth"),
    Point("Devices and accounts", "how a device gets its credentials", LAB, "device-secret"),
    Point("Devices and accounts", "the registration body", LAB, "registration-json"),
    Point("Devices and accounts", "which DevIDs are accepted", LAB, "devid-grammar"),
    Point("Devices and accounts", "a device record's fields", LAB, "device-fields"),
    Point("Devices and accounts", "another account's device or session", LAB, "hide-others"),
    Point("Devices and accounts", "what unregistering does", LAB, "unregister-revokes"),
    # Existing services beside FUMO
    Point("Service MOs", "MO instance ids", LAB, "mo-instance-names"),
    Point("Service MOs", "a service result alert's Data", LAB, "service-alert-data"),
    Point("Service MOs", "EXEC on a service operation: now or later", LAB, "service-exec-async"),
    Point("Service MOs", "how SCOMO's Download/<x> is created", LAB, "scomo-descriptor"),
    Point("Service MOs", "what a software package is", LAB, "scomo-package-format"),
    Point("Service MOs", "Download/<x> after an install", LAB, "scomo-after-install"),
    Point("Service MOs", "LAWMO's unlock node name", LAB, "lawmo-unlock-name"),
    Point(
        "Service MOs",
        "how a leaf gets a value (wipe list, thresholds)",
        LAB,
        "lawmo-wipe-selection",
    ),
    Point("Service MOs", "DCMO's failure result", LAB, "dcmo-failure-code"),
    Point("Service MOs", "DiagMon's nodes, alerts and codes", LAB, "diagmon-tree"),
)

CHOICE_IDS: Final = frozenset(c.id for c in CHOICES)


def choice(choice_id: str) -> LabChoice:
    """The lab choice with this id; ``KeyError`` names an id nobody declared."""
    for c in CHOICES:
        if c.id == choice_id:
            return c
    raise KeyError(f"no lab choice {choice_id!r}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """``docs/protocol.md``: every point with its source, then the lab choices as a table."""
    lines = [
        "# Where the lab's protocol comes from",
        "",
        "<!-- Generated from dmlab/protocol/provenance.py by "
        "`python -m dmlab.protocol.provenance > docs/protocol.md`; do not edit by hand. -->",
        "",
        "The CR adds REST resources on top of OMA DM 2.0 (OMA-TS-DM_Protocol-V2_0); everything",
        "it does not restate comes from that specification. Each rule below is marked",
        "**specification**, **CR**, or **lab choice** (the specification and the CR are silent,",
        "or the specification could not be confirmed). Specification rules were read from a",
        "section-by-section summary of the specification, OMA's DDF for DMAcc 1.2 and a",
        "third-party DM 2.0 client (bendelec/Grandma); § numbers are the summary's, not the",
        "specification's own.",
        "",
    ]
    topic = ""
    for p in POINTS:
        if p.topic != topic:
            topic = p.topic
            lines += ["", f"## {topic}", "", "| rule | source | where |", "|---|---|---|"]
        where = f"`{p.ref}`" if p.source == LAB else p.ref
        lines.append(f"| {_cell(p.rule)} | {p.source} | {where} |")
    lines += [
        "",
        "## Lab choices",
        "",
        "One row per choice; the `choice id` is what tests, notebooks and",
        "`notification.describe` cite.",
        "",
        "| choice id | topic | the lab's reading | other readings | why |",
        "|---|---|---|---|---|",
    ]
    for c in CHOICES:
        lines.append(
            f"| {c.id} | {c.topic} | {_cell(c.reading)} | {_cell(c.other) or '—'} | "
            f"{_cell(c.why)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
