"""The log cleaner's row of the benchmark (issue 16).

1. Cleaning speed. A compacted partition is filled with 1 KiB records over
   10,000 keys while the cleaner is off (`log.cleaner.enable=false`), its
   last segment closed; the broker is restarted with the cleaner on and the
   clean it does is timed from the broker's own "cleaned log" line. The
   partition's files are dropped from the page cache first (fadvise), so
   the clean reads from the disk. The disk bound for that clean is reading
   its input once and writing its output once at the machine's sequential
   read (uncached) and buffered write rates measured in the same run: `ratio_to_disk` is that bound's time over the
   clean's time (1.0 means the cleaner runs at the disk's speed).
2. Interference. `strom perf` produces 1 KiB records with acks=all to
   another topic's partition, alone and while such a clean runs; the ratio
   is the produce rate during the clean to the rate without it.
"""
import os
import re
import shutil
import time

from run import MIB, STROM, Broker, cell, create, fresh_pages, sh, strom_produce

KEYS = 10_000
VALUE = 1024


def keyed_file(directory, n):
    """n "key:value" lines, keys cycling over KEYS, for kcat -K:."""
    path = os.path.join(directory, f"keyed-{n}.txt")
    if not os.path.exists(path):
        with open(path, "w") as f:
            for i in range(n):
                f.write(f"key-{i % KEYS:05d}:{'x' * (VALUE - 12)}{i:012d}\n")
    return path


def kcat_keyed(broker, topic, path):
    with open(path, "rb") as f:
        sh("kcat", "-P", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-K:", "-q", "-X", "acks=1",
           "-X", "linger.ms=5", "-X", "batch.size=1048576", "-X", "queue.buffering.max.messages=1000000",
           "-X", "queue.buffering.max.kbytes=2097151", stdin=f)


def evict(path):
    """Drops `path` (a file, or every file under a directory) from the page
    cache, so the next read comes from the disk."""
    paths = [path] if os.path.isfile(path) else [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_mb_s(directory, mib):
    """Sequential read of a file not in the page cache (the best of 3), as
    the cleaner reads a partition written long ago."""
    path = os.path.join(directory, "read.bin")
    sh("dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fdatasync")
    best = 0.0
    for _ in range(3):
        evict(path)
        t = time.perf_counter()
        sh("dd", f"if={path}", "of=/dev/null", "bs=1M")
        best = max(best, mib * MIB / (time.perf_counter() - t) / 1e6)
    os.unlink(path)
    return best


CLEANED = re.compile(rb'cleaned log topic=(\S+) .*bytes_before=(\d+) bytes_after=(\d+) .*ms=(\d+)')


def fill(tmp, name, n):
    """A data dir holding topic "ct" (compacted, n keyed records, the last
    segment closed by one more record after segment.ms) and "other"; the
    cleaner was off throughout."""
    data = os.path.join(tmp, name)
    b = Broker(data, ["--set", "log.cleaner.enable=false"])
    b.start()
    sh(STROM, "topics", "create", "ct", "--partitions", "1", "--bootstrap", b.bootstrap,
       "--config", "cleanup.policy=compact", "--config", "segment.bytes=268435456",
       "--config", "min.cleanable.dirty.ratio=0.01", "--config", "segment.ms=2000")
    create(b, "other", 1)
    kcat_keyed(b, "ct", keyed_file(tmp, n))
    time.sleep(2.2)
    path = os.path.join(tmp, "roll.txt")
    with open(path, "w") as f:
        f.write("roll:r\n")
    kcat_keyed(b, "ct", path)
    b.stop()
    return data


def clean_once(tmp, data, during=None):
    """Starts a broker on `data` with the cleaner on; runs `during(broker)`
    meanwhile if given; returns (bytes in, bytes out, clean seconds,
    during's result, whether the clean outlasted `during`)."""
    b = Broker(data, ["--set", "log.cleaner.backoff.ms=50"])
    log = os.path.join(os.path.dirname(data), f"strom-{b.port}.log")
    b.start()
    got = during(b) if during else None
    outlasted = not CLEANED.search(open(log, "rb").read())
    deadline = time.time() + 600
    while time.time() < deadline:
        m = CLEANED.search(open(log, "rb").read())
        if m:
            break
        time.sleep(0.05)
    b.stop()
    if not m:
        raise SystemExit(f"no clean within 10 minutes; see {log}")
    return int(m.group(2)), int(m.group(3)), int(m.group(4)) / 1000, got, outlasted


def cleaner_rows(a, tmp, write_buffered_mb_s):
    n = 200_000 if a.quick else 1_000_000
    read = read_mb_s(tmp, 256 if a.quick else 1024)
    runs = []
    for r in range(a.rounds):
        data = fill(tmp, f"clean-{r}", n)
        evict(data)
        fresh_pages(tmp, n * VALUE / MIB)
        bytes_in, bytes_out, secs, _, _ = clean_once(tmp, data)
        bound = bytes_in / 1e6 / read + bytes_out / 1e6 / write_buffered_mb_s
        runs.append({"bytes_in": bytes_in, "bytes_out": bytes_out, "seconds": secs,
                     "mb_s": bytes_in / 1e6 / secs, "ratio_to_disk": bound / secs})
        shutil.rmtree(data, ignore_errors=True)
    speed = {"read_mb_s": read, "write_buffered_mb_s": write_buffered_mb_s, "records": n, "keys": KEYS,
             **{k: cell([x[k] for x in runs]) for k in ("mb_s", "ratio_to_disk")}, "runs": runs}
    print(f"cleaner  {n:,} x 1 KiB over {KEYS:,} keys: {speed['mb_s']['median']:.0f} MB/s cleaned, "
          f"{speed['ratio_to_disk']['median']:.2f} of the disk's read+write bound "
          f"(read {read:.0f} MB/s, write {write_buffered_mb_s:.0f} MB/s)", flush=True)

    m = 100_000 if a.quick else 300_000
    alone, during, outlasted = [], [], []
    for r in range(a.rounds):
        data = fill(tmp, f"busy-{r}", n)
        b = Broker(data, ["--set", "log.cleaner.enable=false"])
        b.start()
        fresh_pages(tmp, m * VALUE / MIB)
        alone.append(strom_produce(b, "other", VALUE, m, "all"))
        b.stop()
        evict(data)
        fresh_pages(tmp, (n + m) * VALUE / MIB)
        *_, rate, out = clean_once(tmp, data, lambda b: strom_produce(b, "other", VALUE, m, "all"))
        during.append(rate)
        outlasted.append(out)
        shutil.rmtree(data, ignore_errors=True)
    busy = {"alone": cell(alone), "during_clean": cell(during), "clean_outlasted_produce": outlasted}
    busy["ratio"] = busy["during_clean"]["median"] / busy["alone"]["median"]
    print(f"cleaner  produce 1 KiB acks=all to another partition: {busy['alone']['median']:,.0f} rec/s alone, "
          f"{busy['during_clean']['median']:,.0f} during a clean ({busy['ratio']:.2f}); "
          f"clean still running at the end: {outlasted}", flush=True)
    return {"speed": speed, "produce_while_cleaning": busy}
