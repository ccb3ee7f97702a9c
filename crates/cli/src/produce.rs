//! `strom produce TOPIC`: one record per input line, like
//! kafka-console-producer.sh, through Strom's producer (idempotent by default).

use std::collections::VecDeque;
use std::io::BufRead;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::bootstrap::Bootstrap;
use strom_client::producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord};

/// Produce arguments.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    #[command(flatten)]
    bootstrap: Bootstrap,
    /// Read lines from this file instead of stdin.
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
    /// Split each line at the first SEP into key and value (lines without it are refused).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Add a header NAME=VALUE to every record; repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Write every record to this partition (default: by key, or sticky for unkeyed records).
    #[arg(long)]
    partition: Option<i32>,
    /// Acknowledgement: all, 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Write all the input as one transaction with this transactional.id:
    /// read_committed consumers see every line or none.
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// Any producer property by its Kafka name (linger.ms=20, enable.idempotence=false, ...); repeatable.
    #[arg(long = "property", short = 'X', value_name = "NAME=VALUE")]
    properties: Vec<String>,
}

fn split_pair(s: &str) -> Result<(&str, &str)> {
    s.split_once('=')
        .with_context(|| format!("expected NAME=VALUE, got '{s}'"))
}

/// Runs `strom produce`.
pub fn run(args: ProduceArgs) -> Result<()> {
    let mut config = ProducerConfig::new(&args.bootstrap.servers);
    config.client_id = "strom-produce".into();
    config.set("acks", &args.acks)?;
    config.set("compression.type", &args.compression)?;
    for p in &args.properties {
        let (k, v) = split_pair(p)?;
        config.set(k, v)?;
    }
    if let Some(id) = &args.transactional_id {
        config.set("transactional.id", id)?;
    }
    let headers: Vec<(String, Vec<u8>)> = args
        .headers
        .iter()
        .map(|h| split_pair(h).map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())))
        .collect::<Result<_>>()?;
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let rt = crate::runtime::for_records()?;
    rt.block_on(async move {
        let producer = Producer::new(config).await?;
        let transactional = args.transactional_id.is_some();
        if transactional {
            producer.init_transactions().await?;
            producer.begin_transaction().await?;
        }
        let mut waiting: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
        let mut failed = 0usize;
        let mut sent = 0usize;
        let topic: std::sync::Arc<str> = args.topic.as_str().into();
        for (n, line) in input.lines().enumerate() {
            let line = line.context("cannot read input")?;
            let mut record = ProducerRecord::new(topic.clone());
            match &args.key_separator {
                Some(sep) => {
                    let Some((k, v)) = line.split_once(sep.as_str()) else {
                        if transactional {
                            producer.abort_transaction().await?;
                        }
                        bail!("line {}: no key separator '{sep}'", n + 1);
                    };
                    record = record.key(k.to_string()).value(v.to_string());
                }
                None => record = record.value(line),
            }
            if let Some(p) = args.partition {
                record = record.partition(p);
            }
            for (k, v) in &headers {
                record = record.header(k.clone(), v.clone());
            }
            waiting.push_back((n + 1, producer.send(record).await?));
            sent += 1;
            // Settle acknowledgements as they come, keeping memory bounded.
            while waiting.len() > 100_000 {
                if let Some((line, f)) = waiting.pop_front() {
                    if let Err(e) = f.await {
                        failed += 1;
                        eprintln!("line {line}: {e}");
                    }
                }
            }
        }
        producer.flush().await?;
        for (line, f) in waiting {
            if let Err(e) = f.await {
                failed += 1;
                eprintln!("line {line}: {e}");
            }
        }
        if transactional {
            if failed > 0 {
                producer.abort_transaction().await?;
                producer.close().await?;
                bail!("{failed} of {sent} records failed; the transaction was aborted");
            }
            producer.commit_transaction().await?;
        }
        producer.close().await?;
        if failed > 0 {
            bail!("{failed} of {sent} records were not written");
        }
        Ok(())
    })
}
