// bbolt-ref is the reference program for raft-replay's db-reader differential tests. It is
// built in GOPATH mode against Debian's bbolt 1.3.6 (golang-github-coreos-bbolt-dev) and etcd
// 3.4.23 (golang-etcd-server-dev) sources, so what it reports comes from bbolt's and etcd's own
// code.
//
// Subcommands (JSON on stdout):
//
//	bbolt-ref gen <out.db> --page-size N [--no-freelist-sync] [--seed S] [--keys N]
//	          [--nested] [--overflow] [--churn]
//	    Writes a bbolt file with buckets of many keys, inline and nested buckets, values larger
//	    than a page (overflow) and, with --churn, deletions that leave many free pages.
//	bbolt-ref list <db>
//	    Every item, depth first in key order: {"path":[hex…],"key":hex,"value":hex|null,
//	    "seq":n (buckets)}, then one summary line {"summary":{page_size,txid,hwm,freelist,
//	    free_pages,check_errors}}.
//	bbolt-ref gen-etcd <out.db> [--keys K] [--revisions R] [--value-size V] [--delete-every D]
//	          [--compact-every C] [--seed S]
//	    Writes an etcd backend db with etcd 3.4.23's own mvcc store and backend (as a member
//	    writes member/snap/db: NoFreelistSync, batched commits, `key` bucket of revision keys and
//	    marshalled mvccpb.KeyValue, `meta` with consistent_index) plus `members` and `cluster`:
//	    R revisions, each a Put of one of K keys (round robin) with V random bytes, every D-th
//	    one a delete instead (0: none); every C revisions a compaction (mvcc Compact, waited
//	    for) at the revision C before, as kube-apiserver's periodic compaction keeps a window of
//	    history (0: none). The value size changes only the file size: the same K, R, D, C and
//	    seed give the same keys and revisions at any V. Fsync is off (a generator).
//	bbolt-ref etcd <db>
//	    etcd's own view of a db (works on a copy: etcd's backend opens read-write):
//	    snapshot status, HashKV (mvcc.NewStore + HashByRev(0)), consistent index.
//
// Exit status: 0 ran, 2 could not run.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/clientv3/snapshot"
	"go.etcd.io/etcd/lease"
	"go.etcd.io/etcd/mvcc"
	"go.etcd.io/etcd/mvcc/backend"
	"go.etcd.io/etcd/pkg/traceutil"
	"go.uber.org/zap"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "bbolt-ref: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 3 {
		die("usage: bbolt-ref gen|list|etcd <db> [flags]")
	}
	switch os.Args[1] {
	case "gen":
		gen(os.Args[2], os.Args[3:])
	case "list":
		list(os.Args[2])
	case "etcd":
		etcdView(os.Args[2])
	case "gen-etcd":
		genEtcd(os.Args[2], os.Args[3:])
	default:
		die("unknown subcommand %q", os.Args[1])
	}
}

func gen(out string, args []string) {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	pageSize := fs.Int("page-size", 4096, "page size")
	noSync := fs.Bool("no-freelist-sync", false, "NoFreelistSync (as etcd on Linux)")
	seed := fs.Int64("seed", 1, "random seed")
	keys := fs.Int("keys", 2000, "keys in the big bucket")
	nested := fs.Bool("nested", false, "nested buckets (inline and not)")
	overflow := fs.Bool("overflow", false, "values larger than a page")
	churn := fs.Bool("churn", false, "delete most keys afterwards (many free pages)")
	freePages := fs.Int("free-pages", 0, "fill then drop a bucket of this many page-sized values (0xFFFF freelist escape when > 65535)")
	fs.Parse(args)
	os.Remove(out)
	db, err := bolt.Open(out, 0600, &bolt.Options{PageSize: *pageSize, NoFreelistSync: *noSync})
	if err != nil {
		die("open: %v", err)
	}
	r := rand.New(rand.NewSource(*seed))
	val := func(n int) []byte {
		b := make([]byte, n)
		r.Read(b)
		return b
	}
	// Several transactions so both metas and the freelist get exercised.
	for batch := 0; batch < 4; batch++ {
		err = db.Update(func(tx *bolt.Tx) error {
			big, err := tx.CreateBucketIfNotExists([]byte("big"))
			if err != nil {
				return err
			}
			for i := batch * *keys / 4; i < (batch+1)**keys/4; i++ {
				k := make([]byte, 8)
				binary.BigEndian.PutUint64(k, uint64(i)*7919%uint64(*keys*10))
				if err := big.Put(k, val(r.Intn(200))); err != nil {
					return err
				}
			}
			small, err := tx.CreateBucketIfNotExists([]byte("small"))
			if err != nil {
				return err
			}
			small.Put([]byte(fmt.Sprintf("k%d", batch)), val(10))
			if _, err := tx.CreateBucketIfNotExists([]byte("empty")); err != nil {
				return err
			}
			if *overflow {
				ov, err := tx.CreateBucketIfNotExists([]byte("overflow"))
				if err != nil {
					return err
				}
				ov.Put([]byte(fmt.Sprintf("v%d", batch)), val(*pageSize*(batch+1)+r.Intn(*pageSize)))
				ov.Put([]byte(fmt.Sprintf("w%d", batch)), val(3**pageSize))
			}
			if *nested {
				outer, err := tx.CreateBucketIfNotExists([]byte("outer"))
				if err != nil {
					return err
				}
				in, err := outer.CreateBucketIfNotExists([]byte(fmt.Sprintf("inline%d", batch)))
				if err != nil {
					return err
				}
				in.Put([]byte("a"), []byte("b"))
				deep, err := outer.CreateBucketIfNotExists([]byte("deep"))
				if err != nil {
					return err
				}
				for i := 0; i < 300; i++ {
					deep.Put([]byte(fmt.Sprintf("d%d-%05d", batch, i)), val(40))
				}
				deeper, err := deep.CreateBucketIfNotExists([]byte("z-deeper"))
				if err != nil {
					return err
				}
				deeper.Put([]byte(fmt.Sprintf("x%d", batch)), val(20))
				deeper.NextSequence()
			}
			return nil
		})
		if err != nil {
			die("update: %v", err)
		}
	}
	if *freePages > 0 {
		err = db.Update(func(tx *bolt.Tx) error {
			tmp, err := tx.CreateBucket([]byte("tmp"))
			if err != nil {
				return err
			}
			filler := make([]byte, *pageSize-64)
			for i := 0; i < *freePages; i++ {
				k := make([]byte, 8)
				binary.BigEndian.PutUint64(k, uint64(i))
				if err := tmp.Put(k, filler); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("tmp")) })
		}
		if err != nil {
			die("free-pages: %v", err)
		}
	}
	if *churn {
		err = db.Update(func(tx *bolt.Tx) error {
			big := tx.Bucket([]byte("big"))
			c := big.Cursor()
			i := 0
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if i%5 != 0 {
					if err := c.Delete(); err != nil {
						return err
					}
				}
				i++
			}
			return nil
		})
		if err != nil {
			die("churn: %v", err)
		}
	}
	if err := db.Close(); err != nil {
		die("close: %v", err)
	}
	fmt.Printf("{\"written\":%q}\n", out)
}

type item struct {
	Path  []string `json:"path"`
	Key   string   `json:"key"`
	Value *string  `json:"value"`
	Seq   *uint64  `json:"seq,omitempty"`
}

func list(path string) {
	db, err := bolt.Open(path, 0400, &bolt.Options{ReadOnly: true})
	if err != nil {
		die("open: %v", err)
	}
	defer db.Close()
	enc := json.NewEncoder(os.Stdout)
	var walk func(b *bolt.Bucket, path []string) error
	walk = func(b *bolt.Bucket, path []string) error {
		return b.ForEach(func(k, v []byte) error {
			it := item{Path: path, Key: hex.EncodeToString(k)}
			if v == nil {
				sub := b.Bucket(k)
				seq := sub.Sequence()
				it.Seq = &seq
				if err := enc.Encode(it); err != nil {
					return err
				}
				return walk(sub, append(append([]string{}, path...), hex.EncodeToString(k)))
			}
			s := hex.EncodeToString(v)
			it.Value = &s
			return enc.Encode(it)
		})
	}
	summary := map[string]interface{}{}
	err = db.View(func(tx *bolt.Tx) error {
		err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			seq := b.Sequence()
			if err := enc.Encode(item{Path: []string{}, Key: hex.EncodeToString(name), Seq: &seq}); err != nil {
				return err
			}
			return walk(b, []string{hex.EncodeToString(name)})
		})
		if err != nil {
			return err
		}
		var errs []string
		for e := range tx.Check() {
			errs = append(errs, e.Error())
		}
		st := db.Stats()
		summary["page_size"] = db.Info().PageSize
		summary["txid"] = tx.ID()
		summary["hwm"] = tx.Size() / int64(db.Info().PageSize)
		summary["free_pages"] = st.FreePageN + st.PendingPageN
		summary["check_errors"] = errs
		return nil
	})
	if err != nil {
		die("view: %v", err)
	}
	enc.Encode(map[string]interface{}{"summary": summary})
}

type ciGetter uint64

func (c ciGetter) ConsistentIndex() uint64 { return uint64(c) }

func copyFile(src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		die("%v", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		die("%v", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		die("%v", err)
	}
	out.Close()
}

func etcdView(path string) {
	lg := zap.NewNop()
	st, err := snapshot.NewV3(lg).Status(path)
	res := map[string]interface{}{}
	if err != nil {
		res["snapshot_status_error"] = err.Error()
	} else {
		res["snapshot_status"] = map[string]interface{}{
			"hash": st.Hash, "revision": st.Revision, "total_keys": st.TotalKey, "total_size": st.TotalSize,
		}
	}
	// etcd's backend opens read-write and takes an exclusive lock: work on a copy.
	dir, err := os.MkdirTemp("", "bbolt-ref-")
	if err != nil {
		die("%v", err)
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, "db")
	copyFile(path, cp)
	be := backend.NewDefaultBackend(cp)
	defer be.Close()
	var ci uint64
	tx := be.BatchTx()
	tx.Lock()
	_, vs := tx.UnsafeRange([]byte("meta"), []byte("consistent_index"), nil, 0)
	if len(vs) == 1 && len(vs[0]) == 8 {
		ci = binary.BigEndian.Uint64(vs[0])
	}
	tx.Unlock()
	le := lease.NewLessor(lg, be, nil, lease.LessorConfig{MinLeaseTTL: 1})
	s := mvcc.NewStore(lg, be, le, ciGetter(ci), mvcc.StoreConfig{})
	// A compaction resumed at restore runs in the store's scheduler: stop it (Close waits for
	// the job) before the backend closes under it.
	defer s.Close()
	hash, rev, compactRev, err := s.HashByRev(0)
	if err != nil {
		res["hashkv_error"] = err.Error()
	} else {
		res["hash"] = hash
		res["revision"] = rev
		res["compact_revision"] = compactRev
	}
	res["consistent_index"] = ci
	json.NewEncoder(os.Stdout).Encode(res)
}

func genEtcd(out string, args []string) {
	fs := flag.NewFlagSet("gen-etcd", flag.ExitOnError)
	keys := fs.Int("keys", 100000, "distinct keys")
	revisions := fs.Int("revisions", 1000000, "revisions (puts and deletes)")
	valueSize := fs.Int("value-size", 1000, "bytes of each value")
	deleteEvery := fs.Int("delete-every", 0, "every D-th revision is a delete (0: none)")
	compactEvery := fs.Int("compact-every", 0, "compact every C revisions at the revision C before (0: none)")
	seed := fs.Int64("seed", 1, "random seed (values)")
	fs.Parse(args)
	os.Remove(out)
	lg := zap.NewNop()
	cfg := backend.DefaultBackendConfig()
	cfg.Path = out
	cfg.Logger = lg
	cfg.UnsafeNoFsync = true
	be := backend.New(cfg)
	tx := be.BatchTx()
	tx.Lock()
	tx.UnsafeCreateBucket([]byte("members"))
	tx.UnsafeCreateBucket([]byte("members_removed"))
	tx.UnsafeCreateBucket([]byte("cluster"))
	tx.UnsafePut([]byte("members"), []byte("8e9e05c52164694d"),
		[]byte(`{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default","clientURLs":["http://localhost:2379"]}`))
	tx.UnsafePut([]byte("cluster"), []byte("clusterVersion"), []byte("3.4.0"))
	tx.Unlock()
	le := lease.NewLessor(lg, be, nil, lease.LessorConfig{MinLeaseTTL: 1})
	var ci ciCounter
	s := mvcc.NewStore(lg, be, le, &ci, mvcc.StoreConfig{})
	r := rand.New(rand.NewSource(*seed))
	val := make([]byte, *valueSize)
	var compactions int
	for i := 0; i < *revisions; i++ {
		if *compactEvery > 0 && i > 0 && i%*compactEvery == 0 {
			if at := s.Rev() - int64(*compactEvery); at > 0 {
				ch, err := s.Compact(traceutil.TODO(), at)
				if err != nil {
					die("compact %d: %v", at, err)
				}
				<-ch
				compactions++
			}
		}
		ci++
		key := []byte(fmt.Sprintf("/registry/pods/ns-%03d/pod-%08d", i%*keys%1000, i%*keys))
		if *deleteEvery > 0 && i%*deleteEvery == *deleteEvery-1 {
			s.DeleteRange(key, nil)
			continue
		}
		r.Read(val)
		s.Put(key, val, lease.NoLease)
	}
	s.Commit()
	s.Close()
	be.Close()
	st, err := os.Stat(out)
	if err != nil {
		die("%v", err)
	}
	fmt.Printf("{\"written\":%q,\"bytes\":%d,\"consistent_index\":%d,\"compactions\":%d}\n", out, st.Size(), uint64(ci), compactions)
}

// ciCounter is the consistent index a member would save: one raft entry per request.
type ciCounter uint64

func (c *ciCounter) ConsistentIndex() uint64 { return uint64(*c) }
