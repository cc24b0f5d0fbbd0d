# hh-stem-parent: default
# TypeScript front-end work: the default stem plus Vite, ESLint and Prettier.
ARG BASE=hh-default
FROM ${BASE}
USER root
ARG VITE_VERSION=latest
ARG ESLINT_VERSION=latest
ARG PRETTIER_VERSION=latest
RUN --mount=type=secret,id=host-ca \
    ca=/run/secrets/host-ca; [ -s "$ca" ] || ca=; \
    NODE_EXTRA_CA_CERTS="$ca" npm ${ca:+--cafile=$ca} install -g \
        vite@$VITE_VERSION eslint@$ESLINT_VERSION prettier@$PRETTIER_VERSION \
    && npm cache clean --force
USER coder
