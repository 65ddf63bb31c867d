"""The benchmark scripts still run: tiny sizes, figure lines printed, exit 0.

Nothing here is timed; the figures themselves are read by people (benchmarks/README.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


#: A deadline, not a guess at how long a run takes: each run ends as soon as its script
#: does (a few seconds idle), but abuse.py's crashes restart `dmlab serve` processes, and
#: with three full suites and a fleet on two cores (issue 16's loaded runs) it took over
#: 120 s. Only a script that hangs should reach this.
DEADLINE = 900


def run(script: str, *args: str) -> str:
    # -W error: a warning in a benchmark is as much a bug as in a test.
    done = subprocess.run(
        [sys.executable, "-W", "error", str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def lines_starting(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def test_sessions_prints_both_rates_and_the_ratio() -> None:
    out = run("sessions.py", "--devices", "3", "--sessions-per-device", "2")
    for name in ("dmlab", "baseline"):
        (line,) = lines_starting(out, name + " ")
        assert "sessions/s" in line and "exchanges/s" in line and "12 exchanges" in line
    (ratio,) = lines_starting(out, "ratio ")
    words = ratio.split()
    assert float(words[words.index("median") + 1]) <= float(words[words.index("max") + 1])
    assert len(lines_starting(out, "round ")) == 5
    (cpu,) = lines_starting(out, "cpu per session ")
    # Each side's CPU per session, the server thread's part of it, and the app's part of that.
    totals = re.search(r"dmlab (\d+) us   baseline (\d+) us", cpu)
    served = re.search(r"server thread: dmlab (\d+) us, baseline (\d+) us", cpu)
    in_app = re.search(r"in the app: dmlab (\d+) us, baseline (\d+) us", cpu)
    assert totals and served and in_app, cpu
    for total, server, app in zip(totals.groups(), served.groups(), in_app.groups(), strict=True):
        assert 0 < int(app) < int(server) < int(total)
    for line in lines_starting(out, "round "):
        assert re.search(r"in the app \d+ / \d+\)", line), line


def test_sessions_app_only_prints_each_apps_cpu_per_session() -> None:
    """--app-only replays a real session's captured requests into both apps: a replay that
    dmlab refused (a missing header, a stale location) would stop the script."""
    out = run("sessions.py", "--app-only", "--devices", "2", "--sessions-per-device", "3")
    rounds = lines_starting(out, "round ")
    assert len(rounds) == 5 and all("dmlab" in r and "baseline" in r for r in rounds)
    (summary,) = lines_starting(out, "the apps alone")
    assert "rounds of 6 sessions" in summary and "dmlab's own code" in summary


def test_fleet_prints_wall_time_and_memory() -> None:
    out = run("fleet.py", "--devices", "5", "7")
    lines = lines_starting(out, "devices ")
    assert [line.split()[1] for line in lines] == ["5", "7"]
    for line in lines:
        assert "wall" in line and "sessions/s" in line and "KiB" in line and "peak RSS" in line


@pytest.mark.parametrize("store", ["memory", "sqlite", "postgresql"])
def test_growth_prints_times_and_ratios(store: str, request: pytest.FixtureRequest) -> None:
    database = request.getfixturevalue("postgres_server") if store == "postgresql" else store
    out = run(
        "growth.py",
        *("--sizes", "20", "200", "--devices", "10", "--samples", "4", "--rounds", "2"),
        *("--database", database),
    )
    assert len(lines_starting(out, f"{store:<10} round ")) == 4
    ratios = lines_starting(out, f"{store:<10} ratio ")
    assert len(ratios) == 6 and all("target <= 1.2" in line for line in ratios)


def test_longpoll_prints_waiting_and_polling_cost_and_the_ratio() -> None:
    out = run("longpoll.py", "--polls", "5", "--seconds", "0.2")
    for prefix in ("idle ", "waiting 5 ", "polling 5 "):
        (line,) = lines_starting(out, prefix)
        assert "% of a core" in line
    (ratio,) = lines_starting(out, "ratio waiting/polling ")
    float(ratio.split()[-1])
    (woken,) = lines_starting(out, "woken 5 polls")
    assert "all answered 200" in woken


def test_abuse_prints_every_ratio() -> None:
    out = run(
        "abuse.py",
        *("--devices", "5", "--samples", "3", "--flood", "20", "--not-found", "30"),
        *("--slowloris", "3", "--header-timeout", "1", "--queue", "20"),
        *("--crashes", "2", "--per-crash", "2", "--active-ttl", "0.5"),
    )
    for name in ("oracle", "flood", "restart", "404s", "slowloris", "queue", "cap"):
        (line,) = lines_starting(out, name + " ")
        assert "ratio" in line
    listed, resumed, expired = lines_starting(out, "abandoned ")
    assert "4 acknowledged active sessions after 2 SIGKILLs" in listed and "listed" in listed
    assert "POST /sessions/next answered" in resumed
    assert "read as expired" in expired
