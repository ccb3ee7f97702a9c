//! Storage benchmark: append and read throughput of `Log` as ratios against
//! plain sequential `write` (and `write`+`fsync`) of the same bytes to the
//! same disk, measured in the same run (see shared/BENCHMARKS.md).
//!
//! Run: `cargo bench -p strom-storage --bench log` (set `STROM_BENCH_DIR` to
//! choose the disk; `STROM_BENCH_MB` for the volume per case, default 256).
//! Prints a table and writes `target/bench-storage.json`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use strom_record::{BatchBuilder, OwnedRecord};
use strom_storage::{FlushPolicy, Log, LogConfig};

fn batch_of(size: usize) -> Vec<u8> {
    // Records of ~1 KiB until the batch reaches `size` bytes.
    let mut b = BatchBuilder::new(1_700_000_000_000);
    let mut approx = 61;
    while approx + 1040 <= size {
        b = b.push(OwnedRecord {
            value: Some(vec![b'x'; 1024]),
            timestamp: 1_700_000_000_000,
            ..Default::default()
        });
        approx += 1040;
    }
    b.build()
}

struct Row {
    name: String,
    mb_s: f64,
    reference: &'static str,
    ratio: f64,
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// Plain sequential writes of `chunk`, `n` times; optionally fsync each.
fn plain_write(dir: &Path, chunk: &[u8], n: usize, fsync_each: bool) -> f64 {
    let p = fresh(dir, "plain.bin");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&p)
        .expect("create");
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(chunk).expect("write");
        if fsync_each {
            f.sync_data().expect("fsync");
        }
    }
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&p);
    secs
}

fn log_append(
    dir: &Path,
    chunk: &[u8],
    n: usize,
    flush: FlushPolicy,
    threads: usize,
) -> (f64, Arc<Log>, PathBuf) {
    let p = fresh(dir, "log");
    let cfg = LogConfig {
        flush,
        ..LogConfig::default()
    };
    let log = Arc::new(Log::open(&p, cfg).expect("open"));
    let t = Instant::now();
    let per = n / threads;
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let log = log.clone();
            let chunk = chunk.to_vec();
            std::thread::spawn(move || {
                let buf = chunk;
                for _ in 0..per {
                    log.append(&buf).expect("append");
                    if let FlushPolicy::Interval(_) = flush {
                        log.flush_if_due().expect("flush");
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().expect("thread");
    }
    (t.elapsed().as_secs_f64(), log, p)
}

/// Appends with one fsync per append and no sharing: each append and its
/// fsync run under one lock, as a log without group commit would.
fn serial_fsync(dir: &Path, chunk: &[u8], n: usize, threads: usize) -> f64 {
    let p = fresh(dir, "log-serial");
    let log = Arc::new(Log::open(&p, LogConfig::default()).expect("open"));
    let lock = Arc::new(std::sync::Mutex::new(()));
    let t = Instant::now();
    let per = n / threads;
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let (log, lock) = (log.clone(), lock.clone());
            let chunk = chunk.to_vec();
            std::thread::spawn(move || {
                let buf = chunk;
                for _ in 0..per {
                    let _g = lock.lock().expect("lock");
                    log.append(&buf).expect("append");
                    log.flush().expect("fsync");
                }
            })
        })
        .collect();
    for h in hs {
        h.join().expect("thread");
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&p);
    secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let dir = std::env::var("STROM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target/bench-storage"));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let total_mb: usize = std::env::var("STROM_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let runs = 3;
    let mut rows = Vec::new();

    for &size in &[16 << 10, 1 << 20] {
        let chunk = batch_of(size);
        let n = (total_mb << 20) / chunk.len();
        let bytes = (n * chunk.len()) as u64;
        let label = if size == 1 << 20 { "1MiB" } else { "16KiB" };
        let plain = median(
            (0..runs)
                .map(|_| plain_write(&dir, &chunk, n, false))
                .collect(),
        );
        let plain_mb = mb_s(bytes, plain);
        rows.push(Row {
            name: format!("plain write {label}"),
            mb_s: plain_mb,
            reference: "-",
            ratio: 1.0,
        });
        let os = median(
            (0..runs)
                .map(|_| {
                    let (s, log, p) = log_append(&dir, &chunk, n, FlushPolicy::Os, 1);
                    drop(log);
                    let _ = std::fs::remove_dir_all(p);
                    s
                })
                .collect(),
        );
        rows.push(Row {
            name: format!("append os {label}"),
            mb_s: mb_s(bytes, os),
            reference: "plain write",
            ratio: plain / os,
        });
        let interval = median(
            (0..runs)
                .map(|_| {
                    let (s, log, p) = log_append(&dir, &chunk, n, FlushPolicy::Interval(1000), 1);
                    drop(log);
                    let _ = std::fs::remove_dir_all(p);
                    s
                })
                .collect(),
        );
        rows.push(Row {
            name: format!("append flush.ms=1000 {label}"),
            mb_s: mb_s(bytes, interval),
            reference: "plain write",
            ratio: plain / interval,
        });

        // fsync cases: a fixed number of appends (bound by the fsync rate),
        // median of 3 runs each.
        let fs_n = if size == 1 << 20 { 256 } else { 4096 };
        let fs_bytes = (fs_n * chunk.len()) as u64;
        let plain_sync = median(
            (0..runs)
                .map(|_| plain_write(&dir, &chunk, fs_n, true))
                .collect(),
        );
        rows.push(Row {
            name: format!("plain write+fsync {label}"),
            mb_s: mb_s(fs_bytes, plain_sync),
            reference: "-",
            ratio: 1.0,
        });
        let timed = |threads: usize| {
            let (secs, log, p) = log_append(&dir, &chunk, fs_n, FlushPolicy::EveryAppend, threads);
            let fsyncs = log.fsync_count();
            drop(log);
            let _ = std::fs::remove_dir_all(p);
            (secs, fsyncs)
        };
        let one = median((0..runs).map(|_| timed(1).0).collect());
        rows.push(Row {
            name: format!("append fsync 1 appender {label}"),
            mb_s: mb_s(fs_bytes, one),
            reference: "plain write+fsync",
            ratio: plain_sync / one,
        });
        let serial8 = median(
            (0..runs)
                .map(|_| serial_fsync(&dir, &chunk, fs_n, 8))
                .collect(),
        );
        rows.push(Row {
            name: format!("append fsync 8 appenders, no sharing {label}"),
            mb_s: mb_s(fs_bytes, serial8),
            reference: "plain write+fsync",
            ratio: plain_sync / serial8,
        });
        let mut group_runs = Vec::new();
        let mut fsyncs = 0;
        for _ in 0..runs {
            let (secs, f) = timed(8);
            group_runs.push(secs);
            fsyncs = f;
        }
        let group = median(group_runs);
        println!("group commit {label}: {fs_n} appends shared {fsyncs} fsyncs (last run)");
        rows.push(Row {
            name: format!("append fsync 8 appenders, group commit {label}"),
            mb_s: mb_s(fs_bytes, group),
            reference: "8 appenders no sharing",
            ratio: serial8 / group,
        });
        rows.push(Row {
            name: format!("  same, against one appender {label}"),
            mb_s: mb_s(fs_bytes, group),
            reference: "1 appender fsync",
            ratio: one / group,
        });
        // The ceiling for groups of 8: one write+fsync per 8 appends' bytes.
        let eight: Vec<u8> = chunk
            .iter()
            .copied()
            .cycle()
            .take(chunk.len() * 8)
            .collect();
        let ceiling = median(
            (0..runs)
                .map(|_| plain_write(&dir, &eight, fs_n / 8, true))
                .collect(),
        );
        rows.push(Row {
            name: format!("  ceiling: plain write+fsync of 8x{label}"),
            mb_s: mb_s(fs_bytes, ceiling),
            reference: "group commit",
            ratio: group / ceiling,
        });
    }

    // Read throughput: sequential reads of 1 MiB from a log in page cache,
    // against reading the same file with plain `read`.
    let chunk = batch_of(64 << 10);
    let n = (total_mb << 20) / chunk.len();
    let (_, log, p) = log_append(&dir, &chunk, n, FlushPolicy::Os, 1);
    let bytes = log.size_bytes();
    let plain_read = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let mut f = File::open(p.join("00000000000000000000.log")).expect("open");
                let mut buf = vec![0u8; 1 << 20];
                while std::io::Read::read(&mut f, &mut buf).expect("read") > 0 {}
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    rows.push(Row {
        name: "plain read 1MiB".into(),
        mb_s: mb_s(bytes, plain_read),
        reference: "-",
        ratio: 1.0,
    });
    let log_read = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let mut off = 0;
                while off < log.log_end_offset() {
                    let r = log.read(off, 1 << 20, None).expect("read");
                    let mut last = off;
                    for b in strom_record::Batches::new(&r.records) {
                        let (h, _, _) = b.expect("batch");
                        last = h.next_offset();
                    }
                    off = last;
                }
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    rows.push(Row {
        name: "log read 1MiB".into(),
        mb_s: mb_s(bytes, log_read),
        reference: "plain read",
        ratio: plain_read / log_read,
    });
    drop(log);
    let _ = std::fs::remove_dir_all(p);

    println!(
        "{:<52} {:>10} {:>26} {:>7}",
        "case", "MB/s", "reference", "ratio"
    );
    for r in &rows {
        println!(
            "{:<52} {:>10.1} {:>26} {:>7.2}",
            r.name, r.mb_s, r.reference, r.ratio
        );
    }
    let json: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"case\":\"{}\",\"mb_s\":{:.1},\"reference\":\"{}\",\"ratio\":{:.3}}}",
                r.name, r.mb_s, r.reference, r.ratio
            )
        })
        .collect();
    let _ = std::fs::write(
        "target/bench-storage.json",
        format!("[{}]\n", json.join(",")),
    );
}
