# The course's one interface. `make course` runs every lesson headless; `make test` runs the tests.
# Both set up .venv from the lock first when it is missing or out of date.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
INSTALLED := $(VENV)/.installed
BOOK_INSTALLED := $(VENV)/.book-installed

.PHONY: setup system-deps course test book images lab services reset bench lock clean

setup: $(INSTALLED)

# uv installs the exact versions of requirements.lock in ~20 s; pip would take minutes.
# --compile-bytecode: precompiled .pyc halve every `import prefect` (and every flow run), also
# where PYTHONDONTWRITEBYTECODE stops Python from caching them itself.
$(INSTALLED): requirements.lock pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed: install python3.11 and run make again"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# Headless Chromium for the UI screenshots (Playwright drives the system browser; it cannot
# download its own here). Installed with apt when missing and we are root, as on CI.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; \
	  else \
	    echo "Chromium is needed for the UI screenshots: sudo apt-get install -y chromium fonts-dejavu-core"; exit 1; \
	  fi; }

course: setup
	$(BIN)/python -m course_lib.tooling.runner run

# The library tests, then every notebook with quick parameters injected by papermill and
# executed once by nbval, on two pytest-xdist workers that each take whole files (each worker has
# its own Prefect server and working folder, see conftest.py).
test: setup system-deps
	$(BIN)/python -m course_lib.tooling.runner prepare --out build/prepared
	$(BIN)/python -m pytest tests build/prepared --nbval-lax --nbval-current-env -n 2 --dist loadfile --no-loadscope-reorder --durations=25

# The website's tools (the `book` extra: Sphinx, myst-nb, sphinx-book-theme, sphinx-design) at the
# lock's versions, when the environment lacks them (running the lessons does not need them).
$(BOOK_INSTALLED): $(INSTALLED)
	@$(BIN)/python -c "import sphinx, myst_nb, sphinx_book_theme, sphinx_design" 2>/dev/null || \
	  $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r pyproject.toml --extra book -c requirements.lock
	@touch $@

# The course as a static website in build/book/ (open build/book/index.html), rendered from the
# executed lessons of `make course`, never re-executed; `make course` runs first when
# build/executed/ is missing or older than notebooks/.
book: $(BOOK_INSTALLED)
	@$(BIN)/python -m course_lib.tooling.book fresh || { echo "make book: running make course first"; $(MAKE) course; }
	$(BIN)/python -m course_lib.tooling.book build

# The course's pictures: diagrams drawn from code, screenshots of the real Prefect UI.
images: setup system-deps
	$(BIN)/python -m course_lib.tooling.images

bench: setup
	$(BIN)/python -m course_lib.tooling.bench

# JupyterLab at the lessons' folder with the course's settings (jupyter/: no news pop-up, no
# update check); its own state stays in work/jupyter.
lab: setup
	$(BIN)/python -m course_lib.tooling.instructor lab

# The instructor's session: Prefect server + UI on 127.0.0.1:4200, a worker for local-pool, the
# S3 endpoint and the MLflow UI in the foreground; lessons reuse them; Ctrl-C stops them all.
services: setup
	$(BIN)/python -m course_lib.tooling.instructor services

# Remove the course's state (server database, blocks, MLflow runs, models, lesson projects),
# keep the downloaded data. Asks first; `make reset FORCE=1` does not.
reset: setup
	$(BIN)/python -m course_lib.tooling.instructor reset $(if $(filter 1,$(FORCE)),--yes)

# Refresh the lock after editing the dependencies in pyproject.toml.
lock:
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --upgrade -o requirements.lock

clean:
	rm -rf build work .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
