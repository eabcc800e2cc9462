# Builds the careindex binary into a small image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/careindex ./cmd/careindex

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata postgresql-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/careindex /usr/local/bin/careindex
COPY fixtures /srv/careindex/fixtures
WORKDIR /srv/careindex
ENTRYPOINT ["careindex"]
CMD ["--help"]
