#!/bin/sh
# One-shot of docker-compose.yml (service temporal-schema, image temporalio/admin-tools): Temporal's two
# databases and their schemas on the compose PostgreSQL. The connection comes from the environment that
# temporal-sql-tool reads: SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD (never on a command line).
#
# Idempotent, so it runs on every `docker compose up`: create-database ignores an existing database,
# setup-schema -v 0.0 leaves a schema that is already further along, and update-schema applies only the
# versions a database lacks (so pulling a newer admin-tools/server pair upgrades the schema before the
# server starts).
set -eu

schema_root=/etc/temporal/schema/postgresql/v12
for pair in temporal:temporal temporal_visibility:visibility; do
  database=${pair%%:*}
  schema=${pair#*:}
  echo "temporal-schema: $database ($schema schema)"
  SQL_DATABASE=$database temporal-sql-tool create-database
  SQL_DATABASE=$database temporal-sql-tool setup-schema -v 0.0
  SQL_DATABASE=$database temporal-sql-tool update-schema -d "$schema_root/$schema/versioned"
done
echo "temporal-schema: done"
