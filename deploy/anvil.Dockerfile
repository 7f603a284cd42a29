# A local Ethereum chain for the single-host stack: anvil from the pinned npm package
# @foundry-rs/anvil (contracts/package.json + package-lock.json), chain state persisted in /data.
#
#   docker build -f deploy/anvil.Dockerfile -t qilian-anvil:dev .
#
# For development and production-like rehearsals only. A real deployment points QILIAN_RPC_URL at
# any EVM JSON-RPC endpoint (a private PoA network, a testnet, a provider) and runs no anvil.
# Production should pin the base image by digest.

ARG NODE_IMAGE=node:20-slim
FROM ${NODE_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="qilian-anvil" \
      org.opencontainers.image.description="anvil (Foundry) local chain for Qilian SCF, from the pinned npm package, state in /data" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"

WORKDIR /opt/qilian/contracts
# `npm ci` installs exactly the lock file; the platform's anvil binary arrives as the optional
# dependency @foundry-rs/anvil-linux-<arch>, so node_modules/.bin/anvil needs no download.
COPY contracts/package.json contracts/package-lock.json ./
RUN npm ci --no-audit --no-fund \
    && npm cache clean --force \
    && node_modules/.bin/anvil --version

# The image's own non-root user (uid 1000); a fresh named volume on /data inherits its ownership.
RUN install -d -o node -g node -m 0750 /data
USER node
VOLUME ["/data"]
EXPOSE 8545

# A JSON-RPC round trip (eth_chainId), with Node's built-in fetch: no curl in a slim image.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=10 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:8545',{method:'POST',headers:{'content-type':'application/json'},body:JSON.stringify({jsonrpc:'2.0',id:1,method:'eth_chainId',params:[]})}).then(r=>r.json()).then(j=>process.exit(j.result?0:1),()=>process.exit(1))"]

# The npm wrapper forwards SIGTERM to anvil, which then writes --state one last time; between
# stops --state-interval 5 bounds what a kill -9 can lose to five seconds.
ENTRYPOINT ["/opt/qilian/contracts/node_modules/.bin/anvil"]
CMD ["--host", "0.0.0.0", "--port", "8545", "--chain-id", "31337", \
     "--state", "/data/chain.json", "--state-interval", "5"]
