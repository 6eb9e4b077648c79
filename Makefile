# Developer entry points. `make help` lists them.
# `make demo` and `make test` set up the virtual environment themselves (.venv) on a fresh machine.
VENV := .venv
PYTHON ?= $(VENV)/bin/python

.PHONY: help venv test container-test demo base-image build build-training export

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed  ## create .venv with the pinned inference and test dependencies

test: $(VENV)/.installed  ## set up and run the unit tests (CPU, a few minutes)
	$(PYTHON) -m pytest -q test

container-test: $(VENV)/.installed  ## build the images and test the inference container end to end (needs Docker; minutes)
	PYTHON=$(PYTHON) bash test/container/run_container_test.sh

demo: $(VENV)/.installed  ## set up, simulate the demo subject, enhance it through process.py (--preset cpu), score, picture
	$(PYTHON) -m demo

base-image:  ## local CPU base image from Debian packages (no registry needed); prints its tag
	docker/make-cpu-base.sh

build:  ## inference image (BUILD_ARGS="--base IMAGE --network host ..." to pass options)
	./build.sh $(BUILD_ARGS)

build-training:  ## training image
	./build.sh --training-only $(BUILD_ARGS)

export:  ## image and model tarballs for upload, into ./export (EXPORT_ARGS for options)
	./export.sh $(EXPORT_ARGS)
