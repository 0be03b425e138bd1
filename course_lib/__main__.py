"""Command line of the course.

``python -m course_lib train --train 2023-01 --val 2023-02``
    trains the duration model on one month, validates on another and saves
    ``model.json`` + ``preprocessor.b`` under ``work/models`` (see ``course_lib.paths``).
``python -m course_lib env``
    prints the shell lines that point a terminal's ``prefect`` at the course's running server:
    ``eval "$(.venv/bin/python -m course_lib env)"``.
``python -m course_lib settings``
    prints every ``COURSE_*`` setting, its effective value and where it came from (default or
    environment); ``--markdown`` prints the README's table of them, ``--write-readme`` puts that
    table into README.md (see :mod:`course_lib.settings`).

Exit codes: 0 done, 1 no course server runs (``env``), 2 bad input or a bad setting (the message
on stderr says what to change).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys



SETTINGS_HELP = {
    "help": "print the course's COURSE_* settings and where each came from",
    "description": "Print every COURSE_* setting: its effective value and where it came from "
                   "(default or environment). Exits 2 when a value is not allowed, naming it.",
}


def _settings_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--markdown", action="store_true", help="print the README's table of the settings instead")
    parser.add_argument("--write-readme", action="store_true", help="write that table into README.md")
    return parser


def _parser() -> argparse.ArgumentParser:
    from course_lib.ml import data, training

    parser = argparse.ArgumentParser(
        prog="python -m course_lib",
        description="Course tools: train the NYC green-taxi trip-duration model; "
        "point a terminal at the course's Prefect server.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "env",
        help="print the shell lines for the course's running Prefect server",
        description='Print `export PREFECT_API_URL=...` and the course\'s PREFECT_HOME for the running '
        'course server. In a terminal: eval "$(.venv/bin/python -m course_lib env)".',
    )
    _settings_arguments(commands.add_parser("settings", **SETTINGS_HELP))
    train = commands.add_parser(
        "train",
        help="train on one month, validate on another, save the model",
        description="Train xgboost on one month and report the RMSE on another; "
        "saves model.json and preprocessor.b.",
    )
    train.add_argument("--train", required=True, metavar="MONTH",
                       help="training month, 'YYYY-MM' or a .parquet path (e.g. 2023-01)")
    train.add_argument("--val", required=True, metavar="MONTH",
                       help="validation month, 'YYYY-MM' or a .parquet path (e.g. 2023-02)")
    train.add_argument("--source", default="auto", choices=data.SOURCES,
                       help="where months come from: auto (file, else download, else synthetic; default), "
                       "file, download or synthetic")
    train.add_argument("--reference", action="store_true",
                       help="the 2023 course's exact pipeline (slow) instead of the fast default")
    train.add_argument("--rounds", type=int, default=None, metavar="N",
                       help=f"boosting rounds (default: {training.default_rounds('fast')} fast, "
                       f"{training.default_rounds('reference')} reference)")
    train.add_argument("--data-dir", default=None, metavar="DIR",
                       help="folder holding green_tripdata_YYYY-MM.parquet files (default: COURSE_DATA_DIR or work/data)")
    train.add_argument("--models-dir", default=None, metavar="DIR",
                       help="where to save model.json and preprocessor.b (default: work/models)")
    train.add_argument("--json", action="store_true",
                       help="print one JSON object on stdout (progress lines go to stderr)")
    return parser


def _summary(result, train: str, val: str) -> str:
    return "\n".join([
        f"data    train {train}: {result.n_train:,} trips, val {val}: {result.n_val:,} trips "
        f"(source: {result.source})",
        f"mode    {result.mode} ({result.rounds} rounds, best iteration {result.best_iteration})",
        f"RMSE    {result.rmse:.5f} minutes",
        f"time    {result.seconds:.2f} s (features + training)",
        f"model   {result.model_path}",
        f"        {result.preprocessor_path}",
    ])


def env_command() -> int:
    """Print the shell lines for the course's running server (stdout), or say how to start one."""
    from course_lib.services import server

    found = server.find_course_server()
    if found is None:
        print("# No course Prefect server is running. Fix: start one with `make services` "
              "(or run a lesson that calls start_server()), then run this again.", file=sys.stderr)
        return 1
    api_url, who = found
    print(f"# The course's Prefect server at {api_url} ({who}).")
    print("\n".join(server.shell_lines(api_url)))
    return 0


def settings_command(markdown: bool = False, write_readme: bool = False) -> int:
    """Print the effective settings (exit 2 when one is not allowed), or the README's table of them."""
    from course_lib import settings

    if write_readme:
        changed = settings.write_readme_table()
        print(f"README.md: the settings table {'was updated' if changed else 'is up to date'}.")
        return 0
    if markdown:
        print(settings.markdown())
        return 0
    text, code = settings.report()
    print(text, file=sys.stderr if code else sys.stdout)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["env"] and len(argv) == 1:  # fast paths: no pandas/xgboost import
        return env_command()
    if argv[:1] == ["settings"]:
        parser = argparse.ArgumentParser(prog="python -m course_lib settings", description=SETTINGS_HELP["description"])
        args = _settings_arguments(parser).parse_args(argv[1:])
        return settings_command(args.markdown, args.write_readme)
    from course_lib.ml import data, training

    args = _parser().parse_args(argv)
    if args.command == "env":
        return env_command()
    mode = "reference" if args.reference else "fast"
    # With --json, stdout carries the JSON object only: the loader's lines go to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet:
            result = training.train_months(
                args.train, args.val, source=args.source, mode=mode, num_boost_round=args.rounds,
                data_dir=args.data_dir, models_dir=args.models_dir,
            )
    except (data.DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(_summary(result, args.train, args.val))
    return 0


if __name__ == "__main__":
    sys.exit(main())
