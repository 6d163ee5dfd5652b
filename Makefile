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

.PHONY: help up down clean ps status logs build test chaos bench venv scale autoscale failback promote rebuild failover-times console

help: ## list the verbs
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  options: NODE=<node> for logs, promote and rebuild; SCENARIO=<name> for chaos; M=<markers> T=<pytest args> for test; JSON=1 for status and lag"

$(VENV)/.ready: requirements.txt app/requirements.txt
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

status: venv ## per node: role, health; VIP holders; the writer; replication links (JSON=1)
	@$(LAB) status $(if $(JSON),--json)

ps: status ## the same as status

.PHONY: lag
lag: venv ## replication lag per link in ms, from heartbeats (WATCH=1 live, JSON=1)
	@$(LAB) lag $(if $(WATCH),--watch) $(if $(JSON),--json)

scale: venv ## run WEB=n web nodes (1-8) and/or WORKERS=n job workers (0-4); removed ones are drained first
	@test -n "$(WEB)$(WORKERS)" || { echo "usage: make scale WEB=<1-8> and/or WORKERS=<0-4>"; exit 2; }
	@$(if $(WEB),$(LAB) scale $(WEB))
	@$(if $(WORKERS),$(LAB) scale-workers $(WORKERS))

autoscale: venv ## scale the web tier with its load between MIN and MAX nodes (default 2-6; TARGET=0.6 busy); Ctrl-C stops
	@$(LAB) autoscale $(if $(MIN),--min $(MIN)) $(if $(MAX),--max $(MAX)) $(if $(TARGET),--target $(TARGET))

failback: venv ## send writes back to the usual writer (master1) once it has caught up
	@$(LAB) failback

promote: venv ## move writes to NODE=<source> (a planned switchover; FORCE=1 skips the no-loss checks)
	@test -n "$(NODE)" || { echo "usage: make promote NODE=<source> [FORCE=1]"; exit 2; }
	@$(LAB) promote $(NODE) $(if $(FORCE),--force)

rebuild: venv ## re-seed NODE=<db node> from the writer (a quarantined node, or one whose data volume was lost)
	@test -n "$(NODE)" || { echo "usage: make rebuild NODE=<db node>"; exit 2; }
	@$(LAB) rebuild $(NODE)

console: venv ## the live diagram in a browser, faults a click away (127.0.0.1:8405; Ctrl-C stops it)
	@$(LAB) console $(if $(PORT),--port $(PORT))

logs: venv ## follow logs (all nodes, or NODE=<node>)
	@$(LAB) logs $(NODE)

test: venv ## run the tests against the running lab (after make up)
	@$(PY) -m pytest -m "$(M)" $(T)

bench: venv ## measure scaling out/up, the DB ceiling, cache/replica lift, LB cost, failovers, lag (reports/bench/)
	@$(LAB) bench

failover-times: venv ## kill nodes RUNS=n times each, time until service is back (FAULTS=web_vip,writer,...)
	@$(LAB) failover-times $(if $(RUNS),--runs $(RUNS)) $(if $(FAULTS),--faults $(FAULTS))

chaos: venv ## run the chaos scenarios (all, SCENARIO=<names>, LIST=1 lists them); report in reports/chaos/
	@$(LAB) chaos $(if $(LIST),--list) $(if $(SCENARIO),--scenario "$(SCENARIO)")
