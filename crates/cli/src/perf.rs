//! `strom perf produce|consume|e2e`: load generators and latency meters
//! through Strom's client, like kafka-producer-perf-test.sh and
//! kafka-consumer-perf-test.sh plus an end-to-end latency run. A progress
//! line each second on stderr; a summary (or `--json`) on stdout.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use strom_client::consumer::{Consumer, ConsumerConfig};
use strom_client::producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use strom_client::Admin;

use crate::bootstrap::Bootstrap;

/// Performance commands.
#[derive(Debug, Args)]
pub struct PerfArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Debug, Args)]
struct Common {
    /// Topic (created with --partitions if it does not exist).
    #[arg(long, default_value = "strom-perf")]
    topic: String,
    /// Number of records.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Partitions for a topic this command creates.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Client property NAME=VALUE (linger.ms=5, batch.size=1048576, ...); repeatable.
    #[arg(long = "property", short = 'X', value_name = "NAME=VALUE")]
    properties: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum PerfCommand {
    /// Produce records as fast as allowed; latency is send to acknowledgement
    /// (every 16th record timed at full speed, every record at a --rate).
    Produce {
        #[command(flatten)]
        common: Common,
        /// Value size in bytes.
        #[arg(long, default_value_t = 100)]
        record_size: usize,
        /// Records per second (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Acknowledgement: all, 1 or 0.
        #[arg(long, default_value = "all")]
        acks: String,
    },
    /// Read records from the beginning of the topic.
    Consume {
        #[command(flatten)]
        common: Common,
    },
    /// Produce at a fixed rate and measure send-to-receive latency with a consumer.
    E2e {
        #[command(flatten)]
        common: Common,
        /// Value size in bytes (at least 8: the send time travels in the value).
        #[arg(long, default_value_t = 100)]
        record_size: usize,
        /// Records per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
    },
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Latencies in microseconds and their percentiles.
#[derive(Debug, Default)]
struct Latencies(Vec<u32>);

impl Latencies {
    fn push(&mut self, micros: u64) {
        self.0.push(micros.min(u32::MAX as u64) as u32);
    }
    /// (p50, p99, p99.9, max) in milliseconds.
    fn summary(&mut self) -> (f64, f64, f64, f64) {
        if self.0.is_empty() {
            return (0.0, 0.0, 0.0, 0.0);
        }
        // Selection, not a full sort: this runs every second on the
        // sending thread while millions of latencies are in the window.
        let mut at = |q: f64| {
            let i = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len()) - 1;
            *self.0.select_nth_unstable(i).1 as f64 / 1000.0
        };
        (at(0.50), at(0.99), at(0.999), at(1.0))
    }
}

/// A progress line each second for the records counted since the last one.
struct Progress {
    started: Instant,
    last: Instant,
    records: u64,
    bytes: u64,
    window: Latencies,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress {
            started: now,
            last: now,
            records: 0,
            bytes: 0,
            window: Latencies::default(),
        }
    }
    fn add(&mut self, bytes: usize, latency_micros: Option<u64>) {
        self.add_many(1, bytes as u64, latency_micros);
    }
    /// `records` settled records of `bytes` in all, one of them timed.
    fn add_many(&mut self, records: u64, bytes: u64, latency_micros: Option<u64>) {
        let before = self.records;
        self.records += records;
        self.bytes += bytes;
        if let Some(l) = latency_micros {
            self.window.push(l);
        }
        // Looking at the clock every record would cost more than the record.
        if before / 1024 != self.records / 1024 && self.last.elapsed() >= Duration::from_secs(1) {
            self.print();
        }
    }
    fn print(&mut self) {
        let secs = self.last.elapsed().as_secs_f64().max(1e-9);
        let (p50, p99, _, _) = self.window.summary();
        let lat = if self.window.0.is_empty() {
            String::new()
        } else {
            format!(", latency p50 {p50:.2} ms p99 {p99:.2} ms")
        };
        eprintln!(
            "{:>6.1}s  {:>10.0} records/s  {:>8.2} MB/s{lat}",
            self.started.elapsed().as_secs_f64(),
            self.records as f64 / secs,
            self.bytes as f64 / secs / 1e6,
        );
        self.last = Instant::now();
        self.records = 0;
        self.bytes = 0;
        self.window = Latencies::default();
    }
}

fn report(
    json: bool,
    kind: &str,
    records: u64,
    bytes: u64,
    elapsed: Duration,
    lat: Option<&mut Latencies>,
) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = records as f64 / secs;
    let mbs = bytes as f64 / secs / 1e6;
    let lat = lat.map(|l| l.summary());
    if json {
        let latency = lat.map(|(p50, p99, p999, max)| {
            serde_json::json!({"p50": p50, "p99": p99, "p99_9": p999, "max": max})
        });
        println!(
            "{}",
            serde_json::json!({
                "kind": kind, "records": records, "bytes": bytes, "seconds": secs,
                "records_per_sec": rate, "mb_per_sec": mbs, "latency_ms": latency,
            })
        );
    } else {
        let latency = lat
            .map(|(p50, p99, p999, max)| {
                format!(
                    "; latency p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms, max {max:.2} ms"
                )
            })
            .unwrap_or_default();
        println!(
            "{kind}: {records} records in {secs:.2} s: {rate:.0} records/s, {mbs:.2} MB/s{latency}"
        );
    }
}

async fn ensure_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let mut admin = Admin::connect(bootstrap, Duration::from_secs(30)).await?;
    if admin.partitions(topic).await.is_err() {
        match admin
            .create_topic(topic, partitions, -1, &Default::default())
            .await
        {
            Ok(()) => {}
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The -X properties as (name, value) pairs.
fn properties(common: &Common) -> Result<Vec<(&str, &str)>> {
    common
        .properties
        .iter()
        .map(|p| {
            p.split_once('=')
                .with_context(|| format!("expected NAME=VALUE, got '{p}'"))
        })
        .collect()
}

/// True when `name` belongs to the other client: e2e hands each client its
/// own properties from one -X list.
fn belongs_to_consumer(name: &str) -> bool {
    ConsumerConfig::new("x").set(name, "1").is_ok()
        || ConsumerConfig::new("x").set(name, "earliest").is_ok()
        || ConsumerConfig::new("x").set(name, "true").is_ok()
        || ConsumerConfig::new("x").set(name, "read_committed").is_ok()
}

fn belongs_to_producer(name: &str) -> bool {
    ProducerConfig::new("x").set(name, "1").is_ok()
        || ProducerConfig::new("x").set(name, "none").is_ok()
        || ProducerConfig::new("x").set(name, "true").is_ok()
}

fn producer_config(bootstrap: &str, common: &Common) -> Result<ProducerConfig> {
    let mut c = ProducerConfig::new(bootstrap);
    c.client_id = "strom-perf".into();
    for (k, v) in properties(common)? {
        if let Err(e) = c.set(k, v) {
            if !belongs_to_consumer(k) || belongs_to_producer(k) {
                return Err(e.into());
            }
        }
    }
    Ok(c)
}

/// Sleeps until record `i` is due at `rate` records/s from `start`.
async fn pace(start: Instant, i: u64, rate: u64) {
    if rate > 0 {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// Runs a `strom perf` command.
pub fn run(args: PerfArgs) -> Result<()> {
    let rt = crate::runtime::for_records()?;
    let bootstrap = args.bootstrap.servers;
    rt.block_on(async move {
        match args.command {
            PerfCommand::Produce {
                common,
                record_size,
                rate,
                acks,
            } => {
                ensure_topic(&bootstrap, &common.topic, common.partitions).await?;
                let mut cfg = producer_config(&bootstrap, &common)?;
                cfg.set("acks", &acks)?;
                produce(cfg, &common, record_size, rate).await
            }
            PerfCommand::Consume { common } => consume(&bootstrap, &common).await,
            PerfCommand::E2e {
                common,
                record_size,
                rate,
            } => {
                if record_size < 8 {
                    bail!("--record-size must be at least 8 for e2e");
                }
                ensure_topic(&bootstrap, &common.topic, common.partitions).await?;
                e2e(&bootstrap, &common, record_size, rate).await
            }
        }
    })
}

async fn produce(cfg: ProducerConfig, common: &Common, size: usize, rate: u64) -> Result<()> {
    let producer = Producer::new(cfg).await?;
    // One value for the whole run, kept for the process's life: cloning a
    // static `Bytes` per record is a copy of four words, not a reference
    // count on a buffer shared with the client's threads.
    let value = bytes::Bytes::from_static(vec![b'x'; size].leak());
    let mut progress = Progress::new();
    let mut all = Latencies::default();
    let mut waiting: VecDeque<(u64, DeliveryFuture)> = VecDeque::new();
    let topic: std::sync::Arc<str> = common.topic.as_str().into();
    let start = Instant::now();
    // At full speed only every 16th record is timed and awaited (the
    // clock is read at its send and its acknowledgement), as
    // kafka-producer-perf-test samples its latencies; the others' futures
    // are dropped and failures are counted by the producer, checked after
    // the final flush. At a fixed rate every record is timed.
    let every: u64 = if rate == 0 { 16 } else { 1 };
    let settle = |sent_at: u64,
                  r: Result<_, strom_client::ClientError>,
                  progress: &mut Progress,
                  all: &mut Latencies|
     -> Result<()> {
        r.context("a record was not acknowledged")?;
        let l = now_micros().saturating_sub(sent_at);
        all.push(l);
        // The timed record stands for itself and the untimed ones after it.
        progress.add_many(every, every * size as u64, Some(l));
        Ok(())
    };
    let (acked_tx, mut acked_rx) =
        tokio::sync::mpsc::unbounded_channel::<Result<u64, strom_client::ClientError>>();
    let record_latency = |r: Result<u64, strom_client::ClientError>,
                          progress: &mut Progress,
                          all: &mut Latencies|
     -> Result<()> {
        let l = r.context("a record was not acknowledged")?;
        all.push(l);
        progress.add(size, Some(l));
        Ok(())
    };
    for i in 0..common.records {
        pace(start, i, rate).await;
        let timed = i.is_multiple_of(every);
        let sent_at = if timed { now_micros() } else { 0 };
        let f = producer
            .send(ProducerRecord::new(topic.clone()).value(value.clone()))
            .await?;
        if rate > 0 {
            // At a fixed rate each acknowledgement is timed the moment it
            // arrives, by a task of its own (at most `rate` a second).
            let tx = acked_tx.clone();
            tokio::spawn(async move {
                let r = f.await.map(|_| now_micros().saturating_sub(sent_at));
                let _ = tx.send(r);
            });
            while let Ok(r) = acked_rx.try_recv() {
                record_latency(r, &mut progress, &mut all)?;
            }
            continue;
        }
        if !timed {
            continue;
        }
        waiting.push_back((sent_at, f));
        // Settle what is acknowledged already, without waiting.
        if i.is_multiple_of(64 * every) {
            let mut cx = TaskContext::from_waker(Waker::noop());
            while let Some((_, f)) = waiting.front_mut() {
                let Poll::Ready(r) = Pin::new(f).poll(&mut cx) else {
                    break;
                };
                if let Some((t, _)) = waiting.pop_front() {
                    settle(t, r, &mut progress, &mut all)?;
                }
            }
        }
        while waiting.len() > 200_000 {
            if let Some((t, f)) = waiting.pop_front() {
                settle(t, f.await, &mut progress, &mut all)?;
            }
        }
    }
    // Send the last, partly filled batch now instead of after linger.ms, as
    // kafka-producer-perf-test closes its producer before taking its totals.
    producer.flush().await?;
    for (t, f) in waiting {
        settle(t, f.await, &mut progress, &mut all)?;
    }
    let counts = producer.delivery_counts();
    if counts.failed > 0 {
        bail!(
            "{} of {} records were not acknowledged: {}",
            counts.failed,
            common.records,
            counts.first_error.unwrap_or_default()
        );
    }
    drop(acked_tx);
    while let Some(r) = acked_rx.recv().await {
        record_latency(r, &mut progress, &mut all)?;
    }
    let elapsed = start.elapsed();
    producer.close().await?;
    report(
        common.json,
        "produce",
        common.records,
        common.records * size as u64,
        elapsed,
        Some(&mut all),
    );
    Ok(())
}

fn consumer_for(bootstrap: &str, common: &Common, reset: &str) -> Result<Consumer> {
    let mut c = ConsumerConfig::new(bootstrap);
    c.client_id = "strom-perf".into();
    c.set("auto.offset.reset", reset)?;
    for (k, v) in properties(common)? {
        if let Err(e) = c.set(k, v) {
            if !belongs_to_producer(k) || belongs_to_consumer(k) {
                return Err(e.into());
            }
        }
    }
    Ok(Consumer::new(c)?)
}

async fn assign_all(bootstrap: &str, consumer: &mut Consumer, topic: &str) -> Result<()> {
    let mut admin = Admin::connect(bootstrap, Duration::from_secs(30)).await?;
    let n = admin.partitions(topic).await?;
    consumer
        .assign((0..n).map(|p| (topic.to_string(), p)).collect())
        .await?;
    Ok(())
}

async fn consume(bootstrap: &str, common: &Common) -> Result<()> {
    let mut consumer = consumer_for(bootstrap, common, "earliest")?;
    assign_all(bootstrap, &mut consumer, &common.topic).await?;
    let mut progress = Progress::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let mut idle = Instant::now();
    while n < common.records {
        let batch = consumer.poll(Duration::from_millis(500)).await?;
        if batch.is_empty() && idle.elapsed() > Duration::from_secs(10) {
            bail!(
                "only {n} of {} records arrived (none for 10 s)",
                common.records
            );
        }
        for r in batch {
            let b = r.value.as_ref().map_or(0, |v| v.len()) + r.key.as_ref().map_or(0, |k| k.len());
            n += 1;
            bytes += b as u64;
            progress.add(b, None);
            idle = Instant::now();
        }
    }
    report(common.json, "consume", n, bytes, start.elapsed(), None);
    Ok(())
}

async fn e2e(bootstrap: &str, common: &Common, size: usize, rate: u64) -> Result<()> {
    let mut consumer = consumer_for(bootstrap, common, "latest")?;
    assign_all(bootstrap, &mut consumer, &common.topic).await?;
    // Positions at the current end before anything is sent.
    let _ = consumer.poll(Duration::from_millis(10)).await?;
    let cfg = producer_config(bootstrap, common)?;
    let records = common.records;
    let topic: std::sync::Arc<str> = common.topic.as_str().into();
    let sender = tokio::spawn(async move {
        let producer = Producer::new(cfg).await?;
        let start = Instant::now();
        let mut value = vec![b'x'; size];
        for i in 0..records {
            pace(start, i, rate).await;
            value[..8].copy_from_slice(&now_micros().to_be_bytes());
            producer
                .send(ProducerRecord::new(topic.clone()).value(value.clone()))
                .await?;
        }
        producer.close().await?;
        Ok::<(), strom_client::ClientError>(())
    });
    let mut progress = Progress::new();
    let mut all = Latencies::default();
    let start = Instant::now();
    let mut n = 0u64;
    let mut idle = Instant::now();
    while n < records {
        let batch = consumer.poll(Duration::from_millis(100)).await?;
        let now = now_micros();
        if batch.is_empty() && idle.elapsed() > Duration::from_secs(10) {
            bail!("only {n} of {records} records arrived (none for 10 s)");
        }
        for r in batch {
            let Some(v) = r.value.as_ref().filter(|v| v.len() >= 8) else {
                continue;
            };
            let mut sent = [0u8; 8];
            sent.copy_from_slice(&v[..8]);
            let l = now.saturating_sub(u64::from_be_bytes(sent));
            all.push(l);
            progress.add(v.len(), Some(l));
            n += 1;
            idle = Instant::now();
        }
    }
    sender.await.context("the producer task failed")??;
    report(
        common.json,
        "e2e",
        n,
        n * size as u64,
        start.elapsed(),
        Some(&mut all),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut l = Latencies::default();
        for i in 1..=1000 {
            l.push(i * 1000);
        }
        assert_eq!(l.summary(), (500.0, 990.0, 999.0, 1000.0));
    }
}
