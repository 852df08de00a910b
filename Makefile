# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
DATA   ?= ../shared/data/fsdd

.PHONY: test demo bench clean

# Re-install when the package description changes; the editable install picks up code edits.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest

# The FSDD classification recipe end to end: data dirs, features, digit and speaker models, evaluation,
# results table (stages 0-5; stages 6-7, speaker verification, take a few minutes more).
demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash recipes/fsdd/run.sh --data $(DATA) --stop-stage 5

bench: $(VENV)/.installed
	$(PY) bench/bench_features.py --data $(DATA) --long
	$(PY) bench/bench_classify.py --data $(DATA)
	$(PY) bench/bench_verify.py --data $(DATA)
	$(PY) bench/bench_em.py
	$(PY) bench/bench_kmeans.py
	$(PY) bench/bench_stream.py
	$(PY) bench/bench_corpus.py --data $(DATA)
	$(PY) bench/bench_ivector.py
	$(PY) bench/bench_fuzz.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
