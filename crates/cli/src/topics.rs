//! `strom topics`: create, list, describe, alter and delete topics, like
//! Kafka's kafka-topics.sh and kafka-configs.sh for topics.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use strom_client::{Admin, ConfigChange, ElectionOutcome, ElectionType, ELECTION_NOT_NEEDED};

use crate::bootstrap::Bootstrap;
use crate::table::print_table;

/// Topic commands.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        topic: String,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config NAME=VALUE (retention.ms=86400000, cleanup.policy=compact, ...); repeatable.
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
    },
    /// List topic names (internal ones with --internal).
    List {
        /// Include internal topics (__consumer_offsets, __transaction_state).
        #[arg(long)]
        internal: bool,
    },
    /// Show partitions, leaders, replicas and config overrides.
    Describe {
        /// Topics to describe (all when left out).
        topics: Vec<String>,
    },
    /// Change configs or add partitions.
    Alter {
        /// Topic name.
        topic: String,
        /// Set a config NAME=VALUE; repeatable.
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
        /// Remove a config override (back to the default); repeatable.
        #[arg(long = "delete-config", value_name = "NAME")]
        delete_configs: Vec<String>,
        /// Grow the topic to this many partitions.
        #[arg(long)]
        partitions: Option<i32>,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        topic: String,
    },
    /// Move partitions to other brokers (like kafka-reassign-partitions.sh):
    /// one partition at once, or --generate / --execute / --verify / --cancel
    /// with Kafka's JSON files, or --list the moves in progress.
    Reassign(crate::reassign::ReassignArgs),
    /// Give partitions their preferred (first) replica as leader again, or
    /// (--election-type unclean) elect any live replica of a partition
    /// with no live in-sync one (like kafka-leader-election.sh).
    ElectLeaders {
        /// preferred, or unclean (records only other replicas had are lost).
        #[arg(long, value_enum, default_value = "preferred")]
        election_type: Election,
        /// Topic of the partition to elect (with --partition).
        #[arg(long, requires = "partition", conflicts_with = "all_topic_partitions")]
        topic: Option<String>,
        /// Partition to elect (with --topic).
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// Every partition of every topic.
        #[arg(long)]
        all_topic_partitions: bool,
    },
}

/// `--election-type`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Election {
    Preferred,
    Unclean,
}

/// Prints an election's outcomes as kafka-leader-election.sh does; an
/// error when a partition could not be elected.
fn print_elections(how: ElectionType, outcomes: &[ElectionOutcome]) -> Result<()> {
    let list = |f: &dyn Fn(&ElectionOutcome) -> bool| {
        outcomes
            .iter()
            .filter(|o| f(o))
            .map(|o| format!("{}-{}", o.topic, o.partition))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let done = list(&|o| o.error_code == 0);
    if !done.is_empty() {
        println!(
            "Successfully completed leader election ({}) for partitions {done}",
            how.name()
        );
    }
    let kept = list(&|o| o.error_code == ELECTION_NOT_NEEDED);
    if !kept.is_empty() {
        println!("Valid replica already elected for partitions {kept}");
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            (o.error_code != ELECTION_NOT_NEEDED)
                .then(|| o.error())
                .flatten()
                .map(|e| format!("{}-{}: {e}", o.topic, o.partition))
        })
        .collect();
    if outcomes.is_empty() {
        println!("No partition needed an election");
    }
    if !failed.is_empty() {
        bail!(
            "leader election ({}) failed for {} partition(s):\n{}",
            how.name(),
            failed.len(),
            failed.join("\n")
        );
    }
    Ok(())
}

fn parse_configs(list: &[String]) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|c| {
            c.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("expected NAME=VALUE, got '{c}'"))
        })
        .collect()
}

/// Runs a `strom topics` command.
pub fn run(args: TopicsArgs) -> Result<()> {
    let command = match args.command {
        TopicsCommand::Reassign(r) => return crate::reassign::run(&args.bootstrap.servers, r),
        c => c,
    };
    let rt = crate::runtime::for_admin()?;
    rt.block_on(async move {
        let mut admin = Admin::connect(&args.bootstrap.servers, Duration::from_secs(30)).await?;
        match command {
            TopicsCommand::Create {
                topic,
                partitions,
                replication_factor,
                configs,
            } => {
                let configs = parse_configs(&configs)?;
                admin
                    .create_topic(
                        &topic,
                        partitions.unwrap_or(-1),
                        replication_factor.unwrap_or(-1),
                        &configs,
                    )
                    .await?;
                println!("Created topic {topic}.");
            }
            TopicsCommand::List { internal } => {
                for t in admin.describe_topics(None).await? {
                    if internal || !t.internal {
                        println!("{}", t.name);
                    }
                }
            }
            TopicsCommand::Describe { topics } => describe(&mut admin, &topics).await?,
            TopicsCommand::Alter {
                topic,
                configs,
                delete_configs,
                partitions,
            } => {
                if configs.is_empty() && delete_configs.is_empty() && partitions.is_none() {
                    bail!("nothing to change: give --config, --delete-config or --partitions");
                }
                let mut changes: Vec<ConfigChange> = parse_configs(&configs)?
                    .into_iter()
                    .map(|(k, v)| ConfigChange::Set(k, v))
                    .collect();
                changes.extend(delete_configs.into_iter().map(ConfigChange::Delete));
                if !changes.is_empty() {
                    admin.alter_topic_configs(&topic, &changes).await?;
                }
                if let Some(n) = partitions {
                    admin.create_partitions(&topic, n).await?;
                }
                println!("Altered topic {topic}.");
            }
            TopicsCommand::Delete { topic } => {
                admin.delete_topic(&topic).await?;
                println!("Deleted topic {topic}.");
            }
            TopicsCommand::ElectLeaders {
                election_type,
                topic,
                partition,
                all_topic_partitions,
            } => {
                let named = match (topic, partition) {
                    (Some(t), Some(p)) => Some(vec![(t, p)]),
                    _ if all_topic_partitions => None,
                    _ => bail!("name a partition with --topic and --partition, or give --all-topic-partitions"),
                };
                let how = match election_type {
                    Election::Preferred => ElectionType::Preferred,
                    Election::Unclean => ElectionType::Unclean,
                };
                let outcomes = admin.elect_leaders(how, named.as_deref()).await?;
                print_elections(how, &outcomes)?;
            }
            TopicsCommand::Reassign(_) => unreachable!("handled before connecting"),
        }
        Ok(())
    })
}

async fn describe(admin: &mut Admin, topics: &[String]) -> Result<()> {
    let names = (!topics.is_empty()).then_some(topics);
    let list = admin.describe_topics(names).await?;
    for (i, t) in list
        .iter()
        .filter(|t| names.is_some() || !t.internal)
        .enumerate()
    {
        if i > 0 {
            println!();
        }
        let overrides: Vec<String> = admin
            .topic_configs(&t.name)
            .await?
            .into_iter()
            .filter(|c| !c.is_default)
            .map(|c| format!("{}={}", c.name, c.value.unwrap_or_default()))
            .collect();
        println!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tConfigs: {}",
            t.name,
            t.id,
            t.partitions.len(),
            overrides.join(",")
        );
        let join = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        let mut rows = vec![vec![
            "PARTITION".to_string(),
            "LEADER".into(),
            "REPLICAS".into(),
            "ISR".into(),
        ]];
        for (p, leader, replicas, isr) in &t.partitions {
            rows.push(vec![
                p.to_string(),
                leader.to_string(),
                join(replicas),
                join(isr),
            ]);
        }
        print_table(&rows);
    }
    Ok(())
}
