//! `strom topics reassign`: move partitions between brokers, modelled on
//! Kafka's `kafka-reassign-partitions.sh` (same JSON files, same messages),
//! plus a one-partition form (`--topic T --partition P --replicas 4,5`).
//!
//! Moves are started and cancelled with AlterPartitionReassignments and
//! watched with ListPartitionReassignments, sent to the bootstrap broker,
//! which forwards them to the controller. `--throttle` holds the copying
//! to a byte rate, and `--verify` removes the throttles once every move is
//! done, as Kafka's tool does ([`throttle`]); log-dir moves are not offered.

mod plan;
mod throttle;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};
use strom_client::{Admin, ClientError};

use plan::{join_ids, tp_name, Assignment, Tp};

/// `strom topics reassign`: choose exactly one action.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("action").required(true).args(["topic", "execute", "verify", "cancel", "list", "generate"])),
    after_help = "Examples:\n  \
        strom topics reassign --topic orders --partition 0 --replicas 4,5\n  \
        strom topics reassign --generate --topics-to-move-json-file topics.json --broker-list 4,5,6 > plan.txt\n  \
        strom topics reassign --reassignment-json-file plan.json --execute --throttle 50000000\n  \
        strom topics reassign --reassignment-json-file plan.json --verify\n  \
        strom topics reassign --reassignment-json-file plan.json --cancel\n  \
        strom topics reassign --list\n\n\
        A reassignment file: {\"version\":1,\"partitions\":[{\"topic\":\"orders\",\"partition\":0,\"replicas\":[4,5]}]}\n\
        (\"log_dirs\" may be given, as [\"any\", ...] only). A topics-to-move file: {\"version\":1,\"topics\":[{\"topic\":\"orders\"}]}"
)]
pub struct ReassignArgs {
    /// Move one partition of this topic now (with --partition and --replicas).
    #[arg(long, requires_all = ["partition", "replicas"])]
    topic: Option<String>,
    /// The partition to move (with --topic).
    #[arg(long, requires = "topic")]
    partition: Option<i32>,
    /// The new replicas, broker ids; the first is the preferred leader (with --topic).
    #[arg(
        long,
        value_name = "ID[,ID...]",
        value_delimiter = ',',
        requires = "topic"
    )]
    replicas: Option<Vec<i32>>,
    /// Kafka's reassignment JSON, for --execute, --verify and --cancel.
    #[arg(long, value_name = "FILE")]
    reassignment_json_file: Option<PathBuf>,
    /// Start the reassignments in --reassignment-json-file; prints the current
    /// assignment first, to keep for a rollback.
    #[arg(long, requires = "reassignment_json_file")]
    execute: bool,
    /// With --execute: start even though other reassignments are in progress.
    #[arg(long, requires = "execute")]
    additional: bool,
    /// With --execute: hold the copying to this many bytes/s (Kafka's
    /// leader/follower.replication.throttled.rate on the brokers of the
    /// moves, and the topics' *.replication.throttled.replicas); --verify
    /// removes the throttles once every move is done.
    #[arg(long, value_name = "BYTES_PER_SEC", requires = "execute")]
    throttle: Option<u64>,
    /// With --verify: leave the throttles in place when the moves are done.
    #[arg(long, requires = "verify")]
    preserve_throttles: bool,
    /// Say, for each partition of --reassignment-json-file, whether its move is
    /// completed or still in progress.
    #[arg(long, requires = "reassignment_json_file")]
    verify: bool,
    /// Cancel the moves in progress of the partitions in --reassignment-json-file.
    #[arg(long, requires = "reassignment_json_file")]
    cancel: bool,
    /// List every reassignment in progress: replicas, adding, removing.
    #[arg(long)]
    list: bool,
    /// Propose a reassignment of the topics in --topics-to-move-json-file over
    /// --broker-list (nothing is changed); prints the current and proposed JSON.
    #[arg(long, requires_all = ["topics_to_move_json_file", "broker_list"])]
    generate: bool,
    /// The topics to move, for --generate: {"version":1,"topics":[{"topic":"t"}]}.
    #[arg(long, value_name = "FILE", requires = "generate")]
    topics_to_move_json_file: Option<PathBuf>,
    /// The brokers to place the replicas on, for --generate.
    #[arg(
        long,
        value_name = "ID[,ID...]",
        value_delimiter = ',',
        requires = "generate"
    )]
    broker_list: Option<Vec<i32>>,
}

enum Action {
    One(Tp, Vec<i32>),
    Execute {
        moves: Assignment,
        additional: bool,
        throttle: Option<u64>,
    },
    Verify {
        moves: Assignment,
        preserve_throttles: bool,
    },
    Cancel(Assignment),
    List,
    Generate {
        topics: Vec<String>,
        brokers: Vec<i32>,
    },
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads and checks the files before anything is sent.
fn action(args: ReassignArgs) -> Result<Action> {
    let reassignment = |path: &Option<PathBuf>| -> Result<Assignment> {
        let path = path
            .as_deref()
            .context("--reassignment-json-file is required")?;
        plan::parse_reassignment(&read(path)?).with_context(|| format!("in {}", path.display()))
    };
    if args.throttle.is_some() && !args.execute {
        bail!("Option \"[throttle]\" can only be used with action \"[execute]\"");
    }
    if args.preserve_throttles && !args.verify {
        bail!("Option \"[preserve-throttles]\" can only be used with action \"[verify]\"");
    }
    Ok(if let Some(topic) = args.topic {
        let partition = args
            .partition
            .context("--partition is required with --topic")?;
        let replicas = args.replicas.unwrap_or_default();
        if partition < 0 || replicas.iter().any(|r| *r < 0) {
            bail!("--partition and --replicas take non-negative numbers");
        }
        if replicas.is_empty() {
            bail!("Partition replica list cannot be empty");
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            bail!("--replicas names a broker twice: {}", join_ids(&replicas));
        }
        Action::One((topic, partition), replicas)
    } else if args.execute {
        Action::Execute {
            moves: reassignment(&args.reassignment_json_file)?,
            additional: args.additional,
            throttle: args.throttle,
        }
    } else if args.verify {
        Action::Verify {
            moves: reassignment(&args.reassignment_json_file)?,
            preserve_throttles: args.preserve_throttles,
        }
    } else if args.cancel {
        Action::Cancel(reassignment(&args.reassignment_json_file)?)
    } else if args.list {
        Action::List
    } else {
        let path = args
            .topics_to_move_json_file
            .context("--topics-to-move-json-file is required with --generate")?;
        let topics = plan::parse_topics_to_move(&read(&path)?)
            .with_context(|| format!("in {}", path.display()))?;
        let brokers = args.broker_list.unwrap_or_default();
        plan::check_broker_list(&brokers)?;
        Action::Generate { topics, brokers }
    })
}

/// Runs `strom topics reassign`.
pub fn run(bootstrap: &str, args: ReassignArgs) -> Result<()> {
    let action = action(args)?;
    let rt = crate::runtime::for_admin()?;
    rt.block_on(async move {
        let mut admin = Admin::connect(bootstrap, Duration::from_secs(30)).await?;
        match action {
            Action::One(tp, replicas) => one(&mut admin, tp, replicas).await,
            Action::Execute {
                moves,
                additional,
                throttle,
            } => execute(&mut admin, &moves, additional, throttle).await,
            Action::Verify {
                moves,
                preserve_throttles,
            } => verify(&mut admin, &moves, preserve_throttles).await,
            Action::Cancel(moves) => cancel(&mut admin, &moves).await,
            Action::List => list(&mut admin).await,
            Action::Generate { topics, brokers } => generate(&mut admin, &topics, &brokers).await,
        }
    })
}

/// The current replicas of every partition of `topics`.
async fn current_assignment(admin: &mut Admin, topics: &[String]) -> Result<Assignment> {
    let described = match admin.describe_topics(Some(topics)).await {
        Ok(d) => d,
        // UNKNOWN_TOPIC_OR_PARTITION: the context names the topic.
        Err(ClientError::Kafka { context, error }) if error.code() == 3 => {
            bail!("{context} does not exist")
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = Assignment::new();
    for t in described {
        for (p, _leader, replicas, _isr) in t.partitions {
            out.insert((t.name.clone(), p), replicas);
        }
    }
    Ok(out)
}

/// The current replicas of the partitions of `moves`; every one must exist.
async fn current_of(admin: &mut Admin, moves: &Assignment) -> Result<Assignment> {
    let mut topics: Vec<String> = moves.keys().map(|(t, _)| t.clone()).collect();
    topics.dedup();
    let all = current_assignment(admin, &topics).await?;
    moves
        .keys()
        .map(|tp| match all.get(tp) {
            Some(r) => Ok((tp.clone(), r.clone())),
            None => bail!("Unable to find partition: {}", tp_name(tp)),
        })
        .collect()
}

/// Sends the moves (`Some`) or cancels (`None`); returns the partitions
/// done and the failures as `t-0: reason` lines.
async fn alter(
    admin: &mut Admin,
    parts: Vec<(String, i32, Option<Vec<i32>>)>,
) -> Result<(Vec<String>, Vec<String>)> {
    let outcomes = admin.alter_partition_reassignments(&parts).await?;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for o in outcomes {
        let name = format!("{}-{}", o.topic, o.partition);
        match o.error() {
            None => ok.push(name),
            Some(e) => failed.push(format!("{name}: {e}")),
        }
    }
    Ok((ok, failed))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

async fn one(admin: &mut Admin, tp: Tp, replicas: Vec<i32>) -> Result<()> {
    let moves = Assignment::from([(tp.clone(), replicas.clone())]);
    let current = current_of(admin, &moves).await?;
    let from = current.get(&tp).map(|r| join_ids(r)).unwrap_or_default();
    println!("Current replicas of {}: {from}", tp_name(&tp));
    let (_, failed) = alter(admin, vec![(tp.0.clone(), tp.1, Some(replicas.clone()))]).await?;
    if let Some(f) = failed.first() {
        bail!("Error reassigning partition {f}");
    }
    println!(
        "Successfully started partition reassignment for {}: replicas {from} -> {}.",
        tp_name(&tp),
        join_ids(&replicas)
    );
    Ok(())
}

async fn execute(
    admin: &mut Admin,
    moves: &Assignment,
    additional: bool,
    throttle: Option<u64>,
) -> Result<()> {
    if !additional && !admin.list_partition_reassignments(None).await?.is_empty() {
        bail!(
            "Cannot execute because there is an existing partition assignment. \
             Use --additional to override this and create a new partition assignment \
             in addition to the existing one. The --additional flag can also be used \
             to change the throttle by resubmitting the current reassignment."
        );
    }
    let current = current_of(admin, moves).await?;
    println!(
        "Current partition replica assignment\n\n{}\n\n\
         Save this to use as the --reassignment-json-file option during rollback",
        plan::format_reassignment(&current)
    );
    if let Some(rate) = throttle {
        println!("Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed.");
        throttle::set(admin, &current, moves, rate).await?;
    }
    let parts = moves
        .iter()
        .map(|((t, p), r)| (t.clone(), *p, Some(r.clone())))
        .collect();
    let (ok, failed) = alter(admin, parts).await?;
    if !failed.is_empty() {
        if !ok.is_empty() {
            println!(
                "Started partition reassignment{} for {}",
                plural(ok.len()),
                ok.join(",")
            );
        }
        bail!("Error reassigning partition(s):\n{}", failed.join("\n"));
    }
    println!(
        "Successfully started partition reassignment{} for {}",
        plural(ok.len()),
        ok.join(",")
    );
    Ok(())
}

/// Partitions of `moves` with a reassignment in progress.
async fn in_progress(admin: &mut Admin, moves: &Assignment) -> Result<Vec<Tp>> {
    let keys: Vec<Tp> = moves.keys().cloned().collect();
    Ok(admin
        .list_partition_reassignments(Some(&keys))
        .await?
        .into_iter()
        .map(|r| (r.topic, r.partition))
        .filter(|tp| moves.contains_key(tp))
        .collect())
}

async fn verify(admin: &mut Admin, moves: &Assignment, preserve_throttles: bool) -> Result<()> {
    let ongoing = in_progress(admin, moves).await?;
    let current = current_of(admin, moves).await?;
    println!("Status of partition reassignment:");
    for (tp, target) in moves {
        let name = tp_name(tp);
        if ongoing.contains(tp) {
            println!("Reassignment of partition {name} is still in progress.");
        } else if current.get(tp) == Some(target) {
            println!("Reassignment of partition {name} is completed.");
        } else {
            let now = current.get(tp).map(|r| join_ids(r)).unwrap_or_default();
            println!(
                "There is no active reassignment of partition {name}, but replica set is {now} rather than {}.",
                join_ids(target)
            );
        }
    }
    // Every move done: the throttles go, whether or not --execute set them.
    if ongoing.is_empty() && !preserve_throttles {
        println!();
        let topics: BTreeSet<String> = moves.keys().map(|(t, _)| t.clone()).collect();
        throttle::clear(admin, &topics).await?;
    }
    Ok(())
}

async fn cancel(admin: &mut Admin, moves: &Assignment) -> Result<()> {
    let ongoing = in_progress(admin, moves).await?;
    if ongoing.is_empty() {
        println!("None of the specified partition reassignments are active.");
        return Ok(());
    }
    let (ok, failed) = alter(
        admin,
        ongoing.into_iter().map(|(t, p)| (t, p, None)).collect(),
    )
    .await?;
    if !failed.is_empty() {
        if !ok.is_empty() {
            println!(
                "Cancelled partition reassignment{} for: {}",
                plural(ok.len()),
                ok.join(",")
            );
        }
        bail!(
            "Error cancelling partition reassignment{} for:\n  {}",
            plural(failed.len()),
            failed.join("\n  ")
        );
    }
    println!(
        "Successfully cancelled partition reassignment(s) for: {}",
        ok.join(",")
    );
    Ok(())
}

async fn list(admin: &mut Admin) -> Result<()> {
    let all = admin.list_partition_reassignments(None).await?;
    if all.is_empty() {
        println!("No partition reassignments found.");
        return Ok(());
    }
    println!("Current partition reassignments:");
    for r in all {
        let mut line = format!(
            "{}-{}: replicas: {}.",
            r.topic,
            r.partition,
            join_ids(&r.replicas)
        );
        if !r.adding_replicas.is_empty() {
            line.push_str(&format!(" adding: {}.", join_ids(&r.adding_replicas)));
        }
        if !r.removing_replicas.is_empty() {
            line.push_str(&format!(" removing: {}.", join_ids(&r.removing_replicas)));
        }
        println!("{line}");
    }
    Ok(())
}

async fn generate(admin: &mut Admin, topics: &[String], brokers: &[i32]) -> Result<()> {
    let known: Vec<i32> = admin
        .describe_cluster()
        .await?
        .brokers
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    let unknown: Vec<i32> = brokers
        .iter()
        .copied()
        .filter(|b| !known.contains(b))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "--broker-list names broker(s) not in the cluster: {} (the cluster has {})",
            join_ids(&unknown),
            join_ids(&known)
        );
    }
    let current = current_assignment(admin, topics).await?;
    let proposed = plan::propose(&current, brokers)?;
    println!(
        "Current partition replica assignment\n{}\n\nProposed partition reassignment configuration\n{}",
        plan::format_reassignment(&current),
        plan::format_reassignment(&proposed)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReassignArgs,
    }

    fn parse(argv: &[&str]) -> Result<Action> {
        let cli = Cli::try_parse_from(std::iter::once("reassign").chain(argv.iter().copied()))?;
        action(cli.args)
    }

    #[test]
    fn one_partition() {
        match parse(&["--topic", "t", "--partition", "2", "--replicas", "4,5"]) {
            Ok(Action::One(tp, replicas)) => {
                assert_eq!(tp, ("t".to_string(), 2));
                assert_eq!(replicas, [4, 5]);
            }
            _ => panic!("expected a one-partition move"),
        }
        let e = parse(&["--topic", "t", "--partition", "0", "--replicas", "4,4"]);
        assert!(format!("{:#}", e.err().expect("dup")).contains("names a broker twice"));
        assert!(parse(&["--topic", "t", "--partition", "0"]).is_err());
    }

    #[test]
    fn one_action_at_a_time() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--list", "--generate"]).is_err());
        assert!(parse(&["--list", "--additional"]).is_err());
        assert!(parse(&["--execute"]).is_err(), "needs a file");
        assert!(matches!(parse(&["--list"]), Ok(Action::List)));
    }

    #[test]
    fn files_are_read_and_checked_first() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("r.json");
        std::fs::write(
            &file,
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[4]}]}"#,
        )
        .expect("write");
        let f = file.to_str().expect("utf-8");
        match parse(&["--reassignment-json-file", f, "--execute", "--additional"]) {
            Ok(Action::Execute {
                moves,
                additional,
                throttle,
            }) => {
                assert!(additional);
                assert_eq!(moves.len(), 1);
                assert_eq!(throttle, None);
            }
            _ => panic!("expected --execute"),
        }
        match parse(&[
            "--reassignment-json-file",
            f,
            "--execute",
            "--throttle",
            "1000",
        ]) {
            Ok(Action::Execute { throttle, .. }) => assert_eq!(throttle, Some(1000)),
            _ => panic!("expected --execute --throttle"),
        }
        assert!(parse(&["--reassignment-json-file", f, "--verify", "--throttle", "1"]).is_err());
        assert!(matches!(
            parse(&["--reassignment-json-file", f, "--cancel"]),
            Ok(Action::Cancel(_))
        ));
        let missing = dir.path().join("missing.json");
        let e = parse(&[
            "--reassignment-json-file",
            missing.to_str().expect("utf-8"),
            "--verify",
        ]);
        assert!(format!("{:#}", e.err().expect("missing")).starts_with("cannot read"));
        let e = parse(&[
            "--generate",
            "--topics-to-move-json-file",
            f,
            "--broker-list",
            "1,1",
        ]);
        assert!(e.is_err(), "not a topics file, and a repeated broker");
    }
}
