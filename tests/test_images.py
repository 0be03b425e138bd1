"""The course's pictures (course_lib.tooling.images): the diagrams, and screenshots of the REAL Prefect UI.

The screenshot test runs the real command (``python -m course_lib.tooling.images --only screenshots``)
in a subprocess: a Prefect server with the UI, two real flow runs, a worker, the S3 blocks,
and headless Chromium. It needs Debian's ``chromium`` (``apt-get install -y chromium``) and
the ``playwright`` package; without them it FAILS with the install hint (never skips).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from course_lib.tooling import images, project

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 400_000          # pictures are committed: keep them small
MIN_STD = 12.0               # grey-level standard deviation: a blank or near-uniform page is far below
ERROR_WORDS = ("Something went wrong", "Page not found", "Not Found", "Failed to fetch", "Internal Server Error")


def check_png(path: Path, width: tuple[int, int], height: tuple[int, int]) -> np.ndarray:
    assert path.is_file(), f"{path} was not made"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    assert path.stat().st_size < MAX_BYTES, f"{path} is {path.stat().st_size:,} bytes (limit {MAX_BYTES:,})"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        w, h = image.size
        grey = np.asarray(image.convert("L"), dtype=float)
    assert width[0] <= w <= width[1] and height[0] <= h <= height[1], f"{path} is {w}x{h}"
    assert grey.std() > MIN_STD, f"{path} is nearly uniform (grey std {grey.std():.1f})"
    # not one colour over most of the picture either
    _, counts = np.unique(grey.astype(np.uint8), return_counts=True)
    assert counts.max() / grey.size < 0.9, f"{path}: {counts.max() / grey.size:.0%} of the pixels share one grey level"
    return grey


def test_diagrams_are_all_drawn_as_readable_pngs(tmp_path):
    made = images.build_diagrams(tmp_path)
    assert set(made) == set(images.DIAGRAMS)
    expected = {"ml_pipeline", "mlops_workflow", "prefect_terms_task_flow", "prefect_terms_deployment",
                "development_environment", "project_yaml", "aws_credentials_s3_bucket", "load_s3_bucket",
                "prefect_cloud"}
    assert expected <= set(made), "a picture named in the lesson notes is missing"
    for name, path in made.items():
        assert path == tmp_path / f"{name}.png" and " " not in path.name
        check_png(path, (1600, 1600), (900, 900))


def _diagram_text(name: str) -> str:
    fig = images.DIAGRAMS[name]()
    try:
        return "\n".join(text.get_text() for text in fig.axes[0].texts)
    finally:
        images._plt().close(fig)


def test_ml_pipeline_is_the_learners_orchestrate_as_the_course_leaves_it():
    """The lesson-01 picture names what the reference orchestrate.py (final stage) has: no other pipeline."""
    source = project.reference("orchestrate.py", project.LAST_LESSON)
    text = _diagram_text("ml_pipeline")
    parameters = re.findall(r"(\w+):", re.search(r"def main_flow\((.*?)\) ->", source, re.S)[1])
    assert f"main_flow({', '.join(parameters)})" in text
    functions = re.findall(r"^def (\w+)\(", source, re.M)
    assert functions == ["read_data", "add_features", "train_best_model", "publish_report", "main_flow"]
    for function in functions[:-1]:
        assert f"@task {function}" in text, function
    names = re.findall(r'@task\(name="([^"]+)"', source)
    assert len(names) == 4
    for name in names:
        assert f'"{name}"' in text, name
    retries, delays = re.search(r"retries=(\d+), retry_delay_seconds=(\[[^\]]*\])", source).groups()
    assert f"retries={retries}, retry_delay_seconds={delays}" in text
    keys = re.findall(r'key="([^"]+)"', source)
    assert images.REPORT_KEY in keys and len(keys) == 2
    for key in keys:
        assert key in text, key
    assert "persist_result=True" in source and "persist_result=True" in text
    assert "course_lib.pipeline" not in text


def test_no_diagram_says_the_course_tracks_with_mlflow():
    for name in images.DIAGRAMS:
        assert "mlflow" not in _diagram_text(name).lower(), name


def test_diagrams_are_reproducible(tmp_path):
    first = images.build_diagrams(tmp_path / "a", only=["project_yaml"])["project_yaml"]
    second = images.build_diagrams(tmp_path / "b", only=["project_yaml"])["project_yaml"]
    assert first.read_bytes() == second.read_bytes(), "the same code must give the same bytes (no timestamps)"


def test_missing_chromium_fails_at_once_with_the_install_hint(tmp_path):
    env = {**os.environ, "COURSE_CHROMIUM": str(tmp_path / "no-such-chromium")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "course_lib.tooling.images", "--only", "ui_blocks", "--out",
                           str(tmp_path / "out"), "--workdir", str(tmp_path / "work")],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apt-get install -y chromium" in proc.stderr
    assert not (tmp_path / "work").exists(), "nothing may start before the browser is known to exist"
    assert time.monotonic() - started < 60


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    """Run the real screenshot build once; return (out folder, its JSON report)."""
    try:
        images.find_chromium()
    except images.ImageError as exc:
        pytest.fail(f"{exc} (CI installs it in .ci/run)")
    base = tmp_path_factory.mktemp("images")
    out, report = base / "imgs", base / "report.json"
    proc = subprocess.run([sys.executable, "-m", "course_lib.tooling.images", "--only", "screenshots", "--out", str(out),
                           "--workdir", str(base / "work"), "--report", str(report)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    output = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"the screenshot build failed:\n{output}"
    data = json.loads(report.read_text())
    print(output)
    return out, data


def test_every_screenshot_is_a_real_picture(screenshots):
    out, data = screenshots
    assert set(data["shots"]) == set(images.SCREENSHOTS)
    for name in images.SCREENSHOTS:
        assert Path(data["shots"][name]["path"]) == out / f"{name}.png"
        check_png(out / f"{name}.png", (1200, 1600), (800, 1000))


def test_every_screenshot_shows_the_real_data(screenshots):
    _, data = screenshots
    scene, shots = data["scene"], data["shots"]
    assert len(scene["run_names"]) == 2
    assert scene["artifact_key"] == "duration-model-report"  # the reference project's key (lesson 06)
    wanted = {
        "ui_flow_runs": ["main-flow", *scene["run_names"], "Completed"],
        "ui_flow_run": [scene["run_names"][-1], "main-flow", "validation RMSE", "Finished in state Completed"],
        "ui_blocks": ["taxi-aws-creds", "taxi-s3-bucket", "AWS Credentials", "S3 Bucket"],
        "ui_work_pool": ["local-pool", scene["worker"], "Online"],
        "ui_artifact": ["duration-model-report", "RMSE report", "Validation RMSE (minutes)"],
    }
    for name, texts in wanted.items():
        seen = shots[name]["text"]
        for text in texts:
            assert text in seen, f"{name}: {text!r} was not visible on {shots[name]['url']}; saw:\n{seen[:1500]}"
        for word in ERROR_WORDS:
            assert word not in seen, f"{name}: the page shows {word!r}:\n{seen[:1500]}"
        assert "/v2/" in shots[name]["url"], "screenshots show the default (V2) UI"


def test_no_service_outlives_the_build(screenshots):
    _, data = screenshots
    assert len(data["service_pids"]) == 3  # server, moto_server, worker
    deadline = time.monotonic() + 10
    for pid in data["service_pids"]:
        while True:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, f"process group {pid} is still running after the build"
            time.sleep(0.2)


def test_a_failing_browser_stops_every_service(tmp_path):
    """Chromium that dies at launch, after the server, worker and S3 endpoint are up: all are stopped."""
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'fake chromium: refusing to start' >&2\nexit 3\n")
    fake.chmod(0o755)
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "course_lib.tooling.images", "--only", "ui_blocks", "--out",
                           str(tmp_path / "out"), "--workdir", str(tmp_path / "work"), "--report", str(report)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "COURSE_CHROMIUM": str(fake)})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "did not start under Playwright" in proc.stderr, proc.stderr[-3000:]
    data = json.loads(report.read_text())
    assert len(data["service_pids"]) == 3 and not data["shots"]
    for pid in data["service_pids"]:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            continue
        pytest.fail(f"process group {pid} outlived the failed build")
