#!/bin/sh
# One-shot of docker-compose.yml (service temporal-setup, image temporalio/admin-tools): creates the runbook
# namespace and registers the custom search attributes that runbook workflows upsert.
#
#   register-search-attributes.sh NAME=TYPE...     e.g. RunbookService=Keyword RunbookRtoSeconds=Double
#
# Environment: TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE (read by the temporal CLI itself),
# TEMPORAL_NAMESPACE_RETENTION (default 30d), TEMPORAL_WAIT_ATTEMPTS (default 60, 2 s apart).
#
# Idempotent, so it runs on every `docker compose up`: an existing namespace is kept, and an attribute that
# already exists with the same type is left alone. An attribute registered with another type fails the run
# (a type cannot be changed in place). It ends by listing the namespace's attributes and failing unless
# every one asked for is there with its type.
set -eu

if [ "$#" -eq 0 ]; then
  echo "usage: $0 NAME=TYPE..." >&2
  exit 2
fi
namespace=${TEMPORAL_NAMESPACE:-default}
export TEMPORAL_NAMESPACE="$namespace"
attempts=${TEMPORAL_WAIT_ATTEMPTS:-60}

attempt=1
until temporal operator cluster health >/dev/null 2>&1; do
  if [ "$attempt" -ge "$attempts" ]; then
    echo "temporal-setup: Temporal at ${TEMPORAL_ADDRESS:-localhost:7233} is not serving after $attempts attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

if temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; then
  echo "temporal-setup: namespace $namespace exists"
else
  # Another setup run may create it at the same moment: describe again before calling that a failure.
  temporal operator namespace create --namespace "$namespace" --retention "${TEMPORAL_NAMESPACE_RETENTION:-30d}" ||
    temporal operator namespace describe --namespace "$namespace" >/dev/null
  echo "temporal-setup: namespace $namespace created"
fi

# The type the namespace has for attribute $1 (e.g. Keyword), or nothing.
registered_type() {
  temporal operator search-attribute list 2>/dev/null | awk -v name="$1" '$1 == name { print $2 }'
}

same_type() {
  [ "$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" = "$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')" ]
}

for pair in "$@"; do
  name=${pair%%=*}
  type=${pair#*=}
  if [ -z "$name" ] || [ -z "$type" ] || [ "$name" = "$pair" ]; then
    echo "temporal-setup: $pair is not NAME=TYPE" >&2
    exit 2
  fi
  # A new namespace can take a moment to accept search attributes: retry, then judge by what is registered.
  attempt=1
  until output=$(temporal operator search-attribute create --name "$name" --type "$type" 2>&1); do
    existing=$(registered_type "$name")
    if [ -n "$existing" ] && same_type "$existing" "$type"; then
      break # already exists with this type: nothing to do
    fi
    if [ -n "$existing" ] || [ "$attempt" -ge 5 ]; then
      echo "temporal-setup: cannot register $name as $type: $output" >&2
      exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
  done
done

missing=0
for pair in "$@"; do
  name=${pair%%=*}
  type=${pair#*=}
  existing=$(registered_type "$name")
  if [ -n "$existing" ] && same_type "$existing" "$type"; then
    echo "temporal-setup: $name $existing"
  else
    echo "temporal-setup: $name should be $type, is ${existing:-missing}" >&2
    missing=1
  fi
done
exit "$missing"
