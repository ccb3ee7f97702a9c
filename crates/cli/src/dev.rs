//! `strom dev cluster`: a local cluster on loopback for trying things out
//! and for tests. Each node is a `strom server` child process running both
//! roles (broker and controller, a voter of the metadata quorum), with its
//! data in `<dir>/node-<id>` and its log in `<dir>/node-<id>.log`. Ctrl-C
//! (or SIGTERM) stops every node cleanly (controlled shutdown) and exits.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

/// Local development helpers.
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(subcommand)]
    command: DevCommand,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Start a local cluster of N nodes on loopback (broker and controller each) until Ctrl-C.
    ///
    /// Node i listens for clients on PORT+i-1 and for the quorum on
    /// CONTROLLER-PORT+i-1: with the defaults, 127.0.0.1:9092-9094 and
    /// 127.0.0.1:9192-9194. Clients bootstrap from any of them.
    Cluster(ClusterArgs),
}

/// `strom dev cluster` options.
#[derive(Debug, Args)]
struct ClusterArgs {
    /// Number of nodes. With fewer than 3, the internal topics
    /// (`__consumer_offsets`, `__transaction_state`) get that many replicas
    /// instead of Kafka's 3, so groups and transactions work.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    brokers: u16,
    /// Folder holding every node's data directory and log.
    #[arg(long, value_name = "DIR", default_value = "./strom-dev-cluster")]
    dir: PathBuf,
    /// Client port of node 1.
    #[arg(long, default_value_t = 9092)]
    port: u16,
    /// Quorum (controller listener) port of node 1.
    #[arg(long, default_value_t = 9192)]
    controller_port: u16,
    /// A broker config for every node by its Kafka name; repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

/// Runs `strom dev`.
pub fn run(args: DevArgs) -> Result<()> {
    match args.command {
        DevCommand::Cluster(a) => cluster(a),
    }
}

/// The internal topics' replication on a cluster of fewer than Kafka's
/// three brokers (each node's `--set` comes after, so the user's win).
fn internal_topic_sets(n: u16) -> Vec<String> {
    if n >= 3 {
        return Vec::new();
    }
    vec![
        format!("offsets.topic.replication.factor={n}"),
        format!("transaction.state.log.replication.factor={n}"),
        format!("transaction.state.log.min.isr={}", n.min(2)),
    ]
}

fn cluster(a: ClusterArgs) -> Result<()> {
    let n = a.brokers;
    if u32::from(a.port) + u32::from(n) > 65_536
        || u32::from(a.controller_port) + u32::from(n) > 65_536
    {
        bail!(
            "ports {}+{n} and {}+{n} run past 65535",
            a.port,
            a.controller_port
        );
    }
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the strom binary")?;
    let voters: Vec<String> = (0..n)
        .map(|i| format!("{}@127.0.0.1:{}", i + 1, a.controller_port + i))
        .collect();
    let mut children: Vec<(u16, Child)> = Vec::new();
    for i in 0..n {
        let id = i + 1;
        let log_path = a.dir.join(format!("node-{id}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("server")
            .arg("--node-id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(a.dir.join(format!("node-{id}")))
            .arg("--set")
            .arg(format!(
                "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                a.port + i,
                a.controller_port + i
            ))
            .arg("--set")
            .arg("controller.listener.names=CONTROLLER")
            .arg("--set")
            .arg(format!("controller.quorum.voters={}", voters.join(",")));
        for s in internal_topic_sets(n).iter().chain(&a.set) {
            cmd.arg("--set").arg(s);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        children.push((id, child));
    }
    let bootstrap: Vec<String> = (0..n)
        .map(|i| format!("127.0.0.1:{}", a.port + i))
        .collect();
    println!(
        "strom dev cluster: {n} nodes, bootstrap {}; logs in {}; Ctrl-C stops them",
        bootstrap.join(","),
        a.dir.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exited = rt.block_on(async {
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        let signal = crate::server::wait_for_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                r = &mut signal => { r?; return Ok::<_, anyhow::Error>(None) }
                _ = poll.tick() => {
                    for (id, c) in children.iter_mut() {
                        if let Ok(Some(status)) = c.try_wait() {
                            return Ok(Some((*id, status)));
                        }
                    }
                }
            }
        }
    })?;
    for (_, c) in children.iter_mut() {
        // SIGTERM: each node fences itself with the controller and flushes.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
    }
    for (id, c) in children.iter_mut() {
        match c.wait() {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("node {id} exited with {s}"),
            Err(e) => eprintln!("node {id}: {e}"),
        }
    }
    if let Some((id, status)) = exited {
        bail!(
            "node {id} exited ({status}); see {}",
            a.dir.join(format!("node-{id}.log")).display()
        );
    }
    println!("strom dev cluster: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::internal_topic_sets;

    #[test]
    fn small_dev_clusters_replicate_the_internal_topics_on_what_they_have() {
        assert!(internal_topic_sets(3).is_empty());
        assert_eq!(
            internal_topic_sets(2),
            [
                "offsets.topic.replication.factor=2",
                "transaction.state.log.replication.factor=2",
                "transaction.state.log.min.isr=2"
            ]
        );
        assert_eq!(internal_topic_sets(1)[2], "transaction.state.log.min.isr=1");
    }
}
