"""The course's settings: every ``COURSE_*`` environment variable, declared once.

:class:`CourseSettings` (a pydantic-settings model) declares each variable: its type and range,
its default and a one-line meaning. The library reads them through :func:`get`, which validates
a variable when it is read, not before: a bad ``COURSE_SMTP_PORT`` does not stop a lesson that
never sends email, and the lesson that does fails at once with a :class:`SettingError` that names
the variable, its value, what is allowed and the fix::

    from course_lib import settings
    settings.get().download_timeout      # 30.0, or COURSE_DOWNLOAD_TIMEOUT validated now

An empty value counts as unset. ``python -m course_lib settings`` prints the effective settings
and where each came from; the README's table of variables is generated from this module
(``python -m course_lib settings --markdown``) and a test keeps the two equal.

:data:`INTERNAL` lists the ``COURSE_*`` variables the course sets itself to pass a value to the
processes and shell cells it starts; they are not settings.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping
from urllib.parse import urlparse

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "COURSE_"
REPO_ROOT = Path(__file__).resolve().parent.parent
MASK = "********"


class SettingError(ValueError):
    """A ``COURSE_*`` variable holds a value the course cannot use (the message says which and the fix)."""


@dataclass(frozen=True)
class Allowed:
    """What a kind of value allows, in words, with an example (metadata of the types below)."""

    text: str
    example: str


def parse_tcp_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``tcp://HOST:PORT`` (``tls://`` too; a bare ``HOST:PORT`` means tcp);
    ``ValueError`` for anything else."""
    raw = address.strip()
    parsed = urlparse(raw if "://" in raw else f"tcp://{raw}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname or port is None:
        raise ValueError(f"{address!r} is not a scheduler address tcp://HOST:PORT")
    return parsed.hostname, port


def _tcp_address(value: str) -> str:
    parse_tcp_address(value)
    return value


def _executable(value: Path) -> Path:
    if not (value.is_file() and os.access(value, os.X_OK)):
        raise ValueError(f"{value} is not an executable file")
    return value


# The kinds of value. Each says in words what it allows; pydantic checks the type and range.
Port = Annotated[int, Field(ge=1, le=65535), Allowed("a TCP port, a whole number 1-65535", "4200")]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False), Allowed("a number of seconds > 0", "30")]
Flag = Annotated[bool, Allowed("1 or 0 (also true/false, yes/no, on/off)", "1")]
Count = Annotated[int, Field(ge=1), Allowed("a whole number >= 1", "5")]
Folder = Annotated[Path, AfterValidator(lambda path: path.expanduser().resolve()),
                   Allowed("a folder (created when missing; the course must be able to write to it)", "~/course-work")]
ReadFolder = Annotated[Path, AfterValidator(lambda path: path.expanduser().resolve()), Allowed("a folder", "~/tlc-data")]
Host = Annotated[str, Field(min_length=1), Allowed("a host name", "smtp.example.com")]
Text = Annotated[str, Allowed("any text", "me@example.com")]
Secret = Annotated[SecretStr, Allowed("any text (never printed)", "...")]
SmtpType = Annotated[Literal["SSL", "STARTTLS", "INSECURE"], BeforeValidator(lambda text: str(text).upper()),
                     Allowed("SSL, STARTTLS or INSECURE", "STARTTLS")]
DaskAddress = Annotated[str, AfterValidator(_tcp_address),
                        Allowed("a scheduler address tcp://HOST:PORT", "tcp://10.0.0.5:8786")]
Executable = Annotated[Path, AfterValidator(lambda path: _executable(path.expanduser())),
                       Allowed("the path of an executable file", "/usr/bin/chromium")]


def _setting(default: Any, meaning: str, shown: str | None = None, audience: str = "learner",
             example: str | None = None) -> Any:
    """A field: its default, its one-line meaning, the default in words (when it is not a plain
    value), who sets it ("learner", "instructor" or "developer") and an example of a good value
    (default: the default value, else the kind's example)."""
    return Field(default, description=meaning,
                 json_schema_extra={"shown_default": shown, "audience": audience, "example": example})


class CourseSettings(BaseSettings):
    """Every setting of the course: ``COURSE_<FIELD NAME>`` in the environment.

    ``CourseSettings()`` reads and validates them all at once (pydantic-settings); the library
    reads each one when it uses it, through :func:`get`.
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore",
                                      str_strip_whitespace=True)

    # -- where things are
    workdir: Folder | None = _setting(
        None, "the course's working folder: downloaded data, models, your project, service state",
        shown="work/ in the repository")
    data_dir: Folder | None = _setting(
        None, "where TLC month files are looked for and downloaded to", shown="data/ in COURSE_WORKDIR")
    # -- data
    offline: Flag = _setting(False, "1: never try to download a month (a missing month is synthetic at once)")
    download_timeout: Seconds = _setting(30.0, "seconds a month's download may wait for the TLC server")
    # -- the Prefect server
    learner_port: Port = _setting(
        4200, "port of the shared Prefect server every lesson reuses (start_server, make services)")
    prefect_port: Port | None = _setting(
        None, "port of a Prefect server the course starts for itself, instead of a free one",
        shown="a free port", example="4201")
    prefect_ui: Flag = _setting(True, "0: start Prefect servers without the UI (they start sooner)")
    prefect_start_timeout: Seconds = _setting(180.0, "seconds to wait for a Prefect server to be healthy")
    # -- the instructor's services
    s3_port: Port = _setting(9000, "port of the S3 endpoint of make services", audience="instructor")
    # -- Dask (lesson 08)
    dask_address: DaskAddress | None = _setting(
        None, "an existing Dask scheduler for lesson 08 instead of the cluster it starts",
        shown="unset: lesson 08 starts its own")
    dask_start_timeout: Seconds = _setting(120.0, "seconds to wait for lesson 08's scheduler and workers")
    # -- email (lessons 09-10)
    smtp_host: Host | None = _setting(None, "a real SMTP server for the lessons' email",
                                      shown="unset: the local SMTP server")
    smtp_port: Port | None = _setting(None, "port of COURSE_SMTP_HOST",
                                      shown="465 for SSL, 587 for STARTTLS, 25 for INSECURE", example="587")
    smtp_type: SmtpType = _setting("STARTTLS", "how to talk to COURSE_SMTP_HOST")
    smtp_user: Text | None = _setting(None, "user name for COURSE_SMTP_HOST", shown="unset: no login")
    smtp_password: Secret | None = _setting(None, "password for COURSE_SMTP_HOST", shown="unset")
    # -- git (lesson 05)
    git_access_token: Secret | None = _setting(
        None, "token for a private git_repository in lesson 05 (goes into a Secret block)", shown="unset")
    # -- the course's own tools
    chromium: Executable | None = _setting(
        None, "the Chromium that make images and the browser test drive",
        shown="/usr/bin/chromium, else chromium on PATH", audience="developer")
    bench_latency_runs: Count = _setting(5, "runs in make bench's deployment-latency section", audience="developer")
    real_data_dir: ReadFolder | None = _setting(
        None, "the real TLC months the tests compare with", shown="../shared/data beside the repository",
        audience="developer")
    browser_all: Flag = _setting(False, "1: the browser test runs every lesson, not only 02 and 04",
                                 audience="developer")
    repository_url: Text | None = _setting(
        None, "the repository's web address, for make book's links to each lesson's source",
        shown="GitHub Actions' own repository, else no link", audience="developer",
        example="https://github.com/you/prefect-course")


#: ``COURSE_*`` variables the course sets itself for the processes and shell cells it starts.
INTERNAL: dict[str, str] = {
    "COURSE_REPO_ROOT": "the repository, for prefect.yaml's working directory and the terminal line",
    "COURSE_TEST_SESSION": "marks every process a test session starts, for its leak check",
    "COURSE_TEST_WORKDIR": "the tests' working folder, shared by the pytest-xdist workers",
    "COURSE_SMTP_RECEIVER_PASSWORD": "the local SMTP server's password, in its process only",
    "COURSE_CLOUD_WORKSPACE": "lesson 07's Prefect Cloud workspace, for its shell cells",
    "COURSE_REMOTE_API": "lesson 07's stand-in workspace API, for its shell cells",
    "COURSE_REMOTE_AUTH": "lesson 07's stand-in workspace password, for its shell cells",
    "COURSE_REMOTE_PROJECT": "lesson 07's project folder, for its shell cells",
}

FIELDS = CourseSettings.model_fields


def variable(field: str) -> str:
    """The environment variable of a field: ``download_timeout`` -> ``COURSE_DOWNLOAD_TIMEOUT``."""
    return PREFIX + field.upper()


def _parts(field: str) -> tuple[Any, list]:
    info = FIELDS[field]
    return info.annotation, list(info.metadata)


def allowed(field: str) -> Allowed:
    """What the field's kind allows, in words."""
    annotation, metadata = _parts(field)
    found = [item for item in metadata if isinstance(item, Allowed)]
    if not found:  # an optional field: the metadata sits on the kind inside ``X | None``
        for arg in getattr(annotation, "__args__", ()):
            found += [item for item in getattr(arg, "__metadata__", ()) if isinstance(item, Allowed)]
    return found[0]


@functools.lru_cache(maxsize=None)
def _adapter(field: str) -> TypeAdapter:
    annotation, metadata = _parts(field)
    return TypeAdapter(Annotated[(annotation, *metadata)] if metadata else annotation)


def shown_default(field: str) -> str:
    """The default in words, as the README and ``python -m course_lib settings`` show it."""
    info = FIELDS[field]
    shown = (info.json_schema_extra or {}).get("shown_default")
    return shown or display_value(info.default)


def example(field: str) -> str:
    """A good value for the field, for the fix in an error message."""
    info = FIELDS[field]
    given = (info.json_schema_extra or {}).get("example")
    if given:
        return given
    if info.default is None or isinstance(info.default, bool):
        return allowed(field).example
    return display_value(info.default)


def meaning(field: str) -> str:
    return FIELDS[field].description or ""


def audience(field: str) -> str:
    return (FIELDS[field].json_schema_extra or {}).get("audience", "learner")


def _raw(field: str, environ: Mapping[str, str]) -> str | None:
    raw = environ.get(variable(field))
    return raw if raw is not None and raw.strip() else None


def read(field: str, environ: Mapping[str, str] | None = None, error: type[Exception] = SettingError) -> Any:
    """The value of one setting, read from ``environ`` (default ``os.environ``) now and validated.

    A bad value raises ``error`` (a :class:`SettingError` unless a module asks for its own
    subclass) naming the variable, the value, what is allowed and the fix.
    """
    if field not in FIELDS:
        raise AttributeError(f"no course setting {field!r}; the settings are: {', '.join(FIELDS)}")
    environ = os.environ if environ is None else environ
    raw = _raw(field, environ)
    if raw is None:
        return FIELDS[field].default
    try:
        return _adapter(field).validate_python(raw.strip())
    except ValidationError as exc:
        kind = allowed(field)
        name = variable(field)
        shown = MASK if _secret(field) else repr(raw)
        reason = "; ".join(_reason(item) for item in exc.errors())
        raise error(f"{name}={shown} is not allowed ({reason}): {name} must be {kind.text}. "
                    f"Fix: set it to e.g. {example(field)}, or unset it (default: {shown_default(field)}).") from None


def _reason(item: dict) -> str:
    message = str(item.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def source(field: str, environ: Mapping[str, str] | None = None) -> str:
    """Where the effective value of a setting comes from: ``"environment"`` or ``"default"``."""
    environ = os.environ if environ is None else environ
    return "environment" if _raw(field, environ) is not None else "default"


class Settings:
    """The course's settings as they are in ``environ`` now; each attribute is validated when read.

    Get one with :func:`get`; ``settings.get().learner_port``.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, error: type[Exception] = SettingError) -> None:
        self._environ = os.environ if environ is None else environ
        self._error = error

    def __getattr__(self, field: str) -> Any:
        if field.startswith("_"):
            raise AttributeError(field)
        return read(field, self._environ, self._error)

    def source(self, field: str) -> str:
        return source(field, self._environ)

    def __dir__(self):
        return sorted(FIELDS)

    def __repr__(self) -> str:
        set_here = [variable(field) for field in FIELDS if self.source(field) == "environment"]
        return f"Settings(from the environment: {', '.join(set_here) or 'none'})"


def get(environ: Mapping[str, str] | None = None, error: type[Exception] = SettingError) -> Settings:
    """The course's settings, read from ``environ`` (default ``os.environ``) when an attribute is used.

    ``error``: the exception class for a bad value (a subclass of :class:`SettingError`), so that a
    module keeps its own error contract (``DataError``, ``ServiceError``).
    """
    return Settings(environ, error)


# --------------------------------------------------------------------------- showing them


def display_value(value: Any) -> str:
    """A value as the environment would spell it (``1``/``0`` for flags, ``30`` for 30.0)."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _secret(field: str) -> bool:
    return allowed(field) is Secret.__metadata__[0]


def effective(environ: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """One row per setting: variable, value (secrets masked), source and, for a bad value, the error."""
    environ = os.environ if environ is None else environ
    rows = []
    for field in FIELDS:
        row = {"variable": variable(field), "source": source(field, environ), "error": ""}
        try:
            value = read(field, environ)
        except SettingError as exc:
            value, row["error"] = environ.get(variable(field)), str(exc)
        if value is None:
            row["value"] = f"({shown_default(field)})"
        elif _secret(field):
            row["value"] = MASK
        else:
            row["value"] = display_value(value)
        rows.append(row)
    return rows


def report(environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """The text ``python -m course_lib settings`` prints, and its exit code (2 when a value is bad)."""
    rows = effective(environ)
    header = ("variable", "value", "from")
    table = [header] + [(row["variable"], row["value"], row["source"] + (": NOT ALLOWED" if row["error"] else ""))
                        for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    errors = [row["error"] for row in rows if row["error"]]
    if errors:
        lines += ["", *errors]
    return "\n".join(lines), 2 if errors else 0


MARKDOWN_BEGIN = "<!-- settings table: generated by `python -m course_lib settings --markdown`; do not edit -->"
MARKDOWN_END = "<!-- end of the settings table -->"


def markdown() -> str:
    """The README's table of variables (between :data:`MARKDOWN_BEGIN` and :data:`MARKDOWN_END`)."""
    order = {"learner": 0, "instructor": 1, "developer": 2}
    fields = sorted(FIELDS, key=lambda field: order[audience(field)])  # stable: declaration order within each
    lines = [MARKDOWN_BEGIN, "| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for field in fields:
        who = {"learner": "", "instructor": "(instructor) ", "developer": "(tests, tools) "}[audience(field)]
        lines.append(f"| `{variable(field)}` | {shown_default(field)} | {allowed(field).text} | {who}{meaning(field)} |")
    lines += ["", "Set by the course itself for the processes and shell cells it starts (not settings): "
              + "; ".join(f"`{name}` ({text})" for name, text in INTERNAL.items()) + ".", MARKDOWN_END]
    return "\n".join(lines)


def readme_table(readme_text: str) -> str | None:
    """The generated table as it stands in the README's text (None when its markers are missing)."""
    start, end = readme_text.find(MARKDOWN_BEGIN), readme_text.find(MARKDOWN_END)
    if start < 0 or end < start:
        return None
    return readme_text[start:end + len(MARKDOWN_END)]


def write_readme_table(readme: Path = REPO_ROOT / "README.md") -> bool:
    """Replace the README's table with the generated one; True when it changed."""
    text = readme.read_text()
    current = readme_table(text)
    if current is None:
        raise SettingError(f"{readme} has no settings table markers: put {MARKDOWN_BEGIN!r} and "
                           f"{MARKDOWN_END!r} where the table belongs, then run this again.")
    if current == markdown():
        return False
    readme.write_text(text.replace(current, markdown()))
    return True
