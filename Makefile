# modelgate — `make demo` and `make test` are the two commands; each sets up .venv itself.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
LOCK_HASH := $(shell cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.modelgate-$(LOCK_HASH)
SCENARIO ?= good
PYTEST_ARGS ?=

.PHONY: proto venv clients-venv clients-lock lock up down demo test test-production lint audit bench bench-serving bench-tail bench-protocols bench-instructions bench-faults bench-dags bench-batch bench-abtest clean

venv: $(STAMP)

# Installs only when requirements.txt, constraints.txt or pyproject.toml changed (stamp keyed on their hash).
$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.modelgate-*
	@touch $@

# The OIP v2 client libraries (tritonclient, kserve) in their own venv: their pins conflict with the main
# lock (tests/serving/clients/requirements.txt says which); tests and benchmarks run them as subprocesses.
CLIENTS_VENV := .venv-clients
CLIENTS_REQ := tests/serving/clients/requirements.txt
CLIENTS_LOCK := tests/serving/clients/constraints.txt
CLIENTS_STAMP := $(CLIENTS_VENV)/.clients-$(shell cat $(CLIENTS_REQ) $(CLIENTS_LOCK) | sha256sum | cut -c1-16)

clients-venv: $(CLIENTS_STAMP)

$(CLIENTS_STAMP):
	@test -x $(CLIENTS_VENV)/bin/python || $(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/python -m pip install -q --disable-pip-version-check -r $(CLIENTS_REQ) -c $(CLIENTS_LOCK)
	@rm -f $(CLIENTS_VENV)/.clients-*
	@touch $@

clients-lock:
	@test -x $(CLIENTS_VENV)/bin/python || $(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/python -m pip install -q -r $(CLIENTS_REQ)
	{ echo '# Full lock of .venv-clients (pip freeze of requirements.txt next to this file); regenerate with `make clients-lock`.'; \
	  $(CLIENTS_VENV)/bin/python -m pip freeze; } > $(CLIENTS_LOCK)

# Re-resolve the direct pins and write the full lock.
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	{ echo '# Full lock of every package in .venv (pip freeze). Regenerate with `make lock`; do not edit by hand.'; \
	  $(PY) -m pip freeze --exclude-editable; } > constraints.txt

# The router's OIP v2 protobuf module (checked in; regenerate after editing the .proto).
proto: venv
	cd serving_images/router && ../../$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. router/_proto/grpc_predict_v2.proto

up: venv
	$(PY) -m modelgate_dev.stack up

down:
	@test -x $(PY) && $(PY) -m modelgate_dev.stack down || true

demo: venv
	$(PY) -m modelgate_dev.demo.run --scenario $(SCENARIO)

# TEST_WORKERS xdist workers (most tests wait on processes they start, not on the CPU); each test module is
# one unit, longest first (tests/conftest.py). Default 2, one per core of this machine (docs/benchmarks.md,
# "Wall times"); `make test TEST_WORKERS=0` runs everything in one process.
TEST_WORKERS ?= 2
test: venv clients-venv
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --ignore=tests/production/stack $(PYTEST_ARGS)

# The production profile for real (its own PostgreSQL, Redis, Celery workers, Prometheus; minutes):
# rules and contract, a Celery worker killed mid-task, the good demo (docs/production.md).
test-production: venv
	$(PY) -m pytest tests/production tests/test_compose_contract.py $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy include modelgate_contracts modelgate_control modelgate_dev plugins serving_images/router/router

# Known vulnerabilities in the lock (pip-audit, PyPI's advisory data); exceptions: .pip-audit-ignore.
# AUDIT_ARGS=--strict also fails on packages the advisory service could not look up.
AUDIT_ARGS ?=
audit: venv
	$(PY) .ci/pip_audit_gate.py --requirements constraints.txt --ignore-file .pip-audit-ignore $(AUDIT_ARGS)

bench-dags: venv
	$(PY) benchmarks/dag_parse.py

bench-serving: venv
	$(PY) benchmarks/serving.py

bench-protocols: venv clients-venv
	$(PY) benchmarks/protocols.py

bench-tail: venv
	$(PY) benchmarks/tail.py

bench-instructions: venv
	$(PY) benchmarks/instructions.py

bench-faults: venv
	$(PY) benchmarks/faults.py

bench-batch: venv
	$(PY) benchmarks/batch.py

bench-abtest: venv
	$(PY) benchmarks/abtest.py

bench: bench-dags bench-serving bench-batch bench-abtest

clean: down
	rm -rf .local
