//! `strom cleaner`: what the log cleaner did to each compacted log, read
//! from the broker's data directory (read-only; safe while it runs).

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use strom_storage::cleaner::inspect;

use crate::table::print_table;

/// Show per log: size, dirty ratio, last clean, bytes reclaimed.
#[derive(Debug, Args)]
pub struct CleanerArgs {
    /// The broker's data directory (`log.dirs`).
    #[arg(long, default_value = "./strom-data")]
    data_dir: PathBuf,
    /// Only this topic's partitions.
    #[arg(long)]
    topic: Option<String>,
    /// Also logs the cleaner never worked on (all topics, not only compacted ones).
    #[arg(long)]
    all: bool,
    /// One JSON object per log instead of a table.
    #[arg(long)]
    json: bool,
}

/// `<topic>-<partition>` directory names, split.
fn topic_partition(name: &str) -> Option<(&str, i32)> {
    let (t, p) = name.rsplit_once('-')?;
    Some((t, p.parse().ok()?))
}

fn when(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
    let secs = t.elapsed().map_or(0, |d| d.as_secs());
    format!("{secs}s ago")
}

/// Runs `strom cleaner`.
pub fn run(args: CleanerArgs) -> Result<()> {
    let mut logs = Vec::new();
    let entries = std::fs::read_dir(&args.data_dir)
        .with_context(|| format!("cannot read data directory {}", args.data_dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((topic, partition)) = topic_partition(&name) else {
            continue;
        };
        if !entry.path().is_dir() || args.topic.as_deref().is_some_and(|t| t != topic) {
            continue;
        }
        let status = inspect(&entry.path())
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        if status.checkpoint.is_none() && !args.all {
            continue;
        }
        logs.push((topic.to_string(), partition, status));
    }
    logs.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    if args.json {
        for (t, p, s) in &logs {
            let c = s.checkpoint.unwrap_or_default();
            println!(
                "{}",
                serde_json::json!({
                    "topic": t, "partition": p, "size_bytes": s.size_bytes,
                    "clean_bytes": s.clean_bytes, "dirty_bytes": s.dirty_bytes,
                    "dirty_ratio": s.dirty_ratio, "cleaned": s.checkpoint.is_some(),
                    "first_dirty_offset": c.first_dirty_offset, "last_clean_ms": c.last_clean_ms,
                    "last_clean_duration_ms": c.last_clean_duration_ms,
                    "bytes_reclaimed": c.bytes_reclaimed, "cleans": c.cleans,
                })
            );
        }
        return Ok(());
    }
    let mut rows = vec![[
        "TOPIC",
        "PARTITION",
        "SIZE",
        "DIRTY-RATIO",
        "FIRST-DIRTY",
        "LAST-CLEAN",
        "CLEAN-MS",
        "RECLAIMED",
        "CLEANS",
    ]
    .map(String::from)
    .to_vec()];
    for (t, p, s) in &logs {
        let c = s.checkpoint;
        rows.push(vec![
            t.clone(),
            p.to_string(),
            s.size_bytes.to_string(),
            format!("{:.2}", s.dirty_ratio),
            c.map_or("-".into(), |c| c.first_dirty_offset.to_string()),
            c.map_or("never".into(), |c| when(c.last_clean_ms)),
            c.map_or("-".into(), |c| c.last_clean_duration_ms.to_string()),
            c.map_or("0".into(), |c| c.bytes_reclaimed.to_string()),
            c.map_or("0".into(), |c| c.cleans.to_string()),
        ]);
    }
    print_table(&rows);
    Ok(())
}
