# The course's one interface. `make course` runs every lesson headless; `make test` runs the tests.
# Each sets up .venv first when it is missing or out of date: `make course` (lab, services, reset)
# from the learner's lock, `make test` (images, bench) from the developers' lock.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
# Two locks, compiled from pyproject.toml (`make lock`): what a learner needs to run the lessons,
# and that plus what the tests, the pictures and the bench need (pyproject's `dev` extra).
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
INSTALLED := $(VENV)/.installed
INSTALLED_DEV := $(VENV)/.installed-dev

.PHONY: setup setup-dev system-deps course test book images lab services reset bench lock clean

setup: $(INSTALLED)

setup-dev: $(INSTALLED_DEV)

# uv installs the exact versions of a lock in ~20 s; pip would take minutes. `uv pip sync` also
# removes what the lock does not list, so the learner's environment is exactly requirements.lock.
# --compile-bytecode: precompiled .pyc halve every `import prefect` (and every flow run), also
# where PYTHONDONTWRITEBYTECODE stops Python from caching them itself.
define install_lock
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed: install python3.11 and run make again"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python $(1)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
endef

$(INSTALLED): $(LOCK) pyproject.toml
	$(call install_lock,$(LOCK))
	@rm -f $(INSTALLED_DEV)
	@touch $@

# The developers' lock holds the learner's too: once it is installed, `make course` needs nothing more.
$(INSTALLED_DEV): $(DEV_LOCK) $(LOCK) pyproject.toml
	$(call install_lock,$(DEV_LOCK))
	@touch $(INSTALLED) $@

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

# The library tests and every lesson (each notebook is a test, tests/lessons.py: quick parameters,
# exercises three ways, as a JupyterLab kernel under `make services` runs it), on two pytest-xdist
# workers that each take whole files (each worker has its own services and working folder, see
# conftest.py).
test: setup-dev system-deps
	$(BIN)/python -m pytest tests notebooks -n 2 --dist loadfile --no-loadscope-reorder --durations=25

# The course as a static website in build/book/ (its tools, the `book` extra, are in the dev lock) (open build/book/index.html), rendered from the
# executed lessons of `make course`, never re-executed; `make course` runs first when
# build/executed/ is missing or older than notebooks/.
book: setup-dev
	@$(BIN)/python -m course_lib.tooling.book fresh || { echo "make book: running make course first"; $(MAKE) course; }
	$(BIN)/python -m course_lib.tooling.book build

# The course's pictures: diagrams drawn from code, screenshots of the real Prefect UI.
images: setup-dev system-deps
	$(BIN)/python -m course_lib.tooling.images

bench: setup-dev
	$(BIN)/python -m course_lib.tooling.bench

# JupyterLab at the lessons' folder with the course's settings (jupyter/: no news pop-up, no
# update check); its own state stays in work/jupyter.
lab: setup
	$(BIN)/python -m course_lib.tooling.instructor lab

# The instructor's session: Prefect server + UI on 127.0.0.1:4200, a worker for local-pool, the
# S3 endpoint in the foreground; lessons reuse them; Ctrl-C stops them all.
services: setup
	$(BIN)/python -m course_lib.tooling.instructor services

# Remove the course's state (server database, blocks, models, your project),
# keep the downloaded data. Asks first; `make reset FORCE=1` does not.
reset: setup
	$(BIN)/python -m course_lib.tooling.instructor reset $(if $(filter 1,$(FORCE)),--yes)

# Compile both locks after editing the dependencies in pyproject.toml; versions already locked
# stay (`make lock UPGRADE=1` moves them to the newest allowed). The learner's lock starts from the
# developers' (uv keeps the versions of the file it writes), so the two agree on every version.
COMPILE := $(BIN)/uv pip compile pyproject.toml --python-version 3.11 --quiet --custom-compile-command "make lock"
lock:
	$(COMPILE) --extra dev $(if $(filter 1,$(UPGRADE)),--upgrade) -o $(DEV_LOCK)
	cp $(DEV_LOCK) $(LOCK).new
	$(COMPILE) -o $(LOCK).new
	mv $(LOCK).new $(LOCK)

clean:
	rm -rf build work .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
