#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/fuzz_targets/), cut out of the bundled captures.

Usage: tools/fuzz/seeds.py CORPUS_DIR OUT_DIR
  CORPUS_DIR: the unpacked captures (`make unpack-corpus`: target/corpus/<capture>/<member>)
  OUT_DIR:    fuzz/corpus; one directory per target is (re)filled with small seeds

Seeds: WAL segments cut after their first records (whole frames, the zero tail dropped) and the
damage classes of tests/reader_outcomes.rs applied to them (flipped bit, torn tail, zeroed sector,
zero length word, oversized length word, garbage after the end, a lost first segment); `.snap`
files; entry payloads of every type; small bbolt dbs; the scenario scripts; the gate baselines.
The packed format is fuzz/src/lib.rs's `pack`: files joined by SEPARATOR, each tag + 8-byte arg.
"""
import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "capture"))
import capture_helper  # noqa: E402  (tools/capture: its protobuf reader)

SEPARATOR = b"\xffRRFUZZ\xfe"
TAG_WAL, TAG_SNAP, TAG_DB = 0, 1, 2
ENTRY_TYPE = 2


def pack(files):
    return SEPARATOR.join(bytes([tag]) + struct.pack(">Q", arg) + data for tag, arg, data in files)


def frames(seg):
    """(offset, frame_len, record_bytes) of each frame until a zero length word or the end."""
    off = 0
    while off + 8 <= len(seg):
        word = struct.unpack_from("<Q", seg, off)[0]
        if word == 0:
            return
        length = word & ((1 << 56) - 1)
        pad = (word >> 56) & 0x7 if word >> 63 else 0
        if off + 8 + length + pad > len(seg):
            return
        yield off, 8 + length + pad, seg[off + 8: off + 8 + length]
        off += 8 + length + pad


def fields(b):
    """{field number: [value]} of a protobuf message (the capture helper's minimal reader)."""
    out = {}
    for num, v in capture_helper.fields(b):
        out.setdefault(num, []).append(v)
    return out


def cut(seg, records, max_bytes=96 << 10):
    """The segment's first `records` frames (fewer past `max_bytes`, at least one)."""
    end = 0
    for n, (off, flen, _) in enumerate(frames(seg)):
        if n == records or (n > 0 and off + flen > max_bytes):
            break
        end = off + flen
    return seg[:end]


def wal_index(name):
    return int(name.split("-")[1].split(".")[0], 16)


def members(corpus):
    for capture in sorted(os.listdir(corpus)):
        for member in sorted(os.listdir(os.path.join(corpus, capture))):
            path = os.path.join(corpus, capture, member, "member")
            if os.path.isdir(os.path.join(path, "wal")):
                yield capture, member, path


def read(path, limit=None):
    with open(path, "rb") as f:
        return f.read() if limit is None else f.read(limit)


def write(out, target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def damaged(seg):
    """tests/reader_outcomes.rs's damage classes on one cut segment."""
    fr = list(frames(seg))
    if len(fr) < 4:
        return []
    mid_off, mid_len, _ = fr[len(fr) // 2]
    flipped = bytearray(seg)
    flipped[mid_off + mid_len - 3] ^= 0x10
    zero_word = bytearray(seg)
    zero_word[mid_off: mid_off + 8] = bytes(8)
    oversized = bytearray(seg)
    oversized[mid_off: mid_off + 8] = struct.pack("<Q", (1 << 40) + 13)
    zeroed_sector = bytearray(seg)
    start = (mid_off // 512) * 512
    zeroed_sector[start: start + 512] = bytes(min(512, len(seg) - start))
    return [
        bytes(flipped),
        seg[: mid_off + mid_len // 2],          # torn last record
        bytes(zero_word),
        bytes(oversized),
        bytes(zeroed_sector),
        seg + b"\x13garbage after the end of data",
    ]


def main(corpus, out):
    payloads = {}
    for capture, member, path in members(corpus):
        wal_dir = os.path.join(path, "wal")
        segs = sorted(n for n in os.listdir(wal_dir) if n.endswith(".wal"))
        heads = [(n, read(os.path.join(wal_dir, n), 4 << 20)) for n in segs]
        first_name, first = heads[0]
        for records in (6, 40, 300):
            c = cut(first, records)
            write(out, "wal_read", pack([(TAG_WAL, wal_index(first_name), c)]))
        small = cut(first, 40)
        for d in damaged(small):
            write(out, "wal_read", pack([(TAG_WAL, wal_index(first_name), d)]))
        if len(heads) > 1:
            two = [(TAG_WAL, wal_index(n), cut(s, 30)) for n, s in heads[:2]]
            write(out, "wal_read", pack(two))
            write(out, "wal_read", pack(two[1:]))  # the first segment lost
        # A member: the cut WAL, its oldest .snap, its db when it is small.
        snap_dir = os.path.join(path, "snap")
        snaps = sorted(n for n in os.listdir(snap_dir) if n.endswith(".snap")) if os.path.isdir(snap_dir) else []
        files = [(TAG_WAL, wal_index(first_name), cut(first, 120))]
        for n in snaps[:1]:
            term, index = (int(x, 16) for x in n[:-5].split("-"))
            data = read(os.path.join(snap_dir, n))
            files.append((TAG_SNAP, (term << 32) | index, data))
            write(out, "snap", pack([(TAG_SNAP | 0x10 | (1 if capture < "cluster-c" else 0), (term << 32) | index, data)]))
        write(out, "member_verify", pack(files))
        db = os.path.join(snap_dir, "db")
        if os.path.isfile(db) and os.path.getsize(db) <= 64 << 10:
            data = read(db)
            write(out, "member_verify", pack(files + [(TAG_DB, 0, data)]))
            write(out, "bbolt", b"\x00" + data)
            write(out, "bbolt", b"\x01" + data)
        # Entry payloads, a few of each shape (entry type, first data byte).
        for _, _, rec in frames(first[: 2 << 20]):
            try:
                r = fields(rec)
                if r.get(1, [0])[0] != ENTRY_TYPE:
                    continue
                e = fields(r.get(3, [b""])[0])
            except (ValueError, IndexError):
                continue
            etype = e.get(1, [0])[0]
            data = e.get(4, [b""])[0]
            key = (etype, data[:1])
            if len(payloads.setdefault(key, [])) < 4:
                payloads[key].append(bytes([etype]) + data)
    for seeds in payloads.values():
        for s in seeds:
            write(out, "payload", s)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for d, target in ((os.path.join(root, "scenarios"), "scenario"),
                      (os.path.join(root, "scenarios", "regressions"), "scenario"),
                      (os.path.join(root, "tests", "baselines"), "baseline")):
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if os.path.isfile(p):
                write(out, target, read(p))
    os.makedirs(os.path.join(out, "wal_roundtrip"), exist_ok=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
