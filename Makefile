# Two set-up commands for a fresh machine: `make run` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PYTHONHASHSEED := 0
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install run test lint format dev mlflow mlflow-server serve serve-mlflow bench bench-models bench-ladder clean FORCE

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# The Dagster instance's configuration: dagster.yaml (SQLite in .dagster/), or
# DAGSTER_CONFIG=deploy/dagster-postgres.yaml (PostgreSQL, $$DAGSTER_PG_URL) for a shared deployment.
DAGSTER_CONFIG ?= dagster.yaml
# Trainings at once (the `training` pool's limit, kept in the instance): each gets the cores / this
# many CPU threads (pipeline/resources.py, training_threads). 1 gives one training every core. The
# default run has three (the baselines' GRU4Rec, RIB on two variants): run together, they share the
# cores until the last one ends, where with two slots the third waits for a free one.
TRAINING_SLOTS ?= 3
# Steps at once (Dagster's multiprocess executor; its own default is the number of cores): enough
# for every training slot, so a pool's limit, not the executor, decides how many trainings run.
export DAGSTER_MULTIPROCESS_EXECUTOR_MAX_CONCURRENT ?= $(shell n=$$(nproc); echo $$(( n > $(TRAINING_SLOTS) ? n : $(TRAINING_SLOTS) )))
$(DAGSTER_HOME)/dagster.yaml: $(DAGSTER_CONFIG) $(STAMP) FORCE
	@mkdir -p $(DAGSTER_HOME)
	@cmp -s $(DAGSTER_CONFIG) $@ || cp $(DAGSTER_CONFIG) $@
	@$(BIN)/dagster instance concurrency set training $(TRAINING_SLOTS) >/dev/null
FORCE:

# The whole pipeline on the built-in default (synthetic) data, then the results table.
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster asset materialize -m pipeline.definitions --select '*'
	@$(BIN)/rib table artifacts/comparison

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The Dagster UI on 127.0.0.1 with run history kept in .dagster/.
dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m pipeline.definitions -h 127.0.0.1 -p 3000

# The MLflow UI on 127.0.0.1 over the project's SQLite store.
mlflow: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000 --workers 1

# A shared MLflow tracking server and registry: backend store on PostgreSQL, artifacts under
# MLFLOW_ARTIFACTS; point the pipeline at it with MLFLOW_TRACKING_URI=http://<host>:5000.
MLFLOW_BACKEND ?= postgresql+psycopg2://mlflow@127.0.0.1:5432/mlflow
MLFLOW_ARTIFACTS ?= $(CURDIR)/mlartifacts
mlflow-server: install
	$(BIN)/mlflow server --backend-store-uri $(MLFLOW_BACKEND) --artifacts-destination $(MLFLOW_ARTIFACTS) --host 127.0.0.1 --port 5000 --workers 2

# Serve the registered champion on 127.0.0.1:5001 (POST /invocations, see README): `rib serve`, the
# registered pyfunc behind uvicorn with micro-batching (settings in `serving:` of params.yaml).
serve: install
	MLFLOW_TRACKING_URI=sqlite:///mlflow.db $(BIN)/rib serve

# The same champion under MLflow's own server (the reference; slower: README) on 127.0.0.1:5002.
serve-mlflow: install
	MLFLOW_TRACKING_URI=sqlite:///mlflow.db $(BIN)/mlflow models serve -m models:/rib@champion --env-manager local -h 127.0.0.1 -p 5002 -w 2

bench: install
	$(BIN)/python benchmarks/features_10m.py
	$(BIN)/python benchmarks/train_throughput.py --jd ../shared/data/jd/appliances.txt --sampled 0 1024 --plain ../shared/bench/plain_loop.py

MODELS := POP S-POP "S-POP Visits" Item-KNN S-POP+Item-KNN SKNN V-SKNN BPR-MF Word2vec "Word2vec Avg" GRU4Rec "GRU4Rec Visits" NARM "NARM Visits" SASRec "SASRec Visits" SR-GNN MKM-SR EMBSR RIB RIB-Attention
VARIANTS := visits sku sku_activity sku_dwell sku_micro sku_micro_interval

# The full comparison (every model on the variants it reads, three session splits) on both JD samples, the tuned settings.
bench-models: install
	for data in appliances computers; do \
	  $(BIN)/rib --params docs/examples/jd_benchmark.yaml benchmark ../shared/data/jd/$$data.txt --format jd --folds 3 \
	    --out bench_out/$$data --models $(MODELS) --variants $(VARIANTS) || exit 1; done

# The micro-behavior ladder (RIB on Visits, SKU, SKU+Micro-behaviors) on the real logs, 3 folds x 3 seeds.
bench-ladder: install
	$(BIN)/python benchmarks/micro_ladder.py --seeds 3 --out bench_out/micro_ladder

clean:
	rm -rf artifacts .dagster .pytest_cache .ruff_cache mlflow.db mlartifacts
