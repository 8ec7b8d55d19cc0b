# syntax=docker/dockerfile:1
#
# The fluxtune operator image: `docker build -t ghcr.io/fluxtune/fluxtune:v0.1.0 .`
#
# Two stages: the builder compiles the release binary on Debian 12 (bookworm), the runtime is
# distroless cc-debian12, the same Debian release, so the glibc the binary was linked against is
# the one it runs on. TLS is rustls + ring: no OpenSSL in either stage.

ARG RUST_VERSION=1

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# Only what the build reads (see .dockerignore): the workspace manifest, the lock file and the one
# member crate. operator/tests is needed too: Cargo refuses a manifest whose declared [[test]]
# targets are missing, even for `cargo build`.
COPY Cargo.toml Cargo.lock ./
COPY operator ./operator
# The cache mounts keep the registry and the target directory between builds (BuildKit); the
# binary is copied out of the cached target directory, which does not end up in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p fluxtune \
 && install -D -m 0755 target/release/fluxtune /out/fluxtune

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
# The nonroot tag already runs as 65532:65532; stated numerically so that Kubernetes'
# runAsNonRoot can verify it without resolving a user name.
USER 65532:65532
COPY --from=builder /out/fluxtune /fluxtune
EXPOSE 8080
ENTRYPOINT ["/fluxtune"]
CMD ["run"]
