# ldapsync: one image for the controller and the agent sidecar, for builds with a registry.
# The same image as `scripts/image.sh` builds without one (both assemble the root with
# scripts/image/rootfs.sh): the binary, the libraries it loads (GSSAPI), CA roots, UID 65532, no
# shell. Build: docker build -t ghcr.io/ldapsync/ldapsync:0.1.0 .

FROM rust:1.95-bookworm AS build
# Kerberos (SASL GSSAPI) is a default feature: MIT krb5 headers and libclang for the bindings.
RUN apt-get update && apt-get install -y --no-install-recommends libkrb5-dev libclang-dev clang pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin ldapsync && strip target/release/ldapsync

FROM debian:bookworm-slim AS rootfs
RUN apt-get update && apt-get install -y --no-install-recommends libgssapi-krb5-2 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ldapsync /ldapsync
COPY scripts/image/rootfs.sh /rootfs.sh
RUN bash /rootfs.sh /ldapsync /rootfs

FROM scratch
COPY --from=rootfs /rootfs /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ldapsync"]
