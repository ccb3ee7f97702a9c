//! `strom consume TOPIC`: print records like kafka-console-consumer.sh or
//! kcat -C, through Strom's consumer.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use strom_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord};

use crate::bootstrap::Bootstrap;

/// How to print each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The value only.
    Plain,
    /// Key, a tab, the value.
    Kv,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value, headers.
    Json,
}

/// Consume arguments.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    #[command(flatten)]
    bootstrap: Bootstrap,
    /// Read as a member of this consumer group (partitions shared with the
    /// other members; starts from the committed offsets, commits as it goes).
    #[arg(long)]
    group: Option<String>,
    /// Only this partition (without --group).
    #[arg(long)]
    partition: Option<i32>,
    /// Start from the beginning (with --group: when nothing is committed).
    #[arg(long, group = "start")]
    from_beginning: bool,
    /// Start at this offset (needs --partition).
    #[arg(long, group = "start", value_name = "OFFSET")]
    offset: Option<i64>,
    /// Start at the first record at or after this time: epoch ms or YYYY-MM-DDTHH:MM:SS[.mmm] UTC.
    #[arg(long, group = "start", value_name = "TIME")]
    from_time: Option<String>,
    /// Stop after this many records.
    #[arg(long, short = 'c')]
    count: Option<usize>,
    /// Stop when no record arrived for this many milliseconds (default: run until interrupted).
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "plain")]
    format: Format,
    /// A kcat-style template instead of --format: %t topic, %p partition, %o offset,
    /// %k key, %s value, %T timestamp, %h headers, %K/%S key/value length, \n \t escapes.
    #[arg(long, short = 'f', value_name = "TEMPLATE")]
    template: Option<String>,
    /// Hide records of open and aborted transactions.
    #[arg(long)]
    read_committed: bool,
    /// Any consumer property by its Kafka name (fetch.max.wait.ms=100, ...); repeatable.
    #[arg(long = "property", short = 'X', value_name = "NAME=VALUE")]
    properties: Vec<String>,
}

fn text(b: &Option<bytes::Bytes>) -> String {
    b.as_deref()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn json_bytes(b: &Option<bytes::Bytes>) -> serde_json::Value {
    match b {
        None => serde_json::Value::Null,
        Some(v) => serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
    }
}

fn render(r: &ConsumerRecord, format: Format, template: Option<&str>) -> String {
    if let Some(t) = template {
        let mut out = String::new();
        let mut chars = t.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek().copied()) {
                ('%', Some(k)) => {
                    chars.next();
                    match k {
                        't' => out.push_str(&r.topic),
                        'p' => out.push_str(&r.partition.to_string()),
                        'o' => out.push_str(&r.offset.to_string()),
                        'k' => out.push_str(&text(&r.key)),
                        's' => out.push_str(&text(&r.value)),
                        'T' => out.push_str(&r.timestamp.to_string()),
                        'K' => {
                            out.push_str(&r.key.as_ref().map_or(-1, |k| k.len() as i64).to_string())
                        }
                        'S' => out
                            .push_str(&r.value.as_ref().map_or(-1, |v| v.len() as i64).to_string()),
                        'h' => out.push_str(
                            &r.headers
                                .iter()
                                .map(|(k, v)| format!("{k}={}", text(v)))
                                .collect::<Vec<_>>()
                                .join(","),
                        ),
                        '%' => out.push('%'),
                        other => {
                            out.push('%');
                            out.push(other);
                        }
                    }
                }
                ('\\', Some('n')) => {
                    chars.next();
                    out.push('\n');
                }
                ('\\', Some('t')) => {
                    chars.next();
                    out.push('\t');
                }
                (c, _) => out.push(c),
            }
        }
        return out;
    }
    match format {
        Format::Plain => format!("{}\n", text(&r.value)),
        Format::Kv => format!("{}\t{}\n", text(&r.key), text(&r.value)),
        Format::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json_bytes(v)))
                .collect();
            let v = serde_json::json!({
                "topic": &*r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": json_bytes(&r.key),
                "value": json_bytes(&r.value),
                "headers": headers,
            });
            format!("{v}\n")
        }
    }
}

/// Runs `strom consume`.
pub fn run(args: ConsumeArgs) -> Result<()> {
    if args.offset.is_some() && args.partition.is_none() {
        bail!("--offset needs --partition");
    }
    if args.group.is_some()
        && (args.partition.is_some() || args.offset.is_some() || args.from_time.is_some())
    {
        bail!("--group reads the partitions the group assigns; --partition, --offset and --from-time need no group");
    }
    let mut config = ConsumerConfig::new(&args.bootstrap.servers);
    config.client_id = "strom-consume".into();
    if let Some(g) = &args.group {
        config.set("group.id", g)?;
    }
    config.set(
        "auto.offset.reset",
        if args.from_beginning {
            "earliest"
        } else {
            "latest"
        },
    )?;
    if args.read_committed {
        config.set("isolation.level", "read_committed")?;
    }
    for p in &args.properties {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("expected NAME=VALUE, got '{p}'"))?;
        config.set(k, v)?;
    }
    let from_time = args
        .from_time
        .as_deref()
        .map(crate::groups::parse_time)
        .transpose()?;
    let rt = crate::runtime::for_records()?;
    rt.block_on(async move {
        let mut consumer = Consumer::new(config)?;
        if args.group.is_some() {
            consumer.subscribe(&[args.topic.as_str()]).await?;
        } else {
            let partitions = match args.partition {
                Some(p) => vec![(args.topic.clone(), p)],
                None => {
                    let mut admin = strom_client::Admin::connect(
                        &args.bootstrap.servers,
                        Duration::from_secs(30),
                    )
                    .await?;
                    let n = admin.partitions(&args.topic).await?;
                    (0..n).map(|p| (args.topic.clone(), p)).collect()
                }
            };
            consumer.assign(partitions).await?;
            if let (Some(o), Some(p)) = (args.offset, args.partition) {
                consumer.seek(&args.topic, p, o)?;
            }
            if let Some(ts) = from_time {
                consumer.seek_to_timestamp(ts).await?;
            }
        }
        let mut printed = 0usize;
        let mut last = Instant::now();
        let stdout = std::io::stdout();
        loop {
            let records = consumer.poll(Duration::from_millis(200)).await?;
            if !records.is_empty() {
                last = Instant::now();
            }
            let mut out = stdout.lock();
            let mut unprinted = Vec::new();
            for r in &records {
                if args.count.is_some_and(|c| printed >= c) {
                    unprinted.push(r);
                    continue;
                }
                out.write_all(render(r, args.format, args.template.as_deref()).as_bytes())
                    .context("cannot write to stdout")?;
                printed += 1;
            }
            out.flush().ok();
            drop(out);
            if args.count.is_some_and(|c| printed >= c) {
                // Rewind past what was not printed, so a group commits only what was.
                let mut seen = std::collections::HashSet::new();
                for r in unprinted {
                    if seen.insert(r.partition) {
                        consumer.seek(&r.topic, r.partition, r.offset)?;
                    }
                }
                break;
            }
            if args
                .idle_timeout_ms
                .is_some_and(|ms| last.elapsed() >= Duration::from_millis(ms))
            {
                break;
            }
        }
        consumer.close().await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_formats() {
        let r = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            key: Some(bytes::Bytes::from_static(b"k")),
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: vec![("h".into(), Some(bytes::Bytes::from_static(b"x")))],
        };
        assert_eq!(
            render(&r, Format::Plain, Some("%t/%p@%o %k=%s %h %S%%\\n")),
            "t/2@7 k=v h=x 1%\n"
        );
        assert_eq!(render(&r, Format::Kv, None), "k\tv\n");
        let j: serde_json::Value =
            serde_json::from_str(render(&r, Format::Json, None).trim()).expect("json");
        assert_eq!(j["offset"], 7);
        assert_eq!(j["headers"]["h"], "x");
    }
}
