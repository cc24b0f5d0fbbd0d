# hh-stem-parent: base
# Rust: stable with rustfmt, clippy and rust-analyzer, plus cargo-nextest, cargo-audit and
# cargo-deny.
ARG BASE=hh-base
FROM ${BASE}
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
USER coder
ARG RUST_TOOLCHAIN=stable
RUN curl -fsSL https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain "$RUST_TOOLCHAIN" \
        --component rustfmt,clippy,rust-analyzer
ENV PATH=/opt/hh/bin:/home/coder/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ARG NEXTEST_VERSION=
ARG CARGO_AUDIT_VERSION=
ARG CARGO_DENY_VERSION=
RUN cargo install --locked cargo-nextest ${NEXTEST_VERSION:+--version $NEXTEST_VERSION} \
    && cargo install --locked cargo-audit ${CARGO_AUDIT_VERSION:+--version $CARGO_AUDIT_VERSION} \
    && cargo install --locked cargo-deny ${CARGO_DENY_VERSION:+--version $CARGO_DENY_VERSION} \
    && rm -rf /home/coder/.cargo/registry /home/coder/.cargo/git
