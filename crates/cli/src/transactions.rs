//! `strom transactions`: list transactional ids, describe one, and show the
//! producers writing to a partition, like Kafka's kafka-transactions.sh.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::bootstrap::Bootstrap;
use strom_client::Admin;

use crate::table::print_table;

/// Transaction commands.
#[derive(Debug, Args)]
pub struct TransactionsArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    #[command(subcommand)]
    command: TransactionsCommand,
}

#[derive(Debug, Subcommand)]
enum TransactionsCommand {
    /// List transactional ids with their producer id and state.
    List {
        /// Only ids in this state (Ongoing, CompleteCommit, ...); repeatable.
        #[arg(long = "state")]
        states: Vec<String>,
    },
    /// Show a transactional id's producer, state, timeout and open partitions.
    Describe {
        /// Transactional id.
        transactional_id: String,
    },
    /// Show the idempotent and transactional producers a partition knows.
    DescribeProducers {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partition (all partitions when left out).
        #[arg(long)]
        partition: Option<i32>,
    },
}

/// Runs a `strom transactions` command.
pub fn run(args: TransactionsArgs) -> Result<()> {
    let rt = crate::runtime::for_admin()?;
    rt.block_on(async move {
        let mut admin = Admin::connect(&args.bootstrap.servers, Duration::from_secs(10)).await?;
        match args.command {
            TransactionsCommand::List { states } => list(&mut admin, &states).await,
            TransactionsCommand::Describe { transactional_id } => {
                describe(&mut admin, &transactional_id).await
            }
            TransactionsCommand::DescribeProducers { topic, partition } => {
                producers(&mut admin, &topic, partition).await
            }
        }
    })
}

async fn list(admin: &mut Admin, states: &[String]) -> Result<()> {
    let mut rows = vec![vec![
        "TRANSACTIONAL-ID".to_string(),
        "PRODUCER-ID".into(),
        "STATE".into(),
    ]];
    for t in admin.list_transactions(states).await? {
        rows.push(vec![t.transactional_id, t.producer_id.to_string(), t.state]);
    }
    print_table(&rows);
    Ok(())
}

async fn describe(admin: &mut Admin, id: &str) -> Result<()> {
    let t = admin.describe_transaction(id).await?;
    let start = if t.start_time_ms < 0 {
        "-".to_string()
    } else {
        t.start_time_ms.to_string()
    };
    let partitions = if t.partitions.is_empty() {
        "-".to_string()
    } else {
        t.partitions
            .iter()
            .map(|(topic, p)| format!("{topic}-{p}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    print_table(&[
        vec![
            "TRANSACTIONAL-ID".to_string(),
            "PRODUCER-ID".into(),
            "EPOCH".into(),
            "STATE".into(),
            "TIMEOUT-MS".into(),
            "START-TIME-MS".into(),
            "PARTITIONS".into(),
        ],
        vec![
            t.transactional_id,
            t.producer_id.to_string(),
            t.producer_epoch.to_string(),
            t.state,
            t.timeout_ms.to_string(),
            start,
            partitions,
        ],
    ]);
    Ok(())
}

async fn producers(admin: &mut Admin, topic: &str, partition: Option<i32>) -> Result<()> {
    let partitions = match partition {
        Some(p) => vec![p],
        None => (0..admin.partitions(topic).await?).collect(),
    };
    let mut rows = vec![vec![
        "PARTITION".to_string(),
        "PRODUCER-ID".into(),
        "EPOCH".into(),
        "LAST-SEQUENCE".into(),
        "LAST-TIMESTAMP".into(),
        "CURRENT-TXN-START-OFFSET".into(),
    ]];
    for p in admin.describe_producers(topic, partitions).await? {
        rows.push(vec![
            p.partition.to_string(),
            p.producer_id.to_string(),
            p.producer_epoch.to_string(),
            p.last_sequence.to_string(),
            p.last_timestamp.to_string(),
            if p.current_txn_start_offset < 0 {
                "-".to_string()
            } else {
                p.current_txn_start_offset.to_string()
            },
        ]);
    }
    print_table(&rows);
    Ok(())
}
