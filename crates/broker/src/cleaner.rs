//! The broker's log cleaner threads: Kafka's `LogCleaner` for Strom.
//!
//! `log.cleaner.threads` threads (default 1) each loop: find the dirtiest
//! compacted partition no other thread is cleaning — the one most overdue
//! by `max.compaction.lag.ms`, else the one with the highest dirty ratio at
//! or above its `min.cleanable.dirty.ratio` — clean it
//! (`strom_storage::cleaner`), or sleep `log.cleaner.backoff.ms` when none
//! is due. The partition's producer state bounds and informs each clean:
//! its last stable offset, its aborted transactions, its producers' last
//! writes. Settings are read at every clean, so dynamic changes of
//! `log.cleaner.dedupe.buffer.size`, `log.cleaner.io.*` and
//! `log.cleaner.backoff.ms` take effect at once; the thread count is read
//! at start. `log.cleaner.enable=false` starts none.
//!
//! The threads run at nice 10: cleaning is background work, and on a
//! machine with few cores an unthrottled clean otherwise takes a core from
//! the request path (Kafka leaves this to `log.cleaner.io.max.bytes.per.second`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use strom_storage::cleaner::{CleanContext, Cleaner, CleanerConfig};

use crate::config::BrokerConfig;
use crate::partition::Partition;
use crate::topics::Topics;

/// The running cleaner threads.
#[derive(Debug)]
pub struct LogCleaner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    topics: Arc<Topics>,
    /// Partitions being cleaned, by the address of their `Partition` (a
    /// topic deleted and created again under its name is another one).
    busy: Mutex<HashSet<usize>>,
    /// Partitions whose clean failed (damaged data): not tried again until
    /// restart, as Kafka marks them uncleanable.
    failed: Mutex<HashSet<usize>>,
    stop: AtomicBool,
    /// Abort flags of the cleaners, set at shutdown.
    aborts: Mutex<Vec<Arc<AtomicBool>>>,
    /// Wakes sleeping threads at shutdown.
    wake: Condvar,
    sleep: Mutex<()>,
}

/// The cleaner settings of `broker`, per thread as Kafka divides them.
fn cleaner_config(broker: &BrokerConfig, threads: usize) -> CleanerConfig {
    let threads = threads.max(1) as i64;
    CleanerConfig {
        dedupe_buffer_bytes: (broker.get_i64("log.cleaner.dedupe.buffer.size", 134_217_728)
            / threads)
            .clamp(0, i32::MAX as i64) as usize,
        load_factor: broker.get_f64("log.cleaner.io.buffer.load.factor", 0.9),
        io_buffer_bytes: (broker.get_i64("log.cleaner.io.buffer.size", 524_288) / threads / 2)
            .max(64 * 1024) as usize,
        max_io_bytes_per_sec: broker.get_f64("log.cleaner.io.max.bytes.per.second", f64::MAX),
    }
}

impl LogCleaner {
    /// Starts the cleaner threads over `topics`' compacted partitions.
    pub fn start(topics: Arc<Topics>) -> LogCleaner {
        let config = topics.broker();
        let enabled = config.get_bool("log.cleaner.enable") || !config.is_set("log.cleaner.enable");
        let count = if enabled {
            config.get_i64("log.cleaner.threads", 1).clamp(0, 64) as usize
        } else {
            0
        };
        let shared = Arc::new(Shared {
            topics,
            busy: Mutex::new(HashSet::new()),
            failed: Mutex::new(HashSet::new()),
            stop: AtomicBool::new(false),
            aborts: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            sleep: Mutex::new(()),
        });
        let mut threads = Vec::new();
        for id in 0..count {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("strom-log-cleaner-{id}"))
                .spawn(move || s.run(count));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => tracing::error!(error = %e, "cannot start a log cleaner thread"),
            }
        }
        if count > 0 {
            tracing::debug!(threads = count, "log cleaner started");
        }
        LogCleaner {
            shared,
            threads: Mutex::new(threads),
        }
    }

    /// Stops the threads: a clean under way stops at its next read (the log
    /// stays as it was) and the threads are joined.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        for a in self.shared.aborts.lock().iter() {
            a.store(true, Ordering::Release);
        }
        {
            let _g = self.shared.sleep.lock();
            self.shared.wake.notify_all();
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for LogCleaner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Gives the calling thread nice 10 (on Linux a thread has its own nice
/// value; `who = 0` names the caller). Failure only costs the preference.
fn lower_priority() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the cleaner thread's priority");
    }
}

fn id(p: &Arc<Partition>) -> usize {
    Arc::as_ptr(p) as usize
}

impl Shared {
    fn run(&self, threads: usize) {
        lower_priority();
        let mut cleaner = Cleaner::new(cleaner_config(self.topics.broker(), threads));
        self.aborts.lock().push(cleaner.abort_flag());
        while !self.stop.load(Ordering::Acquire) {
            cleaner.set_config(cleaner_config(self.topics.broker(), threads));
            let cleaned = match self.grab_dirtiest() {
                Some(p) => {
                    self.clean(&mut cleaner, &p);
                    self.busy.lock().remove(&id(&p));
                    true
                }
                None => false,
            };
            if !cleaned {
                let backoff = self
                    .topics
                    .broker()
                    .get_i64("log.cleaner.backoff.ms", 15_000)
                    .max(1) as u64;
                let mut g = self.sleep.lock();
                if !self.stop.load(Ordering::Acquire) {
                    self.wake.wait_for(&mut g, Duration::from_millis(backoff));
                }
            }
        }
    }

    /// The compacted partition most in need of a clean, marked busy.
    fn grab_dirtiest(&self) -> Option<Arc<Partition>> {
        let now = self.topics.clock().wall_ms();
        let mut best: Option<((i64, f64), Arc<Partition>)> = None;
        for p in self.topics.all_partitions() {
            let config = p.log.config();
            if !config.compact {
                continue;
            }
            let key = id(&p);
            if self.busy.lock().contains(&key) || self.failed.lock().contains(&key) {
                continue;
            }
            let range = match p.log.cleanable_range(p.last_stable_offset(), now) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot plan a clean");
                    continue;
                }
            };
            if !range.is_due(config.min_cleanable_dirty_ratio) {
                continue;
            }
            // Overdue first (most overdue), then the dirtiest.
            let rank = (range.overdue_ms.max(0), range.dirty_ratio);
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, p));
            }
        }
        let (_, p) = best?;
        // Another thread may have taken it since.
        if !self.busy.lock().insert(id(&p)) {
            return None;
        }
        Some(p)
    }

    fn clean(&self, cleaner: &mut Cleaner, p: &Arc<Partition>) {
        // Read before taking the producer lock (it takes it too).
        let last_stable_offset = p.last_stable_offset();
        let ctx = {
            let state = p.producers.lock();
            CleanContext {
                now_ms: self.topics.clock().wall_ms(),
                last_stable_offset,
                aborted: state.aborted(),
                producers: state.last_records(),
            }
        };
        let result = cleaner.clean_with(&p.log, &ctx, &mut |removed| {
            if removed.is_empty() {
                return Ok(());
            }
            {
                let mut state = p.producers.lock();
                for (pid, offset) in removed {
                    state.forget_aborted(*pid, *offset);
                }
            }
            p.save_producer_state(true)
        });
        match result {
            Ok(Some(o)) => tracing::info!(
                topic = %p.topic,
                partition = p.index,
                dirty = format!("[{}, {})", o.first_dirty, o.end_offset),
                ratio = format!("{:.2}", o.range.map_or(0.0, |r| r.dirty_ratio)),
                bytes_before = o.bytes_read,
                bytes_after = o.bytes_written,
                records_before = o.records_read,
                records_after = o.records_written,
                keys = o.keys,
                segments = format!("{} -> {}", o.segments_in, o.segments_out),
                ms = o.duration.as_millis() as u64,
                "cleaned log"
            ),
            Ok(None) => {}
            Err(strom_storage::StorageError::CleanAborted { .. }) => {}
            Err(e) => {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log cleaning failed; the partition is not cleaned again until restart");
                self.failed.lock().insert(id(p));
            }
        }
    }
}
