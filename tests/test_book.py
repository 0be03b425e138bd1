"""The course as a website (`make book`), read in a real browser.

The module runs lessons 00 and 01 with the quick parameters through the course's runner (against
the session's Prefect server, ~20 s), builds the site from them with `python -m
course_lib.tooling.book build` into build/book-test/, and opens every page from disk (file://) in
headless Debian Chromium driven by Playwright: no console error, no request leaving the disk,
every internal link and picture resolves, each lesson shows its executed outputs and pictures,
a solution is folded until clicked, search finds "work pool" (from disk and from a static HTTP
server). Screenshots of the three kinds of page go to build/book-screens/.

The staging rules (hidden cells, solutions, local links, the "what ran" note, stale executed
lessons) are also tested directly on small notebooks, without a browser.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from course_lib.services import free_port, http_status
from course_lib.tooling import book
from course_lib.services.base import stop_group

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
WORK = BUILD / "book-test"
SCREENS = BUILD / "book-screens"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
LESSONS = ("00", "01")  # quick, and 01 has exercises, plots and pictures

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (make system-deps)")


# -- the staging rules, on small notebooks ----------------------------------------------------------

def _code(source, tags=(), outputs=()):
    return {"cell_type": "code", "execution_count": 1, "id": f"c{abs(hash(source)) % 10**8}",
            "metadata": {"tags": list(tags)}, "outputs": list(outputs), "source": source}


def _markdown(source, tags=()):
    return {"cell_type": "markdown", "id": f"m{abs(hash(source)) % 10**8}", "metadata": {"tags": list(tags)},
            "source": source}


def _html(text):
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": text, "text/plain": "x"}}


def _stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


SOLUTION = ("<details><summary>Solution (click to reveal)</summary>\n\n```python\n"
            "!prefect work-pool ls\nanswer = 42\n```\n\n</details>")


def _notebook(cells, **metadata):
    papermill = {"start_time": "2026-12-04T05:05:47.601757+00:00", "end_time": "2026-12-04T05:06:19.847406+00:00",
                 "parameters": {}}
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                         "language_info": {"name": "python", "pygments_lexer": "ipython3"},
                         "papermill": papermill, **metadata}}


LESSON = _notebook([
    _markdown("# 42 · A lesson\n\nAfter this lesson you can...\n\n**Time:** the cells run in 6 s; plan about 20 minutes."),
    _code("source = 'auto'", tags=["parameters"]),
    _code("# NBVAL_CHECK_OUTPUT\nprint(len(data))", outputs=[_stream("3\n")]),
    _code("data = load_month('2023-01')", outputs=[_stream(
        "2023-01 green: synthetic, 69,774 rows (offline fallback: download failed: cannot reach the server)\n")]),
    _code("run = my_flow()", outputs=[_html(
        'View at <a href="http://127.0.0.1:56835/runs/flow-run/4f32e94b-feb4-45c6-ad45-8bbdce8dc31c">the run</a> '
        'and <a href="https://docs.prefect.io/">the docs</a>')]),
    _code("answer = None  # TODO", tags=["exercise"]),
    _code("check.answer(answer)", tags=["check"], outputs=[_html('<div style="border-left:4px solid #cf222e">✗ not yet</div>')]),
    _code("_checks.expect_last(passed=False)", tags=["injected"]),
    _code("assert leftovers == []  # bookkeeping", tags=["plumbing"]),
    _markdown(SOLUTION, tags=["solution"]),
    _markdown("## Recap\n\nOpen [the run](http://localhost:4200/runs) or <http://127.0.0.1:4200/dashboard>."),
], course_run={"prefect": "3.9.1", "python": "3.11.7", "commit": "0123456789abcdef", "uncommitted_changes": False,
               "data_folder_files": [], "offline": False})


def test_a_lesson_page_hides_the_runners_cells_and_plumbing_and_keeps_the_rest():
    lesson, staged = book.lesson_page(LESSON, "42_a_lesson", {})
    sources = ["".join(cell["source"]) for cell in staged["cells"]]
    assert not any("expect_last" in source or "bookkeeping" in source for source in sources)
    assert "source = 'auto'" in sources  # the parameters cell stays: it shows the lesson's knobs
    assert "print(len(data))" in sources  # without its nbval marker
    assert "check.answer(answer)" in sources and "answer = None  # TODO" in sources
    assert len(staged["cells"]) == len(LESSON["cells"]) - 2
    assert staged["metadata"].keys() == {"kernelspec", "language_info"}  # no run bookkeeping in the page
    assert lesson.exercises == 1 and lesson.plan == "about 20 minutes" and lesson.ran_for == "32 s"
    assert lesson.title == "42 · A lesson" and lesson.prefect == "3.9.1" and not lesson.failed


def test_a_solution_becomes_a_dropdown_with_its_code_inside():
    dropdown = book.solution_dropdown(SOLUTION)
    assert dropdown.startswith("::::{dropdown} Solution (click to reveal)\n:class-container: course-solution\n")
    assert ":open:" not in dropdown  # folded until clicked
    assert "```ipython3\n!prefect work-pool ls\nanswer = 42\n```" in dropdown  # a notebook cell's syntax
    assert dropdown.rstrip().endswith("::::")
    with pytest.raises(book.BookError, match="<details>"):
        book.solution_dropdown("```python\nanswer = 42\n```")


def test_links_to_the_runs_local_servers_become_plain_text():
    html = book.plain_local_links(LESSON["cells"][4]["outputs"][0]["data"]["text/html"], "html")
    assert 'href="http://127.0.0.1' not in html
    assert ('<span class="course-local-link" title="This address pointed at the local Prefect server of the run '
            'that made this page; that server stopped when the run ended.">the run '
            '(http://127.0.0.1:56835/runs/flow-run/4f32e94b-feb4-45c6-ad45-8bbdce8dc31c)</span>') in html
    assert '<a href="https://docs.prefect.io/">the docs</a>' in html  # other links stay links
    markdown = book.plain_local_links(LESSON["cells"][10]["source"], "markdown")
    assert markdown == "## Recap\n\nOpen the run (`http://localhost:4200/runs`) or `http://127.0.0.1:4200/dashboard`."


def test_the_what_ran_note_says_when_which_data_and_which_prefect():
    _lesson, staged = book.lesson_page(LESSON, "42_a_lesson", {"url": "https://github.com/o/r", "ref": ""})
    opening = staged["cells"][0]["source"]
    assert opening.startswith("# 42 · A lesson\n\n:::{admonition} What ran")  # right under the title
    for said in ("2026-12-04 at 05:05 UTC", "the cells ran in 32 s", "**Prefect 3.9.1**", "commit `0123456789`",
                 "synthetic twins of the TLC months 2023-01 (the download of the real files failed)",
                 "Addresses like `http://127.0.0.1:56835/runs/flow-run/…`", "✗ and a hint",
                 "{download}`42_a_lesson.ipynb <../_learner/42_a_lesson.ipynb>`",
                 "[on GitHub](https://github.com/o/r/blob/0123456789abcdef/notebooks/42_a_lesson.ipynb)"):
        assert said in opening, said


def test_which_data_a_lesson_used():
    printed = [_code("x", outputs=[_stream("2023-01 green: real TLC file work/data/green_tripdata_2023-01.parquet "
                                           "(68,211 rows)\n2023-02 green: synthetic, 70,622 rows "
                                           "(requested with source='synthetic')\n")])]
    assert book.data_used(printed, {}) == ("the real TLC files for 2023-01; synthetic twins of the TLC months "
                                           "2023-02 (requested with source='synthetic')")
    saved = [_code("x", outputs=[_stream("2023-01 green: synthetic, 69,774 rows (a synthetic month saved as "
                                         "/tmp/tmpab/green_tripdata_2023-01.parquet)\n")])]
    assert book.data_used(saved, {}) == ("synthetic twins of the TLC months 2023-01 "
                                         "(saved to a parquet file, then read back)")
    silent = [_code("x")]
    run = {"data_folder_files": ["green_tripdata_2023-01.parquet"], "offline": True}
    assert book.data_used(silent, {"course_run": run}) == (
        "the notebook's own cells printed no month; the data folder held green_tripdata_2023-01.parquet "
        "(for any other month: synthetic, COURSE_OFFLINE=1)")
    assert "not recorded" in book.data_used(silent, {})


def test_a_failed_run_says_so_on_its_page():
    failed = json.loads(json.dumps(LESSON))
    failed["cells"][3]["outputs"].append({"output_type": "error", "ename": "DataError", "evalue": "month 13", "traceback": []})
    lesson, staged = book.lesson_page(failed, "42_a_lesson", {})
    assert lesson.failed == "cell 3 raised DataError: month 13"
    assert ":::{warning}\nThis run of the lesson stopped early: cell 3 raised DataError: month 13" in staged["cells"][0]["source"]


def test_stale_or_missing_executed_lessons_are_named(tmp_path):
    notebooks, executed = tmp_path / "notebooks", tmp_path / "executed"
    notebooks.mkdir()
    for name in ("00_a.ipynb", "01_b.ipynb", "02_c.ipynb"):
        (notebooks / name).write_text("{}")
    assert book.stale_reasons(executed, notebooks) == [f"{executed} does not exist"]
    executed.mkdir()
    (executed / "00_a.ipynb").write_text("{}")
    (executed / "01_b.ipynb").write_text("{}")
    os.utime(executed / "01_b.ipynb", (time.time() - 60, time.time() - 60))
    assert book.stale_reasons(executed, notebooks) == ["01_b.ipynb changed after it was executed",
                                                       "02_c.ipynb was never executed"]


def test_every_lesson_as_committed_renders_without_a_sphinx_warning(tmp_path):
    # The browser tests build from lessons 00-01 only; every lesson's text, solutions and code must
    # pass Sphinx's -W too (a solution's `!command \` once failed the highlighter, in lesson 07 only).
    report = book.build(executed_dir=book.NOTEBOOK_DIR, out_dir=tmp_path / "site", staging=tmp_path / "staging")
    assert len(report.lessons) == len(list(book.NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")))


def test_the_readme_sections_the_site_shows_are_there():
    readme = (ROOT / "README.md").read_text()
    page = book.run_it_yourself_page(readme, {})
    for heading in book.README_SECTIONS:
        assert f"\n## {heading}\n" in page
    assert "| taxi data |" in page  # the table of "which data, which S3, which Prefect"
    with pytest.raises(book.BookError, match="no section 'Troubleshooting'"):
        book.readme_section(readme, "Troubleshooting")


# -- the site, built from two executed lessons, in a browser --------------------------------------

@pytest.fixture(scope="module")
def site(prefect_server) -> Path:
    """build/book-test/book: the site of lessons 00 and 01, executed here with the quick parameters."""
    executed = WORK / "executed"
    env = {k: v for k, v in os.environ.items() if k != "COURSE_PREFECT_PORT"}
    env.update(prefect_server.env())  # the lessons reuse the session's server
    env["COURSE_LEARNER_PORT"] = str(free_port())  # never 4200
    run = subprocess.run([sys.executable, "-m", "course_lib.tooling.runner", "run", *LESSONS, "--quick",
                          "--out", str(executed)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"the lessons failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    built = subprocess.run([sys.executable, "-m", "course_lib.tooling.book", "build", "--executed", str(executed),
                            "--out", str(WORK / "book"), "--staging", str(WORK / "book-src")],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, f"make book failed:\n{built.stdout}\n{built.stderr}"
    assert re.search(r"^\d+ pages \(2 lessons\)", built.stdout, re.M), built.stdout
    return WORK / "book"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser, url: str, allowed_origin: str = ""):
    """A page at ``url`` that records console errors, failed requests, and requests that would leave
    the disk (or ``allowed_origin``), which are refused."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.problems = []

    def guard(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")) or (allowed_origin and url.startswith(allowed_origin)):
            route.continue_()
        else:
            page.problems.append(f"request leaving the site: {url}")
            route.abort()

    page.route("**/*", guard)
    page.on("console", lambda message: page.problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: page.problems.append(f"failed: {request.url} ({request.failure})"))
    page.goto(url, wait_until="load")
    return page


# Every picture loaded (pictures below the fold are lazy: load them now), and every link's target.
PAGE_FACTS_JS = """async () => {
  const images = Array.from(document.images);
  images.forEach(image => { image.loading = 'eager'; });
  await Promise.all(images.map(image => image.complete ? null :
    new Promise(done => { image.addEventListener('load', done); image.addEventListener('error', done);
                          setTimeout(done, 5000); })));
  return {
    images: images.map(image => ({src: image.currentSrc || image.src, width: image.naturalWidth,
                                  output: !!image.closest('.cell_output')})),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    outputs: document.querySelectorAll('.cell_output').length,
  };
}"""


@pytest.fixture(scope="module")
def visited(site, browser) -> dict[Path, dict]:
    """Every page of the site opened from disk: its problems, pictures and links."""
    facts = {}
    for path in book.site_pages(site):
        page = _open(browser, path.as_uri())
        try:
            page.wait_for_load_state("networkidle")
            facts[path] = {**page.evaluate(PAGE_FACTS_JS), "problems": page.problems,
                           "text": page.locator("article").first.inner_text() if page.locator("article").count() else ""}
        finally:
            page.close()
    return facts


def _ids(path: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


@needs_chromium
def test_every_page_loads_without_a_console_error_or_a_request_off_the_disk(site, visited):
    pages = {path.relative_to(site).as_posix() for path in visited}
    assert {"index.html", "search.html", "run-it-yourself.html", "notebooks/00_setup.html",
            "notebooks/01_ml_pipeline.html"} <= pages
    problems = {str(path.relative_to(site)): facts["problems"] for path, facts in visited.items() if facts["problems"]}
    assert not problems, problems


@needs_chromium
def test_every_internal_link_and_picture_resolves(site, visited):
    broken = []
    for path, facts in visited.items():
        for link in facts["links"]:
            parsed = urllib.parse.urlsplit(link)
            if parsed.scheme in ("http", "https"):
                assert not book.LOCAL_URL.match(link), f"{path.name} links to a server that no longer runs: {link}"
                continue
            if parsed.scheme != "file":
                continue
            target = Path(urllib.parse.unquote(parsed.path))
            if not target.is_file():
                broken.append(f"{path.name}: {link}")
            elif parsed.fragment and target.suffix == ".html" and parsed.fragment not in _ids(target):
                broken.append(f"{path.name}: {link} (no such anchor)")
        broken += [f"{path.name}: picture {image['src']}" for image in facts["images"] if not image["width"]]
    assert not broken, broken
    assert any(link.endswith("/01_ml_pipeline.ipynb")  # the page links to its notebook
               for link in visited[site / "notebooks" / "01_ml_pipeline.html"]["links"])


def _shown_cells(executed: Path) -> list[dict]:
    notebook = json.loads(executed.read_text())
    return [cell for cell in notebook["cells"] if not set(cell["metadata"].get("tags", [])) & book.HIDDEN_TAGS]


def _lesson_pictures(executed: Path) -> tuple[set[str], int]:
    """The pictures a lesson's text shows (file names) and how many pictures its visible cells output."""
    shown = _shown_cells(executed)
    pictures = {Path(name).name for cell in shown if cell["cell_type"] == "markdown"
                for name in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", "".join(cell["source"]))}
    plots = sum("image/png" in output.get("data", {}) for cell in shown for output in cell.get("outputs", []))
    return pictures, plots


def _printed_lines(executed: Path) -> list[str]:
    """The lines the lesson's visible cells printed, as the run recorded them."""
    return [line.strip() for cell in _shown_cells(executed) for output in cell.get("outputs", [])
            if output["output_type"] == "stream" for line in "".join(output["text"]).splitlines() if line.strip()]


@needs_chromium
@pytest.mark.parametrize("lesson", ["00_setup", "01_ml_pipeline"])
def test_each_lesson_page_shows_its_executed_outputs_and_pictures(site, visited, lesson):
    facts = visited[site / "notebooks" / f"{lesson}.html"]
    pictures, plots = _lesson_pictures(WORK / "executed" / f"{lesson}.ipynb")
    loaded = [image for image in facts["images"] if image["width"]]
    assert pictures <= {Path(urllib.parse.urlsplit(image["src"]).path).name for image in loaded}
    assert sum(image["output"] for image in loaded) == plots
    printed = _printed_lines(WORK / "executed" / f"{lesson}.ipynb")
    assert facts["outputs"] >= 1 and printed, f"{lesson}: no executed output"
    assert printed[0] in facts["text"] and printed[-1] in facts["text"]  # the run's outputs, on the page
    assert "expect_last" not in facts["text"]  # the runner's cells are hidden
    assert f"Prefect {importlib.metadata.version('prefect')}" in facts["text"]
    assert "synthetic" in facts["text"] and "What ran" in facts["text"]
    if lesson == "01_ml_pipeline":
        assert plots >= 1, "lesson 01 plots its data"


@needs_chromium
def test_an_exercise_shows_the_stubs_check_and_a_solution_folded_until_clicked(site, browser):
    SCREENS.mkdir(parents=True, exist_ok=True)
    page = _open(browser, (site / "notebooks" / "01_ml_pipeline.html").as_uri())
    try:
        page.screenshot(path=str(SCREENS / "lesson.png"))
        solution = page.locator("details.course-solution").first
        code = solution.locator("pre").first
        assert page.locator(".cell_output", has_text="✗ not yet").count() >= 1  # the check's answer to the stub
        assert solution.evaluate("details => details.open") is False
        assert not code.is_visible()
        solution.locator("summary").click()
        assert solution.evaluate("details => details.open") is True
        code.wait_for(state="visible", timeout=5000)
        solution.scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -450)")  # the exercise and its check above the solution
        page.screenshot(path=str(SCREENS / "exercise-solution-open.png"))
        assert not page.problems, page.problems
    finally:
        page.close()


@needs_chromium
def test_the_landing_page_has_the_lessons_the_commands_and_the_readme_tables(site, visited, browser):
    text = visited[site / "index.html"]["text"]
    assert "00 · Setup" in text and "01 · The ML pipeline" in text and "make course" in text and "make lab" in text
    assert re.search(r"01 · The ML pipeline before orchestration\s+2\s+about \d+ minutes.*?\s+\d+ s", text)
    reference = visited[site / "run-it-yourself.html"]["text"]
    for heading in book.README_SECTIONS:
        assert heading in reference
    lesson00 = site / "notebooks" / "00_setup.html"
    assert (site / "notebooks" / "01_ml_pipeline.html").as_uri() in visited[lesson00]["links"]  # next
    page = _open(browser, (site / "index.html").as_uri())
    try:
        page.screenshot(path=str(SCREENS / "landing.png"), full_page=True)
        page.locator("a.right-next").first.click()  # next/previous navigation
        page.wait_for_url("**/notebooks/00_setup.html")
        page.locator("a.right-next").first.click()
        page.wait_for_url("**/notebooks/01_ml_pipeline.html")
        page.locator("a.left-prev").first.click()
        page.wait_for_url("**/notebooks/00_setup.html")
    finally:
        page.close()


@needs_chromium
def test_search_finds_work_pool_from_disk_and_from_a_static_server(site, browser):
    def results(page) -> list[str]:
        page.wait_for_selector("#search-results ul.search li", timeout=30_000)
        return page.locator("#search-results ul.search li a").all_inner_texts()

    page = _open(browser, (site / "search.html").as_uri() + "?q=work+pool")
    try:
        found = results(page)
        assert any("Orchestrating ML pipelines" in title for title in found), found
        assert not page.problems, page.problems
    finally:
        page.close()

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=site,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        origin = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while http_status(f"{origin}/index.html") != 200:
            assert time.monotonic() < deadline and server.poll() is None, "the static server did not start"
            time.sleep(0.2)
        page = _open(browser, f"{origin}/search.html?q=work+pool", allowed_origin=origin)
        try:
            assert results(page)
            # Served over HTTP, each result also shows the words around the match.
            page.wait_for_selector("#search-results ul.search li p.context", timeout=30_000)
            assert "pool" in page.locator("#search-results p.context").first.inner_text().lower()
            assert not page.problems, page.problems
        finally:
            page.close()
    finally:
        stop_group(server, grace=5)


def test_the_site_needs_nothing_from_the_network(site):
    outside = []
    for path in site.rglob("*.html"):
        for found in re.finditer(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(https?:)?//[^"]*"', path.read_text()):
            outside.append(f"{path.relative_to(site)}: {found[0]}")
    assert not outside, outside
