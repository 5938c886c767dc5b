#!/usr/bin/env bash
# The server suites in two lanes at once. The second lane runs the moto contract suites (test:moto: most of their
# time is spent waiting for CloudWatch minutes to be published and baked), the SIGKILL chaos suite (test:chaos: most
# of its time is spent waiting for killed activities' heartbeat timeouts) and the upgrade check (test:upgrade:
# histories recorded with the previous release, replayed on this code); the first lane every other server suite
# (test:mocha). Each runs its own servers on free ports. The second lane's output is kept in a file and printed after
# the first lane's, so that neither interleaves; the exit status fails if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp "${TMPDIR:-/tmp}/runbook-test-moto-XXXXXX.log")
# A session of its own, so that an interrupted run stops the whole lane (npm, mocha and the servers it started).
# Each lane hands out its plans' release ports from a range of its own (RUNBOOK_TEST_PORT_BASE, below the kernel's
# ephemeral ports): 27000 and up for the first lane, 14000 and up for the second. The upgrade check runs the previous
# release's own fixtures, which take 21000-26999 by pid.
RUNBOOK_TEST_PORT_BASE=14000 setsid bash -c 'failed=0
  for s in test:moto test:chaos test:upgrade; do npm run --silent "$s" || failed=1; done
  exit "$failed"' >"$log" 2>&1 &
moto=$!
trap 'kill -- -"$moto" 2>/dev/null; rm -f "$log"' EXIT
echo "test lanes: the moto contract suites, the chaos suite and the upgrade check run beside the others (their output follows at the end)"
RUNBOOK_TEST_PORT_BASE=27000 npm run test:mocha
main_status=$?
wait "$moto"
moto_status=$?
echo
echo "test lanes: the moto contract suites, the chaos suite and the upgrade check (npm run test:moto, test:chaos, test:upgrade), exit status $moto_status"
cat "$log"
[ "$main_status" -eq 0 ] && [ "$moto_status" -eq 0 ]
