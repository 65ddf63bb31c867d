"""A person in JupyterLab: the lab's notebook opened in a real JupyterLab (this
venv's ``jupyter lab``) and a real browser (Debian's headless Chromium, driven
by Playwright). The notebook is run from the front end, then the person clicks
the rendered "Fire alert" button of the dashboard; the session table and the
sequence diagram on the page must follow.

Everything JupyterLab reads or writes (config, data, runtime, settings,
workspaces, IPython) lives in temporary directories, news and update checks
are off, and the browser may only talk to the JupyterLab server: a request
anywhere else is aborted and fails the test. The server is stopped with
SIGTERM (it shuts its kernels down) and no process of its is left behind.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from helpers import CHROMIUM, CHROMIUM_ARGS, SHOTS

NOTEBOOK = "dashboard.ipynb"
DEV_ID = "IMEI:490154203237518"
#: ms, for each wait in the page (a whole run takes about 10 s idle). Generous: on a loaded
#: 2-core machine a kernel importing dmlab took over 20 s to be ready; a wait ends as soon
#: as its condition holds, so this only bounds a hang.
TIMEOUT = 90_000
NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
#: s: JupyterLab's first start in a fresh venv, on a loaded 2-core machine, took over 30 s
#: (it only bounds a hang: the wait ends as soon as /api/status answers).
START_DEADLINE = 180
#: JupyterLab's own unhandled rejection when a kernel restart (which this test asks for)
#: cancels the front end's pending subshell request (ipykernel 7); seen under load. It is
#: the front end's bookkeeping, not a failure of the notebook, so it alone is not counted.
RESTART_NOISE = "Canceled future for create_subshell_request"
#: s: for the kernels to be shut down and for SIGTERM to stop the server (a second idle;
#: under issue 16's loaded runs, longer). It only bounds a hang: each wait ends when done.
STOP_DEADLINE = 120
RUN_ALL_TIMEOUT = 300_000  # ms: one notebook's "Restart Kernel and Run All Cells" (~20 s idle)
#: Tables known to be cut, by notebook, each with who fixes it (issue 17 is reworking 07's
#: tables, issue 13 owns 09); every other check of this test still holds for them.
CUT_ELSEWHERE = {
    "07-firmware-update.ipynb": (
        "issue 17 (07's tables)",
        {"offset|bytes|field|value|source", "code|DM 1.2 meaning|lab maps to|REST|mapping"},
    ),
    "09-existing-services.ipynb": (
        "issue 13 (09's campaign table, 6 px too wide)",
        {"|service|operation|CR resources|round trips|bytes|outside the CR|result"},
    ),
}

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
expect = sync_api.expect

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no browser: {CHROMIUM} is missing (apt-get install chromium)",
)

#: The notebook the person opens: a lab, one device, one session queued
#: without a notification (so it waits for the device), and the dashboard.
CELLS = [
    "from dmlab import Lab\nfrom dmlab.widgets import dashboard",
    f'lab = Lab().start()\nphone = lab.add_device("{DEV_ID}", name="phone")',
    (
        "board = dashboard(lab)\n"
        'queued = lab.operator.request_session(phone.dev_id, job="inventory", notify=False)\n'
        "board.panel.device.value = phone.dev_id\n"
        'board.panel.alert_type.value = "ClientInitiatedMgmt"\n'
        "board"
    ),
]


def write_notebook(path: Path) -> Path:
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in CELLS],
        metadata={
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            }
        },
    )
    nbformat.write(notebook, path)
    return path


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _server_info(runtime: Path, pid: int) -> dict[str, Any] | None:
    info = runtime / f"jpserver-{pid}.json"
    try:
        return json.loads(info.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None  # not written yet, or half written


def _wait_until_up(process: subprocess.Popen[bytes], runtime: Path, log: Path) -> str:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"jupyter lab exited ({process.returncode}):\n{log.read_text()}")
        info = _server_info(runtime, process.pid)
        if info is not None:
            url = f"http://127.0.0.1:{info['port']}"
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=10) as response:
                    if response.status == 200:
                        return url
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"jupyter lab did not come up in {START_DEADLINE} s:\n{log.read_text()}")


def _shut_kernels_down(url: str) -> None:
    """Shut every kernel down through the REST API, one at a time, until none is left.

    Why not leave it to SIGTERM: jupyter_client's ``shutdown_kernel`` asks a kernel's
    ``ready`` future for its exception; while a kernel is still restarting (as the last
    "Restart Kernel and Run All" can leave one under load) that future is not done, the
    call raises ``InvalidStateError: Exception is not set``, and the server's shutdown dies
    half way and never exits (seen three times in issue 16's loaded runs). Here such a
    kernel answers 500 and is asked again once its restart is over."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    browser.open(f"{url}/lab", timeout=60).close()  # the _xsrf cookie a DELETE must echo
    xsrf = {"X-XSRFToken": next((c.value or "" for c in jar if c.name == "_xsrf"), "")}
    deadline = time.monotonic() + STOP_DEADLINE
    while time.monotonic() < deadline:
        with browser.open(f"{url}/api/kernels", timeout=30) as response:
            kernels = json.loads(response.read())
        if not kernels:
            return
        for kernel in kernels:
            delete = urllib.request.Request(
                f"{url}/api/kernels/{kernel['id']}", headers=xsrf, method="DELETE"
            )
            try:
                browser.open(delete, timeout=60).close()
            except OSError:  # HTTPError 500 while it restarts, 404 if it just went
                time.sleep(0.2)
    raise AssertionError(f"kernels still running after {STOP_DEADLINE} s: {kernels}")


def _stop(server: Server) -> None:
    """SIGTERM, as a person's Ctrl-C would, once the kernels are down: the server exits."""
    if server.url:  # it came up
        _shut_kernels_down(server.url)
    try:
        family = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        raise AssertionError(f"jupyter lab ignored SIGTERM:\n{server.log.read_text()}") from None
    _, alive = psutil.wait_procs(family, timeout=STOP_DEADLINE)
    for straggler in alive:
        straggler.kill()
    assert not alive, f"left behind by jupyter lab: {alive}"


def as_this_python(path: Path) -> None:
    """Stored notebooks name the Python that executed them (3.11). JupyterLab rewrites
    ``language_info`` from the kernel it starts, which marks a notebook modified when CI
    runs the suite on another Python: say this Python, as a teacher's own run would."""
    notebook = json.loads(path.read_text())
    notebook["metadata"].setdefault("language_info", {})["version"] = platform.python_version()
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("jupyterlab")
    root, runtime, settings = base / "root", base / "runtime", base / "settings"
    root.mkdir()
    write_notebook(root / NOTEBOOK)
    for notebook in NOTEBOOKS:  # the project's notebooks, as a teacher opens them
        shutil.copy(notebook, root / notebook.name)
        as_this_python(root / notebook.name)
    # No news, no update check: no toast asking, no request to the outside.
    notification = (
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    )
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Every cell in the page, laid out: the checks below measure tables and read diagrams
    # anywhere in a notebook, not only in the cells on screen.
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "IPYTHONDIR": str(base / "ipython"),
        "PYTHONWARNINGS": "ignore",  # the kernel and server's own deprecation noise is not ours
    }
    log = base / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--allow-root",
                "--no-browser",
                "--ip=127.0.0.1",
                "--port=0",
                "--ServerApp.port_retries=0",
                "--IdentityProvider.token=",
                "--ServerApp.password=",
                f"--ServerApp.root_dir={root}",
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.news_url=None",
                "--LabApp.extension_manager=readonly",
                "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
            ],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server("", process, log)
    try:
        server.url = _wait_until_up(process, runtime, log)
        yield server
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


#: The notebook is open, its kernel connected and idle, every code cell run.
ALL_RUN_AND_IDLE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
                 && panel.sessionContext.session.kernel;
  if (!kernel || kernel.status !== 'idle' || kernel.connectionStatus !== 'connected') return false;
  const cells = panel.content.widgets.filter(cell => cell.model.type === 'code');
  return cells.length > 0 && cells.every(cell => cell.model.executionCount !== null
                                               && !cell.node.classList.contains('jp-mod-pending'));
}"""

KERNEL_READY = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
                 && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
}"""


def test_fire_alert_in_jupyterlab_updates_table_and_diagram(
    jupyterlab: Server, browser: Any
) -> None:
    outside: list[str] = []
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    origin = jupyterlab.url

    def only_the_server(route: Any) -> None:
        if route.request.url.startswith((origin + "/", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    expect.set_options(timeout=TIMEOUT)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{origin}/lab/tree/{NOTEBOOK}?reset")
        page.wait_for_function(KERNEL_READY)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(ALL_RUN_AND_IDLE)

        output = page.locator(".jp-OutputArea-output .widget-vbox").first
        fire = output.locator("button.widget-button", has_text="Fire alert")
        rows = output.locator("table.dmlab-sessions tbody tr")
        arrows = output.locator("svg line[marker-end]")
        outcome = output.locator(".widget-html-content").filter(
            has_text=re.compile("no action yet|sent alert|refused")
        )  # the panel's last line
        # Before: the queued session waits for its device; the diagram shows only
        # the queuing (the operator's POST and its 202). Each child widget renders
        # on its own, so every check waits for the page to get there.
        expect(fire).to_be_visible()
        expect(outcome).to_have_text("no action yet")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(re.compile(r"inventory.*pending"))
        expect(rows.first).to_contain_text(DEV_ID)
        expect(arrows).to_have_count(2)

        fire.click()  # a real click: the front end sends it to the kernel over the comm

        expect(outcome).to_contain_text(re.compile(r"sent alert ClientInitiatedMgmt|refused"))
        expect(outcome).to_contain_text(
            "sent alert ClientInitiatedMgmt; the server answered with session", timeout=1_000
        )
        # After: the same row, now completed, and the alert's exchanges drawn below the queuing.
        expect(rows.first).to_contain_text(re.compile(r"inventory.*completed.*OK"))
        expect(rows).to_have_count(1)
        page.wait_for_function(
            """(selector) => document.querySelectorAll(selector).length > 2""",
            arg=".jp-OutputArea-output .widget-vbox svg line[marker-end]",
        )
        labels = output.locator("svg text").all_text_contents()
        requests = [
            label.split(" · ")[0] for label in labels if label.startswith(("POST ", "PUT "))
        ]
        assert requests[0].startswith("POST /devices/") and "POST /alert" in requests[1:], labels

        output.locator("svg").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "jupyterlab.png"))
    except Exception as exc:
        page.screenshot(path=str(SHOTS / "jupyterlab-failed.png"))
        exc.add_note(
            f"page: {SHOTS / 'jupyterlab-failed.png'}; jupyter lab's log:\n"
            + jupyterlab.log.read_text()[-4000:]
        )
        raise
    finally:
        context.close()
    assert not errors, errors
    assert not outside, f"the page reached beyond the server: {outside}"


# Every notebook, as a teacher runs it: "Restart Kernel and Run All Cells" --------------

#: Whether the open notebook's model differs from its file (JupyterLab's "modified" dot).
DIRTY = "() => window.jupyterapp.shell.currentWidget.context.model.dirty"

#: Tables wider than the output area that holds them: cut at its right edge.
CUT_TABLES = """() => {
  const cut = [];
  let measured = 0;
  for (const table of document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output table')) {
    const area = table.closest('.jp-OutputArea-output');
    const overflow = table.getBoundingClientRect().right - area.getBoundingClientRect().right;
    if (overflow > 1) {
      const head = [...table.querySelectorAll('th')].map(th => th.textContent.trim()).join('|');
      cut.push(`${Math.round(overflow)} px: |${head.slice(0, 120)}`);
    }
    measured += 1;
  }
  return [cut, measured];
}"""

#: Each DM Notification arrow of the lab's SVG diagrams, with the arrows drawn just before
#: and after it: [before kind, before label, after kind, after label], or null at an edge.
NOTIFICATIONS = """() => {
  const found = [];
  const kind = line => (line.getAttribute('marker-end') || '').replace(/^url\\(#head-|\\)$/g, '');
  for (const svg of document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) svg')) {
    if (!svg.querySelector('marker#head-notify')) continue;  // not one of the lab's diagrams
    const arrows = [...svg.querySelectorAll('line[marker-end]')];
    const labels = [...svg.querySelectorAll('text[fill]:not([fill="white"])')]
      .filter(t => t.getAttribute('text-anchor') === 'middle' && !t.closest('rect'))
      .map(t => t.textContent);
    const names = labels.slice(-arrows.length);
    arrows.forEach((line, i) => {
      if (kind(line) !== 'notify') return;
      const before = i > 0 ? [kind(arrows[i - 1]), names[i - 1]] : null;
      const after = i + 1 < arrows.length ? [kind(arrows[i + 1]), names[i + 1]] : null;
      found.push([before, after]);
    });
  }
  return found;
}"""


#: Set when the open notebook's kernel reports ``restarting``. Without it the wait for the run
#: could end before the restart began: a stored notebook already shows every execution count
#: and an idle kernel (seen once under load, on 3.13: the checks read the stored outputs, then
#: the restart cleared them).
WATCH_RESTART = """() => {
  window.dmlabRestarted = false;
  window.jupyterapp.shell.currentWidget.sessionContext.statusChanged.connect((_, status) => {
    if (status === 'restarting') window.dmlabRestarted = true;
  });
}"""


def _run_all_from_a_fresh_kernel(page: Any) -> None:
    page.evaluate(WATCH_RESTART)
    # Not awaited here: the command's promise waits for the dialog's answer.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-run-all'); }")
    page.locator(".jp-Dialog button.jp-mod-accept").click()  # "Restart Kernel?"
    page.wait_for_function(
        f"() => window.dmlabRestarted === true && ({ALL_RUN_AND_IDLE})()", timeout=RUN_ALL_TIMEOUT
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_restart_and_run_all_keeps_the_lab_usable(
    jupyterlab: Server, browser: Any, notebook: Path
) -> None:
    """Open a notebook, restart its kernel and run every cell, as a teacher would. Then:
    the file was not marked modified by opening it; no cell failed; every dashboard is
    live (a real click on Fire alert is answered by the running lab); every notification
    arrow sits inside the request that caused it; and no table is cut at 1280 px."""
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.on(
        "pageerror",
        lambda error: None if RESTART_NOISE in str(error) else errors.append(str(error)),
    )
    try:
        page.goto(f"{jupyterlab.url}/lab/tree/{notebook.name}?reset")
        page.wait_for_function(KERNEL_READY)
        assert page.evaluate(DIRTY) is False, "opening the notebook marked it modified"

        _run_all_from_a_fresh_kernel(page)

        outputs = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output")
        failed = [text for text in outputs.all_inner_texts() if "Traceback" in text]
        assert not failed, failed[0][:2000]

        boards = page.locator(".jp-OutputArea-output .dmlab-dashboard")
        for board in boards.all():
            board.scroll_into_view_if_needed()
            board.locator(".widget-dropdown", has_text="Alert").locator("select").select_option(
                "ClientInitiatedMgmt"
            )
            outcome = board.locator(".dmlab-outcome")
            expect(outcome).not_to_contain_text("sent alert ClientInitiatedMgmt")
            board.locator("button.widget-button", has_text="Fire alert").click()
            expect(outcome).to_contain_text(
                re.compile(r"sent alert ClientInitiatedMgmt; the server")
            )

        for before, after in page.evaluate(NOTIFICATIONS):
            if before is None:
                continue  # a figure without the request that caused it (the CR's parties only)
            assert before[0] == "request" and after and after[0] in ("return", "error"), (
                f"a notification outside its request: after {before}, before {after}"
            )

        cut, measured = page.evaluate(CUT_TABLES)
        _, known = CUT_ELSEWHERE.get(notebook.name, ("", set()))
        cut = [table for table in cut if not any(f"|{head}|" in table for head in known)]
        assert not cut, f"tables cut at the right edge of a 1280 px window: {cut}"
        seen = list(errors)  # stopping the kernel below may cancel the page's own requests
        assert (
            measured
            == page.locator(
                ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output table"
            ).count()
        )
    except Exception as exc:
        shot = SHOTS / f"jupyterlab-{notebook.stem}-failed.png"
        page.screenshot(path=str(shot), full_page=True)
        exc.add_note(f"page: {shot}; jupyter lab's log:\n" + jupyterlab.log.read_text()[-3000:])
        raise
    finally:
        page.evaluate(  # stop this notebook's kernel: the next notebook gets the cores
            "async () => { const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " try { if (panel && panel.sessionContext) await panel.sessionContext.shutdown(); }"
            " catch (error) { /* a kernel already gone: nothing left to stop */ } }"
        )
        context.close()
    assert not seen, seen
