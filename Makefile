# adaptc: the two commands a new user types (see README.md).
#   make demo   set up .venv (and the Arm toolchain) and compile + check the bundled model
#   make test   set up .venv and the Arm toolchain (Debian packages) and run the test suite
#   make lint   ruff over the whole tree (configured in pyproject.toml)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup toolchain demo test lint clean

$(BIN)/adaptc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@

setup: toolchain $(BIN)/adaptc

toolchain:
	@scripts/install-toolchain.sh

demo: setup
	$(BIN)/adaptc demo

test: setup
	$(BIN)/pytest -q -n auto --dist loadfile

lint: $(BIN)/adaptc
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) adaptc-out .pytest_cache
