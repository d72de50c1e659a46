#!/usr/bin/env python3
"""Change-tracking inputs for the benchmark (stand-ins for VMware -ctk files).

extents BASE CHANGED OUT
    Compare two images in 4 KiB blocks and write the differing ranges as
    "OFFSET LENGTH" lines (adjacent blocks merged).
ctimage BASE OUT_IMG OUT_EXTENTS CHUNK NCHUNKS SEED
    Copy BASE (sparse) and overwrite random 4 KiB blocks confined to NCHUNKS
    randomly chosen CHUNK-sized regions (4 blocks each), i.e. a change that
    touches only those chunks; write its extents too.
"""
import os
import random
import shutil
import subprocess
import sys

BLK = 4096


def extents(base, changed, out):
    n = 0
    runs = []
    with open(base, "rb") as a, open(changed, "rb") as b:
        off = 0
        start = None
        while True:
            x = a.read(1 << 20)
            y = b.read(1 << 20)
            if not x and not y:
                break
            if x == y:
                if start is not None:
                    runs.append((start, off - start))
                    start = None
                off += max(len(x), len(y))
                continue
            for i in range(0, max(len(x), len(y)), BLK):
                same = x[i:i + BLK] == y[i:i + BLK]
                if not same and start is None:
                    start = off + i
                elif same and start is not None:
                    runs.append((start, off + i - start))
                    start = None
            off += max(len(x), len(y))
        if start is not None:
            runs.append((start, off - start))
    with open(out, "w") as f:
        f.write("# changed extents: %s vs %s (4 KiB blocks)\n" % (base, changed))
        for o, l in runs:
            f.write("%d %d\n" % (o, l))
            n += l
    print("%s: %d extents, %.1f MiB changed" % (out, len(runs), n / 2**20))


def ctimage(base, out_img, out_ext, chunk, nchunks, seed):
    r = random.Random(seed)
    size = os.path.getsize(base)
    subprocess.check_call(["cp", "--sparse=always", base, out_img])
    chunks = sorted(r.sample(range(size // chunk), nchunks))
    ext = []
    with open(out_img, "r+b") as f:
        for c in chunks:
            blocks = sorted(r.sample(range(chunk // BLK), 4))
            for bl in blocks:
                off = c * chunk + bl * BLK
                f.seek(off)
                f.write(r.randbytes(BLK))
                ext.append((off, BLK))
    with open(out_ext, "w") as f:
        f.write("# %d chunks of %d bytes touched\n" % (nchunks, chunk))
        for o, l in ext:
            f.write("%d %d\n" % (o, l))
    print("%s: %d blocks in %d chunks changed" % (out_img, len(ext), nchunks))


if __name__ == "__main__":
    if sys.argv[1] == "extents":
        extents(*sys.argv[2:5])
    elif sys.argv[1] == "ctimage":
        a = sys.argv[2:]
        ctimage(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]))
    else:
        sys.exit(__doc__)
