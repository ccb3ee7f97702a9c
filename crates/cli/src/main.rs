//! `strom`: the broker server and Strom's command-line tools in one binary.

mod bootstrap;
mod cleaner;
mod cluster;
mod consume;
mod dev;
mod groups;
mod perf;
mod produce;
mod reassign;
mod runtime;
mod server;
mod table;
mod topics;
mod transactions;

use clap::{Parser, Subcommand};
use strom_protocol::alloc::GuardedAlloc;

/// Bounds what hostile wire counts can cost (see `strom_protocol::alloc`).
#[global_allocator]
static ALLOC: GuardedAlloc = GuardedAlloc;

/// Strom: a Kafka-compatible event streaming platform.
#[derive(Debug, Parser)]
#[command(name = "strom", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (Kafka wire protocol): one node by default, or a member of a cluster.
    Server(server::ServerArgs),
    /// Create, list, describe, alter and delete topics (like kafka-topics.sh).
    Topics(topics::TopicsArgs),
    /// Write records from stdin or a file, one per line (like kafka-console-producer.sh).
    Produce(produce::ProduceArgs),
    /// Print records from a topic (like kafka-console-consumer.sh / kcat -C).
    Consume(consume::ConsumeArgs),
    /// Measure throughput and latency: produce, consume, end to end (like kafka-*-perf-test.sh).
    Perf(perf::PerfArgs),
    /// Inspect and manage consumer groups (like kafka-consumer-groups.sh).
    Groups(groups::GroupsArgs),
    /// Inspect transactions and the producers writing to partitions (like kafka-transactions.sh).
    Transactions(transactions::TransactionsArgs),
    /// Show what the log cleaner did to each compacted log: dirty ratio, last clean, bytes reclaimed.
    Cleaner(cleaner::CleanerArgs),
    /// Describe the cluster: brokers, racks, fencing, controller, metadata quorum with lag.
    Cluster(cluster::ClusterArgs),
    /// Local development helpers: `strom dev cluster --brokers 3` runs a cluster on loopback.
    Dev(dev::DevArgs),
}

fn main() -> std::process::ExitCode {
    strom_protocol::alloc::keep_freed_buffers();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Groups(args) => groups::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Perf(args) => perf::run(args),
        Command::Topics(args) => topics::run(args),
        Command::Transactions(args) => transactions::run(args),
        Command::Cleaner(args) => cleaner::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Dev(args) => dev::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
