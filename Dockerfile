# sshkeep container image: a Kubernetes sidecar or a standalone tunnel container.
#   docker build -t sshkeep .
#   docker run --rm sshkeep --help
# How to run it, the size goal and what each choice is for: docs/deploy.md.
# test/deploy.test.ts checks this file (it cannot be built in CI: there is no Docker engine).

# ---- build: TypeScript, and ssh2's optional native crypto binding ----
FROM node:20-bookworm-slim AS build
# node-gyp's toolchain: ssh2 compiles sshcrypto.node (about 2x AES-GCM throughput) at install.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
# patches/ before `npm ci`: its postinstall applies them to ssh2 (patch-package --error-on-fail).
COPY patches ./patches
COPY src ./src
# The build's second step (package.json "build"): esbuild bundles the command into dist/bin/.
COPY scripts/build-bin.ts ./scripts/
COPY scripts/lib/options.ts ./scripts/lib/
# The --resume agent, sent to the server over an exec channel; read at run time (agent/ beside dist/).
COPY agent ./agent
# `npm ci` installs dev dependencies too and runs `prepare` (the build: tsc -> dist/, then esbuild
# bundles the command into dist/bin/sshkeep.js, executable; ssh2 stays in node_modules). The
# postinstall builds the binding again from the patched source (patch 010 changes it); the
# `decryptAt` check finds a binding built before the patches. The binding is optional to ssh2, so a
# failed compile is silent: test for it. `npm prune --omit=dev` then drops the dev
# dependencies in place and keeps the compiled binding (a second `npm ci --omit=dev --ignore-scripts`
# would not build it). Before the prune, the two dependencies the command never loads leave the
# image's package.json, and the prune drops them with the 61 packages only they need (20 MB of
# node_modules -> 13 MB): patch-package, whose work is done once npm ci's postinstall has run, and
# @types/ssh2, type declarations for the library's users. The chmod makes sure the /usr/local/bin link's target is executable whatever the build does.
# node-gyp compiles against the headers this image ships, when present, instead of downloading them.
RUN if [ -f /usr/local/include/node/common.gypi ]; then export npm_config_nodedir=/usr/local; fi \
    && npm ci --no-audit --no-fund \
    && test -f node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node \
    && npm pkg delete dependencies.patch-package 'dependencies.@types/ssh2' \
    && npm prune --omit=dev --no-audit --no-fund \
    && test -f node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node \
    && grep -q certifiedAlgorithm node_modules/ssh2/lib/protocol/utils.js \
    && grep -q randomPadding node_modules/ssh2/lib/protocol/crypto.js \
    && node -e "const b = require('./node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node'); process.exit(typeof b.AESGCMDecipher.prototype.decryptAt === 'function' ? 0 : 1)" \
    && chmod 0755 dist/bin/sshkeep.js

# ---- run: production dependencies only, no compiler, non-root ----
FROM node:20-bookworm-slim
WORKDIR /app
# Owned by root and read-only to the runtime user. package.json is needed at run time: its
# "type": "module" makes dist/*.js ES modules.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/agent ./agent
# `sshkeep` on PATH (package.json bin; sshkeep.js starts with
# #!/usr/bin/env -S node --max-semi-space-size=1 --single-threaded-gc --no-allocation-site-pretenuring). The smoke tests
# fail the build if the link, the ESM setup, the pruned dependencies or the binding are broken.
RUN ln -s /app/dist/bin/sshkeep.js /usr/local/bin/sshkeep \
    && sshkeep --help > /dev/null \
    && node -e "require('/app/node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node')"
# Health endpoints on every interface, so a kubelet or `docker` can reach them.
ENV SSHKEEP_HEALTH=:9090
EXPOSE 9090
# The image's `node` user, numerically, so Kubernetes runAsNonRoot can verify it.
USER 1000:1000
# Liveness only: /healthz is 200 while the process is alive (no curl in slim: node does it).
# Kubernetes ignores HEALTHCHECK (use the probes in deploy/kubernetes/); so do OCI-format builds.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "require('http').get('http://127.0.0.1:9090/healthz', r => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
# Exec form: env(1) execs node, so node is PID 1 and gets SIGTERM itself. sshkeep handles SIGTERM
# and SIGINT (drain, exit 0); its only child (a systemd notify sender) runs only under systemd,
# so no --init / tini is needed.
ENTRYPOINT ["sshkeep"]
CMD ["--help"]
