"""Small helpers shared by the tests. Process groups are stopped with the library's own helpers
(course_lib.services.base.stop_group / group_gone): one copy for services and tests."""

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path


@contextlib.contextmanager
def ctrl_c_raises():
    """In this block SIGINT raises KeyboardInterrupt, as Ctrl-C does, even when the test process
    was started with SIGINT ignored (a script's `make test &`, nohup): then Python installs no
    handler of its own."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def oserror_where_permissions_apply(function, *args) -> str | None:
    """Call ``function(*args)`` where folder permissions apply and return the message of the
    OSError it raised (None if it raised none).

    Root may write into any folder, read-only or not; so for root (CI runs as root) the call runs
    in a forked child that first becomes ``nobody``. Anyone else: right here.
    """
    if os.geteuid() != 0:
        try:
            function(*args)
        except OSError as exc:
            return str(exc)
        return None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, call, report, leave without running the parent's cleanup
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                function(*args)
                os.write(write_end, b"-")
            except OSError as exc:
                os.write(write_end, b"E" + str(exc).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        reported = reader.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and reported, f"the unprivileged call failed otherwise ({status})"
    return reported[1:] if reported.startswith("E") else None


NOBODY = 65534


@contextlib.contextmanager
def read_only_folder():
    """An existing folder nobody may write to (mode 0555), in a folder everyone may enter: unlike
    pytest's tmp_path, which only its owner can enter."""
    parent = Path(tempfile.mkdtemp(prefix="course-read-only-"))
    parent.chmod(0o755)
    folder = parent / "read-only"
    folder.mkdir(mode=0o555)
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
        shutil.rmtree(parent)
