# genlab: `make repro` runs the pipeline, `make test` the fast tests; both set everything up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup data-source repro test test-all browser screenshot lint ui bench bench-unet bench-sampling profile-unet check-params clean-tracking sync-tracking

setup: $(VENV)/.installed data-source

# Exact versions from requirements.lock (pip freeze of a working install).
$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Fashion-MNIST from Debian's dataset-fashion-mnist and the text corpus from Debian's fortunes
# when we can install them (root on Debian); otherwise the fetch stage falls back to
# torchvision's download, and the text stage says what to install.
FORTUNES_DIR := /usr/share/games/fortunes
data-source:
	@pkgs=""; \
	[ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] || pkgs="$$pkgs dataset-fashion-mnist"; \
	[ -d $(FORTUNES_DIR) ] || pkgs="$$pkgs fortunes"; \
	if [ -n "$$pkgs" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$pkgs with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; \
	  else echo "note: missing$$pkgs (fetch tries torchvision's download; text needs fortunes)"; fi; \
	fi

repro: setup
	dvc repro

check-params: setup
	$(PY) -m stages.check_params

# pytest-xdist: TEST_WORKERS processes, each test file on one worker (module fixtures, such as
# the end-to-end pipeline's one `dvc repro`, are then built once); TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: setup
	$(PYTEST)

test-all: setup browser
	$(PYTEST) -m "not gpu"

# Debian's chromium + chromedriver for tests/browser (Selenium drives the system browser).
browser:
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium chromium-driver with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null; \
	  else echo "note: chromium / chromedriver missing: tests/browser will be skipped"; fi; }

# docs/img/report.png: the generated report (after make repro) in headless chromium.
screenshot: setup browser
	$(PY) scripts/screenshot.py reports/index.html docs/img/report.png --width 1200 --height 1000

lint: setup
	$(VENV)/bin/ruff check src stages tests benchmarks

# Replay what stages spooled while the MLflow store was unreachable (mlspool/), and mark runs
# whose process is gone KILLED. Stages do it too when they start; this does it now.
sync-tracking: setup
	$(PY) -m stages.sync_tracking

ui: setup
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db -w 1 --host 127.0.0.1 --port 5000

bench: setup
	$(PY) benchmarks/bench_scratch_conv.py

# Diffusion speed (meant for a GPU; on a CPU they only smoke-test the path, so shrink them).
# BENCH_ARGS passes options through, e.g. make bench-unet BENCH_ARGS="--variants compiled".
bench-unet: setup
	$(PY) benchmarks/gpu/bench_unet.py $(BENCH_ARGS)

bench-sampling: setup        # needs models/edm_fmnist.pt (dvc repro train@edm_fmnist)
	$(PY) benchmarks/bench_sampling.py edm_fmnist $(BENCH_ARGS)

profile-unet: setup
	$(PY) benchmarks/gpu/profile_unet.py $(BENCH_ARGS)
