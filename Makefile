# Vitrine — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: install run test lint types pytest test-e2e test-faults bench check-deploy asyncapi check-asyncapi clean

install:  ## Install uv (if missing) and the locked workspace into .venv
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --frozen --quiet

run: install  ## Embedded stack + all services in the foreground, playing the 2022 demo
	@$(UV) run vitrine run

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .

types: install  ## mypy strict over the code, its tests and the benchmarks (pyproject [tool.mypy])
	$(UV) run mypy shared/src services/*/src shared/tests tests benchmarks services/*/tests

pytest: install
	$(UV) run pytest -q -m "not faults"

test: lint types pytest  ## The whole gate: lint + types + tests (what CI runs)

test-e2e: install  ## The cross-service end-to-end tests alone (CI runs them on Tansu too)
	$(UV) run pytest -q tests -m "not faults"

test-faults: install  ## Fault suite: kills services, the broker and the database
	$(UV) run pytest -q -m faults

bench: install  ## Benchmarks on Apache Kafka and Tansu side by side, with raw baselines and idle CPU → docs/PERFORMANCE.md
	$(UV) run python -m benchmarks

check-deploy:  ## Validate docker-compose.yml, the Kustomize manifests and the Dockerfile
	bash deploy/check.sh

asyncapi: install  ## Regenerate docs/asyncapi/*.json (and CONTRACT.md's tables) from the code
	$(UV) run vitrine asyncapi

check-asyncapi:  ## Validate docs/asyncapi/*.json with the official AsyncAPI parser (Node 20, npm)
	npm ci --prefix tools/asyncapi-check --no-audit --no-fund --loglevel=error
	node tools/asyncapi-check/check.mjs

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
