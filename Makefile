# Two commands do everything on a fresh machine:
#   make demo   set up, then run the main job
#   make test   set up, then run the full test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export STITCHKIT_DATA ?= $(CURDIR)/data

.PHONY: demo demo-networks quickstart test lint format docs setup data clean benchmarks

setup: $(STAMP) data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Offline data: Debian's Fashion-MNIST package, when apt is there and we may use it.
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo "sudo -n" ); \
		echo "installing dataset-fashion-mnist with apt-get"; \
		( $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist ) >/dev/null 2>&1 \
			|| echo "note: could not install dataset-fashion-mnist with apt-get; Fashion-MNIST will be downloaded if the network allows"; \
	fi

# The default study (examples/demo.toml); run again, it continues where it stopped.
demo: setup
	$(BIN)/stitchkit study examples/demo.toml --out runs/demo

# The quick start (examples/quickstart.toml): every kind of unit and the report, in about a minute on 2 cores.
quickstart: setup
	$(BIN)/stitchkit study examples/quickstart.toml --out runs/quickstart

# The networks examples/demo.toml (seeds 0, 1) and examples/seeds.toml (seeds 0–3) stitch are shipped in examples/demo_networks (training them takes
# ~4 min each on 2 cores; the demo's two would be more than half its budget). This re-creates them, weight for weight, on a CPU.
demo-networks: setup
	@for s in 0 1 2 3; do \
		$(BIN)/stitchkit train resnet18 -d fashion --width 32 -e 2 -b 128 -lr 2e-3 -s $$s --train-subset 20000 --no-augment \
			-sf 2 --device cpu --no-progress --overwrite -dir runs/demo-networks/seed$$s || exit 1; \
		cp runs/demo-networks/seed$$s/final.pt examples/demo_networks/resnet18_w32_seed$$s.pt; \
	done

test: setup lint
	$(BIN)/python -m pytest -q

# ruff (configured in pyproject.toml): the checks, and that the code is formatted; `make format` formats it.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The documentation site (docs/, mkdocs.yml) into site/, offline; strict: a broken link, anchor or API
# reference fails the build. The test suite builds it too (tests/test_docs.py), so CI checks it.
docs: setup
	$(BIN)/python -m mkdocs build --strict --site-dir site

benchmarks: setup
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache
