"""The instructor's session: ``make services`` and ``make reset``.

``make services`` starts the course's services in the foreground and keeps them up while the
lessons are demonstrated: the Prefect server with its UI on 127.0.0.1:4200 (the learner port,
where every lesson's ``start_server()`` finds and reuses it), a worker for the course's pool,
and the local S3 endpoint. It prints a table (service, URL, pid, log) and the
line for other terminals, reports each service's state when it changes, and stops all of them
on Ctrl-C (or SIGTERM). Lessons reuse the server and never stop it: ``stop_server()`` leaves
a reused server running.

``make reset`` removes the course's state (server database, blocks, models, lesson
projects) and keeps the downloaded data; it asks first unless ``FORCE=1``.

    python -m course_lib.tooling.instructor services [--port 4200] [--s3-port 9000]
    python -m course_lib.tooling.instructor reset [--yes]
    python -m course_lib.tooling.instructor lab [jupyter lab options]     # make lab

Ports also come from ``COURSE_LEARNER_PORT`` and ``COURSE_S3_PORT`` (see
:mod:`course_lib.settings`); an option given on the command line wins.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from course_lib import paths, settings
from course_lib.services import base
from course_lib.services.base import ServiceError, executable, http_status

COURSE_POOL = "local-pool"  # the learner's prefect.yaml deploys to it
STATE_POLL_SECONDS = 2.0
#: What ``make reset`` keeps in the working folder.
KEPT = ("data",)


def services_record_path() -> Path:
    """``<workdir>/prefect/services.json``: what ``make services`` runs now (for lessons to reuse)."""
    return paths.subdir("prefect") / "services.json"


def running_service(name: str) -> str | None:
    """The URL of a service ``make services`` runs now ("s3", "worker"), else None.

    A lesson can reuse it instead of starting its own, e.g. the S3 endpoint:
    ``instructor.running_service("s3") or services.S3Endpoint().start().endpoint_url``.
    """
    import json

    try:
        record = json.loads(services_record_path().read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(record["pid"]), 0)
    except (KeyError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass
    url = record.get("services", {}).get(name)
    if name == "worker":
        return url
    return url if url and http_status(url.rstrip("/") + "/", timeout=2) else None


def _port(value: int | None, field: str) -> int:
    """A port given on the command line, else the setting (``COURSE_LEARNER_PORT``, ...)."""
    return value if value is not None else base.setting(field)


def port_argument(text: str) -> int:
    """argparse type of a port option: a whole number 1-65535 (0 is not "the default")."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number: give a whole number 1-65535") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port: give a whole number 1-65535, "
                                         "or leave the option out for the default")
    return port


def _state(service, healthy) -> str:
    if service.process is None:
        return "not started"
    code = service.process.poll()
    if code is not None:
        return f"exited (code {code})"
    try:
        return "running" if healthy() else "not answering"
    except Exception:
        return "not answering"


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("service", "URL", "pid", "log")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    line = lambda row: "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def services(port: int | None = None, s3_port: int | None = None, pool: str = COURSE_POOL, run_seconds: float | None = None) -> int:
    """Start the services, print the table, report state changes until Ctrl-C/SIGTERM; stop all."""
    from course_lib import services as svc
    from course_lib.services import server as server_module
    from course_lib.tooling import bootstrap

    # Ctrl-C must stop the services even when this process was started with SIGINT ignored
    # (`make services &` from a script, nohup): Python then installs no handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        port = _port(port, "learner_port")
        s3_port = _port(s3_port, "s3_port")
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    bootstrap.apply_headless_env()
    # This session starts THE server; it must not reuse one from the environment.
    os.environ.pop("PREFECT_API_URL", None)

    def stop_on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    started: list[tuple[str, object]] = []
    try:
        print("Starting the course's services (Ctrl-C stops them all) ...", flush=True)
        server = svc.PrefectServer(port=port, name="local", owner=server_module.OWNER_INSTRUCTOR)
        started.append(("Prefect server", server))
        server.start()
        svc.ensure_work_pool(pool, server=server)
        worker = svc.Worker(pool, name=f"{pool}-instructor", server=server)
        started.append((f"worker ({pool})", worker))
        worker.start()
        s3 = svc.S3Endpoint(port=s3_port)
        started.append(("S3 endpoint", s3))
        s3.start()

        watched = [
            ("Prefect server", server, server.ui_url if server.ui else server.api_url, server.healthy),
            (f"worker ({pool})", worker, f"{server.ui_url}/work-pools/work-pool/{pool}",
             lambda: worker.status() == "ONLINE"),
            ("S3 endpoint", s3, s3.endpoint_url, lambda: http_status(s3.endpoint_url + "/", timeout=2) is not None),
        ]
        import json

        services_record_path().write_text(json.dumps({"pid": os.getpid(), "services": {
            "server": server.api_url, "worker": worker.name, "s3": s3.endpoint_url}}, indent=1))
        print()
        print(_table([(name, url, str(service.pid), str(service.log_path)) for name, service, url, _ in watched]))
        print()
        print("In another terminal, point `prefect` at this server with:")
        print(f'    eval "$({sys.executable} -m course_lib env)"      (or: source {server_module.env_file_path()})')
        print("Lessons reuse these services and leave them running. Ctrl-C stops them all.", flush=True)

        states = {name: "running" for name, *_ in watched}
        deadline = None if run_seconds is None else time.monotonic() + run_seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(STATE_POLL_SECONDS)
            for name, service, _, healthy in watched:
                state = _state(service, healthy)
                if state != states[name]:
                    print(f"{time.strftime('%H:%M:%S')}  {name}: {states[name]} -> {state}", flush=True)
                    states[name] = state
    except KeyboardInterrupt:
        print("\nStopping the course's services ...", flush=True)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        services_record_path().unlink(missing_ok=True)
        for name, service in reversed(started):
            try:
                service.stop()
                print(f"  stopped {name}", flush=True)
            except Exception as exc:  # keep stopping the others
                print(f"  could not stop {name}: {exc}", file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print("All services stopped.", flush=True)
    return 0


def reset(yes: bool = False, workdir: Path | None = None) -> int:
    """Remove the course's state from the working folder, keep the downloaded data."""
    from course_lib.services import server as server_module

    workdir = workdir or paths.workdir()
    running = server_module.running_record()
    if running is not None:
        print(f"A course Prefect server is running ({running['api_url']}, started by {running.get('owner')}, "
              f"pid {running.get('pid')}). Fix: stop it first (Ctrl-C in `make services`, or stop_server() in "
              "the lesson), then run `make reset` again.", file=sys.stderr)
        return 1
    doomed = sorted(path for path in workdir.iterdir() if path.name not in KEPT)
    if not doomed:
        print(f"Nothing to remove in {workdir} (kept: {', '.join(KEPT)}).")
        return 0
    print(f"This removes the course's state in {workdir}: server database and blocks, models, "
          f"lesson projects ({', '.join(path.name for path in doomed)}). Kept: {', '.join(KEPT)}.")
    if not yes:
        try:
            answer = input("Remove it? [y/N] ").strip().lower()
        except EOFError:
            answer = ""
        if answer not in ("y", "yes"):
            print("Nothing removed.")
            return 1
    for path in doomed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    print(f"Removed {len(doomed)} item(s); kept {', '.join(KEPT)}.")
    return 0


JUPYTER_SETTINGS = paths.REPO_ROOT / "jupyter"


def lab_env(environ=None) -> dict[str, str]:
    """The environment of the course's JupyterLab (``make lab``): the course's settings folder
    ``jupyter/`` on the config path (no news pop-up, no update check) and JupyterLab's own
    state (settings changes, workspaces, runtime files) in ``work/jupyter``, not in the home folder."""
    env = dict(os.environ if environ is None else environ)
    state = paths.subdir("jupyter")
    extra = [str(JUPYTER_SETTINGS)] + [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(dict.fromkeys(extra))
    env.setdefault("JUPYTERLAB_SETTINGS_DIR", str(state / "user-settings"))
    env.setdefault("JUPYTERLAB_WORKSPACES_DIR", str(state / "workspaces"))
    env.setdefault("JUPYTER_RUNTIME_DIR", str(state / "runtime"))
    env.setdefault("IPYTHONDIR", str(paths.subdir("ipython")))
    return env


def lab_argv(*extra: str, root: Path | None = None) -> list[str]:
    """``jupyter lab`` serving ``root`` (the repository) and opening at its ``notebooks/`` folder.

    The root is the repository, not ``notebooks/``, so the lessons' pictures (``../imgs/...``) show.
    """
    root = root or paths.REPO_ROOT
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # containers, CI
    return [executable("jupyter"), "lab", f"--ServerApp.root_dir={root}", "--LabApp.default_url=/lab/tree/notebooks",
            *as_root, *extra]


def lab(extra: list[str]) -> int:
    """``make lab``: replace this process with the course's JupyterLab."""
    argv = lab_argv(*extra)
    os.execve(argv[0], argv, lab_env())
    return 0  # pragma: no cover - execve does not return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.tooling.instructor", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("services", help="start the course's services in the foreground (Ctrl-C stops them)")
    for option, field, what in (("--port", "learner_port", "Prefect server port"), ("--s3-port", "s3_port", "S3 endpoint port")):
        run.add_argument(option, type=port_argument, default=None, metavar="PORT",
                         help=f"{what} (default {settings.variable(field)} or {settings.shown_default(field)})")
    run.add_argument("--pool", default=COURSE_POOL, help=f"work pool of the worker (default {COURSE_POOL})")
    wipe = commands.add_parser("reset", help="remove the course's state, keep the downloaded data")
    wipe.add_argument("--yes", action="store_true", help="do not ask (make reset FORCE=1)")
    commands.add_parser("lab", help="start the course's JupyterLab at the lessons' folder (extra args go to jupyter lab)")
    args, extra = parser.parse_known_args(argv)
    if args.command == "lab":
        return lab(extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "services":
        return services(args.port, args.s3_port, args.pool)
    return reset(yes=args.yes)


if __name__ == "__main__":
    sys.exit(main())
