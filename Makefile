# tradebus: the commands a user runs. `make demo` runs the whole stack without Docker;
# `make test` installs what it needs and runs the test suite; `make lint` runs the
# checks (CI runs `make lint` then `make test`, .ci/run).

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
# The Prometheus tools (prometheus, promtool, alertmanager, amtool) from Debian 12's
# packages, extracted into .tools/prometheus (no service installed): for the tests and
# `make demo PROMETHEUS=1` only, so `make install` and `make demo` work on any OS. The
# script pins the versions: changing them there reinstalls.
PROMETHEUS_BIN := $(TOOLS)/prometheus/bin
PROMETHEUS_TOOLS := $(PROMETHEUS_BIN)/.installed
BIN := $(VENV)/bin

export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

# Optional demo arguments: DATA=<dir of recorded raw feeds> DURATION=<seconds>
# SPEED=<replay speed: max (default) or a multiple of real time, e.g. 1>
# PROMETHEUS=1 (also run a real Prometheus with the repo's alert rules and an Alertmanager)
# STAY=1|0 (after the replay keep the stack up until Ctrl+C, or not; default: on in a terminal)
# BOTS=<bot file> (default deploy/config/bots.yaml; e.g. examples/grid-bot/bots.yaml)
DATA ?=
DURATION ?=
SPEED ?=
PROMETHEUS ?=
STAY ?=
BOTS ?=
DEMO_ARGS := $(if $(DATA),--data $(DATA)) $(if $(BOTS),--bots $(BOTS)) $(if $(DURATION),--duration $(DURATION)) \
	$(if $(SPEED),--speed $(SPEED)) $(if $(PROMETHEUS),--with-prometheus) \
	$(if $(STAY),$(if $(filter 0,$(STAY)),--no-stay,--stay))

PYPROJECTS := pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml cli/pyproject.toml examples/*/pyproject.toml)

.PHONY: install cli prometheus-tools demo test test-all bench bench-peers lint format lock clean web-skipped

# Where `make cli` links the tradebus command (on PATH in most distributions' login shells).
CLI_DIR ?= $(HOME)/.local/bin

# The web page (web/, issue 17): built into web/dist when Node.js is present (npm ci when
# web/package-lock.json changes, npm run build when a source changes); skipped otherwise.
NODE := $(shell command -v node 2>/dev/null)
WEB_SOURCES := $(shell find web -path web/node_modules -prune -o -path web/dist -prune -o -type f -print 2>/dev/null)
ifeq ($(NODE),)
WEB_PAGE := web-skipped
else
WEB_PAGE := $(if $(wildcard web/package-lock.json),web/dist/index.html)
endif

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed: $(UV) uv.lock $(PYPROJECTS)
	$(UV) sync --all-packages --frozen
	@touch $@
	@echo "The tradebus command is $(BIN)/tradebus. Put it on PATH: \`source $(BIN)/activate\`" \
		"(this shell), or \`make cli\` (a link in ~/.local/bin, every shell)."

$(PROMETHEUS_TOOLS): deploy/prometheus/install-prometheus-tools.sh
	deploy/prometheus/install-prometheus-tools.sh $(TOOLS)/prometheus
	@touch $@

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund

web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && npm run build
	@touch $@

web-skipped:
	@echo "Node.js not found: the web page (web/dist) is not built; install Node.js 20+ and rerun make install"

install: $(VENV)/.installed $(WEB_PAGE)  ## .venv with every package (pinned by uv.lock), the web page

cli: $(VENV)/.installed  ## put `tradebus` on PATH: a link to .venv/bin/tradebus in CLI_DIR (~/.local/bin)
	@mkdir -p $(CLI_DIR)
	@ln -sfn $(abspath $(BIN))/tradebus $(CLI_DIR)/tradebus
	@echo "linked $(CLI_DIR)/tradebus -> $(abspath $(BIN))/tradebus"
	@case ":$$PATH:" in *":$(CLI_DIR):"*) echo "tradebus is on PATH: try \`tradebus --help\`";; \
		*) echo "$(CLI_DIR) is not on PATH: add \`export PATH=\"$(CLI_DIR):\$$PATH\"\` to your shell's rc";; esac

prometheus-tools: $(PROMETHEUS_TOOLS)  ## prometheus, promtool, alertmanager, amtool into .tools (Debian)

demo: install $(if $(PROMETHEUS),$(PROMETHEUS_TOOLS))  ## run the whole stack: live Binance feed, or DATA=<dir> to replay recordings
	$(BIN)/tradebus demo $(DEMO_ARGS)

test: install $(PROMETHEUS_TOOLS)  ## the test suite (about 15 minutes or less on 2 cores)
	$(if $(NODE),cd web && npm test --silent,@echo "Node.js not found: the web page's unit tests do not run")
	$(BIN)/pytest -m "not slow" -p no:cacheprovider --durations=15

test-all: install $(PROMETHEUS_TOOLS)  ## every test, slow ones included
	$(if $(NODE),cd web && npm test --silent)
	$(BIN)/pytest -p no:cacheprovider

bench: install  ## every benchmark row in one table; prints figures, never fails on them
	$(BIN)/python -m bench $(BENCH_ARGS)

# The peers of issue 21 (hftbacktest; NautilusTrader with a Python >= 3.12) in their own
# virtualenv, .tools/peers/venv (never .venv): bench/peers/install.sh, fast when present.
bench-peers: install  ## install the peers' own venv (.tools/peers) and run only the bench's peers step
	UV_PYTHON= bench/peers/install.sh $(UV) $(TOOLS)/peers
	$(BIN)/python -m bench --only peers $(BENCH_ARGS)

lint: $(VENV)/.installed $(if $(NODE),web/node_modules/.package-lock.json)  ## ruff (lint and format), mypy (zero errors), import-linter contracts, the shipped config files, the web page's types
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/tradebus config check deploy/config/*.yaml examples/*/bots.yaml
	$(if $(NODE),cd web && npm run --silent typecheck,@echo "Node.js not found: the web page's types are not checked")

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: $(UV)  ## re-resolve uv.lock after changing dependencies
	$(UV) lock

clean:
	rm -rf $(VENV) $(TOOLS) var web/dist web/node_modules .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
