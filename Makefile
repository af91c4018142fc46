# adaptc: the two commands a new user types (see README.md).
#   make demo   set up .venv and compile + check the bundled model
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test clean

$(BIN)/adaptc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@

setup: $(BIN)/adaptc
	@command -v gcc >/dev/null || { echo "adaptc needs gcc (apt-get install -y gcc)"; exit 1; }

demo: setup
	$(BIN)/adaptc demo

test: setup
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) adaptc-out .pytest_cache
