# The two commands of the README. Each sets up what is missing first (scripts/bootstrap.sh).
PY := .venv/bin/python
export HF_HUB_OFFLINE ?= 1

.PHONY: setup train test
setup:
	@bash scripts/bootstrap.sh

train: setup  ## the default recipe: char-level GPT on Shakespeare, CPU, a few minutes
	$(PY) -m recipes.train $(ARGS)

test: setup  ## the whole test suite (CPU)
	$(PY) -m pytest $(ARGS)
