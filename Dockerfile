# syntax=docker/dockerfile:1
#
# cloudjob-operator image: a Rust build stage and a distroless, non-root runtime stage.
#
#   docker build -t ghcr.io/cloudjob-io/cloudjob-operator:0.1.0 .
#
# The builder is Debian bookworm, like the runtime (distroless cc-debian12), so the binary's glibc matches.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# --locked: build exactly the dependency versions in Cargo.lock. The cache mounts keep the registry and the
# target directory between builds; the binary is copied out because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin cloudjob-operator \
 && install -D -m 0755 target/release/cloudjob-operator /out/cloudjob-operator

# glibc, libgcc and CA certificates, no shell, no package manager; runs as uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/cloudjob-io/cloudjob-operator" \
      org.opencontainers.image.description="Mirrors Huawei Cloud and Open Telekom Cloud asynchronous jobs into Kubernetes CloudJob objects" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/cloudjob-operator /usr/local/bin/cloudjob-operator
USER 65532:65532
# /metrics, /healthz and /readyz (CLOUDJOB_LISTEN_ADDRESS, default 0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cloudjob-operator"]
CMD ["run"]
