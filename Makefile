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

.PHONY: test bench clean book student setup-cells

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

# Live figures: every notebook kernel of the book build first runs tools/live_figures.py's install(), which
# precomputes each slider figure on a grid (<= 30 settings); book/_static/live-figures.js swaps the images.
# A new tools/live_figures.py empties the execution cache (its outputs were made by the old one).
IPYDIR := _build/ipython
LIVE   := $(IPYDIR)/profile_default/startup/00-live-figures.py
BOOK_ENV := IPYTHONDIR=$(CURDIR)/$(IPYDIR)

$(LIVE): tools/live_figures.py
	rm -rf _build/.jupyter_cache
	mkdir -p $(@D)
	printf 'import runpy as _r\n_r.run_path(%s)["install"]()\ndel _r\n' "'$(CURDIR)/tools/live_figures.py'" > $@

# Pages of notebooks with exercises (labs, lectures with exercises): the solution notebook executed, then
# stripped like the student version (figures kept); their buttons point at student/ (book/_ext).
EXERCISE_SOURCES := $(shell grep -l -e '\#\#\# BEGIN SOLUTION' labs/*.ipynb lectures/*.ipynb 2>/dev/null)
EXERCISE_PAGES   := $(addprefix book/,$(EXERCISE_SOURCES))

book/%.ipynb: %.ipynb tools/book_labs.py coursekit/labs/release.py $(LIVE) $(STAMP)
	$(BOOK_ENV) $(PY) tools/book_labs.py $< --out $(@D)

# Regenerate every committed student version (student/labs, student/lectures) and the toc's page names.
student: $(STAMP)
	$(PY) tools/student_versions.py

# Insert/update the setup cell (Colab install + backend switch) in every lecture and lab.
setup-cells: $(STAMP)
	$(PY) tools/notebook_setup.py

book: $(STAMP) $(WIDGETS) $(LIVE) $(EXERCISE_PAGES)
	@test ! -e _static || { echo "make book: remove the top-level _static/ (use book/_static/)"; exit 1; }
	$(PY) tools/student_versions.py --check
	$(BOOK_ENV) $(VENV)/bin/jupyter-book build . --toc $(TOC) -W --keep-going

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf _build .pytest_cache .hypothesis
