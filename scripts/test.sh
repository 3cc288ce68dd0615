#!/usr/bin/env bash
# README command 2: install what is needed, then run every test (as root):
#   1. `npm test`: unit and end-to-end tests against the host's firewalld;
#   2. the firewalld version matrix: the end-to-end files door-state, faults,
#      spa, lab-release and every test/e2e/fw-*.test.ts again, once per Debian
#      release with KNLAB_FIREWALLD=<release> (bullseye 0.9.3, trixie 2.3.1,
#      sid 2.5.x; bookworm's 1.3.3 is the host's, step 1). The release roots
#      are built first (cached under /var/cache/knockd-test; a fresh machine
#      builds them here, see README); a root that cannot be built FAILS its
#      release, it is never skipped. Releases run KNOCKD_MATRIX_JOBS (default
#      2) at a time.
# Prints a summary per run and ends with one line "N passed, N failed" over
# everything; exits non-zero on any failure.
#
# Environment: KNOCKD_MATRIX (default "bullseye trixie sid"; "" = no matrix),
# KNOCKD_MATRIX_JOBS, KNOCKD_MATRIX_FILES (the e2e files by name, default
# "door-state faults spa lab-release fw-*"), KNOCKD_TEST_LOGS (directory for the logs; default a
# new /tmp/knockd-test.XXXXXX), KNOCKD_SKIP_NPM_TEST=1 (matrix only),
# KNOCKD_SKIP_SETUP=1 (no scripts/setup.sh; `npm run test:matrix` sets both).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${KNOCKD_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup.sh || { echo "test: scripts/setup.sh failed" >&2; exit 1; }
fi

MATRIX=${KNOCKD_MATRIX-bullseye trixie sid}
JOBS=${KNOCKD_MATRIX_JOBS:-2}
LOGS=${KNOCKD_TEST_LOGS:-$(mktemp -d /tmp/knockd-test.XXXXXX)}
mkdir -p "$LOGS"
echo "test: logs in $LOGS"
T0=$(date +%s)

# "PASSED FAILED" of a node --test TAP log: its closing summary (failed and
# cancelled count as failed); a run that ended without one counts as 1 failed.
counts() {
  awk '/^# pass /{p=$3} /^# fail /{f=$3} /^# cancelled /{c=$3}
       END{ if (p == "") print 0, 1; else print p, f + c }' "$1"
}
# The names of the failed tests of a TAP log (nested ones indented).
failures() {
  grep -E '^ *not ok ' "$1" | sed -E 's/^( *)not ok [0-9]+ - /\1  /' | head -40
}
mins() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

declare -a SUMMARY=()
TOTAL_PASS=0
TOTAL_FAIL=0
add() { # LABEL LOG SECONDS
  local p f
  read -r p f < <(counts "$2")
  TOTAL_PASS=$((TOTAL_PASS + p))
  TOTAL_FAIL=$((TOTAL_FAIL + f))
  SUMMARY+=("$(printf '%-40s %4d passed, %3d failed  (%s)  %s' "$1" "$p" "$f" "$(mins "$3")" "$2")")
  [ "$f" -eq 0 ] || SUMMARY+=("$(failures "$2")")
}

# --- 0. format and lint -------------------------------------------------------
s=$(date +%s)
npm run --silent format:check > "$LOGS/format.log" 2>&1; FMT=$?
npm run --silent lint > "$LOGS/lint.log" 2>&1; LINT=$?
tail -n 20 "$LOGS/format.log" "$LOGS/lint.log"
TOTAL_PASS=$((TOTAL_PASS + (FMT == 0) + (LINT == 0)))
TOTAL_FAIL=$((TOTAL_FAIL + (FMT != 0) + (LINT != 0)))
SUMMARY+=("$(printf '%-40s format:check rc %d, lint rc %d  (%s)  %s' 'format and lint' "$FMT" "$LINT" "$(mins $(($(date +%s) - s)))" "$LOGS/lint.log")")

# --- 1. npm test (host firewalld) --------------------------------------------
if [ "${KNOCKD_SKIP_NPM_TEST:-0}" != 1 ]; then
  s=$(date +%s)
  npm test 2>&1 | tee "$LOGS/npm-test.log"
  HOSTFW=$(firewall-cmd --version 2>/dev/null || echo '?')
  add "host firewalld $HOSTFW: npm test" "$LOGS/npm-test.log" $(($(date +%s) - s))
else
  npm run build >/dev/null || { echo "test: npm run build failed" >&2; exit 1; }
fi

# --- 2. the firewalld version matrix -----------------------------------------
if [ -n "$MATRIX" ]; then
  # The roots, all at once (network-bound); a build's output goes to its log.
  declare -A VERSION=()
  s=$(date +%s)
  for rel in $MATRIX; do
    node -e '
      require("./dist/test/lab/fw-roots.js").ensureFwRoot(process.argv[1]).then(
        (r) => console.log(`${r.version} ${r.path} built in ${r.builtSeconds.toFixed(0)} s`),
        (e) => { console.error(e.message); process.exit(1); });
    ' "$rel" > "$LOGS/root-$rel.log" 2>&1 &
  done
  wait
  echo "test: release roots ready after $(mins $(($(date +%s) - s)))"
  FILES=()
  for n in ${KNOCKD_MATRIX_FILES:-door-state faults spa lab-release fw-*}; do
    for f in dist/test/e2e/$n.test.js; do [ -e "$f" ] && FILES+=("$f"); done
  done
  echo "test: matrix files: ${FILES[*]#dist/test/e2e/}"
  run_release() { # REL: one node --test run of FILES against that release's firewalld
    local rel=$1 s
    s=$(date +%s)
    KNLAB_FIREWALLD=$rel node --test --test-concurrency=1 --test-reporter=tap "${FILES[@]}" > "$LOGS/matrix-$rel.log" 2>&1
    echo $(($(date +%s) - s)) > "$LOGS/matrix-$rel.seconds"
  }
  running=0
  for rel in $MATRIX; do
    if ! grep -q '^[0-9]' "$LOGS/root-$rel.log"; then
      # No root: the release fails (the reason is in its log), its tests cannot run.
      cp "$LOGS/root-$rel.log" "$LOGS/matrix-$rel.log"
      printf '# root of %s could not be built\nnot ok 1 - the firewalld root of %s\n# pass 0\n# fail 1\n' "$rel" "$rel" >> "$LOGS/matrix-$rel.log"
      echo 0 > "$LOGS/matrix-$rel.seconds"
      continue
    fi
    echo "test: $rel: firewalld $(cut -d' ' -f1 "$LOGS/root-$rel.log")"
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
    run_release "$rel" &
    running=$((running + 1))
  done
  wait
  for rel in $MATRIX; do
    v=$(grep -o '^[0-9][^ ]*' "$LOGS/root-$rel.log" || echo '?')
    add "$rel firewalld $v: matrix" "$LOGS/matrix-$rel.log" "$(cat "$LOGS/matrix-$rel.seconds")"
  done
fi

echo
echo "=== summary ($(mins $(($(date +%s) - T0))) in all; logs in $LOGS)"
printf '%s\n' "${SUMMARY[@]}"
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
