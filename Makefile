# Two commands for a fresh machine: `make demo` and `make test`.
# Both create the virtual environment in $(VENV) and install the library
# (editable) with its test extra; the install is redone when setup.py changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output
PYTEST_ARGS ?=
# Test processes (pytest-xdist). Each may hold a few GiB (whole-model tests),
# so this is not tied to the core count.
TEST_WORKERS ?= 2

.PHONY: install test demo protos clean

$(STAMP): setup.py pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/cmt-demo --output_dir=$(DEMO_DIR)

# Regenerate protos/*_pb2.py after editing a .proto (the sync test fails
# until you do).
protos: $(STAMP)
	$(BIN)/python -m cmt.protos.build_protos

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
