# Orrery's image: the static binary `make image` builds, on an empty base.
# No shell, no package manager, nothing to patch but Orrery itself.
FROM scratch
# make image ARCH=arm64 cross-builds the binary for another architecture.
ARG ARCH=amd64
COPY deploy/image/rootfs/etc/ /etc/
COPY --chown=65534:65534 deploy/image/rootfs/data/ /data/
COPY bin/linux-${ARCH}/orrery /bin/orrery
# nobody: Orrery needs no privilege; /data (the WAL, the store, the ring
# tokens) is the one place it writes, and a volume mounted there inherits
# this ownership.
USER 65534:65534
WORKDIR /data
# HTTP (API, /metrics, remote write), gRPC, gossip.
EXPOSE 9009 9095 7946
VOLUME /data
ENTRYPOINT ["/bin/orrery"]
CMD ["-target=all", "-data.dir=/data"]
