# raft-replay — the two commands a newcomer needs:
#   make run    the main job on the bundled corpus (verify every capture, all members together)
#   make test   the test suite, including the differential test against etcd's own reader
# `make deps` installs the Debian packages both need (Go + etcd 3.4 source for the reference).

.DEFAULT_GOAL := help
CORPUS_OUT := target/corpus
RELEASE_BIN := target/release/raft-replay

.PHONY: help deps run test test-quick unpack-corpus proptest-heavy bench

help:
	@echo "make run        verify the bundled corpus (main job)"
	@echo "make test       cargo test + differential test vs etcd 3.4.23 (needs: make deps)"
	@echo "make test-quick cargo test only"
	@echo "make test-partitions  nextest partitions hash:K/3 run every capture once (needs cargo-nextest)"
	@echo "make deps       apt-get install golang-go golang-etcd-server-dev golang-github-coreos-bbolt-dev etcd-server etcd-client"
	@echo "make etcd35     fetch etcd 3.5.30 (etcd, etcdctl, etcdutl) into target/etcd/ (gate --rehearse)"
	@echo "make fuzz       run every fuzz target for FUZZ_SECONDS (default 60) each (needs the nightly toolchain)"
	@echo "make corpus     re-capture the corpus from real etcd 3.4.23 (apt) and 3.5.30 (tools/etcd-bin/fetch.sh)"

deps:
	@if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/go.etcd.io/etcd/wal ] || [ ! -f /usr/share/gocode/src/go.etcd.io/bbolt/db.go ] || ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-etcd-server-dev golang-github-coreos-bbolt-dev etcd-server etcd-client; \
	fi

$(RELEASE_BIN): Cargo.toml Cargo.lock $(shell find src -name '*.rs')
	cargo build --release

# Unpack each capture to target/corpus/<capture>/<member> (a copy: the archives stay untouched).
unpack-corpus:
	@for archive in corpus/*/data.tar.gz; do \
		name=$$(basename $$(dirname $$archive)); \
		if [ ! -d $(CORPUS_OUT)/$$name ]; then mkdir -p $(CORPUS_OUT)/$$name && tar xzf $$archive -C $(CORPUS_OUT)/$$name; fi; \
	done

run: $(RELEASE_BIN) unpack-corpus
	@status=0; for dir in $(CORPUS_OUT)/*/; do \
		echo "== $$dir"; \
		$(RELEASE_BIN) verify $$dir* || status=$$?; \
	done; exit $$status

test: deps etcd35
	@if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check; else echo "rustfmt not installed: formatting not checked"; fi
	$(MAKE) etcd-ref bbolt-ref
	RAFT_REPLAY_ETCD_REF=target/etcd-ref/etcd-ref RAFT_REPLAY_BBOLT_REF=$(BBOLT_REF) RAFT_REPLAY_ETCD35=$(ETCD35) cargo test
	$(MAKE) test-example
	@if cargo nextest --version >/dev/null 2>&1; then $(MAKE) test-partitions; else echo "cargo-nextest not installed: partitions not checked (cargo install cargo-nextest --locked)"; fi

# examples/user-corpus: a user's crate (raft-replay as a path dependency) running the README's
# one-test-per-capture harness on a directory of captures; a workspace member, so it shares target/.
.PHONY: test-example test-partitions
test-example:
	cargo test -p user-corpus

# cargo-nextest's hash partitions 1/3, 2/3, 3/3 of tests/etcd_corpus.rs run every capture once.
test-partitions:
	tools/ci/nextest-partitions.sh 3

# etcd 3.5.30's binaries (etcd, etcdctl, etcdutl) from Debian sid, unpacked under target/etcd/
# on a private apt state (tools/etcd-bin/fetch.sh): the target of `gate --rehearse` in
# tests/gate_rehearse.rs, and etcdutl for `make bench-db`.
ETCD35_VERSION := 3.5.30
ETCD35 := target/etcd/$(ETCD35_VERSION)/usr/bin/etcd

.PHONY: etcd35
etcd35:
	tools/etcd-bin/fetch.sh $(ETCD35_VERSION) sid

test-quick:
	cargo test

# Heavier property-test runs (not part of `cargo test`'s budget).
proptest-heavy:
	PROPTEST_CASES=2000 cargo test --release --test roundtrip

# --- etcd reference program (tools/etcd-ref, Go, built against Debian's etcd 3.4.23) ---
# Optional: needs `apt-get install golang-go golang-etcd-server-dev`. Never used by plain `cargo test`.
ETCD_REF := target/etcd-ref/etcd-ref

.PHONY: etcd-ref diff-etcd bench-vs-etcd

etcd-ref: $(ETCD_REF)

$(ETCD_REF): tools/etcd-ref/main.go tools/etcd-ref/build.sh
	tools/etcd-ref/build.sh

diff-etcd: $(ETCD_REF)
	RAFT_REPLAY_ETCD_REF=$(ETCD_REF) cargo test --test diff_etcd -- --nocapture

# --- bbolt reference program (tools/bbolt-ref: bbolt 1.3.6 + etcd 3.4.23 mvcc, Go) ---
BBOLT_REF := target/bbolt-ref/bbolt-ref

.PHONY: bbolt-ref diff-bbolt

bbolt-ref: $(BBOLT_REF)

$(BBOLT_REF): tools/bbolt-ref/main.go tools/bbolt-ref/build.sh
	tools/bbolt-ref/build.sh

diff-bbolt: $(BBOLT_REF)
	RAFT_REPLAY_BBOLT_REF=$(BBOLT_REF) cargo test --test diff_bbolt -- --nocapture

bench-vs-etcd: $(ETCD_REF)
	RAFT_REPLAY_ETCD_REF=$(ETCD_REF) cargo bench --bench decode_vs_etcd

# --- real etcd captures (corpus/cluster-a..c: 3.4.23; cluster-d, -f: 3.5.30; cluster-e: 3.4.23 -> 3.5.30) ---
# Starts throwaway etcd clusters on 127.0.0.1:23791-28899, installs etcd-server, etcd-client, curl,
# python3 with apt if missing, fetches etcd 3.5.30 (tools/etcd-bin/fetch.sh), and rewrites
# corpus/<capture>/. Not bit-reproducible.
.PHONY: corpus
corpus:
	bash tools/capture/capture.sh all

# --- profiling and benchmarks (docs/perf.md) ---
.PHONY: profile-demo profile-alloc

# Every benchmark, figures on stdout: the replay bench (decode + raft-rs + MVCC + checks on 1 M and
# 10 M synthetic puts: entries/s on one core, linearity, peak RSS, profiler overhead), decode vs
# etcd's own ReadAll on the real captures (ratio), and `raft-replay db` vs etcd 3.5.30's
# `etcdutl snapshot status` on a 1.4 GB etcd db (time ratio, peak RSS at 130 MB and 1.4 GB; the
# dbs are written once into target/bench-db by bbolt-ref, ~2 min each; then `verify` and `hashkv` on a
# member etcd 3.5.30 restored from each db and booted on 127.0.0.1, against etcd's own HashKV, and
# their peak-RSS ratio 1.4 GB / 128 MB db), and issue 17's table (each row
# a ratio measured in one run: benches/issue17.rs). Not part of `cargo test`.
# Needs Go + Debian's etcd/bbolt source (make deps) and etcdutl, fetched from Debian sid into
# target/etcd/ (tools/etcd-bin/fetch.sh; without it the db bench says so and skips).
# BENCH_SIZES / BENCH_RUNS / BENCH_PAIRS tune the first, BENCH_PAIRS / BENCH_DB_* the last.
ETCDUTL_VERSION := 3.5.30
ETCDUTL := target/etcd/$(ETCDUTL_VERSION)/usr/bin/etcdutl

bench: deps
	$(MAKE) etcd-ref bbolt-ref
	cargo bench --bench replay
	cargo bench --bench verify_jobs
	RAFT_REPLAY_ETCD_REF=$(ETCD_REF) cargo bench --bench decode_vs_etcd
	RAFT_REPLAY_ETCD_REF=$(ETCD_REF) cargo bench --bench memory
	RAFT_REPLAY_ETCD_REF=$(ETCD_REF) cargo bench --bench issue17
	tools/etcd-bin/fetch.sh $(ETCDUTL_VERSION) sid || echo "etcdutl $(ETCDUTL_VERSION) not fetched: the db bench will skip"
	RAFT_REPLAY_BBOLT_REF=$(BBOLT_REF) RAFT_REPLAY_ETCDUTL=$(ETCDUTL) cargo bench --bench db

# Only the db bench (the first run writes its two dbs, ~4 min; BENCH_DB_ONLY=status|members: one part).
.PHONY: bench-db
bench-db: bbolt-ref
	tools/etcd-bin/fetch.sh $(ETCDUTL_VERSION) sid
	RAFT_REPLAY_BBOLT_REF=$(BBOLT_REF) RAFT_REPLAY_ETCDUTL=$(ETCDUTL) cargo bench --bench db

# The profiling build: release code with full debug info (inlined frames keep their names), in
# target/profiling. DWARF unwinding, not frame pointers: Debian's glibc has no frame pointers, and
# with `--features fp-unwind` the samples taken inside libc (a third of this workload) lose their
# whole stack (docs/perf.md).
PROFILING_BIN := target/profiling/raft-replay
PROFILE_OUT ?= target/profile-demo

$(PROFILING_BIN): Cargo.toml Cargo.lock $(shell find src -name '*.rs')
	cargo build --profile profiling

# Flame graphs of a real replay (every member of cluster-a) and of a 1 M-entry synthetic log,
# each repeated until 2,000 samples: flamegraph.svg, profile.pb, stacks.folded, phases.txt.
profile-demo: $(PROFILING_BIN) unpack-corpus
	$(PROFILING_BIN) profile $(CORPUS_OUT)/cluster-a/* --out $(PROFILE_OUT)/cluster-a
	$(PROFILING_BIN) profile --synthetic 1000000 --out $(PROFILE_OUT)/synthetic-1m
	@echo "flame graphs: $(PROFILE_OUT)/*/flamegraph.svg; try: go tool pprof -top $(PROFILE_OUT)/cluster-a/profile.pb"

# Top allocation sites (dhat) and allocations per phase, in a separate alloc-profile build.
profile-alloc: unpack-corpus
	CARGO_TARGET_DIR=target/alloc cargo build --release --features alloc-profile
	target/alloc/release/raft-replay profile $(CORPUS_OUT)/cluster-a/m1 --alloc --out $(PROFILE_OUT)/alloc-cluster-a-m1

# --- deterministic cluster simulation (src/sim, scenarios/) ---
# `cargo test` replays every scenario and runs a bounded generated run; this is the large one:
# 100,000 generated cases on the unmodified code, every injected bug from a fixed seed, and the
# proptest suite with 20,000 cases, all in release mode.
.PHONY: sim-heavy
sim-heavy:
	cargo build --release
	$(RELEASE_BIN) sim --cases 100000 --seed 1 --out target/sim-failures
	@for bug in ack-before-fsync apply-before-commit skip-leave-joint persist-hardstate-before-entries truncate-committed-on-conflict stale-vote-after-restart; do \
		$(RELEASE_BIN) sim --cases 2000 --seed 1 --inject $$bug --out target/sim-failures >/dev/null; \
		test $$? -eq 1 || { echo "$$bug was not caught"; exit 1; }; echo "$$bug: caught"; \
	done
	RAFT_REPLAY_SIM_CASES=20000 cargo test --release --test sim_proptest --test sim_scenarios

# --- fuzzing (fuzz/: cargo-fuzz, libFuzzer; README "Reliability") ---
# Every target for FUZZ_SECONDS each, one at a time; seeds are cut from the unpacked captures,
# the scenarios and the gate baselines at each run (tools/fuzz/seeds.py). Needs the nightly
# toolchain (`rustup toolchain install nightly`) and python3; installs cargo-fuzz from crates.io
# when it is missing. Exit 1 when a target crashed (the input is in fuzz/artifacts/<target>/;
# `cargo +nightly fuzz tmin -s none -a TARGET INPUT` minimises it). Logs: target/fuzz-logs.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := wal_read wal_roundtrip member_verify snap payload scenario baseline bbolt
FUZZ_LOGS := $(CURDIR)/target/fuzz-logs

.PHONY: fuzz fuzz-build
fuzz-build:
	@rustup toolchain list 2>/dev/null | grep -q '^nightly' || { echo "make fuzz: the nightly toolchain is not installed (rustup toolchain install nightly)"; exit 2; }
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	cd fuzz && cargo +nightly fuzz build -s none -a

fuzz: fuzz-build unpack-corpus
	python3 tools/fuzz/seeds.py $(CORPUS_OUT) fuzz/corpus
	rm -f $(FUZZ_LOGS)/summary.txt
	fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_LOGS) $(FUZZ_TARGETS)
