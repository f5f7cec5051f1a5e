//! A read-only reader of etcd's backend db (`member/snap/db`, a bbolt file) and of
//! `etcdctl snapshot save` files: bit-exact, bounded memory, and damage reported as typed
//! findings instead of crashes.
//!
//! Layers, bottom up:
//! * [`page`]: bbolt's structures over byte slices (page header, elements, meta, FNV-1a);
//! * [`reader`]: [`Db`] (meta selection as `db.go: DB.meta`, bounds-checked page reads through
//!   [`crate::ReadOnlyFs`]) and [`Walker`] (`Bucket.ForEach` page by page, reachability as
//!   `tx.Check`);
//! * [`crc`]: CRC-32C of a concatenation from its parts' CRCs (one hash per entry serves
//!   `snapshot status` and HashKV);
//! * [`digest`]: the `key` bucket's per-entry digests HashKV is computed from, the older ones
//!   in an unlinked temporary file (memory bounded by a window, not by the bucket);
//! * [`etcd`]: etcd's bucket schema 3.4–3.6 and the KV model restored as `mvcc/kvstore.go:
//!   restore` does it, HashKV and `snapshot status`;
//! * [`report`]: the `raft-replay db` report and its text/JSON rendering.
//!
//! Nothing here uses `unsafe`, mmap or file locks, so a db that a running etcd holds open (with
//! its exclusive flock) can be read; a copy taken while etcd commits may show a torn newest
//! meta, which is reported ([`Db::meta_newer_lost`]).

pub mod crc;
pub mod digest;
pub mod error;
pub mod etcd;
pub mod page;
pub mod reader;
pub mod report;

pub use error::{Damage, DbError, MetaProblem};
pub use reader::{BucketRef, Db, Item, Walker};
pub use report::{open_db_path, DbReport};
