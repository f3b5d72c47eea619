# The two commands a new user needs:  `make run` (the main job)  and  `make test`.
VENV ?= .venv
# auto: the full recipe (workflows/fer2013-full.yaml) where a CUDA GPU is, else the CPU one (workflows/fer2013.yaml);
# the first line of `make run` says which. WORKFLOW=path/to.yaml runs that one.
WORKFLOW ?= auto

.PHONY: setup run test test-all bench

setup:
	@bash scripts/setup.sh $(VENV)

run:  # setup, with the review server's venv built alongside (scripts/setup.sh --label-studio)
	@bash scripts/setup.sh $(VENV) --label-studio
	$(VENV)/bin/curate run $(WORKFLOW)

LS_VENV ?= $(CURDIR)/.ls-venv

test:
	@bash scripts/setup.sh $(VENV) --test
	CURATE_LABEL_STUDIO_VENV=$${CURATE_LABEL_STUDIO_VENV:-$(LS_VENV)} $(VENV)/bin/python -m pytest

test-all:
	@bash scripts/setup.sh $(VENV) --test
	CURATE_LABEL_STUDIO_VENV=$${CURATE_LABEL_STUDIO_VENV:-$(LS_VENV)} $(VENV)/bin/python -m pytest -m ''
