# syntax=docker/dockerfile:1
# The runbook worker: `node dist/worker.js`, plus what the single-host platform runs beside it in the same
# container (HAProxy, pg_dump/pg_restore, the app releases). docker-compose.yml builds it; docs/docker.md.
# Both stages use the same pinned base (Debian 12 bookworm, the Debian release whose packages are named below).

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: package.json's allowScripts already denies the only ones in the tree (@swc/core and
# esbuild check or optimise prebuilt binaries that npm installs anyway), and the `prepare` build would run
# before the sources are here. The build runs explicitly below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20.20.2-bookworm-slim
# haproxy: the single-host traffic router. postgresql-client-15: pg_dump/pg_restore for snapshots and
# restore drills (not older than the server: PostgreSQL 15). tini: PID 1, forwards SIGTERM to the worker
# (which drains its tasks) and reaps the exited processes of HAProxy reloads and stopped releases.
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy postgresql-client-15 tini \
  && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
  RUNBOOK_HOME=/var/lib/runbook \
  HAPROXY_SOCKET=/var/lib/runbook/haproxy/admin.sock \
  RUNBOOK_METRICS_PORT=9464
WORKDIR /app
# The code belongs to root and is read-only for the user that runs it.
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY deploy/docker/entrypoint.sh ./deploy/docker/entrypoint.sh
# `runbook` on PATH for `docker compose exec worker runbook ...`; RUNBOOK_HOME owned by the image's
# unprivileged `node` user (uid 1000), so that a new named volume mounted there starts out writable by it.
RUN ln -s /app/bin/runbook.js /usr/local/bin/runbook \
  && mkdir -p /var/lib/runbook \
  && chown node:node /var/lib/runbook

USER node
EXPOSE 9464
# No HEALTHCHECK yet: the natural probe is the metrics endpoint on 9464, which the worker does not serve yet.
ENTRYPOINT ["/usr/bin/tini", "--", "/bin/sh", "/app/deploy/docker/entrypoint.sh"]
CMD ["node", "dist/worker.js"]
