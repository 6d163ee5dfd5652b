# The lab's user interface. `make help` lists the verbs.
# Works with Compose v2 (`docker compose`) and v1 (`docker-compose`),
# auto-detected by scripts/labctl/compose.py (force one with COMPOSE=...).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LAB    := PYTHONPATH=scripts $(PY) -m labctl
# Test selection: make test T="-k replication", make test M=integration
M ?= unit or integration
T ?=

.PHONY: help up down clean ps status logs build test venv

help: ## list the verbs
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  options: S=<node> for logs; M=<markers> T=<pytest args> for test"

$(VENV)/.ready: requirements.txt
	@echo "… creating the Python environment for the lab's tools ($(VENV)/)"
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(VENV)/.ready ## create the Python environment for tools and tests

build: venv ## build every image (makes a Debian base locally if none can be pulled)
	@$(LAB) build

up: venv ## build what is missing, start, wait until healthy and replicating
	@$(LAB) up

down: venv ## stop and remove the containers (data is kept)
	@$(LAB) down

clean: venv ## remove containers, data volumes and generated secrets
	@$(LAB) clean

ps status: venv ## per node: role, health; VIP holders; replication links
	@$(LAB) status

logs: venv ## follow logs (all nodes, or S=<node>)
	@$(LAB) logs $(S)

test: venv ## run the tests against the running lab (after make up)
	@$(PY) -m pytest -m "$(M)" $(T)
