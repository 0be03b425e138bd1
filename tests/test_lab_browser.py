"""The learner's real path: the course's JupyterLab in a real (headless) browser.

JupyterLab starts with `make lab`'s settings (course_lib.tooling.instructor.lab_env/lab_argv:
the shipped `jupyter/` settings folder, state in the working folder) on a test port. Headless
Chromium, driven by Playwright, opens each lesson (a copy with the quick parameters), clicks
Run > Run All Cells, waits until every cell has run and asserts that no cell shows an error
output. An unsolved exercise's "not yet" result is an HTML output, not an error. A screenshot
of each lesson goes to build/lab-<lesson>.png.

Lessons 02 and 04 run by default; COURSE_BROWSER_ALL=1 runs every lesson. The test depends
only on "every cell ran, none shows an error", never on the lessons' contents.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from course_lib import settings
from course_lib.services import free_port, http_status
from course_lib.services.base import stop_group
from course_lib.tooling import images, instructor, runner

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"


def _chromium() -> str | None:
    try:
        return images.find_chromium()  # COURSE_CHROMIUM, else Debian's
    except images.ImageError:
        return None


CHROMIUM = _chromium()
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
DEFAULT_LESSONS = ("02", "04")
LESSON_TIMEOUT_S = 900
ALL = settings.read("browser_all")
LESSONS = [nb.name for nb in runner.course_notebooks() if ALL or nb.name[:2] in DEFAULT_LESSONS]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make system-deps)")

# The open notebook as JupyterLab holds it (the app is exposed to the page for this test only).
NOTEBOOK_STATE_JS = """() => {
  const app = window.jupyterapp;
  const widget = app && app.shell.currentWidget;
  if (!widget || !widget.context || !widget.sessionContext || !widget.context.isReady) return null;
  const session = widget.sessionContext.session;
  const kernel = session && session.kernel;
  const running = (widget.content && widget.content.widgets || [])
    .filter(cell => cell.model && cell.model.executionState === 'running').length;
  return {kernel: kernel ? kernel.status : 'none', running, notebook: widget.context.model.toJSON()};
}"""


@pytest.fixture(scope="module")
def lab(prefect_server):
    """The course's JupyterLab on a test port, serving copies of the lessons (quick parameters)."""
    import papermill

    root = BUILD / "lab-browser"
    shutil.rmtree(root, ignore_errors=True)
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(ROOT / "imgs", root / "imgs")  # the lessons' pictures are ../imgs/...
    for name in LESSONS:
        notebook = runner.NOTEBOOK_DIR / name
        papermill.execute_notebook(str(notebook), str(root / "notebooks" / name), prepare_only=True,
                                   parameters=runner.parameters_for(notebook, quick=True), progress_bar=False)
    port, token = free_port(), uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != "COURSE_PREFECT_PORT"}
    env.update(prefect_server.env())  # the lessons' kernels reuse the session's server
    env["COURSE_LEARNER_PORT"] = str(free_port())  # never 4200
    argv = instructor.lab_argv("--no-browser", f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                               "--LabApp.expose_app_in_browser=True", root=root)
    log = open(BUILD / "lab-browser.log", "wb")
    process = subprocess.Popen(argv, env=instructor.lab_env(env), cwd=root, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while http_status(f"{url}/api/status?token={token}") != 200:
            assert process.poll() is None, f"JupyterLab exited; see {BUILD / 'lab-browser.log'}"
            assert time.monotonic() < deadline, f"JupyterLab did not answer in 120 s; see {BUILD / 'lab-browser.log'}"
            time.sleep(0.5)
        yield url, token
    finally:
        stop_group(process, grace=30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_the_course_settings_switch_off_news_and_update_checks(lab):
    url, token = lab
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    page = opener.open(f"{url}/lab?token={token}", timeout=30).read().decode()
    config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S).group(1))
    assert config["news"]["disabled"] is True
    with opener.open(f"{url}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}",
                     timeout=30) as response:
        settings = json.loads(response.read())
    defaults = {key: spec.get("default") for key, spec in settings["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False
    with opener.open(f"{url}/lab/api/update?token={token}", timeout=30) as response:
        assert json.loads(response.read())["notification"] is None  # no "new version" prompt


def _code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code" and "".join(cell["source"]).strip()]


def _errors(notebook: dict) -> list[str]:
    found = []
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                source = "".join(cell["source"]).strip().splitlines()[:1]
                found.append(f"cell {index} ({source[0] if source else ''}): {output['ename']}: {output['evalue']}")
    return found


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_in_jupyterlab_without_error(lab, browser, lesson):
    url, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{url}/lab/tree/notebooks/{lesson}?reset&token={token}", wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_function(f"(() => {{ const s = ({NOTEBOOK_STATE_JS})(); return s && s.kernel === 'idle'; }})()",
                               timeout=180_000, polling=500)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        try:
            page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click(timeout=30_000)
        except Exception:
            page.screenshot(path=str(BUILD / f"lab-{Path(lesson).stem}-menu.png"))
            (BUILD / f"lab-{Path(lesson).stem}-menu.html").write_text(page.content())
            raise

        deadline, idle_polls, state = time.monotonic() + LESSON_TIMEOUT_S, 0, None
        while time.monotonic() < deadline:
            time.sleep(2)
            state = page.evaluate(NOTEBOOK_STATE_JS)
            cells = _code_cells(state["notebook"])
            done = all(cell.get("execution_count") for cell in cells)
            stopped = bool(_errors(state["notebook"]))  # Run All stops at an error
            idle_polls = idle_polls + 1 if state["kernel"] == "idle" and not state["running"] else 0
            if idle_polls >= 2 and (done or stopped):
                break
        page.screenshot(path=str(BUILD / f"lab-{Path(lesson).stem}.png"))
        assert state is not None, "the notebook never opened"
        notebook = state["notebook"]
        assert not _errors(notebook), f"{lesson}: error output(s) in JupyterLab:\n" + "\n".join(_errors(notebook))
        not_run = [index for index, cell in enumerate(notebook["cells"]) if cell in _code_cells(notebook)
                   and not cell.get("execution_count")]
        assert not not_run, f"{lesson}: cells {not_run} did not run within {LESSON_TIMEOUT_S} s"
        assert page.get_by_text("official Jupyter news").count() == 0  # no news pop-up
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    finally:
        page.close()
