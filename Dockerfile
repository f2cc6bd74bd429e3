# syntax=docker/dockerfile:1
#
# The haagent image, for those who build with Docker. `make image` builds the
# same image without a container daemon (static binary, no shell, user
# 65532, CA certificates, OCI labels).
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION="$(cat VERSION)" \
#     --build-arg COMMIT="$(git rev-parse --short HEAD)" \
#     --build-arg BUILD_DATE="$(date -u -d @"$(git log -1 --format=%ct)" +%Y-%m-%dT%H:%M:%SZ)" \
#     -t ghcr.io/haagent/haagent:"$(cat VERSION)" .
#
# Without --build-arg VERSION the binary reports the content of the file
# VERSION, and the version label is empty.

ARG GO_VERSION=1.27.3

# The builder runs on the build machine and cross-compiles for the target.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=""
ARG COMMIT=unknown
ARG BUILD_DATE=unknown
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    version="${VERSION:-$(cat VERSION)}" && \
    pkg=github.com/haagent/haagent/internal/version && \
    GOOS="$TARGETOS" GOARCH="$TARGETARCH" go build -trimpath \
      -ldflags "-s -w -X $pkg.Version=$version -X $pkg.Commit=$COMMIT -X $pkg.BuildDate=$BUILD_DATE" \
      -o /out/haagent ./cmd/haagent

# distroless static: CA certificates, /etc/passwd with nonroot, /tmp; no shell.
FROM gcr.io/distroless/static-debian13:nonroot
ARG VERSION=""
ARG COMMIT=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="haagent" \
      org.opencontainers.image.description="haagent: fast, safe failover of dead Kubernetes nodes (DaemonSet agent)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.source="https://github.com/haagent/haagent" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/haagent /usr/local/bin/haagent
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/haagent"]
CMD ["run"]
