# hh-stem-parent: base
# The default stem: Node tooling on top of the base (pnpm, TypeScript, tsx, Bun).
ARG BASE=hh-base
FROM ${BASE}
USER root
ARG PNPM_VERSION=latest
ARG TYPESCRIPT_VERSION=latest
ARG TSX_VERSION=latest
ARG BUN_VERSION=latest
RUN npm install -g pnpm@$PNPM_VERSION typescript@$TYPESCRIPT_VERSION tsx@$TSX_VERSION bun@$BUN_VERSION \
    && npm cache clean --force
USER coder
