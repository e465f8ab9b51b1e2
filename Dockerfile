# sshkeep as a sidecar image: built with the toolchain that compiles ssh2's
# optional native crypto binding (about 2x AES-GCM throughput), run as non-root.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
RUN npm ci && npm prune --omit=dev \
    && test -f node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
