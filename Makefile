# The interface to leadline. A fresh clone needs only `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint dashboards promtool bench soak audit clean

LINKS := $(VENV)/.linked
# The folders installed as leadline.<name> (pyproject.toml's package-dir).
PACKAGES := config events aggregators serving streams state embedded simulator cli

install: $(LINKS)

# Strict editable install: build/__editable__*/leadline/ holds links to the source files,
# so `import leadline.streams` and mypy see exactly what a wheel would install (the default
# editable hook hides the code from mypy). A module added or removed changes its folder's
# time and relinks.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 'setuptools==84.2.1'  # venv's 65.5.0: CVE-2022-40897
	$(PY) -m pip install --quiet -e '.[embedded,test]' --config-settings editable_mode=strict
	touch $(STAMP)

$(LINKS): $(STAMP) $(PACKAGES)
	$(PY) -m pip install --quiet --no-deps -e . --config-settings editable_mode=strict
	touch $(LINKS)

# promtool + prometheus (Debian's prometheus) and amtool (prometheus-alertmanager) are
# needed by the rule, config and end-to-end Prometheus tests.
promtool:
	@command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus and prometheus-alertmanager packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    prometheus prometheus-alertmanager >/dev/null; }

demo: install
	$(VENV)/bin/leadline demo

test: install promtool
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Throughput, freshness, memory and recovery figures -> docs/performance.md (12-15 min;
# BENCH_EVENTS=100000 make bench for a quick run). Not part of `make test`.
bench: install
	$(PY) -m bench.run

# 30 minutes at 5,000 events/s: scrape time and, compared at rest (--probe; the worker
# starts --backlog seconds behind), RSS and memory in use beyond the state held must stay
# flat; --probe also reports where the worker's memory went (docs/reliability.md).
soak: install
	$(PY) -m reliability.soak --minutes 30 --rate 5000 --probe --backlog 120

# Dependency audit (policy in docs/reliability.md): the checks `make test` runs too
# (tests/security/test_dependency_audit.py; waivers in tests/security/audit-ignore.txt),
# except that a vulnerability service that cannot be used here fails instead of skipping.
audit: install
	LEADLINE_AUDIT_REQUIRED=1 $(PY) -m pytest -q -s -rs tests/security/test_dependency_audit.py

# Regenerate the committed Grafana dashboards from grafana/generate.py.
dashboards: install
	$(PY) -m grafana.generate

clean:
	rm -rf $(VENV) build var .pytest_cache .mypy_cache .ruff_cache .hypothesis
