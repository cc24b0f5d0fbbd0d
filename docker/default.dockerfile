# hh-stem-parent: base
# The default stem: Node tooling on top of the base (pnpm, TypeScript, tsx, Bun).
ARG BASE=hh-base
FROM ${BASE}
USER root
ARG PNPM_VERSION=latest
ARG TYPESCRIPT_VERSION=latest
ARG TSX_VERSION=latest
ARG BUN_VERSION=latest
RUN --mount=type=secret,id=host-ca \
    ca=/run/secrets/host-ca; [ -s "$ca" ] || ca=; \
    NODE_EXTRA_CA_CERTS="$ca" npm ${ca:+--cafile=$ca} install -g \
        pnpm@$PNPM_VERSION typescript@$TYPESCRIPT_VERSION tsx@$TSX_VERSION bun@$BUN_VERSION \
    && npm cache clean --force
USER coder
