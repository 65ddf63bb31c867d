"""Fixtures for the end-to-end suite: a real lab (uvicorn + TLS in a thread),
raw HTTPS clients, and device registration. Plain helpers live in helpers.py."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dmlab import Lab
from dmlab.device import Behaviour

from helpers import ACCOUNT, HASH_COST, RIVAL, Clients, Registered, new_dev_id


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The in-process lab; in a module marked ``on_workers``, also ``serve --workers 2``
    on PostgreSQL (tests/workers_lab.py)."""
    if getattr(request, "param", "in-process") == "2-workers":
        from workers_lab import WorkersLab

        url, ca, database = request.getfixturevalue("workers_server")
        remote = WorkersLab(url, ca, database)
        try:
            remote.add_account(*RIVAL)
            yield remote
        finally:
            remote.close()
        return
    with Lab(hash_cost=HASH_COST) as running:
        running.add_account(*RIVAL)
        yield running


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    from workers_lab import parametrize

    parametrize(metafunc)


@pytest.fixture
def fresh_lab() -> Iterator[Lab]:
    """A lab of one's own, for tests that read the whole trace or every listing."""
    with Lab(hash_cost=HASH_COST) as running:
        running.add_account(*RIVAL)
        yield running


@pytest.fixture
def clients(lab: Lab) -> Iterator[Clients]:
    with Clients(lab) as made:
        yield made


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


# PostgreSQL -------------------------------------------------------------------------
_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of a throwaway PostgreSQL cluster shared by the whole run. Skips (and
    says why) only where no PostgreSQL server binaries exist; .ci/run installs them."""
    from dmlab.runtime.postgres import PostgresNotFound, throwaway_postgres

    try:
        with throwaway_postgres() as dsn:
            yield dsn
    except PostgresNotFound as missing:
        pytest.skip(f"PostgreSQL tests need a server: {missing}")


@pytest.fixture
def new_database(postgres_server: str) -> Callable[[], str]:
    """``new_database()`` → the DSN of a new, empty database in the shared cluster."""
    import psycopg

    def make() -> str:
        name = f"dmlab_test_{next(_databases)}"
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return postgres_server.rsplit("/", 1)[0] + "/" + name

    return make


@pytest.fixture(scope="session")
def workers_server(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, str]]:
    """One ``serve --workers 2`` for the run, on a database of its own: URL, CA, DSN."""
    import psycopg
    from workers_lab import serve_workers

    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute("CREATE DATABASE dmlab_workers_lab")
    database = postgres_server.rsplit("/", 1)[0] + "/dmlab_workers_lab"
    servers = serve_workers(database, tmp_path_factory.mktemp("workers"))
    url, ca = next(servers)
    yield url, ca, database
    servers.close()
