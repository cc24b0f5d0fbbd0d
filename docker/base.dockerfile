# hh-stem-parent: none
# The base every hh stem builds on: Node 22, git, curl, the coding-agent CLIs, and a non-root
# user `coder` whose UID/GID match the user who builds it (hh image build passes them).
# The session's init, `killme` and the session CA are mounted by the agent at /opt/hh.
ARG BASE=ubuntu:24.04
FROM ${BASE}

ARG DEBIAN_FRONTEND=noninteractive
# Steps that fetch take the host's CA bundle where root's config lends it
# ([images] host_ca_bundle: the build secret host-ca, at /run/secrets/host-ca, in no layer); a
# build without it (every user's) runs them on the system's own trust.
RUN --mount=type=secret,id=host-ca \
    ca=/run/secrets/host-ca; [ -s "$ca" ] || ca=; \
    apt-get ${ca:+-o Acquire::https::CAInfo=$ca} update \
    && apt-get ${ca:+-o Acquire::https::CAInfo=$ca} install -y --no-install-recommends \
        bash ca-certificates curl git less openssh-client procps python3 unzip xz-utils \
    && rm -rf /var/lib/apt/lists/*

# Node.js and npm from the npm registry (the node-linux-* packages carry the official
# binaries), fetched with the distribution's npm, which then goes: the image has one Node, the
# pinned one, whichever registry npm is configured for.
ARG NODE_VERSION=22.12.0
ARG NPM_VERSION=10.9.2
RUN --mount=type=secret,id=host-ca \
    ca=/run/secrets/host-ca; [ -s "$ca" ] || ca=; \
    set -e; arch="$(dpkg --print-architecture)"; \
    case "$arch" in amd64) node_arch=x64 ;; arm64) node_arch=arm64 ;; *) echo "unsupported $arch" >&2; exit 1 ;; esac; \
    apt-get ${ca:+-o Acquire::https::CAInfo=$ca} update; \
    apt-get ${ca:+-o Acquire::https::CAInfo=$ca} install -y --no-install-recommends nodejs npm; \
    cd /tmp; npm ${ca:+--cafile=$ca} pack --silent "node-linux-${node_arch}@${NODE_VERSION}" "npm@${NPM_VERSION}"; \
    apt-get purge -y nodejs npm; apt-get autoremove -y --purge; rm -rf /var/lib/apt/lists/* /root/.npm; \
    mkdir -p /usr/local/lib/node_modules/npm; \
    tar -xzf "node-linux-${node_arch}-${NODE_VERSION}.tgz" -C /usr/local --strip-components=1 package/bin/node; \
    tar -xzf "npm-${NPM_VERSION}.tgz" -C /usr/local/lib/node_modules/npm --strip-components=1; \
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm; \
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; \
    rm -f /tmp/*.tgz; hash -r; node --version; npm --version

# The agent CLIs, each pinnable (`--build-arg CLAUDE_CODE_VERSION=1.2.3`); an empty value skips one.
ARG CLAUDE_CODE_VERSION=latest
ARG CODEX_VERSION=latest
ARG GEMINI_CLI_VERSION=latest
ARG OPENCODE_VERSION=latest
ARG PI_VERSION=latest
RUN --mount=type=secret,id=host-ca \
    ca=/run/secrets/host-ca; [ -s "$ca" ] || ca=; \
    set -e; pkgs=""; \
    [ -n "$CLAUDE_CODE_VERSION" ] && pkgs="$pkgs @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"; \
    [ -n "$CODEX_VERSION" ] && pkgs="$pkgs @openai/codex@$CODEX_VERSION"; \
    [ -n "$GEMINI_CLI_VERSION" ] && pkgs="$pkgs @google/gemini-cli@$GEMINI_CLI_VERSION"; \
    [ -n "$OPENCODE_VERSION" ] && pkgs="$pkgs opencode-ai@$OPENCODE_VERSION"; \
    [ -n "$PI_VERSION" ] && pkgs="$pkgs @mariozechner/pi-coding-agent@$PI_VERSION"; \
    if [ -n "$pkgs" ]; then \
        NODE_EXTRA_CA_CERTS="$ca" npm ${ca:+--cafile=$ca} install -g $pkgs && npm cache clean --force; \
    fi

# The session user. The agent runs sessions as the requesting user's uid:gid; building with
# the same ids gives that uid a name, a home and a shell.
ARG USER_UID=1000
ARG USER_GID=1000
RUN if getent passwd "$USER_UID" >/dev/null; then userdel -r "$(getent passwd "$USER_UID" | cut -d: -f1)"; fi; \
    if ! getent group "$USER_GID" >/dev/null; then groupadd -g "$USER_GID" coder; fi; \
    useradd -m -u "$USER_UID" -g "$USER_GID" -s /bin/bash coder
RUN ln -s /opt/hh/bin/killme /usr/local/bin/killme

ENV PATH=/opt/hh/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER coder
WORKDIR /workspace
CMD ["bash", "-l"]
