# tessera: one binary on a small Debian base.
#
#   docker build -t tessera .
#   docker run --rm tessera --help
#
# The runtime image keeps curl for the compose healthcheck on /readyz and
# ca-certificates for HTTPS sinks (webhooks, SendGrid, Twilio).

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so editing code does not re-download modules.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# With cgo, Pebble allocates its memtables and block cache outside the Go
# heap (glibc's allocator, which bookworm-slim has); built without it, the
# hub processed 9-17 % fewer events per core-second in three alternated
# pairs of `tessera bench --mode throughput --events 60000 --guarantee
# at_least_once` (bench/README.md).
RUN CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o /out/tessera ./cmd/tessera

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home tessera \
 && mkdir -p /data /etc/tessera \
 && chown tessera:tessera /data
COPY --from=build /out/tessera /usr/local/bin/tessera
# Pebble's memtables and block caches come from glibc's malloc; this asks
# it for transparent huge pages (madvise), where the host's THP mode is
# "madvise" or "always". With 4 KiB pages each new memtable page costs a
# fault on first touch (docs/operations.md, "Memory"). glibc reads it
# once, at process start.
ENV GLIBC_TUNABLES=glibc.malloc.hugetlb=1
USER tessera
WORKDIR /data
# Stores, checkpoints and (for the embedded broker) the log live here.
VOLUME /data
# 8080: HTTP (ingest, API, /metrics, /readyz, console); 9092: `tessera broker`.
EXPOSE 8080 9092
ENTRYPOINT ["tessera"]
CMD ["--help"]
