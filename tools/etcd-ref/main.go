// etcd-ref is a reference program for raft-replay's differential tests and
// benchmarks. It is built in GOPATH mode against Debian's etcd 3.4.23 source
// (package golang-etcd-server-dev, /usr/share/gocode/src/go.etcd.io/etcd), so
// everything it reports comes from etcd's own wal / snap packages.
//
// Subcommands (see README.md for the JSON schemas):
//
//	etcd-ref readall <dir> [--start-index N [--start-term T]]
//	etcd-ref boot <dir> [--start-index N [--start-term T]] [--in-place]
//	etcd-ref bench <dir> [--iters N]
//	etcd-ref write-sample <outdir> [--entries N] [--segment-size S] [--no-fsync]
//
// Exit status: 0 when the program ran (even if etcd returned an error, which
// is reported in the JSON "error" field), 2 when it could not run (bad usage,
// missing directory, cannot write output).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/etcdserver/api/snap"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
	"go.etcd.io/etcd/pkg/pbutil"
	"go.etcd.io/etcd/raft"
	"go.etcd.io/etcd/raft/raftpb"
	"go.etcd.io/etcd/version"
	"go.etcd.io/etcd/wal"
	"go.etcd.io/etcd/wal/walpb"

	"go.uber.org/zap"
)

// gapLen is the number of entries skipped by write-sample --gap-at.
const gapLen = 50

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// A no-op zap logger: with a non-nil logger the etcd packages log through zap
// instead of capnslog, so nothing is printed on stderr.
var lg = zap.NewNop()

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "etcd-ref: "+format+"\n", a...)
	os.Exit(2)
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  etcd-ref readall <dir> [--start-index N [--start-term T]]
  etcd-ref boot <dir> [--start-index N [--start-term T]] [--in-place]
  etcd-ref bench <dir> [--iters N]
  etcd-ref write-sample <outdir> [--entries N] [--segment-size S] [--no-fsync] [--gap-at K]
  etcd-ref version
<dir> may be an etcd data dir (<dir>/member/wal), a member dir (<dir>/wal) or a wal dir.
`)
	os.Exit(2)
}

// parseArgs parses flags that may appear before or after positional
// arguments (Go's flag package stops at the first positional argument).
func parseArgs(fs *flag.FlagSet, args []string) []string {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			os.Exit(2)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "readall":
		cmdReadAll(os.Args[2:])
	case "boot":
		cmdBoot(os.Args[2:])
	case "bench":
		cmdBench(os.Args[2:])
	case "write-sample":
		cmdWriteSample(os.Args[2:])
	case "version":
		fmt.Printf("etcd-ref: etcd %s, %s\n", version.Version, runtime.Version())
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "etcd-ref: unknown subcommand %q\n", os.Args[1])
		usage()
	}
}

// ---------------------------------------------------------------------------
// JSON types
// ---------------------------------------------------------------------------

type jsonSnap struct {
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
}

type jsonHardState struct {
	Term   uint64 `json:"term"`
	Vote   uint64 `json:"vote"`
	Commit uint64 `json:"commit"`
}

type jsonMetadata struct {
	NodeID    *string `json:"node_id"`
	ClusterID *string `json:"cluster_id"`
	Hex       string  `json:"hex"`
	// Set when the metadata bytes are not an etcdserverpb.Metadata (etcd
	// itself would panic in pbutil.MustUnmarshal at boot).
	DecodeError *string `json:"decode_error,omitempty"`
}

type jsonEntry struct {
	Index      uint64 `json:"index"`
	Term       uint64 `json:"term"`
	Type       string `json:"type"`
	DataLen    int    `json:"data_len"`
	DataCRC32C uint32 `json:"data_crc32c"`
}

type jsonFallback struct {
	From   jsonSnap `json:"from"`
	To     jsonSnap `json:"to"`
	Reason string   `json:"reason"`
}

type jsonSkippedSnap struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

type readAllOutput struct {
	Start             jsonSnap          `json:"start"`
	Error             *string           `json:"error"`
	ErrorStage        *string           `json:"error_stage"`
	HardState         jsonHardState     `json:"hard_state"`
	Metadata          *jsonMetadata     `json:"metadata"`
	EntryCount        int               `json:"entry_count"`
	Entries           []jsonEntry       `json:"entries"`
	SnapshotFile      *string           `json:"snapshot_file"`
	StartFallback     *jsonFallback     `json:"start_fallback"`
	ValidSnapshots    []jsonSnap        `json:"valid_snapshots"`
	ValidSnapshotsErr *string           `json:"valid_snapshots_error"`
	SkippedSnapFiles  []jsonSkippedSnap `json:"skipped_snap_files"`
	// boot only: the io.ErrUnexpectedEOF that wal.Repair mended before the
	// second ReadAll succeeded (etcdserver readWAL repairs once).
	RepairedError *string `json:"repaired_error,omitempty"`
	EtcdVersion   string  `json:"etcd_version"`
}

func strp(s string) *string { return &s }

func entryTypeName(t raftpb.EntryType) string {
	switch t {
	case raftpb.EntryNormal:
		return "normal"
	case raftpb.EntryConfChange:
		return "conf_change"
	case raftpb.EntryConfChangeV2:
		return "conf_change_v2"
	default:
		return fmt.Sprintf("unknown(%d)", int32(t))
	}
}

// ---------------------------------------------------------------------------
// Directory resolution and read-only snapshot selection
// ---------------------------------------------------------------------------

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// resolveDirs maps a data dir / member dir / wal dir to (walDir, snapDir).
// snapDir is "" when the sibling snap/ directory does not exist.
func resolveDirs(dir string) (string, string) {
	walDir := dir
	if p := filepath.Join(dir, "member", "wal"); isDir(p) {
		walDir = p
	} else if p := filepath.Join(dir, "wal"); isDir(p) {
		walDir = p
	}
	snapDir := filepath.Join(filepath.Dir(filepath.Clean(walDir)), "snap")
	if !isDir(snapDir) {
		snapDir = ""
	}
	return walDir, snapDir
}

// loadNewestAvailable mirrors snap.Snapshotter.LoadNewestAvailable (3.4.23)
// but is read-only: it does not delete db.tmp* files (cleanupSnapdir) and does
// not rename unreadable .snap files to .broken (loadSnap). Order and matching
// are the same: names with suffix ".snap", reverse string sort, the first one
// that snap.Read accepts and whose (Term, Index) is one of walSnaps wins.
func loadNewestAvailable(snapDir string, walSnaps []walpb.Snapshot) (*raftpb.Snapshot, string, []jsonSkippedSnap, error) {
	var skipped []jsonSkippedSnap
	if snapDir == "" {
		return nil, "", skipped, snap.ErrNoSnapshot
	}
	d, err := os.Open(snapDir)
	if err != nil {
		return nil, "", skipped, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, "", skipped, err
	}
	var snaps []string
	for _, n := range names {
		if strings.HasPrefix(n, "db.tmp") {
			continue // etcd deletes these; we just ignore them
		}
		if strings.HasSuffix(n, ".snap") {
			snaps = append(snaps, n)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(snaps)))
	for _, n := range snaps {
		s, err := snap.Read(lg, filepath.Join(snapDir, n))
		if err != nil {
			skipped = append(skipped, jsonSkippedSnap{Name: n, Error: err.Error()})
			continue
		}
		m := s.Metadata
		for i := len(walSnaps) - 1; i >= 0; i-- {
			if m.Term == walSnaps[i].Term && m.Index == walSnaps[i].Index {
				return s, n, skipped, nil
			}
		}
	}
	return nil, "", skipped, snap.ErrNoSnapshot
}

// ---------------------------------------------------------------------------
// The read itself (shared by readall and bench)
// ---------------------------------------------------------------------------

type readResult struct {
	start          walpb.Snapshot
	err            error
	errStage       string
	metadata       []byte
	state          raftpb.HardState
	ents           []raftpb.Entry
	snapFile       string
	fallback       *jsonFallback
	validSnaps     []walpb.Snapshot
	validSnapsErr  error
	validSnapsDone bool
	skipped        []jsonSkippedSnap
	repairedErr    error
}

// openAndReadAll runs wal.OpenForRead + ReadAll, turning a panic inside etcd
// (pbutil.MustUnmarshal on a bad entry/state/snapshot payload) into an error.
func openAndReadAll(walDir string, start walpb.Snapshot) (stage string, metadata []byte, st raftpb.HardState, ents []raftpb.Entry, err error) {
	stage = "open"
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	w, err := wal.OpenForRead(lg, walDir, start)
	if err != nil {
		return stage, nil, st, nil, err
	}
	stage = "read_all"
	// In read mode ReadAll closes the files itself when it gets to the end;
	// on an error from inside its loop etcd leaves them open (so do we).
	metadata, st, ents, err = w.ReadAll()
	return stage, metadata, st, ents, err
}

func validSnapshotEntries(walDir string) (snaps []walpb.Snapshot, err error) {
	defer func() {
		if r := recover(); r != nil {
			snaps, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	return wal.ValidSnapshotEntries(lg, walDir)
}

// bootRead does what etcd 3.4.23 does at boot (etcdserver/server.go NewServer
// + restartNode + readWAL), read-only: ValidSnapshotEntries, newest available
// .snap, OpenForRead at that snapshot, ReadAll. With explicitStart != nil it
// opens at that start instead and, on ErrSliceOutOfRange, retries once at the
// newest valid WAL snapshot record.
func bootRead(walDir, snapDir string, explicitStart *walpb.Snapshot) *readResult {
	r := &readResult{}
	if explicitStart == nil {
		r.validSnaps, r.validSnapsErr = validSnapshotEntries(walDir)
		r.validSnapsDone = true
		if r.validSnapsErr != nil {
			r.err, r.errStage = r.validSnapsErr, "valid_snapshot_entries"
			return r
		}
		s, name, skipped, err := loadNewestAvailable(snapDir, r.validSnaps)
		r.skipped = skipped
		if err != nil && err != snap.ErrNoSnapshot {
			r.err, r.errStage = err, "load_snapshot"
			return r
		}
		if s != nil {
			r.start = walpb.Snapshot{Index: s.Metadata.Index, Term: s.Metadata.Term}
			r.snapFile = name
		}
	} else {
		r.start = *explicitStart
	}

	r.errStage, r.metadata, r.state, r.ents, r.err = openAndReadAll(walDir, r.start)

	if explicitStart != nil && r.err == wal.ErrSliceOutOfRange {
		r.validSnaps, r.validSnapsErr = validSnapshotEntries(walDir)
		r.validSnapsDone = true
		if r.validSnapsErr == nil && len(r.validSnaps) > 0 {
			newest := r.validSnaps[len(r.validSnaps)-1]
			if newest.Index != r.start.Index || newest.Term != r.start.Term {
				r.fallback = &jsonFallback{
					From:   jsonSnap{r.start.Index, r.start.Term},
					To:     jsonSnap{newest.Index, newest.Term},
					Reason: r.err.Error(),
				}
				r.start = newest
				r.errStage, r.metadata, r.state, r.ents, r.err = openAndReadAll(walDir, r.start)
			}
		}
	}
	if r.err == nil {
		r.errStage = ""
	}
	return r
}

// ---------------------------------------------------------------------------
// readall
// ---------------------------------------------------------------------------

func cmdReadAll(args []string) {
	fs := flag.NewFlagSet("readall", flag.ContinueOnError)
	startIndex := fs.String("start-index", "", "open the WAL at this index instead of the boot snapshot (e.g. 0)")
	startTerm := fs.Uint64("start-term", 0, "term of the --start-index snapshot (default 0)")
	pos := parseArgs(fs, args)
	if len(pos) != 1 {
		usage()
	}
	dir := pos[0]
	if !isDir(dir) {
		die("not a directory: %s", dir)
	}
	walDir, snapDir := resolveDirs(dir)

	var explicit *walpb.Snapshot
	if *startIndex != "" {
		idx, err := strconv.ParseUint(*startIndex, 10, 64)
		if err != nil {
			die("bad --start-index %q: %v", *startIndex, err)
		}
		explicit = &walpb.Snapshot{Index: idx, Term: *startTerm}
	}

	writeReadAllOutput(bootRead(walDir, snapDir, explicit))
}

// writeReadAllOutput prints a read's result as the readall JSON document.
func writeReadAllOutput(r *readResult) {
	out := readAllOutput{
		Start:            jsonSnap{r.start.Index, r.start.Term},
		HardState:        jsonHardState{r.state.Term, r.state.Vote, r.state.Commit},
		Entries:          make([]jsonEntry, 0, len(r.ents)),
		StartFallback:    r.fallback,
		SkippedSnapFiles: r.skipped,
		EtcdVersion:      version.Version,
	}
	if out.SkippedSnapFiles == nil {
		out.SkippedSnapFiles = []jsonSkippedSnap{}
	}
	if r.err != nil {
		out.Error = strp(r.err.Error())
		out.ErrorStage = strp(r.errStage)
	}
	if r.metadata != nil {
		m := &jsonMetadata{Hex: hex.EncodeToString(r.metadata)}
		var md pb.Metadata
		if err := md.Unmarshal(r.metadata); err != nil {
			m.DecodeError = strp(err.Error())
		} else {
			m.NodeID = strp(strconv.FormatUint(md.NodeID, 16))
			m.ClusterID = strp(strconv.FormatUint(md.ClusterID, 16))
		}
		out.Metadata = m
	}
	for i := range r.ents {
		e := &r.ents[i]
		out.Entries = append(out.Entries, jsonEntry{
			Index:      e.Index,
			Term:       e.Term,
			Type:       entryTypeName(e.Type),
			DataLen:    len(e.Data),
			DataCRC32C: crc32.Checksum(e.Data, castagnoli),
		})
	}
	out.EntryCount = len(out.Entries)
	if r.snapFile != "" {
		out.SnapshotFile = strp(r.snapFile)
	}
	if r.repairedErr != nil {
		out.RepairedError = strp(r.repairedErr.Error())
	}
	if r.validSnapsDone {
		if r.validSnapsErr != nil {
			out.ValidSnapshotsErr = strp(r.validSnapsErr.Error())
		} else {
			out.ValidSnapshots = []jsonSnap{}
			for _, s := range r.validSnaps {
				out.ValidSnapshots = append(out.ValidSnapshots, jsonSnap{s.Index, s.Term})
			}
		}
	}

	bw := bufio.NewWriterSize(os.Stdout, 1<<20)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(&out); err != nil {
		die("writing output: %v", err)
	}
	if err := bw.Flush(); err != nil {
		die("writing output: %v", err)
	}
}

// ---------------------------------------------------------------------------
// boot: etcd's own boot read, write mode, on a private copy
// ---------------------------------------------------------------------------

// copyTree copies the regular files and directories below src to dst.
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0700)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// openWriteAndReadAll is one turn of etcdserver/storage.go readWAL: wal.Open
// (write mode: file locks, ReadAll must reach io.EOF, the tail is zeroed past
// the last record) and ReadAll; the WAL is closed afterwards. A panic inside
// etcd (pbutil.MustUnmarshal) becomes an error.
func openWriteAndReadAll(walDir string, start walpb.Snapshot) (stage string, metadata []byte, st raftpb.HardState, ents []raftpb.Entry, err error) {
	stage = "open"
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	w, err := wal.Open(lg, walDir, start)
	if err != nil {
		return stage, nil, st, nil, err
	}
	// etcd's --unsafe-no-fsync path: the copy is thrown away, fsync changes no outcome.
	w.SetUnsafeNoFsync()
	stage = "read_all"
	metadata, st, ents, err = w.ReadAll()
	w.Close()
	return stage, metadata, st, ents, err
}

// etcdBoot is etcd 3.4.23's boot read (etcdserver/server.go NewServer for a
// member with a WAL, restartNode, storage.go readWAL), on files it may modify:
// wal.ValidSnapshotEntries, Snapshotter.LoadNewestAvailable (which renames an
// unreadable .snap to .broken), then readWAL's loop: wal.Open + ReadAll; on
// io.ErrUnexpectedEOF, wal.Repair (truncates the last segment at its last
// good record, keeping a .broken copy) and one more wal.Open + ReadAll; any
// other error, or a second one, is fatal. Finally the metadata goes through
// pbutil.MustUnmarshal as readWAL does. With explicitStart != nil the snapshot
// selection is skipped and the WAL is opened at that snapshot.
func etcdBoot(walDir, snapDir string, explicitStart *walpb.Snapshot) *readResult {
	r := &readResult{}
	if explicitStart == nil {
		r.validSnaps, r.validSnapsErr = validSnapshotEntries(walDir)
		r.validSnapsDone = true
		if r.validSnapsErr != nil {
			r.err, r.errStage = r.validSnapsErr, "valid_snapshot_entries"
			return r
		}
		before := snapFileNames(snapDir)
		s, err := snap.New(lg, snapDir).LoadNewestAvailable(r.validSnaps)
		// loadSnap renamed every unreadable candidate it tried to <name>.broken.
		for _, n := range before {
			if _, err := os.Stat(filepath.Join(snapDir, n+".broken")); err == nil {
				e := "renamed to .broken"
				if _, rerr := snap.Read(lg, filepath.Join(snapDir, n+".broken")); rerr != nil {
					e = rerr.Error()
				}
				r.skipped = append(r.skipped, jsonSkippedSnap{Name: n, Error: e})
			}
		}
		if err != nil && err != snap.ErrNoSnapshot {
			r.err, r.errStage = err, "load_snapshot"
			return r
		}
		if s != nil {
			r.start = walpb.Snapshot{Index: s.Metadata.Index, Term: s.Metadata.Term}
			r.snapFile = loadedSnapName(snapDir, before, s)
		}
	} else {
		r.start = *explicitStart
	}

	repaired := false
	for {
		r.errStage, r.metadata, r.state, r.ents, r.err = openWriteAndReadAll(walDir, r.start)
		if r.err == nil {
			break
		}
		// readWAL: "we can only repair ErrUnexpectedEOF and we never repair twice".
		if repaired || r.err != io.ErrUnexpectedEOF {
			return r
		}
		if !wal.Repair(lg, walDir) {
			r.errStage = "repair"
			return r
		}
		repaired = true
		r.repairedErr = r.err
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.err, r.errStage = fmt.Errorf("panic: %v", p), "metadata"
			}
		}()
		var md pb.Metadata
		pbutil.MustUnmarshal(&md, r.metadata)
	}()
	if r.err == nil {
		r.errStage = ""
	}
	return r
}

func snapFileNames(snapDir string) []string {
	ents, _ := os.ReadDir(snapDir)
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".snap") {
			out = append(out, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// loadedSnapName: the file LoadNewestAvailable returned s from, the first in
// its order (reverse name order) that still exists and holds s's metadata.
func loadedSnapName(snapDir string, names []string, s *raftpb.Snapshot) string {
	for _, n := range names {
		got, err := snap.Read(lg, filepath.Join(snapDir, n))
		if err == nil && got.Metadata.Index == s.Metadata.Index && got.Metadata.Term == s.Metadata.Term {
			return n
		}
	}
	return ""
}

func cmdBoot(args []string) {
	fs := flag.NewFlagSet("boot", flag.ContinueOnError)
	startIndex := fs.String("start-index", "", "skip the snapshot selection and open the WAL at this index (e.g. 0)")
	startTerm := fs.Uint64("start-term", 0, "term of the --start-index snapshot (default 0)")
	inPlace := fs.Bool("in-place", false, "boot the given files themselves (etcd may truncate the last segment, zero its tail, rename .snap files); default: a private copy")
	pos := parseArgs(fs, args)
	if len(pos) != 1 {
		usage()
	}
	dir := pos[0]
	if !isDir(dir) {
		die("not a directory: %s", dir)
	}
	walDir, snapDir := resolveDirs(dir)
	if snapDir == "" {
		snapDir = filepath.Join(filepath.Dir(filepath.Clean(walDir)), "snap")
	}
	if !*inPlace {
		tmp, err := os.MkdirTemp("", "etcd-ref-boot-")
		if err != nil {
			die("temp dir: %v", err)
		}
		defer os.RemoveAll(tmp)
		copyWal, copySnap := filepath.Join(tmp, "member", "wal"), filepath.Join(tmp, "member", "snap")
		if err := copyTree(walDir, copyWal); err != nil {
			os.RemoveAll(tmp)
			die("copy %s: %v", walDir, err)
		}
		if isDir(snapDir) {
			if err := copyTree(snapDir, copySnap); err != nil {
				os.RemoveAll(tmp)
				die("copy %s: %v", snapDir, err)
			}
		}
		walDir, snapDir = copyWal, copySnap
	}
	// NewServer: fileutil.TouchDirAll(cfg.SnapDir()) before anything is read.
	if err := os.MkdirAll(snapDir, 0700); err != nil {
		die("snap dir: %v", err)
	}

	var explicit *walpb.Snapshot
	if *startIndex != "" {
		idx, err := strconv.ParseUint(*startIndex, 10, 64)
		if err != nil {
			die("bad --start-index %q: %v", *startIndex, err)
		}
		explicit = &walpb.Snapshot{Index: idx, Term: *startTerm}
	}
	writeReadAllOutput(etcdBoot(walDir, snapDir, explicit))
}

// ---------------------------------------------------------------------------
// bench
// ---------------------------------------------------------------------------

func walBytes(walDir string) (int64, int) {
	ents, err := os.ReadDir(walDir)
	if err != nil {
		return 0, 0
	}
	var total int64
	n := 0
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".wal") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
			n++
		}
	}
	return total, n
}

func cmdBench(args []string) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	iters := fs.Int("iters", 10, "number of timed repetitions")
	warmup := fs.Int("warmup", 1, "untimed repetitions before timing")
	pos := parseArgs(fs, args)
	if len(pos) != 1 || *iters <= 0 || *warmup < 0 {
		usage()
	}
	dir := pos[0]
	if !isDir(dir) {
		die("not a directory: %s", dir)
	}
	walDir, snapDir := resolveDirs(dir)

	var r *readResult
	for i := 0; i < *warmup; i++ {
		r = bootRead(walDir, snapDir, nil)
	}
	runtime.GC()
	t0 := time.Now()
	for i := 0; i < *iters; i++ {
		r = bootRead(walDir, snapDir, nil)
	}
	total := time.Since(t0)

	bytes, files := walBytes(walDir)
	out := map[string]interface{}{
		"iters":        *iters,
		"warmup":       *warmup,
		"total_ns":     total.Nanoseconds(),
		"per_iter_ns":  total.Nanoseconds() / int64(*iters),
		"entries":      len(r.ents),
		"bytes":        bytes,
		"wal_files":    files,
		"start":        jsonSnap{r.start.Index, r.start.Term},
		"error":        nil,
		"etcd_version": version.Version,
		"go_version":   runtime.Version(),
	}
	if r.err != nil {
		out["error"] = r.err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		die("writing output: %v", err)
	}
}

// ---------------------------------------------------------------------------
// write-sample
// ---------------------------------------------------------------------------

type scriptEntry struct {
	Type    string  `json:"type"`
	Term    uint64  `json:"term"`
	Index   uint64  `json:"index"`
	DataHex *string `json:"data_hex"` // null = Data nil (field omitted); "" = empty but present
}

type scriptCall struct {
	Op string `json:"op"` // create | save | snap_save | save_snapshot | close

	// create
	MetadataHex string `json:"metadata_hex,omitempty"`

	// save
	HardState *jsonHardState `json:"hard_state,omitempty"`
	Entries   []scriptEntry  `json:"entries,omitempty"`
	MustSync  *bool          `json:"must_sync,omitempty"`

	// save_snapshot / snap_save
	Index *uint64 `json:"index,omitempty"`
	Term  *uint64 `json:"term,omitempty"`

	// snap_save
	File            string   `json:"file,omitempty"`
	ConfStateVoters []uint64 `json:"conf_state_voters,omitempty"`
	DataHex         string   `json:"data_hex,omitempty"`
	RaftSnapshotHex string   `json:"raft_snapshot_hex,omitempty"`

	// observed after the call: .wal files in the wal dir (only when the set changed)
	WalFilesAfter []string `json:"wal_files_after,omitempty"`
}

type scriptFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type script struct {
	EtcdVersion      string       `json:"etcd_version"`
	SegmentSizeBytes int64        `json:"segment_size_bytes"`
	Entries          uint64       `json:"entries"`
	WalDir           string       `json:"wal_dir"`
	SnapDir          string       `json:"snap_dir"`
	MetadataHex      string       `json:"metadata_hex"`
	Fsync            bool         `json:"fsync"`
	GapAt            uint64       `json:"gap_at"`
	Calls            []scriptCall `json:"calls"`
	Files            []scriptFile `json:"files"`
}

func u64p(v uint64) *uint64 { return &v }

func listWal(walDir string) []string {
	ents, _ := os.ReadDir(walDir)
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".wal") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func toScriptEntries(ents []raftpb.Entry) []scriptEntry {
	out := make([]scriptEntry, 0, len(ents))
	for _, e := range ents {
		se := scriptEntry{Type: entryTypeName(e.Type), Term: e.Term, Index: e.Index}
		if e.Data != nil {
			se.DataHex = strp(hex.EncodeToString(e.Data))
		}
		out = append(out, se)
	}
	return out
}

// sampleTerm: entries 1..3 are the fixed prefix (terms 1,2,2); from index 4 on
// the term is 2 + index/50, i.e. it changes at every multiple of 50.
func sampleTerm(i uint64) uint64 { return 2 + i/50 }

// sampleEntry builds generated entry i (i >= 4).
func sampleEntry(i uint64) raftpb.Entry {
	e := raftpb.Entry{Type: raftpb.EntryNormal, Term: sampleTerm(i), Index: i}
	switch {
	case i%50 == 0:
		// first entry of a new term: a leader no-op, Data == nil (field omitted)
	case i == 77:
		cc := raftpb.ConfChangeV2{
			Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode, NodeID: 0x5678}},
			Context: []byte("v2"),
		}
		b, err := cc.Marshal()
		if err != nil {
			die("marshal ConfChangeV2: %v", err)
		}
		e.Type, e.Data = raftpb.EntryConfChangeV2, b
	default:
		// strings.Repeat(.., 0) gives "", and []byte("") is non-nil: the field
		// is emitted with length 0 (22 00) for i%7 == 0.
		e.Data = []byte(strings.Repeat(fmt.Sprintf("value-%d", i), int(i%7)))
	}
	return e
}

func cmdWriteSample(args []string) {
	fs := flag.NewFlagSet("write-sample", flag.ContinueOnError)
	nEntries := fs.Uint64("entries", 300, "total number of entries (>= 3; 1..3 are the fixed prefix)")
	segSize := fs.Int64("segment-size", 0, "wal.SegmentSizeBytes (0 = etcd default 64000000)")
	noFsync := fs.Bool("no-fsync", false, "call SetUnsafeNoFsync (same bytes, faster)")
	gapAt := fs.Uint64("gap-at", 0, "when the next entry index would exceed K, skip 50 entries and write a leader snapshot at the last skipped index instead (0 = off)")
	pos := parseArgs(fs, args)
	if len(pos) != 1 || *nEntries < 3 || *segSize < 0 {
		usage()
	}
	outDir := pos[0]
	if *segSize > 0 {
		wal.SegmentSizeBytes = *segSize
	}
	memberDir := filepath.Join(outDir, "member")
	if _, err := os.Stat(memberDir); err == nil {
		die("%s already exists; refusing to overwrite", memberDir)
	}
	walDir := filepath.Join(memberDir, "wal")
	snapDir := filepath.Join(memberDir, "snap")
	if err := os.MkdirAll(snapDir, 0700); err != nil {
		die("mkdir: %v", err)
	}

	md := pb.Metadata{NodeID: 0x1234, ClusterID: 0xabcd}
	mdBytes, err := md.Marshal()
	if err != nil {
		die("marshal metadata: %v", err)
	}

	sc := script{
		EtcdVersion:      version.Version,
		SegmentSizeBytes: wal.SegmentSizeBytes,
		Entries:          *nEntries,
		WalDir:           "member/wal",
		SnapDir:          "member/snap",
		MetadataHex:      hex.EncodeToString(mdBytes),
		Fsync:            !*noFsync,
		GapAt:            *gapAt,
	}
	var lastWal []string
	record := func(c scriptCall) {
		now := listWal(walDir)
		if !sameStrings(now, lastWal) {
			c.WalFilesAfter = now
			lastWal = now
		}
		sc.Calls = append(sc.Calls, c)
	}

	w, err := wal.Create(lg, walDir, mdBytes)
	if err != nil {
		die("wal.Create: %v", err)
	}
	if *noFsync {
		w.SetUnsafeNoFsync()
	}
	record(scriptCall{Op: "create", MetadataHex: hex.EncodeToString(mdBytes)})

	var prevState raftpb.HardState // what the WAL compares MustSync against
	save := func(st raftpb.HardState, ents []raftpb.Entry) {
		ms := raft.MustSync(st, prevState, len(ents))
		if err := w.Save(st, ents); err != nil {
			die("Save: %v", err)
		}
		if !raft.IsEmptyHardState(st) {
			prevState = st
		}
		record(scriptCall{
			Op:        "save",
			HardState: &jsonHardState{st.Term, st.Vote, st.Commit},
			Entries:   toScriptEntries(ents),
			MustSync:  &ms,
		})
	}
	snapshot := func(index, term uint64) {
		rs := raftpb.Snapshot{
			Data: []byte(`{"Root":{}}`),
			Metadata: raftpb.SnapshotMetadata{
				ConfState: raftpb.ConfState{Voters: []uint64{0x1234}},
				Index:     index,
				Term:      term,
			},
		}
		rsBytes, err := rs.Marshal()
		if err != nil {
			die("marshal snapshot: %v", err)
		}
		if err := snap.New(lg, snapDir).SaveSnap(rs); err != nil {
			die("SaveSnap: %v", err)
		}
		record(scriptCall{
			Op: "snap_save", Index: u64p(index), Term: u64p(term),
			File:            fmt.Sprintf("%016x-%016x.snap", term, index),
			ConfStateVoters: []uint64{0x1234},
			DataHex:         hex.EncodeToString(rs.Data),
			RaftSnapshotHex: hex.EncodeToString(rsBytes),
		})
		if err := w.SaveSnapshot(walpb.Snapshot{Index: index, Term: term}); err != nil {
			die("SaveSnapshot: %v", err)
		}
		record(scriptCall{Op: "save_snapshot", Index: u64p(index), Term: u64p(term)})
	}

	// Fixed prefix: exactly the recipe of reference Appendix A, so the first
	// 224 bytes of the first segment equal the annotated file in §3.5.
	cc := raftpb.ConfChange{ID: 0, Type: raftpb.ConfChangeAddNode, NodeID: 0x1234, Context: []byte("ctx")}
	ccBytes, err := cc.Marshal()
	if err != nil {
		die("marshal ConfChange: %v", err)
	}
	save(raftpb.HardState{Term: 2, Vote: 0x1234, Commit: 3}, []raftpb.Entry{
		{Type: raftpb.EntryConfChange, Term: 1, Index: 1, Data: ccBytes},
		{Type: raftpb.EntryNormal, Term: 2, Index: 2},
		{Type: raftpb.EntryNormal, Term: 2, Index: 3, Data: []byte("hello")},
	})
	snapshot(3, 2)

	// Generated part: one Save per 3 entries with HardState{Term, Vote: 1,
	// Commit: last-1}; after every 10th such Save a commit-only Save
	// (HardState{Term, 1, last}, no entries); once the log passes index 200 a
	// second snapshot at the current commit; a final commit-only Save.
	batches := 0
	snapped2 := false
	gapped := false
	var last uint64 = 3
	for i := uint64(4); i <= *nEntries; {
		if *gapAt > 0 && !gapped && i > *gapAt {
			// Leader-snapshot shape (a learner catching up): entries
			// i..s are never written; the member receives a snapshot at s
			// (.snap file, then the WAL snapshot record, then a HardState
			// with Commit = s) and the log continues at s+1.
			gapped = true
			s := i + gapLen - 1
			if s > *nEntries {
				s = *nEntries
			}
			snapshot(s, sampleTerm(s))
			save(raftpb.HardState{Term: sampleTerm(s), Vote: 1, Commit: s}, nil)
			last = s
			i = s + 1
			continue
		}
		var ents []raftpb.Entry
		for j := i; j < i+3 && j <= *nEntries; j++ {
			ents = append(ents, sampleEntry(j))
		}
		i += uint64(len(ents))
		last = ents[len(ents)-1].Index
		term := ents[len(ents)-1].Term
		save(raftpb.HardState{Term: term, Vote: 1, Commit: last - 1}, ents)
		batches++
		if batches%10 == 0 {
			save(raftpb.HardState{Term: term, Vote: 1, Commit: last}, nil)
		}
		if !snapped2 && last > 200 {
			snapped2 = true
			snapshot(prevState.Commit, sampleTerm(prevState.Commit))
		}
	}
	if last > 3 {
		save(raftpb.HardState{Term: sampleTerm(last), Vote: 1, Commit: last}, nil)
	}

	if err := w.Close(); err != nil {
		die("Close: %v", err)
	}
	record(scriptCall{Op: "close"})

	// Inventory of the produced files.
	for _, sub := range []string{"member/wal", "member/snap"} {
		ents, err := os.ReadDir(filepath.Join(outDir, sub))
		if err != nil {
			die("readdir: %v", err)
		}
		for _, e := range ents {
			p := filepath.Join(outDir, sub, e.Name())
			f, err := os.Open(p)
			if err != nil {
				die("open: %v", err)
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				die("read: %v", err)
			}
			sc.Files = append(sc.Files, scriptFile{Path: sub + "/" + e.Name(), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		}
	}

	b, err := json.MarshalIndent(&sc, "", " ")
	if err != nil {
		die("marshal script: %v", err)
	}
	if err := os.WriteFile(filepath.Join(outDir, "script.json"), append(b, '\n'), 0644); err != nil {
		die("write script.json: %v", err)
	}
	fmt.Fprintf(os.Stderr, "etcd-ref: wrote %d entries, %d calls, %d files under %s\n", *nEntries, len(sc.Calls), len(sc.Files), outDir)
}
