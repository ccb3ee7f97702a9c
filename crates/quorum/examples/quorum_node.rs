//! One quorum node as its own process, driven over stdin, for crash tests and trying it by hand.
//!
//! ```text
//! quorum-node --id 1 --voters 1=127.0.0.1:23001,2=127.0.0.1:23002,3=127.0.0.1:23003 --dir /tmp/q1
//!             [--listen ADDR] [--snapshot-every N]
//! ```
//! Prints `ready` once started, then answers one line per command:
//! - `propose TEXT` → `ok INDEX` | `notleader ID|-` | `err MESSAGE`
//! - `leader` → `leader ID|-`
//! - `applied` → `applied COUNT CHECKSUM` (count of applied entries, crc32c over them in order)
//! - `describe` → the `DescribeQuorum` view, debug-printed on one line
//!
//! Logs go to stderr (`RUST_LOG` filters them).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use strom_quorum::{ProposeError, Quorum, QuorumConfig};
use tokio::io::{AsyncBufReadExt, BufReader};

mod recording_sm;
use recording_sm::RecordingSm;

fn parse_voters(s: &str) -> Result<BTreeMap<u64, SocketAddr>, String> {
    s.split(',')
        .map(|v| {
            let (id, addr) = v
                .split_once('=')
                .ok_or(format!("voter {v:?} is not ID=HOST:PORT"))?;
            Ok((
                id.parse().map_err(|e| format!("{id}: {e}"))?,
                addr.parse().map_err(|e| format!("{addr}: {e}"))?,
            ))
        })
        .collect()
}

fn config() -> Result<QuorumConfig, String> {
    let mut args = std::env::args().skip(1);
    let (mut id, mut voters, mut dir, mut listen, mut every) = (None, None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--id" => id = Some(value.parse::<u64>().map_err(|e| e.to_string())?),
            "--voters" => voters = Some(parse_voters(&value)?),
            "--dir" => dir = Some(value),
            "--listen" => listen = Some(value.parse::<SocketAddr>().map_err(|e| e.to_string())?),
            "--snapshot-every" => every = Some(value.parse::<u64>().map_err(|e| e.to_string())?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let id = id.ok_or("--id is required")?;
    let voters = voters.ok_or("--voters is required")?;
    let listen = listen
        .or(voters.get(&id).copied())
        .ok_or("--listen is required for an observer")?;
    let mut cfg = QuorumConfig::new(id, voters, listen, dir.ok_or("--dir is required")?);
    cfg.election_timeout_ms = (1000, 2000);
    cfg.heartbeat_interval_ms = 100;
    if let Some(n) = every {
        cfg.snapshot_every = n;
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("quorum_node: {e}");
            std::process::exit(2);
        }
    };
    let sm = RecordingSm::default();
    let quorum = match Quorum::start(cfg, sm.clone()).await {
        Ok(q) => q,
        Err(e) => {
            eprintln!("quorum_node: {e}");
            std::process::exit(1);
        }
    };
    println!("ready");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let out = match cmd {
            "propose" => match quorum.propose(arg.as_bytes().to_vec()).await {
                Ok(i) => format!("ok {i}"),
                Err(ProposeError::NotLeader { leader }) => {
                    format!("notleader {}", id_or_dash(leader))
                }
                Err(e) => format!("err {e}"),
            },
            "leader" => format!("leader {}", id_or_dash(quorum.leader())),
            "applied" => {
                let entries = sm.entries();
                let crc = entries
                    .iter()
                    .fold(0u32, |c, (_, e)| crc32c::crc32c_append(c, e));
                format!("applied {} {crc:08x}", entries.len())
            }
            "describe" => format!("{:?}", quorum.describe()),
            other => format!("err unknown command {other:?}"),
        };
        println!("{out}");
    }
    quorum.shutdown().await;
}

fn id_or_dash(id: Option<u64>) -> String {
    id.map_or("-".to_string(), |i| i.to_string())
}
