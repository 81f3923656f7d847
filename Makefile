SHELL := /bin/bash
GO ?= go
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0
GOBIN := $(shell $(GO) env GOPATH)/bin
# Static binaries everywhere, as the image ships them (Orrery needs no
# cgo); one setting for builds and tests keeps one build cache.
export CGO_ENABLED = 0

.PHONY: build run test test-unit test-integration proto bench lint fuzz soak clean image cluster

# What `orrery -version` and /status/buildinfo report (prometheus/common's
# version package, as Prometheus and Alertmanager stamp theirs).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildDate=$(BUILD_DATE) \
	-X $(VERSION_PKG).BuildUser=$(shell id -un 2>/dev/null)@$(shell hostname 2>/dev/null)
IMAGE ?= orrery:$(VERSION)
# The binary's architecture, cross-built (ARCH=arm64). The legacy builder
# labels a FROM scratch image with its own platform; for a correctly
# labelled multi-arch image use docker buildx build --platform.
ARCH ?= amd64

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/orrery ./cmd/orrery
	$(GO) build -o bin/orrery-bench ./cmd/orrery-bench
	$(GO) build -o bin/orrery-check ./cmd/orrery-check

run: build
	./bin/orrery -target=all -data.dir=./data

# The whole suite: unit tests (deploy/k8stest's too: a module of its own, so
# that helm's and Kubernetes' dependencies stay out of the product's), brief
# fuzzing of the decoders, then the end-to-end tests against real processes.
# The fuzzing is bounded by a count of executions, not a duration: Go 1.26's
# fuzz coordinator can fail a target with "context deadline exceeded" when a
# -fuzztime duration runs out (go.dev/issue/75804, fixed in Go 1.27).
test: build lint
	deps=$$(scripts/test-deps.sh) && eval "$$deps" && $(GO) test -count=1 ./...
	cd deploy/k8stest && $(GO) test -count=1 ./...
	$(GO) test -run=^$$ -fuzz=FuzzDecodeWriteRequest -fuzztime=200000x ./distributor
	$(GO) test -run=^$$ -fuzz=FuzzDecodeWithLimit -fuzztime=100000x ./distributor
	$(GO) test -run=^$$ -fuzz=FuzzSeriesReader -fuzztime=100000x ./proto/ingesterpb
	$(GO) test -run=^$$ -fuzz=FuzzDecodeLabels -fuzztime=20000x ./proto/ingesterpb
	$(GO) test -run=^$$ -fuzz=FuzzDecodeTombstone -fuzztime=20000x ./store
	$(GO) test -run=^$$ -fuzz=FuzzDecodeColdBlock -fuzztime=20000x ./store
	$(GO) test -run=^$$ -fuzz=FuzzDecodeRun -fuzztime=50000x ./store
	$(GO) test -run=^$$ -fuzz=FuzzRunsAreExact -fuzztime=20000x ./store
	$(GO) test -run=^$$ -fuzz=FuzzAuditParseBlock -fuzztime=20000x ./store
	$(GO) test -run=^$$ -fuzz=FuzzAudit3ReadPackedCrafted -fuzztime=20000x ./runchunk
	$(GO) test -run=^$$ -fuzz=FuzzIDSet -fuzztime=3000x ./store
	$(GO) test -run=^$$ -fuzz=FuzzDecodeSegment -fuzztime=20000x ./store
	$(GO) test -run=^$$ -fuzz=FuzzAppendXORIsChunkenc -fuzztime=20000x ./runchunk
	$(GO) test -run=^$$ -fuzz=FuzzFromData -fuzztime=50000x ./runchunk
	$(GO) test -run=^$$ -fuzz=FuzzStream -fuzztime=20000x ./runchunk
	$(GO) test -run=^$$ -fuzz=FuzzTenantFiles -fuzztime=5000x ./ingester
	$(GO) test -run=^$$ -fuzz=FuzzDesignate -fuzztime=20000x ./querier
	$(GO) test -run=^$$ -fuzz=FuzzStoreMerge -fuzztime=5000x ./ruler
	$(GO) test -run=^$$ -fuzz=FuzzConfigPost -fuzztime=2000x ./ruler
	$(GO) test -run=^$$ -fuzz=FuzzPrometheusRuleGroups -fuzztime=5000x ./ruler
	$(GO) test -run=^$$ -fuzz=FuzzExport -fuzztime=5000x ./otlp
	deps=$$(scripts/test-deps.sh) && eval "$$deps" && $(GO) test -count=1 -tags=integration -timeout=30m -parallel=3 -v ./integration/... 2>&1 | tee integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; exit $${PIPESTATUS[0]}

test-unit:
	$(GO) test ./...

proto:
	GOBIN=$(GOBIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(GOBIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(GOBIN):$$PATH protoc -I proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		ingesterpb/ingester.proto ringpb/ring.proto hapb/ha.proto frontendpb/frontend.proto

# Longer fuzzing of every fuzz target, one at a time: FUZZTIME each (a
# count, see test above).
FUZZTIME ?= 2000000x
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzDecodeWriteRequest -fuzztime=$(FUZZTIME) ./distributor
	$(GO) test -run=^$$ -fuzz=FuzzTenantFiles -fuzztime=$(FUZZTIME) ./ingester
	$(GO) test -run=^$$ -fuzz=FuzzValidate -fuzztime=$(FUZZTIME) ./tenant
	$(GO) test -run=^$$ -fuzz=FuzzSeriesReader -fuzztime=$(FUZZTIME) ./proto/ingesterpb
	$(GO) test -run=^$$ -fuzz=FuzzDecodeLabels -fuzztime=$(FUZZTIME) ./proto/ingesterpb
	$(GO) test -run=^$$ -fuzz=FuzzDecodeWithLimit -fuzztime=$(FUZZTIME) ./distributor
	$(GO) test -run=^$$ -fuzz=FuzzWALDamage -fuzztime=$(FUZZTIME) ./ingester
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./querier/shard
	$(GO) test -run=^$$ -fuzz=FuzzDesignate -fuzztime=$(FUZZTIME) ./querier
	$(GO) test -run=^$$ -fuzz=FuzzDecodeExtents -fuzztime=$(FUZZTIME) ./frontend
	$(GO) test -run=^$$ -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./querier/resultcodec
	$(GO) test -run=^$$ -fuzz=FuzzStoreMerge -fuzztime=$(FUZZTIME) ./ruler
	$(GO) test -run=^$$ -fuzz=FuzzConfigPost -fuzztime=$(FUZZTIME) ./ruler
	$(GO) test -run=^$$ -fuzz=FuzzPrometheusRuleGroups -fuzztime=$(FUZZTIME) ./ruler
	$(GO) test -run=^$$ -fuzz=FuzzExport -fuzztime=$(FUZZTIME) ./otlp

bench:
	$(GO) test -run=^$$ -bench=. -benchmem ./...

# A loopback cluster under the read-back checker while ingesters are killed,
# paused, restarted and scaled at random (docs/operations.md, "Soak").
# Minutes long, not part of test. SOAK_RF=1 for the single-copy variant.
SOAK_DURATION ?= 15m
SOAK_RF ?= 3
soak:
	SOAK_DURATION=$(SOAK_DURATION) SOAK_RF=$(SOAK_RF) scripts/soak.sh

# vet's stdmethods check is off: Prometheus's chunkenc.Iterator, which the
# querier's chunk merge implements, has Seek(int64) ValueType, not
# io.Seeker's signature.
VET = $(GO) vet -stdmethods=false

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(VET) ./...
	$(VET) -tags=integration ./integration/
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	cd deploy/k8stest && $(VET) ./...
	cd deploy/k8stest && $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# The container image: a static binary on an empty base, run as nobody
# (Dockerfile). Needs a running Docker engine.
image:
	GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux-$(ARCH)/orrery ./cmd/orrery
	docker build --build-arg ARCH=$(ARCH) -t $(IMAGE) -t orrery:latest .

# Seed 000's topology without containers: real processes on loopback
# (scripts/cluster.sh; deploy/compose/README.md).
cluster: build
	scripts/cluster.sh

clean:
	rm -rf bin data
