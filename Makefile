# mt5bot: the two commands a newcomer needs are `make run` and `make test`.
CARGO  ?= cargo
PREFIX ?= /usr/local
CONFIG ?=

.PHONY: run build test test-deps bench bench-quick bench-e2e bench-e2e-quick fuzz-quick lint fmt install clean

## run: build and run the daemon (embedded default: paper venue, synthetic feed, /metrics on 127.0.0.1:9898)
run:
	$(CARGO) run --release --locked -- run $(if $(CONFIG),--config $(CONFIG))

build:
	$(CARGO) build --release --locked

## test: install the test dependencies (Debian packages), then run every test
test: test-deps
	$(CARGO) test --locked

test-deps:
	scripts/install-test-deps.sh

## bench: criterion benches with full measurement, then the end-to-end suite (writes BENCHMARKS.md)
bench:
	$(CARGO) bench --locked --bench engine
	$(CARGO) bench --locked --bench logging
	$(CARGO) bench --locked --bench fix
	$(CARGO) bench --locked --bench telemetry
	$(CARGO) bench --locked --bench mt5
	scripts/bench-e2e.sh

## bench-quick: every bench for a few seconds, so they cannot rot
bench-quick:
	$(CARGO) bench --locked --bench engine -- --quick
	$(CARGO) bench --locked --bench logging -- --quick
	$(CARGO) bench --locked --bench fix -- --quick
	$(CARGO) bench --locked --bench telemetry -- --quick
	$(CARGO) bench --locked --bench mt5 -- --quick

## bench-e2e: mt5bot against the Python stack and the machine's floor; writes BENCHMARKS.md (minutes)
bench-e2e:
	scripts/bench-e2e.sh

## bench-e2e-quick: the same for a few seconds each (CI), written to target/bench-e2e/
bench-e2e-quick:
	scripts/bench-e2e.sh --quick

## fuzz-quick: the FIX codec and session fuzz target for FUZZ_SECONDS (cargo-fuzz installed if missing)
FUZZ_SECONDS ?= 30
fuzz-quick:
	command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	mkdir -p fuzz/corpus/fix_codec
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run fix_codec corpus/fix_codec seeds/fix_codec -- -max_total_time=$(FUZZ_SECONDS)

## lint: formatting, clippy with warnings as errors, docs with warnings as errors, and the fuzz
## target (its own workspace, so nothing else compiles it) type-checked against the crate
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --locked
	cd fuzz && $(CARGO) check --locked

fmt:
	$(CARGO) fmt --all

## install: install the binary into $(PREFIX)/bin
install:
	$(CARGO) install --locked --path . --root $(PREFIX)

clean:
	$(CARGO) clean
