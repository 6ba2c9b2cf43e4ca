# `make test` and `make book` create .venv from requirements.txt on first use.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

# One BLAS/OpenMP thread per process: the notebooks and test workers run side by side on few cores,
# and oversubscribed BLAS threads made training ~14x slower on 2 cores. (benchmarks/ sets its own.)
export OMP_NUM_THREADS      ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS      ?= 1

.PHONY: test bench clean book

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/coursekit grade --setup-sandbox
	$(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax

# The book: widget JS from the npm registry (pinned in tools/fetch_widgets.sh), MathJax bundled by
# sphinx-mathjax-offline, notebooks executed with jupyter-cache. TOC=/tmp/toc.yml builds a partial book.
TOC     ?= book/_toc.yml
WIDGETS := book/_static/widgets/VERSIONS

$(WIDGETS): tools/fetch_widgets.sh
	tools/fetch_widgets.sh book/_static/widgets

# Lab pages: the solution notebook executed, then released (solutions stripped, figures kept).
LAB_SOURCES := $(wildcard labs/lab*.ipynb)
LAB_PAGES   := $(patsubst labs/%,book/labs/%,$(LAB_SOURCES))

book/labs/%.ipynb: labs/%.ipynb tools/book_labs.py coursekit/labs/release.py $(STAMP)
	$(PY) tools/book_labs.py $< --out book/labs

book: $(STAMP) $(WIDGETS) $(LAB_PAGES)
	@test ! -e _static || { echo "make book: remove the top-level _static/ (use book/_static/)"; exit 1; }
	$(VENV)/bin/jupyter-book build . --toc $(TOC) -W --keep-going

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf _build .pytest_cache .hypothesis
