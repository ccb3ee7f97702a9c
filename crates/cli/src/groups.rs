//! `strom groups`: list, describe (with lag), delete and reset offsets of
//! consumer groups, like Kafka's kafka-consumer-groups.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::bootstrap::Bootstrap;
use strom_client::Admin;

use crate::table::print_table;

/// Consumer group commands.
#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, Subcommand)]
enum GroupsCommand {
    /// List all groups with their state.
    List,
    /// Show each partition's committed offset, log end offset, lag and owner.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete a group that has no active members (its committed offsets go too).
    Delete {
        /// Group id.
        group: String,
    },
    /// Move a group's committed offsets. Prints the plan; --execute applies it.
    /// The group must have no active members.
    ResetOffsets(ResetArgs),
}

#[derive(Debug, Args)]
struct ResetArgs {
    /// Group id.
    group: String,
    /// Topic whose partitions to reset (all partitions); repeatable.
    #[arg(long = "topic", required = true)]
    topics: Vec<String>,
    /// Reset to the log start offset.
    #[arg(long, group = "target")]
    to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long, group = "target")]
    to_latest: bool,
    /// Reset to this offset (clamped to the log's range).
    #[arg(long, group = "target", value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// Reset to the first offset at or after this time: epoch milliseconds or
    /// YYYY-MM-DDTHH:MM:SS[.mmm] in UTC.
    #[arg(long, group = "target", value_name = "TIME")]
    to_datetime: Option<String>,
    /// Apply the plan (without it, nothing changes: dry run).
    #[arg(long)]
    execute: bool,
}

/// Runs a `strom groups` command.
pub fn run(args: GroupsArgs) -> Result<()> {
    let rt = crate::runtime::for_admin()?;
    rt.block_on(async move {
        let mut admin = Admin::connect(&args.bootstrap.servers, Duration::from_secs(10)).await?;
        match args.command {
            GroupsCommand::List => list(&mut admin).await,
            GroupsCommand::Describe { group } => describe(&mut admin, &group).await,
            GroupsCommand::Delete { group } => {
                admin.delete_group(&group).await?;
                println!("Deleted group '{group}'.");
                Ok(())
            }
            GroupsCommand::ResetOffsets(r) => reset(&mut admin, r).await,
        }
    })
}

async fn list(admin: &mut Admin) -> Result<()> {
    let mut rows = vec![vec![
        "GROUP".to_string(),
        "STATE".into(),
        "PROTOCOL-TYPE".into(),
    ]];
    for g in admin.list_groups().await? {
        rows.push(vec![g.group_id, g.state, g.protocol_type]);
    }
    print_table(&rows);
    Ok(())
}

async fn describe(admin: &mut Admin, group: &str) -> Result<()> {
    let d = admin.describe_group(group).await?;
    let committed = admin.committed(group).await?;
    if d.state == "Dead" && committed.is_empty() {
        bail!("consumer group '{group}' does not exist");
    }
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in &d.members {
        for tp in &m.partitions {
            owners.insert(
                tp.clone(),
                (m.member_id.clone(), m.host.clone(), m.client_id.clone()),
            );
        }
    }
    let partitions: Vec<(String, i32)> = committed
        .keys()
        .chain(owners.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        admin.list_offsets(&partitions, -1).await?
    };
    println!(
        "Group '{group}' is {} with {} member(s) (assignor: {}).\n",
        d.state,
        d.members.len(),
        if d.protocol.is_empty() {
            "-"
        } else {
            &d.protocol
        }
    );
    let mut rows = vec![[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    .map(String::from)
    .to_vec()];
    for tp in &partitions {
        let current = committed.get(tp).copied();
        let end = ends.get(tp).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => "-".into(),
        };
        let (member, host, client) = owners
            .get(tp)
            .cloned()
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        rows.push(vec![
            group.to_string(),
            tp.0.clone(),
            tp.1.to_string(),
            current.map_or("-".into(), |c| c.to_string()),
            end.map_or("-".into(), |e| e.to_string()),
            lag,
            member,
            host,
            client,
        ]);
    }
    print_table(&rows);
    Ok(())
}

async fn reset(admin: &mut Admin, r: ResetArgs) -> Result<()> {
    let mut partitions = Vec::new();
    for t in &r.topics {
        let n = admin.partitions(t).await?;
        partitions.extend((0..n).map(|p| (t.clone(), p)));
    }
    let earliest = admin.list_offsets(&partitions, -2).await?;
    let latest = admin.list_offsets(&partitions, -1).await?;
    let plan: BTreeMap<(String, i32), i64> = if r.to_earliest {
        earliest.clone()
    } else if r.to_latest {
        latest.clone()
    } else if let Some(o) = r.to_offset {
        let mut plan = BTreeMap::new();
        for tp in &partitions {
            let (lo, hi) = match (earliest.get(tp), latest.get(tp)) {
                (Some(lo), Some(hi)) => (*lo, (*hi).max(*lo)),
                _ => bail!("the broker did not report offsets for {}-{}", tp.0, tp.1),
            };
            plan.insert(tp.clone(), o.clamp(lo, hi));
        }
        plan
    } else if let Some(t) = &r.to_datetime {
        let ts = parse_time(t)?;
        let found = admin.list_offsets(&partitions, ts).await?;
        found
            .into_iter()
            .map(|(tp, o)| {
                let end = latest.get(&tp).copied().unwrap_or(o);
                (tp, if o < 0 { end } else { o })
            })
            .collect()
    } else {
        bail!("choose one of --to-earliest, --to-latest, --to-offset, --to-datetime");
    };
    let mut rows = vec![["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
        .map(String::from)
        .to_vec()];
    for ((t, p), o) in &plan {
        rows.push(vec![
            r.group.clone(),
            t.clone(),
            p.to_string(),
            o.to_string(),
        ]);
    }
    print_table(&rows);
    if r.execute {
        admin
            .commit(&r.group, &plan)
            .await
            .context("the group must have no active members to reset its offsets")?;
        println!("\nOffsets of group '{}' reset.", r.group);
    } else {
        println!("\nDry run: nothing changed. Add --execute to apply.");
    }
    Ok(())
}

/// Epoch milliseconds, or `YYYY-MM-DDTHH:MM:SS[.mmm]` (UTC, optional trailing `Z`).
pub(crate) fn parse_time(s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        anyhow::anyhow!(
            "cannot read time '{s}': use epoch milliseconds or YYYY-MM-DDTHH:MM:SS[.mmm] (UTC)"
        )
    };
    let s2 = s.trim_end_matches('Z');
    let (date, time) = s2.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let (hms, millis) = match time.split_once('.') {
        Some((a, b)) => (a, b.parse::<i64>().map_err(|_| bad())?),
        None => (time, 0),
    };
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    // Days since the epoch for a proleptic Gregorian date (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("1700000000000").expect("ms"), 1_700_000_000_000);
        assert_eq!(parse_time("1970-01-01T00:00:00Z").expect("epoch"), 0);
        assert_eq!(
            parse_time("2023-11-14T22:13:20.000").expect("date"),
            1_700_000_000_000
        );
        assert!(parse_time("yesterday").is_err());
    }
}
