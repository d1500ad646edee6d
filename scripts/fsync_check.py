#!/usr/bin/env python3
"""Reads `strace -f -e trace=openat,mkdir,mkdirat,rename,renameat,renameat2,fsync` output of a
run of RANKS ranks that wrote checkpoints (usage: fsync_check.py TRACE RANKS) and checks the durability protocol: every file renamed into a
checkpoint folder is followed by an fsync of that folder, and every checkpoint folder created
is followed by an fsync of its parent. Exits 1 naming the first path that is never flushed."""
import os, re, sys

ranks = int(sys.argv[2]) if len(sys.argv) > 2 else 1
events, fds, pending = [], {}, {}
for line in open(sys.argv[1]):
    pid = re.match(r"(?:\[pid\s+)?(\d+)\]?\s+", line)  # "PID " (strace -o) or "[pid PID] "
    key = pid.group(1) if pid else "main"
    body = line[pid.end():] if pid else line
    # A call another process interrupted is split: "f(a <unfinished ...>" and later
    # "<... f resumed>b) = r". Join the halves; the call counts when it completes.
    if body.rstrip().endswith("<unfinished ...>"):
        pending[key] = body.rstrip()[:-len("<unfinished ...>")].rstrip(); continue
    resumed = re.match(r"<\.\.\. \w+ resumed>\s*", body)
    if resumed:
        body = pending.pop(key, "") + body[resumed.end():]
    m = re.match(r'openat\(AT_FDCWD, "([^"]+)", [^)]*\)\s+= (\d+)', body)
    if m: fds[(key, m.group(2))] = m.group(1); continue
    m = re.match(r'fsync\((\d+)\)\s+= 0', body)
    if m and (key, m.group(1)) in fds: events.append(("fsync", fds[(key, m.group(1))])); continue
    m = re.match(r'mkdir(?:at)?\((?:AT_FDCWD, )?"([^"]+)", [^)]*\)\s+= 0', body)
    if m: events.append(("mkdir", m.group(1))); continue
    m = re.match(r'rename(?:at2?)?\((?:AT_FDCWD, )?"[^"]+", (?:AT_FDCWD, )?"([^"]+)"', body)
    if m and re.search(r"\)\s+= 0$", body.rstrip()): events.append(("rename", m.group(1)))

def fsync_between(folder, lo, hi):
    return any(events[x] == ("fsync", folder) for x in range(lo + 1, hi))

# A checkpoint is complete when its manifest.json is renamed in: before that, the folder's
# own name must be flushed in its parent and every file renamed into it flushed in it; after
# it, the manifest's rename itself.
done = [(j, os.path.dirname(p)) for j, (k, p) in enumerate(events) if k == "rename" and p.endswith("/manifest.json") and "/step_" in p]
if not done:
    print("fsync-check: no complete checkpoint in the trace"); sys.exit(1)
checked = 0
for j, step in done:
    for i, (kind, path) in enumerate(events[:j]):
        if kind == "mkdir" and path == step:
            need = (os.path.dirname(step), i)
        elif kind == "rename" and os.path.dirname(path) == step:
            need = (step, i)
        else:
            continue
        checked += 1
        if not fsync_between(need[0], need[1], j):
            print(f"fsync-check: {kind} of {path} is not flushed (fsync of {need[0]}) before {step}/manifest.json completes the checkpoint")
            sys.exit(1)
    # Nothing may go unseen: the folder was created, and every rank's stage file, the
    # loader position and the manifest were renamed into it.
    made = sum(1 for k, p in events[:j] if k == "mkdir" and p == step)
    files = sum(1 for k, p in events[:j + 1] if k == "rename" and os.path.dirname(p) == step)
    if made != 1 or files < ranks + 2:
        print(f"fsync-check: {step}: {made} mkdir and {files} renames in the trace, expected 1 and {ranks + 2}"); sys.exit(1)
    checked += 1
    if not fsync_between(step, j, len(events)):
        print(f"fsync-check: the rename of {step}/manifest.json is never flushed"); sys.exit(1)
print(f"fsync-check: {len(done)} checkpoint(s), {checked} names (folder, files, manifest) each flushed in order")
