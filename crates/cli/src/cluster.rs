//! `strom cluster describe`: the brokers (racks, fenced or not), the active
//! controller and the metadata quorum's voters and observers with their lag,
//! what Kafka's `kafka-cluster.sh` and `kafka-metadata-quorum.sh describe
//! --status --replication` show.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::{Args, Subcommand};
use strom_client::{Admin, QuorumReplica};

use crate::bootstrap::Bootstrap;
use crate::table::print_table;

/// Cluster commands.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show the cluster id, the brokers (rack, fenced or not), the active controller,
    /// and the metadata quorum: leader, epoch, high watermark, each voter's and observer's lag.
    Describe,
}

/// Runs `strom cluster`.
pub fn run(args: ClusterArgs) -> Result<()> {
    let rt = crate::runtime::for_admin()?;
    rt.block_on(async move {
        let mut admin = Admin::connect(&args.bootstrap.servers, Duration::from_secs(10)).await?;
        match args.command {
            ClusterCommand::Describe => describe(&mut admin).await,
        }
    })
}

fn ago(ms: i64, now: i64) -> String {
    if ms < 0 {
        "-".into()
    } else {
        format!("{} ms ago", (now - ms).max(0))
    }
}

async fn describe(admin: &mut Admin) -> Result<()> {
    let b = admin.describe_brokers().await?;
    println!("Cluster id: {}", b.cluster_id);
    println!("Controller: {}", b.controller);
    println!();
    let mut rows = vec![vec![
        "BROKER".to_string(),
        "HOST:PORT".into(),
        "RACK".into(),
        "STATE".into(),
    ]];
    for x in &b.brokers {
        rows.push(vec![
            x.id.to_string(),
            format!("{}:{}", x.host, x.port),
            x.rack.clone().unwrap_or_else(|| "-".into()),
            if x.fenced { "fenced" } else { "active" }.into(),
        ]);
    }
    print_table(&rows);
    // Only the leader knows every replica's progress: ask the controller's broker.
    let controller = b
        .brokers
        .iter()
        .find(|x| x.id == b.controller && !x.fenced)
        .map(|x| format!("{}:{}", x.host, x.port));
    let q = match controller {
        Some(addr) => match Admin::connect(&addr, Duration::from_secs(10)).await {
            Ok(mut at_leader) => at_leader.describe_quorum().await?,
            Err(_) => admin.describe_quorum().await?,
        },
        None => admin.describe_quorum().await?,
    };
    println!();
    println!(
        "Metadata quorum: leader {} in epoch {}, high watermark {}",
        q.leader, q.epoch, q.high_watermark
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut rows = vec![vec![
        "NODE".to_string(),
        "ROLE".into(),
        "LOG-END-OFFSET".into(),
        "LAG".into(),
        "LAST-FETCH".into(),
        "LAST-CAUGHT-UP".into(),
    ]];
    let row = |r: &QuorumReplica, role: &str| {
        let lag = if r.log_end_offset < 0 {
            "-".to_string()
        } else {
            (q.high_watermark - r.log_end_offset).max(0).to_string()
        };
        vec![
            r.id.to_string(),
            role.to_string(),
            r.log_end_offset.to_string(),
            lag,
            ago(r.last_fetch_ms, now),
            ago(r.last_caught_up_ms, now),
        ]
    };
    for r in &q.voters {
        rows.push(row(
            r,
            if r.id == q.leader {
                "leader"
            } else {
                "follower"
            },
        ));
    }
    for r in &q.observers {
        rows.push(row(r, "observer"));
    }
    print_table(&rows);
    Ok(())
}
