# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run in a slim Debian image as
# a non-root user, on SQLite in a volume by default.
#
# The image listens on 0.0.0.0, where Vexil refuses to start without
# authentication: pass a key (e.g. -e VEXIL_JWT_SECRET=..., or mount a file
# and set VEXIL_JWT_SECRET_FILE / VEXIL_JWT_PUBLIC_KEY_FILE / VEXIL_JWKS_FILE),
# or, for a throwaway setup only, -e VEXIL_INSECURE_NO_AUTH=true.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# protox compiles the protos in build.rs: no protoc needed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin vexil \
    && install -m 0755 target/release/vexil /usr/local/bin/vexil

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/vexil --shell /usr/sbin/nologin vexil \
    && mkdir -p /var/lib/vexil \
    && chown vexil:vexil /var/lib/vexil
COPY --from=build /usr/local/bin/vexil /usr/local/bin/vexil

USER vexil
WORKDIR /var/lib/vexil
VOLUME ["/var/lib/vexil"]
ENV VEXIL_LISTEN=0.0.0.0:50051 \
    DATABASE_URL=sqlite:///var/lib/vexil/vexil.db?mode=rwc \
    RUST_LOG=info
# 8013 (flagd's API) and 8016 (OFREP) serve only when configured, e.g.
# -e VEXIL_FLAGD_LISTEN=0.0.0.0:8013 -e VEXIL_OFREP_LISTEN=0.0.0.0:8016.
EXPOSE 50051 8013 8016
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/vexil"]
