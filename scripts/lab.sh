#!/usr/bin/env bash
# README command 1: install what is needed, then run knockd for real in a self-contained lab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/test/lab/demo.js
