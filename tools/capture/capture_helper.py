#!/usr/bin/env python3
"""Helper for tools/capture/capture.sh (stdlib only).

Subcommands (all read etcdctl `-w json` output or etcd data dirs):

  status FILE                  -> "id_dec id_hex applied committed term revision leader_dec"
  add-id FILE                  -> hex ID of the member in `member add -w json` output
  initial-cluster ML NAME PEER -> --initial-cluster value from a member list plus the new member
  cp-check DIR                 -> exit 0 iff the checkpoint in DIR is quiescent (see below)
  walsummary DATADIR           -> JSON summary of DATADIR/member/{wal,snap}; each WAL snapshot
                                  record lists preceding_higher_entries (entry records with a
                                  higher index that come before it in the file)
  manifest CAPDIR OUTDIR       -> writes OUTDIR/manifest.json and OUTDIR/README.md

The WAL reader here is deliberately tiny (framing + a few protobuf fields, no CRC check).
It exists so the capture script can assert the shapes it promises (segment cut, learner
WAL starting after a leader snapshot); it is not the project's decoder.
"""
import json
import os
import sys

U56 = (1 << 56) - 1


def die(msg):
    sys.stderr.write("capture_helper: %s\n" % msg)
    sys.exit(1)


def load(path):
    with open(path) as f:
        return json.load(f)


def hex_id(i):
    return "%016x" % i


# ---------------------------------------------------------------- etcdctl JSON helpers
def status_tuple(path):
    """One `endpoint status -w json` file -> dict of the numbers we care about."""
    d = load(path)
    if not d:
        die("empty status output in %s" % path)
    s = d[0]["Status"]
    h = s["header"]
    return {
        "member_id": h["member_id"],
        "raft_index": s.get("raftIndex", 0),
        "raft_applied_index": s.get("raftAppliedIndex", 0),
        "raft_term": s.get("raftTerm", 0),
        "revision": h.get("revision", 0),
        "leader": s.get("leader", 0),
        "db_size": s.get("dbSize", 0),
        "db_size_in_use": s.get("dbSizeInUse", 0),
        "is_learner": s.get("isLearner", False),
        "version": s.get("version"),
    }


def cmd_status(path):
    t = status_tuple(path)
    print(t["member_id"], hex_id(t["member_id"]), t["raft_applied_index"], t["raft_index"],
          t["raft_term"], t["revision"], t["leader"])


def cmd_add_id(path):
    print(hex_id(load(path)["member"]["ID"]))


def cmd_initial_cluster(ml_path, name, peer):
    parts = []
    seen_new = False
    for m in load(ml_path)["members"]:
        urls = m.get("peerURLs", [])
        if peer in urls:
            seen_new = True
            parts.append("%s=%s" % (name, peer))
        elif m.get("name"):
            parts.extend("%s=%s" % (m["name"], u) for u in urls)
        else:
            die("member %x has no name and is not the new member" % m["ID"])
    if not seen_new:
        parts.append("%s=%s" % (name, peer))
    print(",".join(parts))


def checkpoint_members(cpdir):
    meta = load(os.path.join(cpdir, "meta.json"))
    out = []
    for name in meta["live"]:
        s1 = status_tuple(os.path.join(cpdir, name + ".status1.json"))
        s2 = status_tuple(os.path.join(cpdir, name + ".status2.json"))
        hk_path = os.path.join(cpdir, name + ".hashkv.json")
        hk = None
        if os.path.exists(hk_path):
            hk = load(hk_path)[0]["HashKV"]
        ver_path = os.path.join(cpdir, name + ".version.json")
        s1["http_version"] = load(ver_path) if os.path.exists(ver_path) else None
        out.append((name, s1, s2, hk))
    return meta, out


def cmd_cp_check(cpdir):
    """Quiescent iff, for every live member, status before and after hashkv agree on the
    applied index, and all members agree on applied index, commit index and revision.
    Hash disagreement between voters is reported (exit 3) so the caller can retry."""
    meta, ms = checkpoint_members(cpdir)
    applied = set()
    revs = set()
    for name, s1, s2, hk in ms:
        if s1["raft_applied_index"] != s2["raft_applied_index"]:
            print("%s: applied index moved %d -> %d" % (name, s1["raft_applied_index"], s2["raft_applied_index"]))
            sys.exit(1)
        if s1["raft_applied_index"] != s1["raft_index"]:
            print("%s: applied %d != committed %d" % (name, s1["raft_applied_index"], s1["raft_index"]))
            sys.exit(1)
        applied.add(s1["raft_applied_index"])
        revs.add(s1["revision"])
        if hk is not None and hk["header"]["revision"] != s1["revision"]:
            print("%s: hashkv revision %d != status revision %d" % (name, hk["header"]["revision"], s1["revision"]))
            sys.exit(1)
    if len(applied) != 1 or len(revs) != 1:
        print("members disagree: applied=%s revision=%s" % (sorted(applied), sorted(revs)))
        sys.exit(1)
    hashes = {(hk.get("hash", 0), hk.get("compact_revision", 0)) for _, _, _, hk in ms if hk is not None}
    if len(hashes) > 1:
        print("hash disagreement: %s" % sorted(hashes))
        sys.exit(3)
    print("quiescent at applied index %d, revision %d" % (applied.pop(), revs.pop()))


# ---------------------------------------------------------------- minimal protobuf / WAL reader
def varint(b, i):
    r = 0
    s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        if c < 0x80:
            return r, i
        s += 7


def fields(b):
    """Yield (field_number, value) for varint and length-delimited fields."""
    i = 0
    n = len(b)
    while i < n:
        key, i = varint(b, i)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            ln, i = varint(b, i)
            v = b[i:i + ln]
            i += ln
        elif wt == 1:
            v = b[i:i + 8]
            i += 8
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        yield fn, v


def wal_records(path):
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    n = len(data)
    while off + 8 <= n:
        lw = int.from_bytes(data[off:off + 8], "little")
        if lw == 0:
            break
        ln = lw & U56
        pad = (lw >> 56) & 7 if lw & (1 << 63) else 0
        off += 8
        if off + ln > n:
            yield ("torn", None)
            break
        rec = data[off:off + ln]
        off += ln + pad
        rtype, rdata = 0, b""
        for fn, v in fields(rec):
            if fn == 1:
                rtype = v
            elif fn == 3:
                rdata = v
        yield (rtype, rdata)


CC_TYPES = {0: "AddNode", 1: "RemoveNode", 2: "UpdateNode", 3: "AddLearnerNode"}


def walsummary(datadir):
    waldir = os.path.join(datadir, "member", "wal")
    snapdir = os.path.join(datadir, "member", "snap")
    files = []
    ents = {"normal_empty": 0, "normal_data": 0, "conf_change": 0, "other": 0}
    first = last = None
    gaps = []
    rewrites = 0
    snaps = []
    conf_changes = []
    last_hs = None
    seen = []  # index of every entry record so far, in file order (all segments)
    for name in sorted(os.listdir(waldir)):
        p = os.path.join(waldir, name)
        finfo = {"name": name, "size": os.path.getsize(p), "mode": "%o" % (os.stat(p).st_mode & 0o777)}
        files.append(finfo)
        if not name.endswith(".wal"):
            continue
        counts = {}
        ffirst = flast = None
        for rtype, rdata in wal_records(p):
            counts[str(rtype)] = counts.get(str(rtype), 0) + 1
            if rtype == 2:  # entry
                et = term = idx = 0
                data = b""
                for fn, v in fields(rdata):
                    if fn == 1:
                        et = v
                    elif fn == 2:
                        term = v
                    elif fn == 3:
                        idx = v
                    elif fn == 4:
                        data = v
                seen.append(idx)
                if ffirst is None:
                    ffirst = idx
                flast = idx
                if first is None:
                    first = idx
                elif idx > last + 1:
                    gaps.append([last, idx])
                elif idx <= last:
                    rewrites += 1
                last = idx
                if et == 0:
                    ents["normal_data" if data else "normal_empty"] += 1
                elif et == 1:
                    ents["conf_change"] += 1
                    cc = {"index": idx, "term": term}
                    for fn, v in fields(data):
                        if fn == 2:
                            cc["type"] = CC_TYPES.get(v, v)
                        elif fn == 3:
                            cc["node_id_hex"] = hex_id(v)
                    cc.setdefault("type", "AddNode")
                    conf_changes.append(cc)
                else:
                    ents["other"] += 1
            elif rtype == 3:  # HardState
                hs = {"term": 0, "vote": 0, "commit": 0}
                for fn, v in fields(rdata):
                    if fn in (1, 2, 3):
                        hs[("term", "vote", "commit")[fn - 1]] = v
                last_hs = hs
            elif rtype == 5:  # walpb.Snapshot
                s = {"index": 0, "term": 0, "file": name}
                for fn, v in fields(rdata):
                    if fn == 1:
                        s["index"] = v
                    elif fn == 2:
                        s["term"] = v
                # etcd's raft loop persists entries before its apply loop writes the snapshot
                # record, so a record at S can follow entries with index > S.
                s["preceding_higher_entries"] = sum(1 for i in seen if i > s["index"])
                s["max_preceding_entry_index"] = max(seen) if seen else None
                snaps.append(s)
        finfo["record_counts"] = counts
        finfo["first_entry_index"] = ffirst
        finfo["last_entry_index"] = flast
    snapfiles = []
    if os.path.isdir(snapdir):
        for name in sorted(os.listdir(snapdir)):
            p = os.path.join(snapdir, name)
            snapfiles.append({"name": name, "size": os.path.getsize(p)})
    return {
        "wal_files": files,
        "snap_files": snapfiles,
        "first_entry_index": first,
        "last_entry_index": last,
        "entry_counts": ents,
        "index_gaps": gaps,
        "entries_rewritten": rewrites,
        "snapshot_records": snaps,
        "snapshot_records_after_higher_entries": sum(1 for x in snaps if x["preceding_higher_entries"]),
        "last_hardstate": last_hs,
        "conf_changes": conf_changes,
    }


def cmd_walsummary(datadir):
    print(json.dumps(walsummary(datadir), indent=1))


# ---------------------------------------------------------------- manifest
def read_tsv(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    rows.append(line.split("\t"))
    return rows


def cmd_manifest(capdir, outdir):
    info = load(os.path.join(capdir, "info.json"))
    cpbase = os.path.join(capdir, "checkpoints")
    checkpoints = []
    ids = {}  # name -> id
    for cpname in sorted(os.listdir(cpbase)):
        cpdir = os.path.join(cpbase, cpname)
        meta, ms = checkpoint_members(cpdir)
        ml = load(os.path.join(cpdir, "memberlist.json"))
        for m in ml["members"]:
            if m.get("name"):
                ids[m["name"]] = m["ID"]
        members = []
        for name, s1, s2, hk in ms:
            ids.setdefault(name, s1["member_id"])
            e = {
                "name": name,
                "member_id": s1["member_id"],
                "member_id_hex": hex_id(s1["member_id"]),
                "is_learner": name in meta["learners"],
                "is_leader": s1["leader"] == s1["member_id"],
                "raft_index": s1["raft_index"],
                "raft_applied_index": s1["raft_applied_index"],
                "raft_term": s1["raft_term"],
                "revision": s1["revision"],
                "db_size": s1["db_size"],
                "status_version": s1["version"],
                "server_version": (s1["http_version"] or {}).get("etcdserver"),
                "cluster_version": (s1["http_version"] or {}).get("etcdcluster"),
                "hash": None,
                "compact_revision": None,
                "hashkv_revision": None,
            }
            if hk is not None:
                e["hash"] = hk.get("hash", 0)  # omitempty in etcdctl's JSON
                e["compact_revision"] = hk.get("compact_revision", 0)
                e["hashkv_revision"] = hk["header"]["revision"]
            else:
                e["hashkv_note"] = "learner: etcd (3.4 and 3.5) rejects HashKV on learners (rpc not supported for learner)"
            members.append(e)
        checkpoints.append({
            "label": meta["label"],
            "after_event": meta["after_event"],
            "members": members,
            "member_list": ml,
        })

    runs = member_runs(read_tsv(os.path.join(capdir, "runs.tsv")))
    member_rows = read_tsv(os.path.join(capdir, "members.tsv"))
    members = []
    shapes = {}
    for name, client, peer, role, notes in member_rows:
        ws = walsummary(os.path.join(capdir, "data", name))
        shapes[name] = ws
        mid = ids.get(name)
        members.append({
            "name": name,
            "member_id": mid,
            "member_id_hex": hex_id(mid) if mid is not None else None,
            "data_dir": name,
            "client_url": client,
            "peer_url": peer,
            "role": role,
            "notes": notes,
            "runs": runs.get(name, []),
            "wal_summary": ws,
        })
    events = [{"t": float(t), "event": ev} for t, ev in read_tsv(os.path.join(capdir, "events.tsv"))]
    manifest = {
        "etcd_version": info["etcd_version"],
        "etcd_versions": info.get("etcd_versions", [info["etcd_version"]]),
        "capture": info["name"],
        "workload": info["workload"],
        "created_utc": info["created_utc"],
        "etcd_flags": info["etcd_flags"],
        "archive": "data.tar.gz",
        "archive_layout": "<member-name>/member/{wal,snap}/... (each member's --data-dir, as etcd left it after SIGTERM or self-exit)",
        "field_notes": {
            "raft_index": "Status.raftIndex (etcd 3.4 and 3.5 report the commit index here)",
            "status_version": "Status.version (the member's server version, from endpoint status)",
            "server_version": "GET /version etcdserver on the member's client URL",
            "cluster_version": "GET /version etcdcluster on the member's client URL (the cluster version that member has applied; 'not_decided' before the first ClusterVersionSet)",
            "runs": "one entry per etcd process a member ran: etcd_version, status_raft_index_after_start (commit index once it answered), status_raft_index_before_stop, wal_last_entry_before_start / wal_last_entry_at_stop (last entry index in its WAL files on disk, read after the previous process exited / after this one exited), how it ended; this run's binary wrote the WAL entries (wal_last_entry_before_start, wal_last_entry_at_stop]",
            "raft_applied_index": "Status.raftAppliedIndex",
            "revision": "Status.header.revision (current MVCC revision)",
            "hash": "HashKV(rev=0).hash, CRC-32C as unsigned 32-bit; null for learners",
            "compact_revision": "HashKV.compact_revision (-1 = never compacted)",
            "hashkv_revision": "HashKV.header.revision (the revision the hash covers)",
            "member_id": "u64 as JSON number (exceeds 2^53: parse as u64, or use member_id_hex)",
            "checkpoint": "status, then hashkv, then status again on every live member; accepted only when all applied indices matched before and after",
        },
        "members": members,
        "checkpoints": checkpoints,
        "events": events,
    }
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    write_readme(outdir, info, members, checkpoints)


def member_runs(rows):
    """runs.tsv rows (name, start|up|stop, version, status raft index, WAL last entry, t) ->
    {name: [run, ...]}: one run per etcd process, in start order."""
    num = lambda x: None if x in ("-", "") else int(x)
    out = {}
    last_wal = {}
    for name, what, ver, ri, wal, t in rows:
        runs = out.setdefault(name, [])
        if what == "start":
            runs.append({"etcd_version": ver, "started_t": float(t),
                         "wal_last_entry_before_start": last_wal.get(name, num(wal)),
                         "status_raft_index_after_start": None,
                         "status_raft_index_before_stop": None,
                         "wal_last_entry_at_stop": None, "stopped_t": None})
        elif what == "up" and runs and runs[-1]["status_raft_index_after_start"] is None:
            runs[-1]["status_raft_index_after_start"] = num(ri)
        elif what == "stop" and runs:
            runs[-1].update({"status_raft_index_before_stop": num(ri), "wal_last_entry_at_stop": num(wal),
                             "stopped_t": float(t)})
            last_wal[name] = num(wal)
    return out


def write_readme(outdir, info, members, checkpoints):
    L = []
    L.append("# %s\n" % info["name"])
    L.append("Captured by `tools/capture/capture.sh` (`make corpus`) with etcd %s on %s." % (
        " then ".join(info.get("etcd_versions", [info["etcd_version"]])), info["created_utc"]))
    L.append("Not bit-reproducible: member IDs, terms, lease IDs and timing differ per run.\n")
    L.append("Workload: %s\n" % info["workload"])
    L.append("Files: `data.tar.gz` (each member's data dir, `<name>/member/wal/*.wal`, `<name>/member/snap/*`),")
    L.append("`manifest.json` (etcd's own status/hashkv/member-list at quiescent checkpoints, per-member WAL summaries, event log).\n")
    L.append("## Members\n")
    L.append("| name | id | role | WAL files | entries (first..last) | last HardState (term/commit) | WAL snapshot records (index) | .snap files |")
    L.append("|---|---|---|---|---|---|---|---|")
    for m in members:
        ws = m["wal_summary"]
        wals = ", ".join("%s (%d B)" % (f["name"], f["size"]) for f in ws["wal_files"])
        snaps = ", ".join(str(s["index"]) for s in ws["snapshot_records"])
        snapf = ", ".join(f["name"] for f in ws["snap_files"] if f["name"].endswith(".snap"))
        hs = ws["last_hardstate"] or {}
        L.append("| %s | %s | %s | %s | %s..%s | %s/%s | %s | %s |" % (
            m["name"], m["member_id_hex"], m["role"], wals, ws["first_entry_index"], ws["last_entry_index"],
            hs.get("term"), hs.get("commit"), snaps, snapf))
    L.append("")
    for m in members:
        if m["notes"]:
            L.append("* **%s**: %s" % (m["name"], m["notes"]))
        ws = m["wal_summary"]
        if ws["index_gaps"]:
            L.append("  * WAL index gaps (last index before, first index after): %s" % ws["index_gaps"])
        if ws.get("snapshot_records_after_higher_entries"):
            L.append("  * %d WAL snapshot record(s) come after entry records with a higher index (etcd saves entries before the apply loop" % ws["snapshot_records_after_higher_entries"])
            L.append("    writes the snapshot record); per record, `index: entries above it that precede it (highest entry index before it)`: %s" % ", ".join(
                "%d: %d (%s)" % (x["index"], x["preceding_higher_entries"], "-" if x["max_preceding_entry_index"] is None else x["max_preceding_entry_index"]) for x in ws["snapshot_records"]))
    if any(len(m["runs"]) > 1 or any(r["etcd_version"] != info["etcd_version"] for r in m["runs"]) for m in members):
        L.append("\n## Binaries (which etcd wrote which WAL entries)\n")
        L.append("| member | etcd | WAL entries written (after..through) | Status.raftIndex after start / before stop |")
        L.append("|---|---|---|---|")
        for m in members:
            for r in m["runs"]:
                L.append("| %s | %s | %s..%s | %s / %s |" % (m["name"], r["etcd_version"],
                         "(none)" if r["wal_last_entry_before_start"] is None else r["wal_last_entry_before_start"],
                         r["wal_last_entry_at_stop"], r["status_raft_index_after_start"], r["status_raft_index_before_stop"]))
    L.append("\n## Checkpoints\n")
    L.append("| # | label | applied index | revision | compact rev | hash | server versions | cluster version | members |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for i, cp in enumerate(checkpoints):
        ms = cp["members"]
        v = [x for x in ms if x["hash"] is not None]
        L.append("| %d | %s | %d | %d | %s | %s | %s | %s | %s |" % (
            i, cp["label"], ms[0]["raft_applied_index"], ms[0]["revision"],
            v[0]["compact_revision"] if v else "-", v[0]["hash"] if v else "-",
            ", ".join(sorted({str(x.get("server_version")) for x in ms})),
            ", ".join(sorted({str(x.get("cluster_version")) for x in ms})),
            ", ".join(x["name"] + ("(learner)" if x["is_learner"] else "") + ("*" if x["is_leader"] else "") for x in ms)))
    L.append("\n(`*` = leader at that checkpoint.) Shutdown happens after the last checkpoint; a stopping leader")
    L.append("transfers leadership, so WALs may end with a few extra empty (no-op) entries / HardStates beyond it.")
    with open(os.path.join(outdir, "README.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    a = sys.argv[1:]
    if not a:
        die(__doc__)
    cmd, args = a[0], a[1:]
    if cmd == "status":
        cmd_status(*args)
    elif cmd == "add-id":
        cmd_add_id(*args)
    elif cmd == "initial-cluster":
        cmd_initial_cluster(*args)
    elif cmd == "cp-check":
        cmd_cp_check(*args)
    elif cmd == "walsummary":
        cmd_walsummary(*args)
    elif cmd == "manifest":
        cmd_manifest(*args)
    else:
        die("unknown subcommand %s" % cmd)


if __name__ == "__main__":
    main()
