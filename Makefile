# One-command setup: every target creates what it needs on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
IMAGE ?= shoal-servo:latest
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: all venv image browser run test lint fmt bench clean

all: test

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The servo image: FROM scratch + Debian's static busybox, built with no registry.
image:
	@command -v busybox >/dev/null || test -x /bin/busybox || { \
	  echo "installing busybox-static from apt"; \
	  (apt-get install -y -q busybox-static || (apt-get update -q && apt-get install -y -q busybox-static)) >/dev/null; }
	@if docker info >/dev/null 2>&1; then \
	  bash node/servo_image/build.sh $(IMAGE); \
	else \
	  echo "Docker Engine unreachable: skipping image build"; \
	  if [ -n "$$SHOAL_REQUIRE_DOCKER" ]; then exit 1; fi; \
	fi

run: $(STAMP) image
	$(BIN)/python -m api.demo

# The cluster page's browser test drives Debian's chromium (Playwright never downloads one here).
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium from apt"; \
	  (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) >/dev/null; }

test: $(STAMP) image browser
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check node gossip placement api sim tests bench
	$(BIN)/ruff format --check node gossip placement api sim tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format node gossip placement api sim tests bench
	$(BIN)/ruff check --fix node gossip placement api sim tests bench

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
