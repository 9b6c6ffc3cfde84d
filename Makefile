# Two commands that work on a fresh machine: `make demo` and `make test`.
SWIFT ?= swift

.PHONY: deps build test demo clean openapi

deps:
	@scripts/ensure-deps.sh

build: deps
	$(SWIFT) build --product provenance

# Every suite on SQLite, then the suites that open a store again on PostgreSQL (scripts/test.sh).
test: deps
	SWIFT=$(SWIFT) scripts/test.sh

demo: build
	@scripts/demo.sh "$$($(SWIFT) build --show-bin-path)/provenance"

clean:
	rm -rf .build

# Regenerates Sources/RegistryAPI/Generated from Registry/openapi.yaml (after changing the spec).
openapi:
	@scripts/openapi.sh
