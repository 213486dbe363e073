# casarray: `make demo` and `make test` each do the whole set-up on a fresh Debian
# machine with Python 3.11: a .venv with the package and its test extras, and the
# Debian packages the tests use (installed with apt when missing).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.casarray-installed
# Debian packages the test suite drives as real peers (Postfix with "No configuration":
# no system instance takes port 25; the tests run their own).
DEBIAN_PACKAGES := postgresql dovecot-imapd mutt openssl curl tmux chromium nftables conntrack haproxy keepalived bind9-dnsutils nsd postfix swaks libnet-ssleay-perl davmail-server python3-exchangelib
# and the peers the benchmarks measure against (`make bench`)
BENCH_PACKAGES := wrk nginx-light dnsperf

SUDO := $(if $(filter 0,$(shell id -u)),,$(shell command -v sudo))

.PHONY: demo test check unit setup debian-packages lint format bench clean

demo: setup
	$(BIN)/casarray lab walkthrough

test: setup check
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=30

# The inner loop: the tests that start no process and need no peer (a few minutes here).
unit: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not integration"

# The static checks `make test` runs first: lint, format, the layers (import-linter), types.
check: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

setup: debian-packages $(STAMP)

debian-packages:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "casarray: missing Debian packages:$$missing (no apt-get here; install them by hand)"; \
	  elif [ "$$(id -u)" != 0 ] && [ -z "$(SUDO)" ]; then \
	    echo "casarray: missing Debian packages:$$missing (run as root or install sudo)"; \
	  else \
	    echo "casarray: installing Debian packages:$$missing"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | $(SUDO) debconf-set-selections; \
	    $(SUDO) apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	  fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

lint: setup
	$(BIN)/ruff check src tests bench

format: setup
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: setup
	$(MAKE) debian-packages DEBIAN_PACKAGES="$(BENCH_PACKAGES)"
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/directory.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
