# InfraGenius developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
CLUSTER ?= default
PYTEST_ARGS ?= -q -ra
STAMP := .make

.PHONY: install build up down status demo test test-unit test-e2e clean

$(STAMP)/installed: pyproject.toml
	@mkdir -p $(STAMP)
	$(PYTHON) -m pip install -q -e '.[test]'
	@touch $@

install: $(STAMP)/installed

# Builds kube-apiserver, controller-manager, scheduler, kubectl, etcd and kwok once (cached by version).
build: install
	infragenius devcluster build

up: install
	infragenius devcluster up --name $(CLUSTER)

down:
	infragenius devcluster down --name $(CLUSTER)

status:
	infragenius devcluster status --name $(CLUSTER)

demo: install
	@CLUSTER=$(CLUSTER) $(PYTHON) scripts/demo.py

# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
define run_pytest
	@$(PYTHON) -m pytest $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests in $(1): failing"; exit 1; fi; exit $$rc
endef

test: install
	$(call run_pytest,tests)

test-unit: install
	$(call run_pytest,tests/unit)

test-e2e: install
	$(call run_pytest,tests/e2e)

clean:
	rm -rf $(STAMP) .pytest_cache

# README.md's configuration table, generated from infragenius.settings.Settings (`--check` in tests).
.PHONY: docs
docs:
	PYTHONPATH=operator $(PYTHON) -m infragenius_devtools.docsgen
