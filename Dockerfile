# registry-relay container image: a static binary on distroless, as non-root.
# `make image` builds it; deploy/check runs this build stage's commands on
# the files .dockerignore lets through, so a drift from `make build` or a
# missing file fails CI, not the first image build.

# Keep equal to the go directive in go.mod (deploy/check compares them).
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer survives code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
# The `make build` command: static (no libc needed at run time), no local
# paths and no symbol tables in the binary.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/registry-relay ./cmd/registry-relay

# distroless/static holds CA certificates (upstreams are https), tzdata and
# a passwd entry for nonroot (65532), and no shell or package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/registry-relay /registry-relay
# Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 65532:65532
# 8080 registry API, 9090 /metrics, /healthz and /readyz. No HEALTHCHECK:
# orchestrators probe /healthz and /readyz on the admin port themselves.
EXPOSE 8080 9090
ENTRYPOINT ["/registry-relay"]
