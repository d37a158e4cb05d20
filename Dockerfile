# syntax=docker/dockerfile:1
# nlimage images: `--target server` (nl-server) and `--target client`
# (nl-client). Build with ./build.sh docker.
#
# Dependency layers come from cargo-chef: `cargo chef prepare` reads the
# workspace's manifests (every package and binary there is, found by cargo
# itself) into recipe.json, and `cargo chef cook` builds the dependencies of
# that recipe alone, so the layer stays cached until a manifest or Cargo.lock
# changes, and a new binary or crate needs no edit here. CI checks this file
# offline: hadolint, every COPY source exists, and the recipe cooks.

# ---- chef: the Rust toolchain, cmake and nasm (for the bundled libjpeg-turbo
# and libheif), the HEVC and AV1 codecs libheif links
FROM rust:1.91-slim-bookworm AS chef
# Debian's bookworm packages move only for security fixes: pinning their
# versions would break the build at the next one (hadolint DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config cmake nasm \
      libde265-dev libdav1d-dev libaom-dev libtiff-dev \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# ---- planner: the recipe of the workspace's dependencies
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---- build: dependencies (cached layer), then the workspace
FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
      -p nlimage-server -p nlimage-client
COPY . .
RUN cargo build --release --locked -p nlimage-server -p nlimage-client

# ---- runtime base: small, non-root (numeric uid, so hosts can resolve it)
FROM debian:bookworm-slim AS runtime
# The codecs libheif calls at run time (HEVC decode, AV1 decode and
# encode), and libtiff.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libde265-0 libdav1d6 libaom3 libtiff6 \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /var/lib/nlimage --create-home nlimage
WORKDIR /var/lib/nlimage

# ---- nl-client
FROM runtime AS client
COPY --from=build /src/target/release/nl-client /usr/local/bin/nl-client
USER 10001
ENTRYPOINT ["nl-client"]

# ---- nl-server (last, so a plain `docker build .` gives the server)
FROM runtime AS server
COPY --from=build /src/target/release/nl-server /usr/local/bin/nl-server
USER 10001
EXPOSE 50051 8080
# grpc.health.v1 through the server binary's own probe mode.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["nl-server", "--check-health", "--host", "127.0.0.1", "--port", "50051"]
ENTRYPOINT ["nl-server", "--host", "0.0.0.0"]
# The image store and spill files in the volume; HTTP gateway on 8080.
CMD ["--port", "50051", "--spill-dir", "/var/lib/nlimage", "--data-dir", "/var/lib/nlimage", "--http-addr", "0.0.0.0:8080"]
