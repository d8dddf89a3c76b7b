# quota-allocator: one image for every role (ROLE=api|worker|all); the last
# stage, so a plain `docker build` gives it. The test ledger that
# docker-compose runs is a stage of its own (--target test-ledger): the
# service's image does not ship it.
#
#   docker build -t quota-allocator .
#   docker run -e REDIS_URL=redis://redis:6379 -e QUOTA_API_KEYS=admin:...,client:... -p 3000:3000 quota-allocator

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: all dependencies, compile src/ to dist/src (and testLedger/) ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.testLedger.json ./
COPY src ./src
RUN npm run build
COPY testLedger ./testLedger
RUN npm run build:test-ledger
# The operators' web console (/console): bundled by esbuild from its source and the client's.
COPY scripts/build-console.mjs ./scripts/
COPY console ./console
COPY packages/client/package.json ./packages/client/
COPY packages/client/src ./packages/client/src
RUN npm run build:console

# ---- test-ledger: the settlement target of docker-compose (a test double) ---
FROM ${NODE_IMAGE} AS test-ledger
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# testLedger/ imports two modules of src/ (the body signature, the seeded PRNG).
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/testLedger ./dist/testLedger
USER node
EXPOSE 4000
CMD ["node", "dist/testLedger/main.js"]

# ---- runtime: production dependencies, compiled code, Lua scripts ----------
FROM ${NODE_IMAGE} AS runtime
# DATA_DIR is only used when REDIS_URL is unset and no Redis answers on
# localhost; the image has no redis-server, so set REDIS_URL.
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0 \
    DATA_DIR=/tmp/quota-allocator
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/console ./dist/console
# Read at run time: src/engine/luaScripts.ts walks up from dist/src/engine to
# the first folder holding lua/includes, i.e. /app/lua.
COPY lua ./lua

# The code and the scripts stay owned by root (read-only to the service); it
# runs as the image's unprivileged `node` user (uid 1000).
USER node

EXPOSE 3000

# Liveness only (GET /healthz). Node's own fetch: the slim image has no curl.
# Not meaningful for ROLE=worker (no HTTP listener): the compose file disables
# or replaces it there.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# node as PID 1 handles SIGTERM itself (graceful stop in src/main.ts).
CMD ["node", "dist/src/main.js"]
