# Every target sets up what it needs first, so each works on a fresh Debian 12 machine.
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3-venv ffmpeg nginx-light prometheus prometheus-alertmanager chromium openssl iproute2 systemd util-linux mariadb-server victoria-metrics
PYTEST_ARGS ?=

.PHONY: run demo test lint generate check-generated test-rules bench clean system-deps venv wheel

# Debian packages the tests drive for real; installed only when one is missing.
system-deps:
	@missing=""; for b in ffmpeg nginx prometheus promtool prometheus-alertmanager amtool chromium openssl ss systemd-analyze setpriv mariadbd mariadb-install-db victoria-metrics; do \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing="$$missing $$b"; done; \
	python3 -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then echo "installing Debian packages (missing:$$missing)"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(APT_PACKAGES); fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,report,demo]'  # demo: make run
	touch $@

venv: $(VENV)/.installed

run: demo
demo: venv
	@command -v ffmpeg >/dev/null || echo "note: ffmpeg not found; the demo uses its built-in stand-in streams (make system-deps installs it)"
	$(VENV)/bin/iptv-exporter demo

test: system-deps venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-rules: system-deps venv
	$(PY) -m pytest tests/test_rules.py tests/test_alertmanager_live.py

lint: venv
	$(VENV)/bin/ruff check exporter tests bench
	$(VENV)/bin/mypy exporter bench tests

# dist/iptv_exporter-*.whl for `pip install` / `pipx install` on a host (docs/deploy.md), with the git
# revision and branch recorded in it for --version and iptv_exporter_build_info.
wheel: venv
	$(PY) -m exporter.buildinfo write
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist . ; status=$$?; rm -f exporter/_build_info.json; exit $$status

generate: venv
	$(PY) -m exporter.dashboards

check-generated: venv
	$(PY) -m exporter.dashboards --check

bench: system-deps venv
	@$(PY) -c 'import pyinstrument' 2>/dev/null || $(PY) -m pip install --quiet -e '.[test,report,demo,bench]'
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
