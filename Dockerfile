# syntax=docker/dockerfile:1
# nlimage images: `--target server` (nlimage/nl-server) and `--target client`
# (nlimage/nl-client). Build with ./build.sh docker.

# ---- build: the Rust toolchain, cmake and nasm for the bundled libjpeg-turbo
FROM rust:1.91-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config cmake nasm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependency layer: the manifests with stub sources, so the crates.io
# dependencies compile once and stay cached until Cargo.toml/Cargo.lock change.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY core/Cargo.toml core/
COPY server/Cargo.toml server/
COPY client/Cargo.toml client/
RUN mkdir -p src core/src core/benches server/src client/src \
 && touch src/lib.rs core/src/lib.rs server/src/lib.rs client/src/lib.rs \
 && for f in core/benches/kernels.rs server/src/main.rs client/src/main.rs; do echo 'fn main() {}' > "$f"; done \
 && cargo build --release --locked -p nlimage-server -p nlimage-client --features nlimage-client/turbojpeg

# The real sources; touch them so cargo rebuilds our crates over the stubs.
COPY src src
COPY core core
COPY server server
COPY client client
RUN touch src/lib.rs core/src/lib.rs server/src/lib.rs server/src/main.rs client/src/lib.rs client/src/main.rs \
 && cargo build --release --locked -p nlimage-server -p nlimage-client --features nlimage-client/turbojpeg

# ---- runtime base: small, non-root
FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /var/lib/nlimage --create-home nlimage
WORKDIR /var/lib/nlimage

# ---- nl-client
FROM runtime AS client
COPY --from=build /src/target/release/nl-client /usr/local/bin/nl-client
USER nlimage
ENTRYPOINT ["nl-client"]

# ---- nl-server (last, so a plain `docker build .` gives the server)
FROM runtime AS server
COPY --from=build /src/target/release/nl-server /usr/local/bin/nl-server
USER nlimage
EXPOSE 50051
# grpc.health.v1 through the server binary's own probe mode.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["nl-server", "--check-health", "--host", "127.0.0.1", "--port", "50051"]
ENTRYPOINT ["nl-server", "--host", "0.0.0.0"]
CMD ["--port", "50051", "--spill-dir", "/var/lib/nlimage"]
