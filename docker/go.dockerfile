# hh-stem-parent: base
# Go: the toolchain, gopls, Delve, staticcheck and golangci-lint.
ARG BASE=hh-base
FROM ${BASE}
USER root
ARG GO_VERSION=1.23.4
RUN arch="$(dpkg --print-architecture)"; \
    curl -fsSL "https://go.dev/dl/go${GO_VERSION}.linux-${arch}.tar.gz" | tar -xz -C /usr/local
ENV GOPATH=/home/coder/go
ENV PATH=/opt/hh/bin:/usr/local/go/bin:/home/coder/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER coder
ARG GOPLS_VERSION=latest
ARG DELVE_VERSION=latest
ARG STATICCHECK_VERSION=latest
ARG GOLANGCI_LINT_VERSION=latest
RUN go install golang.org/x/tools/gopls@$GOPLS_VERSION \
    && go install github.com/go-delve/delve/cmd/dlv@$DELVE_VERSION \
    && go install honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION \
    && go install github.com/golangci/golangci-lint/cmd/golangci-lint@$GOLANGCI_LINT_VERSION \
    && go clean -cache -modcache
