# Targets a newcomer can guess. Everything runs from a local virtualenv that
# `make` creates and keeps in step with pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_TIMEOUT ?= 120

.PHONY: run test stress bench lint clean redis postgres hosts hosts-sale hosts-down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job: 50 buyers contend for the default stock (data/tickets.json,
# copied so run state never lands in tracked files).
run: $(STAMP)
	mkdir -p var
	cp data/tickets.json var/tickets.json
	@status=0; $(BIN)/tickets --db var/tickets.json buy --buyers 50 --keep-stock || status=$$?; \
	echo; echo "The command is $(BIN)/tickets; '. $(BIN)/activate' puts tickets on your PATH."; \
	exit $$status

# Two or more workers (pytest-xdist), a test file each at a time: the files
# that build network namespaces or hold one server run whole on one worker.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

stress: $(STAMP)
	$(BIN)/python -m pytest -q -m stress -p no:cacheprovider -o addopts="-ra --strict-markers" --timeout 1800

bench: $(STAMP)
	$(BIN)/python bench/run.py

# A redis-server on 127.0.0.1:6379 (or PORT=...) to try the README's Redis
# commands; Ctrl-C stops it. The binary comes with the dev dependencies.
PORT ?= 6379
redis: $(STAMP)
	$(BIN)/python tests/redis_server.py $(PORT)

# A PostgreSQL 16 server on a Unix socket in a temp folder, to try the docs'
# PostgreSQL commands (it prints the URL); Ctrl-C stops it and removes its
# data. The binaries come with the dev dependencies (pgserver's wheel).
postgres: $(STAMP)
	$(BIN)/python tests/pg_server.py

# Simulated hosts (root: network namespaces): a Redis server and three buyer
# hosts on links of their own with 1 ms +- 0.5 ms delay. `hosts` builds them
# and leaves them up (`hosts-down` removes them); `hosts-sale` runs a named
# sale across them and the merged check, and always tears everything down.
hosts: $(STAMP)
	$(BIN)/python tests/hosts.py up
hosts-sale: $(STAMP)
	$(BIN)/python tests/hosts.py sale --hosts 3 --buyers 300 --delay 1 --jitter 0.5
hosts-down: $(STAMP)
	$(BIN)/python tests/hosts.py down

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

clean:
	@if [ -f var/postgres.folders ]; then \
		while read -r folder; do case "$$folder" in */tickets-pg*) rm -rf "$$folder";; esac; done < var/postgres.folders; \
	fi
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
