# --- etcd reference program (tools/etcd-ref, Go, built against Debian's etcd 3.4.23) ---
# Optional: needs `apt-get install golang-go golang-etcd-server-dev`. Never used by plain `cargo test`.
ETCD_REF := target/etcd-ref/etcd-ref

.PHONY: etcd-ref diff-etcd bench-vs-etcd

etcd-ref: $(ETCD_REF)

$(ETCD_REF): tools/etcd-ref/main.go tools/etcd-ref/build.sh
	tools/etcd-ref/build.sh

diff-etcd: $(ETCD_REF)
	RAFT_REPLAY_ETCD_REF=$(ETCD_REF) cargo test --test diff_etcd -- --nocapture

bench-vs-etcd: $(ETCD_REF)
	RAFT_REPLAY_ETCD_REF=$(ETCD_REF) cargo bench --bench decode_vs_etcd

# --- real etcd 3.4 captures (corpus/cluster-a, corpus/cluster-b) ---
# Starts throwaway etcd clusters on 127.0.0.1:23791-23895 / 24791-24893, installs etcd-server,
# etcd-client, curl, python3 with apt if missing, and rewrites corpus/<capture>/. Not bit-reproducible.
.PHONY: corpus
corpus:
	bash tools/capture/capture.sh all
