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
    VEXIL_METRICS_LISTEN=0.0.0.0:9464 \
    DATABASE_URL=sqlite:///var/lib/vexil/vexil.db?mode=rwc \
    RUST_LOG=info
# 50051: gRPC (Vexil's API, reflection, health). 9464: Prometheus' scrape
# endpoint (GET /metrics), as in the README's Prometheus section.
# 8013 (flagd's API) and 8016 (OFREP) serve only when configured, e.g.
# -e VEXIL_FLAGD_LISTEN=0.0.0.0:8013 -e VEXIL_OFREP_LISTEN=0.0.0.0:8016.
EXPOSE 50051 9464 8013 8016
# `vexil health` is a standard gRPC health check (grpc.health.v1) against
# http://127.0.0.1:<port of VEXIL_LISTEN>, or VEXIL_HEALTH_ADDR when set
# (with TLS: -e VEXIL_HEALTH_ADDR=https://<name on the certificate>:50051,
# and VEXIL_HEALTH_CA_FILE for a private CA): exit 0 when SERVING, 1
# otherwise. It gives up after 3 s itself; the start period covers migrations.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/vexil", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/vexil"]
