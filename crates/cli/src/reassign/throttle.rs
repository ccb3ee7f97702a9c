//! `--throttle` and its removal by `--verify`, as Kafka's
//! `kafka-reassign-partitions.sh` does them: the moving partitions' current
//! replicas are throttled on the leader side and the replicas being added
//! on the follower side (topic configs `leader.replication.throttled.replicas`
//! / `follower.replication.throttled.replicas`), and every broker of the
//! moves gets the rate (`leader.replication.throttled.rate`,
//! `follower.replication.throttled.rate`). A broker's own configs are
//! changed through a connection to that broker, as Kafka requires.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use strom_client::{Admin, ConfigChange};

use super::plan::{join_ids, Assignment};

const LEADER_RATE: &str = "leader.replication.throttled.rate";
const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
const LOG_DIRS_RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";
const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Per topic, the leader-side and follower-side `partition:broker` lists
/// of the partitions `moves` changes.
pub(super) fn topic_throttles(
    current: &Assignment,
    moves: &Assignment,
) -> BTreeMap<String, (String, String)> {
    let mut out: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for ((topic, p), target) in moves {
        let now = current
            .get(&(topic.clone(), *p))
            .cloned()
            .unwrap_or_default();
        if now == *target {
            continue;
        }
        let (leader, follower) = out.entry(topic.clone()).or_default();
        leader.extend(now.iter().map(|b| format!("{p}:{b}")));
        follower.extend(
            target
                .iter()
                .filter(|b| !now.contains(b))
                .map(|b| format!("{p}:{b}")),
        );
    }
    out.into_iter()
        .map(|(t, (l, f))| (t, (l.join(","), f.join(","))))
        .collect()
}

/// The brokers (id, host, port) of the cluster `admin` is connected to.
pub(super) async fn brokers(admin: &mut Admin) -> Result<Vec<(i32, String, i32)>> {
    Ok(admin.describe_cluster().await?.brokers)
}

async fn on_broker(
    brokers: &[(i32, String, i32)],
    id: i32,
    changes: &[ConfigChange],
) -> Result<()> {
    let (_, host, port) = brokers
        .iter()
        .find(|b| b.0 == id)
        .with_context(|| format!("broker {id} is not in the cluster"))?;
    let mut admin = Admin::connect(&format!("{host}:{port}"), Duration::from_secs(30)).await?;
    admin.alter_broker_configs(id, changes).await?;
    Ok(())
}

/// Throttles the moves of `moves` (from `current`) to `rate` bytes/s.
pub(super) async fn set(
    admin: &mut Admin,
    current: &Assignment,
    moves: &Assignment,
    rate: u64,
) -> Result<()> {
    for (topic, (leader, follower)) in topic_throttles(current, moves) {
        let changes = vec![
            ConfigChange::Set(LEADER_REPLICAS.into(), leader),
            ConfigChange::Set(FOLLOWER_REPLICAS.into(), follower),
        ];
        admin.alter_topic_configs(&topic, &changes).await?;
    }
    let all = brokers(admin).await?;
    let involved: BTreeSet<i32> = current
        .values()
        .chain(moves.values())
        .flatten()
        .copied()
        .collect();
    let rates = [
        ConfigChange::Set(LEADER_RATE.into(), rate.to_string()),
        ConfigChange::Set(FOLLOWER_RATE.into(), rate.to_string()),
    ];
    for id in involved {
        on_broker(&all, id, &rates).await?;
    }
    println!("The inter-broker throttle limit was set to {rate} B/s");
    Ok(())
}

/// Removes every throttle: the rates on every broker, the replica lists on
/// `topics`.
pub(super) async fn clear(admin: &mut Admin, topics: &BTreeSet<String>) -> Result<()> {
    let all = brokers(admin).await?;
    let ids: Vec<i32> = all.iter().map(|b| b.0).collect();
    println!(
        "Clearing broker-level throttles on brokers {}",
        join_ids(&ids)
    );
    let rates = [
        ConfigChange::Delete(LEADER_RATE.into()),
        ConfigChange::Delete(FOLLOWER_RATE.into()),
        ConfigChange::Delete(LOG_DIRS_RATE.into()),
    ];
    for id in &ids {
        on_broker(&all, *id, &rates).await?;
    }
    for topic in topics {
        println!("Clearing topic-level throttles on topic {topic}");
        let lists = [
            ConfigChange::Delete(LEADER_REPLICAS.into()),
            ConfigChange::Delete(FOLLOWER_REPLICAS.into()),
        ];
        admin.alter_topic_configs(topic, &lists).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_replicas_lead_and_added_ones_follow() {
        let current = Assignment::from([
            (("orders".to_string(), 0), vec![1, 2]),
            (("orders".to_string(), 1), vec![2, 3]),
            (("audit".to_string(), 0), vec![1]),
        ]);
        let moves = Assignment::from([
            (("orders".to_string(), 0), vec![1, 4]),
            (("orders".to_string(), 1), vec![2, 3]),
            (("audit".to_string(), 0), vec![5]),
        ]);
        let t = topic_throttles(&current, &moves);
        assert_eq!(t["orders"], ("0:1,0:2".to_string(), "0:4".to_string()));
        assert_eq!(t["audit"], ("0:1".to_string(), "0:5".to_string()));
    }
}
