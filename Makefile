# LedgerML — the two commands a newcomer needs are `make demo` and `make test`.
# Each sets up everything on a fresh machine (a .venv with every package, npm
# tools for contracts and test services) and then runs.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
LEDGERML := $(VENV)/bin/ledgerml
STAMP  := $(VENV)/.installed
RUN    := .run
EXTRAS := storage,data,ml,models,serve,chain,fl,audit,postgres,dev

# Fragments from each subsystem add prerequisites of `make test` (npm tools,
# services) to TEST_SETUP, and services to SERVICES (scripts/svc_<name>.sh).
TEST_SETUP :=
SERVICES   :=
-include mk/*.mk

.PHONY: all demo test bench lint venv clean services-up services-down

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m ledgerml.cli.main demo

# Services are started before pytest and stopped by PID afterwards, whatever
# the test outcome; their connection details reach the tests through .run/*.env.
test: $(STAMP) $(TEST_SETUP) lint
	@mkdir -p $(RUN)
	@status=0; \
	for s in $(SERVICES); do scripts/svc_$$s.sh start || status=1; done; \
	if [ $$status -eq 0 ]; then \
	  set -a; for f in $(RUN)/*.env; do [ -f "$$f" ] && . "$$f"; done; set +a; \
	  $(PY) -m pytest -q $(PYTEST_ARGS) || status=$$?; \
	fi; \
	for s in $(SERVICES); do scripts/svc_$$s.sh stop; done; \
	exit $$status

bench: $(STAMP)
	$(LEDGERML) bench all

lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache src tests bench tools examples
	$(VENV)/bin/ruff format --no-cache --check src tests bench tools examples
	$(VENV)/bin/mypy  # the files and the baseline are in pyproject.toml [tool.mypy]

clean:
	rm -rf $(VENV) $(RUN) .pytest_cache
