#!/usr/bin/env bash
# README command 2: install what is needed, then run every test (unit and end to end, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
