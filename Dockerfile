# syntax=docker/dockerfile:1
#
# cloudjob-operator image, for people with Docker (or any BuildKit builder):
#
#   docker build -t ghcr.io/cloudjob-io/cloudjob-operator:0.1.0 .
#
# Without Docker, tools/image/build.sh builds the same image (umoci + skopeo) as a docker-archive. Both give a
# static (musl) binary and the CA certificates on an empty base: no shell, no libc, no package manager.
# tests/image.rs fails when the two recipes drift apart (user, entrypoint, command, port, files).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
# ring compiles C: a musl C compiler (musl-gcc) next to the Rust musl target.
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --locked: build exactly the dependency versions in Cargo.lock. The cache mounts keep the registry and the
# target directory between builds; the binary is copied out because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --locked --release --target x86_64-unknown-linux-musl --bin cloudjob-operator \
 && install -D -s -m 0755 target/x86_64-unknown-linux-musl/release/cloudjob-operator /out/cloudjob-operator

FROM scratch
LABEL org.opencontainers.image.source="https://github.com/cloudjob-io/cloudjob-operator" \
      org.opencontainers.image.description="Mirrors Huawei Cloud and Open Telekom Cloud asynchronous jobs into Kubernetes CloudJob objects" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/cloudjob-operator /usr/local/bin/cloudjob-operator
# uid/gid 65532 ("nonroot"), as the chart's securityContext expects.
USER 65532:65532
# /metrics, /healthz and /readyz (CLOUDJOB_LISTEN_ADDRESS, default 0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cloudjob-operator"]
CMD ["run"]
