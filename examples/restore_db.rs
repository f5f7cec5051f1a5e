//! Restores the MVCC store from an etcd backend db as a start from the db does
//! (`backend::etcd::read_etcd`, then `load_store` streaming the `key` bucket into the store) and
//! prints its HashKV, the bucket's size, how much of it spilled, and this process's peak RSS:
//! the memory the KV model of a `verify` that starts from this db needs.
//!
//! ```sh
//! cargo run --release --example restore_db -- target/bench-db/etcd-k800000-r1200000-v1100-d100-c100000.db
//! ```

use raft_replay::backend::etcd::{load_store, read_etcd};
use raft_replay::backend::Db;
use raft_replay::fsio::RealFs;
use raft_replay::mvcc::EtcdVersion;
use raft_replay::profile::clock::peak_rss_bytes;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: restore_db DB_FILE");
        std::process::exit(2);
    };
    let fs = RealFs;
    let restored = Db::open(&fs, std::path::Path::new(&path)).and_then(|db| {
        let read = read_etcd(&db, EtcdVersion::V3_4_23)?;
        load_store(&db, read.restored)
    });
    let store = match restored {
        Ok(store) => store,
        Err(e) => {
            eprintln!("restore_db: {e}");
            std::process::exit(2);
        }
    };
    let hash = store.hash_kv(0);
    let summary = store.summary();
    println!(
        "{}",
        serde_json::json!({
            "db_bytes": std::fs::metadata(&path).map(|m| m.len()).ok(),
            "hash": hash.ok().map(|h| h.hash),
            "revision": summary.current_revision,
            "compact_revision": summary.compact_revision,
            "bucket_entries": summary.bucket_entries,
            "bucket_value_bytes": summary.bucket_value_bytes,
            "bucket_entries_spilled": store.bucket_entries_spilled(),
            "live_keys": summary.live_keys,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
}
