# syntax=docker/dockerfile:1.7
#
# forgejo-nsc: one image, both daemons.
#   docker run … IMAGE dispatcher --config /etc/forgejo-nsc/dispatcher.yaml
#   docker run … IMAGE autoscaler --config /etc/forgejo-nsc/autoscaler.yaml
#
# nsc (the Namespace CLI) and forgejo-runner are optional and fetched at build time:
#   docker build --build-arg NSC_VERSION=0.0.558 --build-arg NSC_SHA256=<sha256 of the tarball> .
# Without NSC_VERSION/NSC_URL the image has no nsc: the dispatcher then needs the Compute API
# (namespace.compute_base_url) or an nsc mounted into the container and named by
# namespace.nsc_binary. See docs/deployment.md.

ARG NODE_IMAGE=node:22-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
# better-sqlite3 is a native module: its install script fetches a prebuilt binary and falls back
# to node-gyp, which needs a compiler and python. The node image ships the headers under
# /usr/local/include/node, so node-gyp does not have to download them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev \
 && node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()"

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS tools
ARG TARGETARCH
# nsc release, e.g. 0.0.558; or a full tarball URL in NSC_URL. NSC_SHA256 pins the tarball.
ARG NSC_VERSION=""
ARG NSC_URL=""
ARG NSC_SHA256=""
# forgejo-runner release, e.g. 12.13.2 (linux builds only upstream); or a binary URL in FORGEJO_RUNNER_URL.
ARG FORGEJO_RUNNER_VERSION=""
ARG FORGEJO_RUNNER_URL=""
ARG FORGEJO_RUNNER_SHA256=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl xz-utils \
 && rm -rf /var/lib/apt/lists/*
RUN set -eu; mkdir -p /opt/tools/bin; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    nsc_url="${NSC_URL}"; \
    if [ -z "$nsc_url" ] && [ -n "${NSC_VERSION}" ]; then \
      nsc_url="https://get.namespace.so/packages/nsc/v${NSC_VERSION}/nsc_${NSC_VERSION}_linux_${arch}.tar.gz"; \
    fi; \
    if [ -n "$nsc_url" ]; then \
      curl -fsSL --retry 3 -o /tmp/nsc.tar.gz "$nsc_url"; \
      if [ -n "${NSC_SHA256}" ]; then echo "${NSC_SHA256}  /tmp/nsc.tar.gz" | sha256sum -c -; \
      else echo "warning: NSC_SHA256 not given; nsc from $nsc_url is not verified" >&2; fi; \
      tar -xzf /tmp/nsc.tar.gz -C /opt/tools/bin --no-same-owner nsc; \
      test -x /opt/tools/bin/nsc; \
    else \
      echo "note: no NSC_VERSION/NSC_URL given; the image has no nsc" >&2; \
    fi; \
    runner_url="${FORGEJO_RUNNER_URL}"; \
    if [ -z "$runner_url" ] && [ -n "${FORGEJO_RUNNER_VERSION}" ]; then \
      runner_url="https://code.forgejo.org/forgejo/runner/releases/download/v${FORGEJO_RUNNER_VERSION}/forgejo-runner-${FORGEJO_RUNNER_VERSION}-linux-${arch}"; \
    fi; \
    if [ -n "$runner_url" ]; then \
      curl -fsSL --retry 3 -o /tmp/forgejo-runner "$runner_url"; \
      if [ -n "${FORGEJO_RUNNER_SHA256}" ]; then echo "${FORGEJO_RUNNER_SHA256}  /tmp/forgejo-runner" | sha256sum -c -; fi; \
      case "$runner_url" in *.xz) mv /tmp/forgejo-runner /tmp/forgejo-runner.xz && xz -d /tmp/forgejo-runner.xz ;; esac; \
      install -m 0755 /tmp/forgejo-runner /opt/tools/bin/forgejo-runner; \
    fi; \
    chmod -R a+rx /opt/tools/bin; rm -f /tmp/nsc.tar.gz /tmp/forgejo-runner

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# tini reaps the nsc processes the dispatcher spawns (nsc may leave children behind) and forwards
# SIGTERM; ca-certificates is for nsc (Go reads the system store; node has its own).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 forgejo-nsc \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/forgejo-nsc --no-create-home --shell /usr/sbin/nologin forgejo-nsc \
 && install -d -m 0700 -o 10001 -g 10001 /var/lib/forgejo-nsc \
 && install -d -m 0755 /etc/forgejo-nsc

WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=tools /opt/tools/bin/ /usr/local/bin/
COPY deploy/container/entrypoint.sh /usr/local/bin/forgejo-nsc-entrypoint
COPY deploy/container/healthcheck.mjs /app/healthcheck.mjs
RUN set -eu; for pair in dispatcher:forgejo-nsc-dispatcher autoscaler:forgejo-nsc-autoscaler cli:forgejo-nsc; do \
      printf '#!/bin/sh\nexec node /app/dist/src/bin/%s.js "$@"\n' "${pair%%:*}" > "/usr/local/bin/${pair#*:}"; \
      chmod 0755 "/usr/local/bin/${pair#*:}"; \
    done; \
    chmod 0755 /usr/local/bin/forgejo-nsc-entrypoint

# NS_DO_NOT_UPDATE: nsc must not update itself inside a container. HOME: nsc keeps its config
# there. The working directory is the volume too, so the default dispatcher.state_path
# (./forgejo-nsc-dispatcher.db) is /var/lib/forgejo-nsc/forgejo-nsc-dispatcher.db: writable by
# uid 10001 and kept across restarts (/app belongs to root).
ENV NODE_ENV=production \
    NS_DO_NOT_UPDATE=1 \
    HOME=/var/lib/forgejo-nsc

USER 10001:10001
WORKDIR /var/lib/forgejo-nsc
VOLUME ["/var/lib/forgejo-nsc"]
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["node", "/app/healthcheck.mjs"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/forgejo-nsc-entrypoint"]
CMD ["dispatcher", "--config", "/etc/forgejo-nsc/dispatcher.yaml"]
