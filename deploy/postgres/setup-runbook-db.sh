#!/bin/sh
# One-shot of docker-compose.yml (service postgres-setup, image postgres): the orchestrator's own role and
# database on the compose PostgreSQL, and the apps' databases that the worker's deploys migrate.
#
# Connection: the libpq variables PGHOST, PGPORT, PGUSER (a superuser), PGPASSWORD, PGDATABASE.
# RUNBOOK_DB_USER (default runbook) and RUNBOOK_DB_PASSWORD: the worker's role, LOGIN CREATEDB and nothing
#   more: restore drills create and drop their target databases, which the role then owns.
# RUNBOOK_DB_NAME (default runbook): the orchestrator's database (src/stack/postgres.ts ORCHESTRATOR_DB).
# RUNBOOK_APP_DATABASES: space-separated names of app databases to create, owned by the role (e.g. the
#   sample's "shop shop_staging shop_demo").
#
# Idempotent, so it runs on every `docker compose up`: missing objects are created, and the role's password
# is set to RUNBOOK_DB_PASSWORD each time (change the secret and run `up` again to rotate it). Values reach
# SQL only as psql variables (:'name' quotes them), never spliced into the statements; the password is read
# from the environment by psql itself (\getenv), so it is on no command line.
set -eu

: "${RUNBOOK_DB_PASSWORD:?RUNBOOK_DB_PASSWORD must be set}"
role=${RUNBOOK_DB_USER:-runbook}
database=${RUNBOOK_DB_NAME:-runbook}
if [ "$role" = "${PGUSER:-}" ]; then
  echo "postgres-setup: RUNBOOK_DB_USER must not be the superuser PGUSER ($role)" >&2
  exit 2
fi

attempt=1
until pg_isready --quiet; do
  if [ "$attempt" -ge 30 ]; then
    echo "postgres-setup: PostgreSQL at ${PGHOST:-local socket} is not ready" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 -v role="$role" -v database="$database" <<'SQL'
\getenv password RUNBOOK_DB_PASSWORD
SELECT format('CREATE ROLE %I', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec
SELECT format('ALTER ROLE %I WITH LOGIN CREATEDB NOSUPERUSER NOCREATEROLE PASSWORD %L', :'role', :'password')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database')
\gexec
SQL
echo "postgres-setup: role $role, database $database"

for app_database in ${RUNBOOK_APP_DATABASES:-}; do
  psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 -v role="$role" -v database="$app_database" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database')
\gexec
SQL
  echo "postgres-setup: app database $app_database"
done
