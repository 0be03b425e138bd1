"""Real local services for the course: a Prefect server, a Prefect worker, an S3 endpoint.

Every service here is a real operating-system process (never an in-process fake):

* :class:`PrefectServer` runs ``prefect server start`` on 127.0.0.1 with its own
  ``PREFECT_HOME`` (so its SQLite database lives in the course working folder),
  waits until ``/api/health`` answers and exports ``PREFECT_API_URL``.
* :class:`Worker` runs ``prefect worker start -p POOL -n NAME`` and waits until the
  server lists that worker as ONLINE.
* :class:`S3Endpoint` runs ``moto_server`` (a local S3-compatible HTTP endpoint).

Each one is started in its own process group with SIGINT back to its default action,
writes stdout and stderr to a log file under its state folder, is stopped as a whole
group (SIGTERM, a grace period, then SIGKILL) and is also stopped when Python exits.
They are context managers::

    with PrefectServer() as server:
        print(server.ui_url)

Notebooks use the idempotent helpers :func:`start_server` and :func:`stop_server`.

Environment variables read here:

``COURSE_PREFECT_PORT``
    port for the Prefect server (default: a free port; :func:`start_server` prefers 4200,
    and reuses a course server already answering there).
``COURSE_PREFECT_UI``
    ``0`` starts the server without the UI (faster; the tests use it). Default: UI on.
``COURSE_PREFECT_START_TIMEOUT``
    seconds to wait for the server to be healthy (default 180).
``COURSE_WORKDIR``
    the working folder (see :mod:`course_lib.paths`); state goes to ``<workdir>/prefect``
    and ``<workdir>/moto``.

Every failure raises :class:`ServiceError` with a message that names the problem and
the fix.
"""

from course_lib.services.base import (HEADLESS_ENV, ServiceError, executable, free_port, http_status,
                                      port_is_free, redact, temporary_env, use_api)
from course_lib.services.s3_endpoint import S3Endpoint, check_s3_endpoint
from course_lib.services.server import PrefectServer, start_server, stop_server
from course_lib.services.worker import ServedFlow, Worker, ensure_work_pool
from course_lib.services.receivers import SmtpReceiver, SmtpSettings, WebhookReceiver, smtp_settings

__all__ = [
    "HEADLESS_ENV", "ServiceError", "executable", "free_port", "http_status", "port_is_free", "redact",
    "temporary_env", "use_api", "S3Endpoint", "check_s3_endpoint", "PrefectServer", "start_server",
    "stop_server", "ServedFlow", "Worker", "ensure_work_pool",
    "SmtpReceiver", "SmtpSettings", "WebhookReceiver", "smtp_settings",
]
