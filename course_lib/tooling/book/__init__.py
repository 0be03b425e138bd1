"""The course as a website: ``make book``.

The executed lessons of ``make course`` (``build/executed/``) become a static site in
``build/book/``, never re-executed. The tool stages a copy of them in ``build/book-src/``: the
cells the site hides are removed, each solution becomes a dropdown collapsed until clicked, links
to the run's local Prefect server become plain text, and each page opens with what ran (when,
with which data, which Prefect). It writes the landing page and the "Run it yourself" page from
the lessons and the README, then runs Sphinx with myst-nb and sphinx-book-theme (Jupyter Book
1's stack), all offline.

    python -m course_lib.tooling.book fresh    # exit 1, saying why, when build/executed/ is missing or stale
    python -m course_lib.tooling.book build [--executed DIR] [--out DIR] [--staging DIR]

What a page hides (cell tags): ``injected`` (the headless runner's exercise machinery: the
expect-checks and the solved run) and ``plumbing`` (bookkeeping asserts, cleanup). The
``parameters`` cell and papermill's ``injected-parameters`` stay: they show the lesson's knobs
and the values the run used.

:func:`stamp_run` is called by the runner after each lesson: it records in the executed notebook
what its page says about the run that papermill does not (Prefect and Python versions, the TLC
files in the data folder, ``COURSE_OFFLINE``, the commit).
"""

from __future__ import annotations

import argparse
import html
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from course_lib import paths

__all__ = ["BookError", "Lesson", "stamp_run", "stale_reasons", "stage", "build", "site_pages", "main",
           "solution_dropdown", "plain_local_links", "data_used"]

REPO_ROOT = paths.REPO_ROOT
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "build" / "executed"
STAGING_DIR = REPO_ROOT / "build" / "book-src"
OUT_DIR = REPO_ROOT / "build" / "book"
TEMPLATE_DIR = Path(__file__).resolve().parent

HIDDEN_TAGS = {"injected", "plumbing"}
RUN_KEY = "course_run"  # the notebook metadata key stamp_run writes
# README sections on the "Run it yourself" page, in this order (headings as the README spells them).
README_SECTIONS = ["Teaching this course live", "Which data, which S3, which Prefect", "When something goes wrong"]
LOCAL_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost|0\.0\.0\.0)(?::\d+)?(?:/[^\s\"'<>()\]`]*)?")
LOCAL_LINK_TITLE = ("This address pointed at the local Prefect server of the run that made this page; "
                    "that server stopped when the run ended.")


class BookError(RuntimeError):
    """The site cannot be built as asked; the message says what to do."""


# -- recording what ran ---------------------------------------------------------------------------

def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def stamp_run(executed: Path) -> None:
    """Record in an executed lesson what its page says about the run: the Prefect and Python
    versions of the environment that ran it, the TLC files the data folder held, whether
    ``COURSE_OFFLINE`` was set, and the commit (marked when the working tree had changes)."""
    if not executed.is_file():  # papermill failed before writing anything
        return
    notebook = json.loads(executed.read_text(encoding="utf-8"))
    commit = _git("rev-parse", "HEAD")
    changed = bool(_git("status", "--porcelain", "--", "notebooks", "course_lib"))
    data_folder = paths.data_dir()
    notebook["metadata"][RUN_KEY] = {
        "prefect": importlib.metadata.version("prefect"),
        "python": platform.python_version(),
        "data_folder_files": sorted(path.name for path in data_folder.glob("*_tripdata_*.parquet")),
        "offline": os.environ.get("COURSE_OFFLINE", "").strip() == "1",
        "commit": commit,
        "uncommitted_changes": changed,
    }
    executed.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# -- is build/executed/ there and up to date? ----------------------------------------------------

def lesson_sources(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb"))


def stale_reasons(executed_dir: Path = EXECUTED_DIR, notebook_dir: Path = NOTEBOOK_DIR) -> list[str]:
    """Why the executed lessons cannot make the site (empty when they can)."""
    sources = lesson_sources(notebook_dir)
    if not executed_dir.is_dir():
        return [f"{_rel(executed_dir)} does not exist"]
    reasons = []
    for source in sources:
        executed = executed_dir / source.name
        if not executed.is_file():
            reasons.append(f"{source.name} was never executed")
        elif executed.stat().st_mtime < source.stat().st_mtime:
            reasons.append(f"{source.name} changed after it was executed")
    return reasons


# -- one lesson page --------------------------------------------------------------------------------

def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


_DETAILS = re.compile(r"^\s*<details>\s*<summary>(?P<summary>.*?)</summary>(?P<body>.*?)</details>\s*$", re.S)


def solution_dropdown(markdown: str) -> str:
    """A solution cell's ``<details>`` block as a sphinx-design dropdown (collapsed until clicked).

    MyST passes the two tags through as raw HTML blocks around the highlighted fence, which a
    browser folds too, but unstyled and only as long as each tag stays a block of its own; the
    dropdown is the same native ``<details>``, parsed as one element and styled by the theme.
    """
    found = _DETAILS.match(markdown)
    if not found:
        raise BookError("a solution cell holds <details><summary>...</summary> ... </details>, found:\n"
                        + markdown[:300])
    summary = re.sub(r"<[^>]+>", "", found["summary"]).strip() or "Solution"
    # The solution is a notebook cell's code: IPython syntax (`!prefect ...`, top-level `await`).
    body = re.sub(r"^```python\s*$", "```ipython3", found["body"].strip(), flags=re.M)
    return f"::::{{dropdown}} {summary}\n:class-container: course-solution\n\n{body}\n::::\n"


_MD_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<url>[^)\s]+)\)")
_MD_AUTOLINK = re.compile(r"<(?P<url>" + LOCAL_URL.pattern + r")>")
_HTML_LINK = re.compile(r"<a\b[^>]*\bhref=\"(?P<url>[^\"]*)\"[^>]*>(?P<inner>.*?)</a>", re.S | re.I)


def plain_local_links(text: str, markup: str) -> str:
    """Links to the run's local servers as plain text (``markup``: ``"markdown"`` or ``"html"``)."""
    if markup == "html":
        def unlink(found: re.Match) -> str:
            url = html.unescape(found["url"])
            if not LOCAL_URL.fullmatch(url):
                return found[0]
            label = found["inner"] if html.unescape(re.sub(r"<[^>]+>", "", found["inner"])).strip() == url \
                else f"{found['inner']} ({html.escape(url)})"
            return f'<span class="course-local-link" title="{html.escape(LOCAL_LINK_TITLE)}">{label}</span>'

        return _HTML_LINK.sub(unlink, text)

    def unlink_md(found: re.Match) -> str:
        url, label = found["url"], found["text"]
        if not LOCAL_URL.fullmatch(url):
            return found[0]
        return f"`{url}`" if label.strip() in ("", url) else f"{label} (`{url}`)"
    return _MD_AUTOLINK.sub(lambda found: f"`{found['url']}`", _MD_LINK.sub(unlink_md, text))


def _output_texts(cell: dict) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            texts.append(_text(output.get("text")))
        for mime in ("text/plain", "text/html", "text/markdown"):
            if mime in output.get("data", {}):
                texts.append(_text(output["data"][mime]))
    return texts


# What course_lib.ml.data prints for each month it serves (see data._announce).
_LOADED = re.compile(r"(?P<month>\d{4}-\d{2}) \w+: (?:(?P<synthetic>synthetic), [\d,]+ rows \((?P<why>[^)\n]*)\)"
                     r"|(?P<file>real TLC file)|(?P<download>downloaded) )")


def _synthetic_reason(why: str) -> str:
    if "requested" in why:
        return "requested with source='synthetic'"
    if "COURSE_OFFLINE" in why:
        return "COURSE_OFFLINE=1 skipped the download"
    if "saved as" in why:
        return "saved to a parquet file, then read back"
    if "download failed" in why:
        return "the download of the real files failed"
    return why


def data_used(cells: list[dict], notebook_metadata: dict) -> str:
    """Which data a lesson ran with, in words: from the lines the lesson printed when it loaded a
    month, else from the run's setting (its ``source`` parameter and the data folder's files)."""
    synthetic: dict[str, set[str]] = {}
    real, downloaded = set(), set()
    for cell in cells:
        for text in _output_texts(cell):
            for found in _LOADED.finditer(html.unescape(text)):
                if found["synthetic"]:
                    synthetic.setdefault(_synthetic_reason(found["why"]), set()).add(found["month"])
                elif found["file"]:
                    real.add(found["month"])
                else:
                    downloaded.add(found["month"])
    parts = []
    if real:
        parts.append(f"the real TLC files for {', '.join(sorted(real))}")
    if downloaded:
        parts.append(f"the real TLC files for {', '.join(sorted(downloaded))}, downloaded during the run")
    for reason, months in sorted(synthetic.items()):
        parts.append(f"synthetic twins of the TLC months {', '.join(sorted(months))} ({reason})")
    if parts:
        return "; ".join(parts)
    parameters = notebook_metadata.get("papermill", {}).get("parameters", {})
    run = notebook_metadata.get(RUN_KEY)
    if parameters.get("source") == "synthetic":
        return "synthetic months (requested with source='synthetic'); the notebook's own cells printed no month"
    if run is None:
        return "not recorded (the notebook's own cells printed no month)"
    files = run.get("data_folder_files") or []
    held = f"the data folder held {', '.join(files)}" if files else "the data folder held no TLC file"
    fallback = "synthetic, COURSE_OFFLINE=1" if run.get("offline") else "a download, else synthetic"
    return f"the notebook's own cells printed no month; {held} (for any other month: {fallback})"


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _when(papermill: dict) -> tuple[str, str]:
    """(start as 'YYYY-MM-DD at HH:MM UTC', duration) from papermill's metadata."""
    start, end = papermill.get("start_time"), papermill.get("end_time")
    if not start:
        return "an unrecorded time", "?"
    begun = datetime.fromisoformat(start).astimezone(timezone.utc)
    duration = _seconds((datetime.fromisoformat(end) - begun).total_seconds()) if end else "?"
    return begun.strftime("%Y-%m-%d at %H:%M UTC"), duration


@dataclass
class Lesson:
    """One executed lesson, as the site shows it."""
    name: str  # 02_tasks_and_flows
    title: str  # 02 · Tasks and flows
    exercises: int
    plan: str  # "about 40 minutes with the three exercises"
    ran_for: str
    ran_at: str
    prefect: str
    data: str
    failed: str = ""  # the error that stopped the run, if one did


def _title(cells: list[dict], name: str) -> str:
    for cell in cells:
        if cell["cell_type"] == "markdown":
            heading = re.search(r"^# (.+)$", _text(cell["source"]), re.M)
            if heading:
                return heading[1].strip()
    return name


def _plan(cells: list[dict]) -> str:
    opening = next((_text(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"), "")
    found = re.search(r"\*\*Time:\*\*.*?\bplan ([^.\n]+)", opening)
    return found[1].strip() if found else "—"


def _failure(notebook: dict) -> str:
    for index, cell in enumerate(notebook["cells"]):
        if "raises-exception" in _tags(cell):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {index} raised {output.get('ename')}: {output.get('evalue')}"
    return ""


def _what_ran(lesson: Lesson, notebook: dict, cells: list[dict], repo: dict) -> str:
    """The note under a lesson's title: when and how it ran, what its outputs can and cannot do."""
    metadata = notebook["metadata"]
    run = metadata.get(RUN_KEY) or {}
    parameters = metadata.get("papermill", {}).get("parameters") or {}
    how = ("headless by the course's runner (`make course`)" if not parameters else
           "headless by the course's runner with the parameters "
           + ", ".join(f"`{key}={value!r}`" for key, value in parameters.items()))
    python = f" and Python {run['python']}" if run.get("python") else ""
    commit = ""
    if run.get("commit"):
        commit = f", commit `{run['commit'][:10]}`" + (" with uncommitted changes" if run.get("uncommitted_changes") else "")
    lines = [
        ":::{admonition} What ran\n:class: course-run\n",
        f"Executed {how} on **{lesson.ran_at}** (the cells ran in {lesson.ran_for}) with "
        f"**Prefect {lesson.prefect}**{python}{commit}. Data: {lesson.data}. These are that run's outputs; "
        "the site shows them as recorded and runs nothing.\n",
    ]
    shown = "\n".join(_text(cell["source"]) + "\n".join(_output_texts(cell)) for cell in cells)
    local = sorted(LOCAL_URL.findall(shown), key=lambda url: "/runs/" not in url)  # a run's page, if any
    if local:
        example = re.sub(r"(/runs/[\w-]+/)[0-9a-f-]{8,}", r"\1…", local[0])
        lines.append(f"Addresses like `{example}` pointed at that run's local Prefect server (or another "
                     "course service), which stopped when the run ended: they are plain text here. Run the "
                     "lesson yourself ({doc}`../run-it-yourself`) to open your own runs in the UI.\n")
    if lesson.exercises:
        lines.append("Each exercise shows its check's answer on the untouched stub, as a learner first sees "
                     "it: ✗ and a hint. The solution is folded below it.\n")
    source = f"{{download}}`{lesson.name}.ipynb <../_learner/{lesson.name}.ipynb>` (as committed, no outputs)"
    if repo.get("url"):
        ref = run.get("commit") or repo.get("ref") or "main"
        source += f" · [on GitHub]({repo['url']}/blob/{ref}/notebooks/{lesson.name}.ipynb)"
    lines.append(f"The notebook: {source}.\n")
    lines.append(":::\n")
    if lesson.failed:
        lines.append(f":::{{warning}}\nThis run of the lesson stopped early: {lesson.failed}. The page shows "
                     "the outputs up to there.\n:::\n")
    return "\n".join(lines)


_NBVAL_MARKER = re.compile(r"\A\s*# NBVAL_[A-Z_]+[^\n]*\n")


def lesson_page(notebook: dict, name: str, repo: dict) -> tuple[Lesson, dict]:
    """The lesson as the site shows it, and its staged notebook."""
    cells = []
    for cell in notebook["cells"]:
        if _tags(cell) & HIDDEN_TAGS:
            continue
        cell = json.loads(json.dumps(cell))  # the executed notebook stays as it is
        if cell["cell_type"] == "code":  # an nbval marker on the first line is test plumbing, not the lesson
            cell["source"] = _NBVAL_MARKER.sub("", _text(cell["source"]), count=1)
        if cell["cell_type"] == "markdown":
            source = _text(cell["source"])
            if "solution" in _tags(cell):
                source = solution_dropdown(source)
            cell["source"] = plain_local_links(source, "markdown")
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                data["text/html"] = plain_local_links(_text(data["text/html"]), "html")
            if "text/markdown" in data:
                data["text/markdown"] = plain_local_links(_text(data["text/markdown"]), "markdown")
        cells.append(cell)
    metadata = notebook["metadata"]
    ran_at, ran_for = _when(metadata.get("papermill", {}))
    lesson = Lesson(
        name=name, title=_title(cells, name),
        exercises=sum("exercise" in _tags(cell) for cell in cells),
        plan=_plan(cells), ran_for=ran_for, ran_at=ran_at,
        prefect=(metadata.get(RUN_KEY) or {}).get("prefect", "(version not recorded)"),
        data=data_used(cells, metadata), failed=_failure(notebook),
    )
    note = _what_ran(lesson, notebook, cells, repo)
    opening = next((cell for cell in cells if cell["cell_type"] == "markdown"), None)
    heading = re.search(r"^# .+$\n?", opening["source"], re.M) if opening else None
    if heading:  # right under the page's title
        opening["source"] = opening["source"][:heading.end()] + "\n" + note + "\n" + opening["source"][heading.end():]
    else:
        cells.insert(0, {"cell_type": "markdown", "id": "course-run", "metadata": {}, "source": note})
    staged = {**notebook, "cells": cells}
    staged["metadata"] = {key: value for key, value in metadata.items() if key in ("kernelspec", "language_info")}
    return lesson, staged


# -- the landing page and the README's pages --------------------------------------------------------

def readme_section(readme: str, heading: str) -> str:
    """A README section (its heading at level 2, its subsections one level below it), up to the
    next heading of the same or a higher level."""
    found = re.search(rf"^(#+) {re.escape(heading)}\s*$", readme, re.M)
    if not found:
        raise BookError(f"README.md has no section '{heading}'; the site's 'Run it yourself' page shows it: "
                        "restore the heading or update README_SECTIONS in course_lib/tooling/book")
    level = len(found[1])
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(readme, found.end())
    body = readme[found.end(): end.start() if end else len(readme)].strip("\n")
    shift = 2 - level
    body = re.sub(r"^(#{2,6}) ", lambda m: "#" * max(2, len(m[1]) + shift) + " ", body, flags=re.M)
    return f"## {heading}\n\n{body}\n"


def _repo_links(markdown: str, repo: dict) -> str:
    """README links to files of the repository: on GitHub when its address is known, else plain text."""
    def relink(found: re.Match) -> str:
        url = found["url"]
        if re.match(r"^[a-z]+:|^#", url):
            return found[0]
        if repo.get("url"):
            return f"[{found['text']}]({repo['url']}/blob/{repo.get('ref') or 'main'}/{url.lstrip('./')})"
        return f"{found['text']} (`{url}`)"
    return _MD_LINK.sub(relink, markdown)


def _intro(readme: str) -> tuple[str, str]:
    title = re.search(r"^# (.+)$", readme, re.M)
    if not title:
        raise BookError("README.md has no '# Title' line")
    following = re.compile(r"^## ", re.M).search(readme, title.end())
    return title[1].strip(), readme[title.end(): following.start() if following else len(readme)].strip()


def landing_page(lessons: list[Lesson], readme: str, repo: dict, missing: list[str]) -> str:
    title, intro = _intro(readme)
    two_commands = readme_section(readme, "Two commands")
    rows = [f"| [{lesson.title}](notebooks/{lesson.name}.ipynb) | {lesson.exercises or '—'} | {lesson.plan} "
            f"| {lesson.ran_for} |" for lesson in lessons]
    prefects = sorted({lesson.prefect for lesson in lessons})
    dates = sorted(lesson.ran_at[:10] for lesson in lessons if lesson.ran_at[:1].isdigit()) or ["an unrecorded date"]
    clone = f"git clone {repo['url']}.git\ncd {repo['url'].rstrip('/').rsplit('/', 1)[-1]}\n" if repo.get("url") else ""
    toctree = "\n".join(f"notebooks/{lesson.name}" for lesson in lessons)
    parts = [
        f"# {title}\n",
        _repo_links(intro, repo) + "\n",
        "This site shows every lesson as it ran: its outputs, plots and pictures, each exercise with the "
        "check's answer to the untouched stub, and the solution one click away.\n",
        "## The lessons\n",
        "| lesson | exercises | plan | the cells ran in |\n|---|---|---|---|",
        "\n".join(rows) + "\n",
        ("*Plan* is the lesson's own estimate, reading and exercises included; *the cells ran in* is what the "
         "run behind this site measured, exercises done both ways.\n"),
    ]
    if missing:
        parts.append(f"This build has no page for {', '.join(missing)}: they were not in the executed lessons.\n")
    parts += [
        "## Run it live\n",
        "The lessons are Jupyter notebooks; run them in order in JupyterLab, a terminal beside it. On a laptop "
        "with Python 3.11 and `make`, no cloud account needed:\n",
        f"```bash\n{clone}make lab        # JupyterLab at notebooks/: open 00_setup.ipynb, go in order\n"
        "make services   # for instructors: Prefect server + UI, a worker, S3\n```\n",
        "Which data, which S3 and which Prefect a lesson uses, teaching it live, and what to do when something "
        "goes wrong: {doc}`run-it-yourself`.\n",
        _repo_links(two_commands.replace("## Two commands", "### The two commands", 1), repo),
        "## About this site\n",
        f"Built by `make book` from the lessons executed on {dates[0]}"
        + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")
        + f" with Prefect {', '.join(prefects)}; each page says when it ran and with which data. Nothing was "
          "re-executed to make it.\n",
        f"```{{toctree}}\n:hidden:\n:caption: Lessons\n\n{toctree}\n```\n",
        "```{toctree}\n:hidden:\n:caption: Reference\n\nrun-it-yourself\n```\n",
    ]
    return "\n".join(parts)


def run_it_yourself_page(readme: str, repo: dict) -> str:
    sections = "\n".join(readme_section(readme, heading) for heading in README_SECTIONS)
    return ("# Run it yourself\n\nFrom the course's README: what the lessons use by default and how to point them "
            "at the real thing, how to teach the course live, and what to do when something goes wrong.\n\n"
            + _repo_links(sections, repo))


# -- staging and building -----------------------------------------------------------------------

def repository() -> dict:
    """The repository's web address and ref for source links: ``COURSE_REPOSITORY_URL``, else the
    one GitHub Actions sets (``GITHUB_SERVER_URL``/``GITHUB_REPOSITORY``); none when unknown."""
    from course_lib import settings

    url = (settings.read("repository_url") or "").rstrip("/")
    if not url and os.environ.get("GITHUB_REPOSITORY"):
        url = f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{os.environ['GITHUB_REPOSITORY']}"
    return {"url": url, "ref": os.environ.get("GITHUB_SHA", "")}


def stage(executed_dir: Path, staging: Path, repo: dict | None = None) -> list[Lesson]:
    """Write the site's sources into ``staging`` (emptied first); return the lessons staged."""
    repo = repository() if repo is None else repo
    executed = []
    for path in sorted(executed_dir.glob("[0-9][0-9]_*.ipynb")):
        if (NOTEBOOK_DIR / path.name).is_file():
            executed.append(path)
        else:
            print(f"make book: skipped {_rel(path)}: notebooks/ has no {path.name} (a lesson renamed or removed)")
    if not executed:
        raise BookError(f"no executed lesson of notebooks/ in {_rel(executed_dir)}: run `make course` first")
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "notebooks").mkdir(parents=True)
    (staging / "_learner").mkdir()
    (staging / "_static").mkdir()
    lessons = []
    for path in executed:
        lesson, staged = lesson_page(json.loads(path.read_text(encoding="utf-8")), path.stem, repo)
        (staging / "notebooks" / path.name).write_text(json.dumps(staged, indent=1, ensure_ascii=False), encoding="utf-8")
        shutil.copy2(NOTEBOOK_DIR / path.name, staging / "_learner" / path.name)  # the notebook as committed
        lessons.append(lesson)
    shutil.copytree(REPO_ROOT / "imgs", staging / "imgs")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [source.stem for source in lesson_sources() if source.stem not in {lesson.name for lesson in lessons}]
    (staging / "index.md").write_text(landing_page(lessons, readme, repo, missing), encoding="utf-8")
    (staging / "run-it-yourself.md").write_text(run_it_yourself_page(readme, repo), encoding="utf-8")
    shutil.copy2(TEMPLATE_DIR / "conf.py", staging / "conf.py")
    for name in ("course.css", "course.js"):
        shutil.copy2(TEMPLATE_DIR / name, staging / "_static" / name)
    title, _intro_text = _intro(readme)
    (staging / "book.json").write_text(json.dumps({"title": title, "repository_url": repo.get("url", "")}, indent=1))
    return lessons


@dataclass
class BuildReport:
    out_dir: Path
    pages: int
    seconds: float
    lessons: list[Lesson]


def build(executed_dir: Path = EXECUTED_DIR, out_dir: Path = OUT_DIR, staging: Path = STAGING_DIR,
          repo: dict | None = None) -> BuildReport:
    """Stage the executed lessons and render them with Sphinx into ``out_dir`` (emptied first).
    Any Sphinx warning (a broken link, a missing picture) fails the build."""
    started = time.perf_counter()
    lessons = stage(executed_dir, staging, repo)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", "-d",
               str(staging / ".doctrees"), str(staging), str(out_dir)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BookError(f"Sphinx failed (exit {done.returncode}) building {_rel(staging)}:\n"
                        + (done.stderr or done.stdout).strip())
    (out_dir / ".buildinfo").unlink(missing_ok=True)
    (out_dir / ".nojekyll").touch()  # GitHub Pages would hide _static/ and _images/ from Jekyll otherwise
    pages = len(site_pages(out_dir))
    return BuildReport(out_dir, pages, time.perf_counter() - started, lessons)


def site_pages(out_dir: Path) -> list[Path]:
    """The site's HTML pages (not the theme's HTML fragments under _static/)."""
    return sorted(path for path in out_dir.rglob("*.html") if "_static" not in path.relative_to(out_dir).parts)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _size(path: Path) -> str:
    total = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return f"{total / 1e6:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.tooling.book", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fresh = commands.add_parser("fresh", help="exit 1, saying why, when the executed lessons are missing or stale")
    fresh.add_argument("--executed", type=Path, default=EXECUTED_DIR)
    make = commands.add_parser("build", help="render the executed lessons into a static site")
    make.add_argument("--executed", type=Path, default=EXECUTED_DIR)
    make.add_argument("--out", type=Path, default=OUT_DIR)
    make.add_argument("--staging", type=Path, default=STAGING_DIR)
    args = parser.parse_args(argv)
    if args.command == "fresh":
        reasons = stale_reasons(args.executed)
        if reasons:
            print(f"The site is built from the executed lessons in {_rel(args.executed)}, and they are not "
                  f"up to date: {'; '.join(reasons)}. `make course` executes them (about 10 minutes on 2 cores).",
                  flush=True)
            return 1
        return 0
    try:
        report = build(args.executed, args.out, args.staging)
    except BookError as error:
        print(f"make book: {error}", file=sys.stderr)
        return 1
    failed = [lesson.name for lesson in report.lessons if lesson.failed]
    print(f"{report.pages} pages ({len(report.lessons)} lessons), {_size(report.out_dir)}, in {report.seconds:.0f} s: "
          f"{_rel(report.out_dir / 'index.html')}")
    if failed:
        print(f"warning: {', '.join(failed)} stopped with an error when executed; their pages say so.")
    return 0
