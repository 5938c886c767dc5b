#!/usr/bin/env bash
# The full profile in two lanes at once: the moto contract suites (test:moto: most of their time is spent waiting for
# CloudWatch minutes to be published and baked) beside every other server suite (test:mocha). Each lane is its own
# mocha process with its own servers on free ports. The moto lane's output is kept in a file and printed after the
# other lane's, so that neither interleaves; the exit status fails if either lane failed.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp "${TMPDIR:-/tmp}/runbook-test-moto-XXXXXX.log")
# A session of its own, so that an interrupted run stops the whole lane (npm, mocha and the servers it started).
setsid npm run --silent test:moto >"$log" 2>&1 &
moto=$!
trap 'kill -- -"$moto" 2>/dev/null; rm -f "$log"' EXIT
echo "test lanes: the moto contract suites run beside the others (their output follows at the end)"
npm run test:mocha
main_status=$?
wait "$moto"
moto_status=$?
echo
echo "test lanes: the moto contract suites (npm run test:moto), exit status $moto_status"
cat "$log"
[ "$main_status" -eq 0 ] && [ "$moto_status" -eq 0 ]
