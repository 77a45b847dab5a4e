# causalrec: `make run` materializes every asset on the built-in simulator; `make test` runs the tests.
# Both do the whole set-up (a .venv, every dependency) on a fresh clone; `make install` is idempotent.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.causalrec-installed

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export CAUSALREC_STORAGE ?= $(DAGSTER_HOME)/causalrec_storage
export CAUSALREC_CACHE ?= $(CURDIR)/.causalrec/cache
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: install run test lint ui clean browser obd

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# the distribution was called causalrec before 0.4 (a name that belongs to another project on the index)
	$(PY) -m pip uninstall -y -q causalrec 2>/dev/null || true
	$(PY) -m pip install -q -e '.[test,dev]'
	# plain onnxruntime silently replaces onnxruntime-gpu: refuse to go on if it crept in.
	@! $(PY) -m pip show -q onnxruntime 2>/dev/null || (echo "plain onnxruntime is installed beside onnxruntime-gpu: pip uninstall -y onnxruntime && pip install --force-reinstall onnxruntime-gpu" && exit 1)
	touch $(STAMP)

# The instance (dagster-instance.yaml): one run per storage in the run queue, run monitoring.
$(DAGSTER_HOME)/dagster.yaml: dagster-instance.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster-instance.yaml $@

run: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster asset materialize -m causalrec_assets --select '*' \
		--config-json '{"loggers": {"console": {"config": {"log_level": "INFO"}}}}'
	$(PY) -m causalrec_assets.summary

# The browser test drives Debian's chromium; install it where we may (root with apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium is not installed: the browser test will be skipped"

# The Open Bandit Dataset's sample ships inside obp's wheel: fetched, never installed (its
# dependencies are not ours) and read in place by causalrec_plugins.ingest.obd.
export CAUSALREC_OBD_WHEEL ?= $(CAUSALREC_CACHE)/obp/obp-0.4.1-py3-none-any.whl
obd: install
	@test -f $(CAUSALREC_OBD_WHEEL) || \
		$(PY) -m pip download -q --no-deps obp==0.4.1 -d $(dir $(CAUSALREC_OBD_WHEEL)) || \
		echo "could not download obp 0.4.1: the Open Bandit Dataset test will be skipped"

test: install browser obd $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml

clean:
	rm -rf .dagster_home .causalrec .pytest_cache
