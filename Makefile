# ragloom: every target creates/uses the venv in $(VENV) and installs what it needs.
# `make install` installs exactly the versions in $(LOCK) (hash-checked), then ragloom itself
# (editable, no deps). `make lock` re-resolves $(LOCK) from pyproject.toml on purpose; it keeps
# the pins it can, `make lock UPGRADE=1` moves every package to the newest allowed version.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# the extras `make install` (so demo, test, lint, bench) brings: all of them
EXTRAS := local server compile eval postgres ann dev
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export TOKENIZERS_PARALLELISM := false

.PHONY: install test lint bench demo lock clean

$(STAMP): pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q

# mypy cannot follow setuptools' package-dir mapping (the editable install is an import hook), so
# it checks a tree of links laid out as installed: ragloom/{core,tools,prompts,agents,graphs}
# and the `graphs` alias. Paths in its messages read ragloom/core/... for core/...
TYPECHECK := $(VENV)/typecheck
lint: install
	$(VENV)/bin/ruff check .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/ragloom
	for f in ragloom/*; do [ "$$f" = ragloom/alias ] || ln -s "$(CURDIR)/$$f" $(TYPECHECK)/ragloom/; done
	for d in core tools prompts agents graphs; do ln -s "$(CURDIR)/$$d" $(TYPECHECK)/ragloom/$$d; done
	ln -s "$(CURDIR)/ragloom/alias/graphs.py" $(TYPECHECK)/graphs.py
	cd $(TYPECHECK) && "$(CURDIR)/$(VENV)/bin/mypy" --config-file "$(CURDIR)/pyproject.toml" \
		--cache-dir "$(CURDIR)/.mypy_cache"

bench: install
	$(PY) benchmarks/run_all.py

# the reliability suite at full size (fast parts run in `make test`): JSON, then a summary table
.PHONY: reliability
reliability: install
	$(PY) benchmarks/reliability.py

demo: install
	bash examples/demo.sh

# pip-tools (not uv): pip finds the CPU build of torch in the machine's find-links; the hashes
# cover every file of each pinned release, so the lock installs on any platform that has one.
lock:
	test -x $(PY) || python3 -m venv $(VENV)
	test -x $(VENV)/bin/pip-compile || $(PY) -m pip install -q "pip-tools>=7.4"
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade) \
		$(addprefix --extra ,$(EXTRAS)) -o $(LOCK) pyproject.toml

clean:
	rm -rf $(VENV) .ragloom .pytest_cache .mypy_cache .ruff_cache
