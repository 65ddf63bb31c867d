"""The README's curl walkthrough, run as written: the fenced ``sh curl-session``
block goes to bash with the real ``curl`` against ``python -m dmlab serve``;
only ``$DMLAB`` and ``$CA`` come from the test (the README sets them with an
``export`` a reader runs first)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import START_TIMEOUT, Process

README = Path(__file__).resolve().parent.parent / "README.md"
ACCOUNT = "demo:demo-password"  # what the README's commands (and `make serve`) use


def readme_block(marker: str) -> str:
    blocks = re.findall(rf"^```{re.escape(marker)}\n(.*?)^```$", README.read_text(), re.M | re.S)
    assert len(blocks) == 1, f"README.md should hold exactly one ```{marker} block"
    return blocks[0]


def test_readme_block_is_found_and_uses_only_the_documented_variables() -> None:
    block = readme_block("sh curl-session")
    assert "curl " in block and '--cacert "$CA"' in block
    assert "https://" not in block, "the server's URL comes from $DMLAB"
    assert re.search(
        r"^```sh\nexport DMLAB=https://127\.0\.0\.1:8443 CA=\.dmlab-data/ca\.pem\n```$",
        README.read_text(),
        re.M,
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    data = tmp_path / ".dmlab-data"
    process = Process.start(
        "serve", "--port", "0", "--data", str(data), "--account", ACCOUNT, cwd=tmp_path
    )
    try:
        url = process.expect(r"dmlab serving (https://127\.0\.0\.1:\d+)", START_TIMEOUT)[1]
        yield url, data / "ca.pem"
    finally:
        code = process.terminate()
    assert code == 0, "\n".join(process.lines)


def test_client_initiated_session_with_curl_alone(served: tuple[str, Path], tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("no curl binary on this machine: the README's curl walkthrough cannot run")
    url, ca = served
    env = {**os.environ, "DMLAB": url, "CA": str(ca)}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block("sh curl-session")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    lines = [line.rstrip("\r") for line in result.stdout.splitlines()]

    queued, package = json.loads(lines[0]), json.loads(lines[1])
    assert queued["State"] == "pending" and queued["Job"] == "inventory"
    assert set(package) == {"SessionID", "CMD"}
    assert [c[0] for c in package["CMD"]] == ["GET", "GET", "END"]

    headers = lines[2 : lines.index("")]
    assert headers[0].startswith("HTTP/") and headers[0].split()[1] == "204", headers
    fields = {
        name.strip().lower(): value.strip()
        for name, _, value in (h.partition(":") for h in headers[1:])
    }
    assert fields["omadm-result"] == "OK", headers

    completed = json.loads(lines[-1])["Sessions"]
    assert len(completed) == 1
    assert completed[0]["Result"] == "OK"
    assert completed[0]["IDs"][0] == queued["SessionID"]
    assert package["SessionID"] in completed[0]["IDs"]
