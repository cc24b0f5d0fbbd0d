# hh-stem-parent: none
# The stem the end-to-end tests run sessions from. No registry and no download: BASE is the
# image `cargo xtask image` builds locally (hh-test-base: Debian with curl, python3, bash).
ARG BASE=hh-test-base
FROM ${BASE}
LABEL dev.hh.stem="test"
