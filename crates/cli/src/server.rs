//! `strom server`: configuration from file, environment and flags, then run
//! until SIGINT/SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use strom_broker::BrokerConfig;

/// Run a Strom broker, controller, or both.
///
/// With no flags: a single node on 127.0.0.1:9092 with data in ./strom-data.
/// In a cluster, process.roles picks the roles (broker,controller: the
/// default; broker; or controller, a dedicated voter of the metadata quorum
/// with no broker listener).
/// Settings use Kafka's broker config names and are read, lowest precedence
/// first, from the TOML file (--config), STROM_* environment variables
/// (STROM_LOG_RETENTION_MS=1000 sets log.retention.ms) and flags.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on, HOST:PORT (Kafka: listeners).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address clients are told to connect to, HOST:PORT (Kafka: advertised.listeners).
    #[arg(long, value_name = "HOST:PORT")]
    advertised_listener: Option<String>,
    /// Data directory (Kafka: log.dirs).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML file of broker configs by Kafka name, e.g. `log.retention.ms = 60000`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// This node's id (Kafka: node.id).
    #[arg(long, value_name = "N")]
    node_id: Option<i32>,
    /// Any broker config by its Kafka name; repeatable, e.g. --set num.partitions=3.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

/// Flattens TOML tables into dotted Kafka names: `[log.retention] ms = 1` → `log.retention.ms`.
fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        toml::Value::Array(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect();
            out.insert(prefix.to_string(), items.join(","));
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Builds the broker config from file, environment and flags (flags win).
pub fn resolve(
    args: &ServerArgs,
    env: impl Iterator<Item = (String, String)>,
) -> Result<BrokerConfig> {
    let mut values = BTreeMap::new();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let parsed: toml::Value = text
            .parse()
            .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
        flatten("", &parsed, &mut values);
    }
    for (k, v) in env {
        if let Some(rest) = k.strip_prefix("STROM_") {
            let name = rest.to_ascii_lowercase().replace('_', ".");
            if strom_broker::config::broker_def(&name).is_some() {
                values.insert(name, v);
            }
        }
    }
    for s in &args.set {
        let Some((k, v)) = s.split_once('=') else {
            bail!("--set expects NAME=VALUE, got '{s}'");
        };
        values.insert(k.trim().to_string(), v.trim().to_string());
    }
    if let Some(l) = &args.listen {
        values.insert("listeners".into(), l.clone());
    }
    if let Some(a) = &args.advertised_listener {
        values.insert("advertised.listeners".into(), a.clone());
    }
    if let Some(d) = &args.data_dir {
        values.insert("log.dirs".into(), d.display().to_string());
    }
    if let Some(n) = args.node_id {
        values.insert("node.id".into(), n.to_string());
    }
    BrokerConfig::from_overrides(&values)
        .map_err(|e| anyhow::anyhow!("{e} (see docs/OPERATIONS.md for the supported configs)"))
}

/// Runs the server until a shutdown signal.
pub fn run(args: ServerArgs) -> Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = resolve(&args, std::env::vars())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let roles = strom_broker::config::cluster::ClusterLayout::from_config(&config)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .roles;
    if !roles.broker {
        // process.roles=controller: a dedicated voter of the metadata quorum.
        return rt.block_on(async move {
            let node = tokio::task::spawn_blocking(move || {
                strom_broker::controller_node::ControllerNode::start(&config)
            })
            .await??;
            wait_for_signal().await?;
            tracing::info!("signal received, shutting down");
            tokio::task::spawn_blocking(move || node.shutdown()).await?;
            Ok(())
        });
    }
    rt.block_on(async move {
        let handle = strom_broker::start(config).await?;
        wait_for_signal().await?;
        tracing::info!("signal received, shutting down");
        handle.shutdown().await;
        Ok(())
    })
}

pub(crate) async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(set: &[&str]) -> ServerArgs {
        ServerArgs {
            listen: None,
            advertised_listener: None,
            data_dir: None,
            config: None,
            node_id: None,
            set: set.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn precedence_is_file_then_env_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("strom.toml");
        std::fs::write(
            &file,
            "num.partitions = 2\nlog.retention.ms = 5\n[log.segment]\nbytes = 1048576\n",
        )
        .expect("write");
        let mut a = args(&["num.partitions=4"]);
        a.config = Some(file);
        let env = vec![
            ("STROM_LOG_RETENTION_MS".to_string(), "7".to_string()),
            ("STROM_NUM_PARTITIONS".into(), "3".into()),
        ];
        let c = resolve(&a, env.into_iter()).expect("valid");
        assert_eq!(c.get("num.partitions"), "4");
        assert_eq!(c.get("log.retention.ms"), "7");
        assert_eq!(c.get("log.segment.bytes"), "1048576");
        assert_eq!(c.get("listeners"), "PLAINTEXT://127.0.0.1:9092");
    }

    #[test]
    fn unknown_config_is_a_clear_error() {
        let e = resolve(&args(&["log.retention.mss=1"]), std::iter::empty()).expect_err("unknown");
        assert!(
            e.to_string().contains("unknown config 'log.retention.mss'"),
            "{e}"
        );
        assert!(resolve(&args(&["nonsense"]), std::iter::empty()).is_err());
    }
}
