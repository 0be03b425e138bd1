"""course_lib.settings: every COURSE_* variable declared once, validated where it is used, shown
by `python -m course_lib settings`, and the README's table generated from it."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from course_lib import paths, settings
from course_lib.ml import data
from course_lib.services import ServiceError, dask_cluster, receivers, server
from course_lib.tooling import images, instructor

ROOT = Path(__file__).resolve().parent.parent
# Python names that look like variables but are not read from the environment.
NOT_VARIABLES = {"COURSE_POOL"}  # instructor.COURSE_POOL, the course's work pool name


def _files_that_may_name_a_variable():
    for pattern in ("course_lib/**/*.py", "tests/**/*.py", "notebooks/*.ipynb", "*.py", "Makefile", "*.yaml",
                    "*.yml", ".ci/*", "README.md"):
        yield from ROOT.glob(pattern)


def test_every_course_variable_in_the_repository_is_declared_and_every_setting_is_used():
    named: dict[str, set[str]] = {}
    for path in _files_that_may_name_a_variable():
        # a whole name: not a family in prose such as COURSE_SMTP_*
        for name in re.findall(r"\bCOURSE_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")):
            named.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    declared = {settings.variable(field) for field in settings.FIELDS} | set(settings.INTERNAL)
    undeclared = {name: sorted(where) for name, where in named.items() if name not in declared | NOT_VARIABLES}
    assert not undeclared, f"declare these in course_lib/settings.py (a setting, or INTERNAL): {undeclared}"

    code = "\n".join(path.read_text(errors="replace") for path in _files_that_may_name_a_variable()
                     if path.name not in ("settings.py", "README.md", "test_settings.py"))
    unused = [field for field in settings.FIELDS
              if f'"{field}"' not in code and f".{field}" not in code and settings.variable(field) not in code]
    assert not unused, f"settings nothing reads: {unused}"


def test_the_readme_table_is_generated_from_the_settings():
    table = settings.readme_table((ROOT / "README.md").read_text())
    assert table is not None, "README.md lost its settings table markers"
    assert table == settings.markdown(), "run `.venv/bin/python -m course_lib settings --write-readme`"
    for field in settings.FIELDS:  # each row: variable, default, what is allowed, meaning
        assert (f"| `{settings.variable(field)}` | {settings.shown_default(field)} | {settings.allowed(field).text} |"
                in table)


def test_defaults_and_types():
    found = settings.get({})
    assert (found.learner_port, found.s3_port, found.prefect_port) == (4200, 9000, None)
    assert (found.download_timeout, found.offline, found.prefect_ui) == (30.0, False, True)
    assert found.source("learner_port") == "default"
    given = settings.get({"COURSE_LEARNER_PORT": " 4300 ", "COURSE_PREFECT_UI": "off", "COURSE_SMTP_TYPE": "ssl",
                          "COURSE_DOWNLOAD_TIMEOUT": "2.5", "COURSE_OFFLINE": "", "COURSE_WORKDIR": "~/w"})
    assert (given.learner_port, given.prefect_ui, given.smtp_type, given.download_timeout) == (4300, False, "SSL", 2.5)
    assert given.offline is False and given.source("offline") == "default"  # empty counts as unset
    assert given.workdir == Path("~/w").expanduser().resolve() and given.source("workdir") == "environment"
    with pytest.raises(AttributeError, match="no course setting 'learner_prot'"):
        given.learner_prot


def test_a_setting_is_validated_when_it_is_used_not_before():
    broken = {"COURSE_SMTP_PORT": "smtp"}
    assert settings.get(broken).learner_port == 4200  # the bad SMTP port does not stop the rest
    with pytest.raises(settings.SettingError, match="COURSE_SMTP_PORT='smtp'"):
        settings.get(broken).smtp_port


def _raises(error: type[Exception], variable: str, value: str, allowed: str, call) -> str:
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert f"{variable}={value!r} is not allowed" in message, message
    assert f"{variable} must be {allowed}" in message and "Fix: set it to e.g. " in message and "or unset it" in message
    assert isinstance(caught.value, settings.SettingError)
    return message


@pytest.fixture
def no_server(monkeypatch, tmp_path):
    """As in a fresh kernel: no PREFECT_API_URL to reuse, a private working folder."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setattr(server, "_SERVER", None)
    return monkeypatch


PORT = "a TCP port, a whole number 1-65535"
SECONDS = "a number of seconds > 0"
FLAG = "1 or 0 (also true/false, yes/no, on/off)"


@pytest.mark.parametrize("value", ["4200x", "0", "70000"])
def test_bad_prefect_ports_fail_before_a_server_starts(no_server, value):
    no_server.setenv("COURSE_PREFECT_PORT", value)
    _raises(ServiceError, "COURSE_PREFECT_PORT", value, PORT, lambda: server.PrefectServer(name="bad-port").start())
    no_server.delenv("COURSE_PREFECT_PORT")
    no_server.setenv("COURSE_LEARNER_PORT", value)
    _raises(ServiceError, "COURSE_LEARNER_PORT", value, PORT, server.start_server)
    assert not (Path(os.environ["COURSE_WORKDIR"]) / "prefect" / "bad-port" / "server.log").exists()


@pytest.mark.parametrize(("variable", "value", "allowed"), [
    ("COURSE_PREFECT_START_TIMEOUT", "soon", SECONDS), ("COURSE_PREFECT_START_TIMEOUT", "0", SECONDS),
    ("COURSE_PREFECT_START_TIMEOUT", "-3", SECONDS), ("COURSE_PREFECT_UI", "maybe", FLAG),
])
def test_bad_server_settings_fail_before_the_server_starts(no_server, variable, value, allowed):
    no_server.setenv(variable, value)
    _raises(ServiceError, variable, value, allowed, lambda: server.PrefectServer(name="bad-setting").start())
    assert not (Path(os.environ["COURSE_WORKDIR"]) / "prefect" / "bad-setting" / "server.log").exists()


@pytest.mark.parametrize("value", ["later", "0", "-1", "inf"])
def test_a_bad_dask_start_timeout_fails_before_the_cluster_starts(monkeypatch, value):
    monkeypatch.setenv("COURSE_DASK_START_TIMEOUT", value)
    _raises(ServiceError, "COURSE_DASK_START_TIMEOUT", value, SECONDS, dask_cluster.DaskCluster)


@pytest.mark.parametrize("value", ["localhost", "tcp://:8786", "http://host:8786", "tcp://host:port"])
def test_a_bad_dask_address_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("COURSE_DASK_ADDRESS", value)
    _raises(ServiceError, "COURSE_DASK_ADDRESS", value, "a scheduler address tcp://HOST:PORT",
            dask_cluster.dask_address_from_env)
    monkeypatch.setenv("COURSE_DASK_ADDRESS", " tcp://10.0.0.5:8786 ")
    assert dask_cluster.dask_address_from_env() == "tcp://10.0.0.5:8786"


def test_smtp_settings_follow_the_variables():
    environ = {"COURSE_SMTP_HOST": "smtp.example.org", "COURSE_SMTP_PORT": "2525", "COURSE_SMTP_TYPE": "insecure",
               "COURSE_SMTP_USER": "me"}
    found = receivers.smtp_settings(environ=environ)
    assert (found.host, found.port, found.smtp_type, found.username, found.password) == \
        ("smtp.example.org", 2525, "INSECURE", "me", None)
    assert receivers.smtp_settings(environ={**environ, "COURSE_SMTP_PORT": ""}).port == 25  # INSECURE's default


@pytest.mark.parametrize(("variable", "value", "allowed"), [
    ("COURSE_SMTP_PORT", "smtp", PORT), ("COURSE_SMTP_PORT", "0", PORT), ("COURSE_SMTP_PORT", "587.5", PORT),
    ("COURSE_SMTP_TYPE", "tls1", "SSL, STARTTLS or INSECURE"),
])
def test_bad_smtp_settings_are_refused_by_name(variable, value, allowed):
    environ = {"COURSE_SMTP_HOST": "smtp.example.org", variable: value}
    _raises(ServiceError, variable, value, allowed, lambda: receivers.smtp_settings(environ=environ))


@pytest.mark.parametrize("value", ["yes please", "2"])
def test_a_bad_offline_flag_is_a_data_error(monkeypatch, tmp_path, value):
    monkeypatch.setenv("COURSE_OFFLINE", value)
    _raises(data.DataError, "COURSE_OFFLINE", value, FLAG, lambda: data.load_taxi_month(2023, 1, data_dir=tmp_path))


def test_a_secret_is_never_shown_not_even_when_refused():
    shown, code = settings.report({"COURSE_SMTP_PASSWORD": "hunter2-canary", "COURSE_GIT_ACCESS_TOKEN": "ghp-canary"})
    assert code == 0 and "canary" not in shown and shown.count(settings.MASK) == 2
    assert "canary" not in repr(settings.get({"COURSE_SMTP_PASSWORD": "hunter2-canary"}).smtp_password)


def test_a_chromium_that_is_not_executable_is_refused_by_name(monkeypatch, tmp_path):
    not_a_program = tmp_path / "chromium"
    not_a_program.write_text("")
    monkeypatch.setenv("COURSE_CHROMIUM", str(not_a_program))
    with pytest.raises(images.ImageError, match=r"COURSE_CHROMIUM='.*chromium' is not allowed .*is not an executable "
                                                r"file.*apt-get install -y chromium"):
        images.find_chromium()


# ----------------------------------------------------------------- python -m course_lib settings


def _settings_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("COURSE_")}
    return subprocess.run([sys.executable, "-m", "course_lib", "settings", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_settings_command_prints_each_value_and_where_it_came_from():
    done = _settings_command({"COURSE_LEARNER_PORT": "4300", "COURSE_SMTP_PASSWORD": "hunter2-canary"})
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split(None, 1)[1] for line in done.stdout.splitlines()[2:]}
    assert set(rows) == {settings.variable(field) for field in settings.FIELDS}
    assert re.fullmatch(r"4300\s+environment", rows["COURSE_LEARNER_PORT"])
    assert re.fullmatch(r"9000\s+default", rows["COURSE_S3_PORT"])
    assert re.fullmatch(r"\(a free port\)\s+default", rows["COURSE_PREFECT_PORT"])
    assert re.fullmatch(r"\*{8}\s+environment", rows["COURSE_SMTP_PASSWORD"]) and "canary" not in done.stdout


def test_the_settings_command_names_every_bad_value_and_exits_2():
    done = _settings_command({"COURSE_SMTP_PORT": "abc", "COURSE_DOWNLOAD_TIMEOUT": "0"})
    assert done.returncode == 2
    assert re.search(r"COURSE_SMTP_PORT\s+abc\s+environment: NOT ALLOWED", done.stderr)
    assert "COURSE_SMTP_PORT='abc' is not allowed" in done.stderr
    assert "COURSE_DOWNLOAD_TIMEOUT='0' is not allowed" in done.stderr
    assert _settings_command({}, "--markdown").stdout.strip() == settings.markdown()


# ----------------------------------------------------------------- ports on the command line


@pytest.mark.parametrize("option", ["--port", "--s3-port"])
@pytest.mark.parametrize(("value", "says"), [("0", "0 is not a TCP port"), ("http", "'http' is not a port number"),
                                             ("65536", "65536 is not a TCP port")])
def test_make_services_refuses_a_port_that_is_not_one(capsys, option, value, says):
    with pytest.raises(SystemExit) as exited:
        instructor.main(["services", option, value])
    assert exited.value.code == 2
    assert f"argument {option}: {says}" in capsys.readouterr().err


@pytest.mark.parametrize("variable", ["COURSE_LEARNER_PORT", "COURSE_S3_PORT"])
def test_make_services_refuses_a_bad_port_setting_before_starting_anything(monkeypatch, tmp_path, capsys, variable):
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv(variable, "0")
    assert instructor.services() == 1
    assert f"error: {variable}='0' is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "work" / "prefect").exists()


# ----------------------------------------------------------------- a service of make services, reused


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_lesson_reuses_a_service_of_make_services_only_while_it_answers(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path / "work"))
    assert instructor.running_service("s3") is None  # no make services: the lesson starts its own
    endpoint = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{endpoint.server_address[1]}"
    try:
        instructor.services_record_path().write_text(json.dumps({"pid": os.getpid(), "services": {"s3": url}}))
        assert instructor.running_service("s3") == url
    finally:
        endpoint.shutdown()
        endpoint.server_close()
    assert instructor.running_service("s3") is None  # recorded, but gone: not reused


# ----------------------------------------------------------------- the working folder


def test_a_working_folder_that_cannot_be_created_is_refused_by_name(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("COURSE_WORKDIR", str(blocker / "work"))
    with pytest.raises(paths.WorkdirError) as caught:
        paths.subdir("models")
    message = str(caught.value)
    assert f"The working folder (COURSE_WORKDIR={str(blocker / 'work')!r}) {blocker / 'work'} cannot be created" in message
    assert "Fix: set COURSE_WORKDIR to a folder you can write to, or unset it" in message
    assert isinstance(caught.value, settings.SettingError) and isinstance(caught.value, OSError)

