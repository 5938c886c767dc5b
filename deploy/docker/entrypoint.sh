#!/bin/sh
# Entrypoint of the worker image (Dockerfile: /app/deploy/docker/entrypoint.sh under tini). With the worker's command (node dist/worker.js) the container
# is the single-host platform's host, so first it brings up what `runbook up` would have beside the worker:
#
#   - HAProxy, started by the project's own code (src/stack/haproxy.ts) with its configuration, admin and
#     master sockets under $RUNBOOK_HOME/haproxy, where the worker's router rewrites and reloads it.
#     Its frontends listen inside this container only (the router binds 127.0.0.1).
#   - pg_dump/pg_restore come from the image (postgresql-client-15); app releases are child processes of
#     the worker, in this container, with their pid files and logs under $RUNBOOK_HOME/releases.
#
# One host per RUNBOOK_HOME: an exclusive lock on $RUNBOOK_HOME/host.lock, held for the life of the worker,
# makes a second container on the same volume (a second replica) stop with a message instead of starting a
# second HAProxy over the first one's sockets and adopting releases it cannot see.
#
# Any other command (`docker compose run worker runbook list`, a shell) runs as is, without HAProxy or lock.
set -eu

if [ "${1:-}" != node ] || [ "${2:-}" != dist/worker.js ]; then
  exec "$@"
fi

: "${RUNBOOK_HOME:?RUNBOOK_HOME must be set (the data folder: HAProxy, releases, snapshots)}"
app_dir=$(cd "$(dirname "$0")/../.." && pwd)
# The data folder and everything the project writes in it are private to this user (docs/security.md).
mkdir -p "$RUNBOOK_HOME"
chmod 700 "$RUNBOOK_HOME"

umask_before=$(umask)
umask 077
exec 9>>"$RUNBOOK_HOME/host.lock"
umask "$umask_before"
if ! flock --nonblock 9; then
  echo "runbook-entrypoint: another worker container holds $RUNBOOK_HOME (host.lock)." >&2
  echo "  The single-host platform runs one worker per host: keep WORKER_REPLICAS=1 (docs/docker.md)." >&2
  exit 1
fi

RUNBOOK_APP_DIR=$app_dir node -e '
const path = require("node:path");
const dist = path.join(process.env.RUNBOOK_APP_DIR, "dist");
const { resolveStackSettings } = require(path.join(dist, "stack", "settings"));
const { haproxyComponent } = require(path.join(dist, "stack", "haproxy"));
const settings = resolveStackSettings(process.env, { home: process.env.RUNBOOK_HOME });
haproxyComponent
  .start({ settings, log: (line) => console.log(`runbook-entrypoint: ${line}`) })
  .then((address) => console.log(`runbook-entrypoint: haproxy ${address}`))
  .catch((err) => {
    console.error(`runbook-entrypoint: HAProxy did not start: ${err.message}${err.fix ? `\n  fix: ${err.fix}` : ""}`);
    process.exit(1);
  });
'

cd "$app_dir"
exec "$@"
