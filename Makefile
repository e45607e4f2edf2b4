# InfraGenius developer entry points. `make demo` and `make test` work on a fresh machine.
# Everything runs from the project virtualenv that `make install` (scripts/install.sh) creates.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
CLUSTER ?= default
PYTEST_ARGS ?= -q -ra
LINT_PATHS := operator devtools tests benchmarks scripts
# Removed with the venv, so a deleted .venv is re-created; scripts/install.sh skips what is already there.
INSTALLED := $(VENV)/.make-installed

.PHONY: install build up down status demo lint test test-unit test-e2e clean docs images

$(INSTALLED): pyproject.toml devtools/pyproject.toml scripts/install.sh
	VENV=$(VENV) scripts/install.sh
	@touch $@

install:
	VENV=$(VENV) scripts/install.sh
	@touch $(INSTALLED)

# Builds kube-apiserver, controller-manager, scheduler, kubectl, etcd and kwok once (cached by version).
build: $(INSTALLED)
	$(VENV)/bin/infragenius-dev devcluster build

# OCI archives of the operator, postgres, redis, ollama, pause and testbox images from Debian packages,
# without Docker (root, debootstrap, umoci, skopeo); rebuilt only when their inputs change. ONLY="redis pause".
images: $(INSTALLED)
	$(VENV)/bin/infragenius-dev images $(if $(ONLY),--only $(ONLY))

up: $(INSTALLED)
	$(VENV)/bin/infragenius-dev devcluster up --name $(CLUSTER) --real-node

down: $(INSTALLED)
	$(VENV)/bin/infragenius-dev devcluster down --name $(CLUSTER)

status: $(INSTALLED)
	$(VENV)/bin/infragenius-dev devcluster status --name $(CLUSTER)

demo: $(INSTALLED)
	@CLUSTER=$(CLUSTER) $(PYTHON) scripts/demo.py

# ruff, mypy and import-linter read their configuration from pyproject.toml.
lint: $(INSTALLED)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
define run_pytest
	@$(PYTHON) -m pytest $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests in $(1): failing"; exit 1; fi; exit $$rc
endef

test: $(INSTALLED) lint
	$(call run_pytest,tests)

test-unit: $(INSTALLED)
	$(call run_pytest,tests/unit)

test-e2e: $(INSTALLED)
	$(call run_pytest,tests/e2e)

clean:
	rm -rf $(INSTALLED) .make .pytest_cache

# README.md's configuration table, generated from infragenius.settings.Settings (`--check` in tests).
docs: $(INSTALLED)
	$(VENV)/bin/infragenius-dev docs
