#!/usr/bin/env bash
# deploy.sh: simulated deploy of a given version (ScriptMesh example).
# Params: version (required), e.g. v2.4.1
set -euo pipefail

if [[ -z "${version:-}" ]]; then
  echo "deploy.sh: missing required param 'version'" >&2
  exit 2
fi
echo "→ Deploying ${version} on $(hostname)"
echo "  pulling image app:${version} ..."
sleep 0.5
echo "  restarting service ..."
sleep 0.5
echo "✓ ${version} is live"
