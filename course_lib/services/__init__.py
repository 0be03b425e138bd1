"""Real local services for the course: a Prefect server, a Prefect worker, an S3 endpoint.

Every service here is a real operating-system process (never an in-process fake):

* :class:`PrefectServer` runs ``prefect server start`` on 127.0.0.1 with its own
  ``PREFECT_HOME`` (so its SQLite database lives in the course working folder),
  waits until ``/api/health`` answers and exports ``PREFECT_API_URL``.
* :class:`Worker` runs ``prefect worker start -p POOL -n NAME`` and waits until the
  server lists that worker as ONLINE.
* :class:`S3Endpoint` runs ``moto_server`` (a local S3-compatible HTTP endpoint).
* :class:`DaskCluster` runs ``dask scheduler`` and N ``dask worker`` processes (lesson 08).

Each one is started in its own process group with SIGINT back to its default action,
writes stdout and stderr to a log file under its state folder, is stopped as a whole
group (SIGTERM, a grace period, then SIGKILL) and is also stopped when Python exits.
They are context managers::

    with PrefectServer() as server:
        print(server.ui_url)

Notebooks use the idempotent helpers :func:`start_server` and :func:`stop_server`.

Settings read here (see :mod:`course_lib.settings`; a bad value is a :class:`ServiceError` that
names it): ``COURSE_PREFECT_PORT`` (a port instead of a free one), ``COURSE_LEARNER_PORT`` (where
:func:`start_server` looks first, 4200), ``COURSE_PREFECT_UI`` (``0``: no UI, faster),
``COURSE_PREFECT_START_TIMEOUT`` (180 s), ``COURSE_WORKDIR`` (state goes to ``<workdir>/prefect``
and ``<workdir>/moto``), ``COURSE_DASK_*`` and ``COURSE_SMTP_*``.

Every failure raises :class:`ServiceError` with a message that names the problem and
the fix.
"""

from course_lib.services.base import (HEADLESS_ENV, ServiceError, executable, free_port, http_status,
                                      port_is_free, redact, temporary_env, use_api)
from course_lib.services.dask_cluster import DaskCluster, check_dask_scheduler, dask_address_from_env
from course_lib.services.s3_endpoint import S3Endpoint, check_s3_endpoint
from course_lib.services.server import PrefectServer, start_server, stop_server
from course_lib.services.worker import ServedFlow, Worker, ensure_work_pool
from course_lib.services.receivers import SmtpReceiver, SmtpSettings, WebhookReceiver, smtp_settings

__all__ = [
    "HEADLESS_ENV", "ServiceError", "executable", "free_port", "http_status", "port_is_free", "redact",
    "temporary_env", "use_api", "S3Endpoint", "check_s3_endpoint", "PrefectServer", "start_server",
    "stop_server", "ServedFlow", "Worker", "ensure_work_pool",
    "SmtpReceiver", "SmtpSettings", "WebhookReceiver", "smtp_settings",
    "DaskCluster", "check_dask_scheduler", "dask_address_from_env",
]
