"""Shared library of the course *Orchestrating ML pipelines with Prefect*.

Notebooks stay thin: the data, features, training, flows and local services
they demonstrate live here, so they can be tested once and reused everywhere.
"""

__version__ = "0.1.0"

from course_lib.tooling.bootstrap import setup_course

__all__ = ["setup_course"]
