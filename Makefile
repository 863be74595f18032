# The two set-up commands of the README. Each creates .venv and installs featurekit first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install

# Installs featurekit's dbt package (dbt deps), builds the whole example here with dbt
# (warehouse.duckdb, every test), publishes the
# online snapshot (online/), writes a training set,
# then runs the skew story in demo-output/.
demo: $(VENV)/.installed
	$(BIN)/featurekit dbt deps
	$(BIN)/featurekit dbt build
	$(BIN)/featurekit publish
	$(BIN)/python -m featurekit train-set seeds/churn_labels.csv --feature-set churn_model -o train.parquet
	$(BIN)/featurekit demo --workdir demo-output

test: $(VENV)/.installed
	$(BIN)/python -m pytest

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $@
