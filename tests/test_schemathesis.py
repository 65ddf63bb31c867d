"""Schema-driven testing: schemathesis reads ``/openapi.json`` from a running lab
(real HTTPS, verified against the lab CA), generates requests for every
operation, valid and invalid, and checks every answer against the document:
no server error, a declared status code, a declared content type, a body and
headers that match the schema. Once with an account's credentials, once with a
device's, since each kind of caller reaches different code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.auths import apply_basic_auth
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dmlab import Lab
from dmlab.runtime.lab import DEFAULT_ACCOUNT
from dmlab.server import build_services, create_app
from dmlab.server.auth import Throttle
from dmlab.server.openapi import build_document

from helpers import new_dev_id, problem

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]

#: Bounded: a handful of examples per operation keeps the whole module well under a minute.
BOUNDED = settings(
    max_examples=int(os.environ.get("DMLAB_EXAMPLES", "12")),
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
#: The longest a generated long-poll may hold the connection (the document allows 30 s).
POLL_CAP = 0.2


@pytest.fixture(scope="module", autouse=True)
def no_lockout(lab: Lab) -> Iterator[None]:
    """Schemathesis sends wrong credentials for the real names hundreds of times on
    purpose; the brute-force lockout would answer 429 (tested in test_hostile.py)."""
    auth = lab.services.auth
    saved, auth.throttle = auth.throttle, Throttle(free_failures=10**9, name_ceiling=10**9)
    yield
    auth.throttle = saved


@pytest.fixture(scope="module")
def ca_file(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab.ca.write_ca(tmp_path_factory.mktemp("ca") / "ca.pem")


@pytest.fixture(scope="module")
def api_schema(lab: Lab, ca_file: Path) -> Any:
    return schemathesis.openapi.from_url(f"{lab.url}/openapi.json", verify=str(ca_file))


@dataclass
class Caller:
    """Credentials and an HTTPS session that trusts the lab CA (and nothing else)."""

    auth: tuple[str, str]
    session: requests.Session


@pytest.fixture
def account(ca_file: Path) -> Iterator[Caller]:
    with requests.Session() as session:
        session.verify = str(ca_file)
        yield Caller(DEFAULT_ACCOUNT, session)


@pytest.fixture
def device(lab: Lab, ca_file: Path) -> Iterator[Caller]:
    """A fresh device per operation (the account run may have unregistered any other),
    with a pending session so that starting one has something to start."""
    dev_id = new_dev_id()
    secret = lab.operator.register(dev_id)["secret"]
    lab.operator.request_session(dev_id, job="inventory", notify=False)
    with requests.Session() as session:
        session.verify = str(ca_file)
        yield Caller((dev_id, secret), session)


def operations() -> list[tuple[str, str]]:
    """(method, path) of every documented operation, known at collection time from the
    same routes the running lab serves (the test then reads them from /openapi.json)."""
    document = build_document(create_app(build_services()).routes)
    return [
        (method.upper(), path)
        for path, methods in document["paths"].items()
        for method in methods
        # An event stream never ends by design: it cannot be checked as one answer.
        if path != "/events"
    ]


def run_operation(api_schema: Any, method: str, path: str, caller: Caller) -> None:
    """Every generated case, valid or not, sent over HTTPS and its answer checked."""
    operation = api_schema[path][method]
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @BOUNDED
    @given(case=strategy)
    def check(case: Any) -> None:
        if path == "/notifications" and isinstance(case.query, dict):
            wait = case.query.get("wait")
            if isinstance(wait, (int, float)) and not isinstance(wait, bool) and wait > POLL_CAP:
                case.query["wait"] = POLL_CAP
        if "Authorization" in (case.headers or {}):
            # Real credentials instead of generated ones; a case meant to go without
            # credentials (negative testing) keeps going without them.
            apply_basic_auth(case, *caller.auth)
        # schemathesis passes its own `verify`, so the CA goes with every call
        case.call_and_validate(
            session=caller.session, checks=CHECKS, timeout=10, verify=caller.session.verify
        )

    check()


@pytest.mark.parametrize(("method", "path"), operations())
def test_api_as_an_account(api_schema: Any, account: Caller, method: str, path: str) -> None:
    run_operation(api_schema, method, path, account)


@pytest.mark.parametrize(("method", "path"), operations())
def test_api_as_a_device(api_schema: Any, device: Caller, method: str, path: str) -> None:
    run_operation(api_schema, method, path, device)


# What the schema-driven run found, pinned as plain examples -----------------------


def test_an_alert_mark_that_is_not_text_is_a_400(lab: Lab, clients: Any, register: Any) -> None:
    """Once a TypeError (a list is unhashable) and a 500."""
    phone = clients.of(register(attach=False))
    for path in ("/alert", "/sessions/next"):
        answer = phone.post(path, json={"Alert": [{"AlertType": "x", "Mark": []}]})
        problem(answer, 400, "bad-request")


def test_an_endless_ttl_is_a_400(lab: Lab, clients: Any, register: Any) -> None:
    """All digits, so it passed the check; as a float it was infinite, and the
    answer (which shows the expiry) could not be written as JSON: a 500."""
    device = register(attach=False)
    for ttl in ("9" * 400, 10**400):
        answer = clients.account().post(
            f"/devices/{device.dev_id}/sessions",
            json={"job": "inventory", "notify": False, "ttl": ttl},
        )
        problem(answer, 400, "bad-request")


def test_a_nan_wait_is_a_400_not_an_endless_poll(lab: Lab, clients: Any, register: Any) -> None:
    phone = clients.of(register(attach=False))
    # An endless poll would time out here; a NaN taken as "the longest wait" would end in 204.
    problem(phone.get("/notifications", params={"wait": "nan"}, timeout=30), 400, "bad-request")
