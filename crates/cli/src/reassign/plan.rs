//! The files of `strom topics reassign`, in the formats of Kafka's
//! `kafka-reassign-partitions.sh`, and the proposal of `--generate`. No I/O.
//!
//! A reassignment file:
//! `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[4,5],"log_dirs":["any","any"]}]}`
//! (`log_dirs` optional). A topics-to-move file:
//! `{"version":1,"topics":[{"topic":"t"}]}`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A partition, `topic-partition` when printed (as Kafka prints it).
pub type Tp = (String, i32);

/// Partitions and their replicas (target or current), in topic then partition order.
pub type Assignment = BTreeMap<Tp, Vec<i32>>;

/// `t-0`, as Kafka names a partition.
pub fn tp_name(tp: &Tp) -> String {
    format!("{}-{}", tp.0, tp.1)
}

/// `1,2,3`.
pub fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str, at: &str) -> Result<&'a Value> {
    obj.get(name)
        .with_context(|| format!("{at}: missing \"{name}\""))
}

fn id(v: &Value, what: &str, at: &str) -> Result<i32> {
    v.as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .with_context(|| format!("{at}: {what} must be a non-negative integer, got {v}"))
}

fn version_is_1(obj: &serde_json::Map<String, Value>) -> Result<()> {
    match obj.get("version") {
        None => Ok(()),
        Some(v) if v.as_i64() == Some(1) => Ok(()),
        Some(v) => bail!("Not supported version field value {v} (only 1 is)"),
    }
}

fn top_object(text: &str) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_str::<Value>(text).context("not valid JSON")? {
        Value::Object(o) => Ok(o),
        other => bail!("expected a JSON object, got {}", kind(&other)),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a reassignment file and checks it as Kafka's tool does: version 1,
/// at least one partition, no partition twice, replica lists non-empty and
/// without repeats. `log_dirs` may be left out or be all `"any"`; Strom does
/// not place replicas on a chosen log directory, so naming one is refused.
pub fn parse_reassignment(text: &str) -> Result<Assignment> {
    let obj = top_object(text)?;
    version_is_1(&obj)?;
    let partitions = field(&obj, "partitions", "the file")?
        .as_array()
        .context("\"partitions\" must be an array")?;
    if partitions.is_empty() {
        bail!("Partition reassignment list cannot be empty");
    }
    let mut out = Assignment::new();
    let mut duplicates = BTreeSet::new();
    for (i, p) in partitions.iter().enumerate() {
        let at = format!("partitions[{i}]");
        let p = p
            .as_object()
            .with_context(|| format!("{at}: expected an object, got {}", kind(p)))?;
        let topic = field(p, "topic", &at)?
            .as_str()
            .filter(|t| !t.is_empty())
            .with_context(|| format!("{at}: \"topic\" must be a non-empty string"))?;
        let partition = id(field(p, "partition", &at)?, "\"partition\"", &at)?;
        let at = format!("{at} ({topic}-{partition})");
        let replicas: Vec<i32> = field(p, "replicas", &at)?
            .as_array()
            .with_context(|| format!("{at}: \"replicas\" must be an array of broker ids"))?
            .iter()
            .map(|r| id(r, "a replica", &at))
            .collect::<Result<_>>()?;
        if replicas.is_empty() {
            bail!("Partition replica list cannot be empty ({topic}-{partition})");
        }
        let repeated = repeats(&replicas);
        if !repeated.is_empty() {
            bail!(
                "Partition replica lists may not contain duplicate entries: \
                 {topic}-{partition} contains multiple entries for {}",
                join_ids(&repeated)
            );
        }
        if let Some(dirs) = p.get("log_dirs") {
            let dirs = dirs
                .as_array()
                .with_context(|| format!("{at}: \"log_dirs\" must be an array of strings"))?;
            if dirs.len() != replicas.len() {
                bail!(
                    "{at}: Size of replicas list {} is different from size of log dirs list {}",
                    replicas.len(),
                    dirs.len()
                );
            }
            if let Some(d) = dirs.iter().find(|d| d.as_str() != Some("any")) {
                bail!(
                    "{at}: log_dirs other than \"any\" are not supported (got {d}); \
                     leave \"log_dirs\" out or use \"any\""
                );
            }
        }
        let tp = (topic.to_string(), partition);
        if out.insert(tp.clone(), replicas).is_some() {
            duplicates.insert(tp);
        }
    }
    if !duplicates.is_empty() {
        let names: Vec<String> = duplicates.iter().map(tp_name).collect();
        bail!(
            "Partition reassignment list cannot contain duplicates: {}",
            names.join(",")
        );
    }
    Ok(out)
}

fn repeats(ids: &[i32]) -> Vec<i32> {
    let mut seen = BTreeSet::new();
    let mut twice = BTreeSet::new();
    for i in ids {
        if !seen.insert(*i) {
            twice.insert(*i);
        }
    }
    twice.into_iter().collect()
}

/// Parses a topics-to-move file: the topic names, no repeats.
pub fn parse_topics_to_move(text: &str) -> Result<Vec<String>> {
    let obj = top_object(text)?;
    version_is_1(&obj)?;
    let topics = field(&obj, "topics", "the file")?
        .as_array()
        .context("\"topics\" must be an array")?;
    let mut out = Vec::new();
    for (i, t) in topics.iter().enumerate() {
        let name = t
            .as_object()
            .and_then(|o| o.get("topic"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .with_context(|| format!("topics[{i}]: expected {{\"topic\": \"NAME\"}}, got {t}"))?;
        out.push(name.to_string());
    }
    if out.is_empty() {
        bail!("List of topics to reassign cannot be empty");
    }
    let mut sorted = out.clone();
    sorted.sort();
    let mut dups: Vec<&String> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[1])
        .collect();
    dups.dedup();
    if !dups.is_empty() {
        let names: Vec<&str> = dups.iter().map(|s| s.as_str()).collect();
        bail!(
            "List of topics to reassign contains duplicate entries: {}",
            names.join(",")
        );
    }
    Ok(out)
}

/// A `--broker-list`, checked for repeats.
pub fn check_broker_list(brokers: &[i32]) -> Result<()> {
    if brokers.is_empty() {
        bail!("--broker-list is empty");
    }
    let repeated = repeats(brokers);
    if !repeated.is_empty() {
        bail!(
            "Broker list contains duplicate entries: {}",
            join_ids(&repeated)
        );
    }
    Ok(())
}

/// The reassignment JSON Kafka's tool prints: one line, partitions in
/// topic then partition order, `log_dirs` all `"any"`.
pub fn format_reassignment(a: &Assignment) -> String {
    let parts: Vec<String> = a
        .iter()
        .map(|((topic, partition), replicas)| {
            let dirs = vec!["\"any\""; replicas.len()].join(",");
            format!(
                "{{\"topic\":{},\"partition\":{partition},\"replicas\":[{}],\"log_dirs\":[{dirs}]}}",
                Value::String(topic.clone()),
                join_ids(replicas)
            )
        })
        .collect();
    format!("{{\"version\":1,\"partitions\":[{}]}}", parts.join(","))
}

/// Proposes new replicas for every partition of `current` over `brokers`,
/// each partition keeping its replica count: Kafka's rack-unaware
/// placement (`AdminUtils.assignReplicasToBrokers`), where the first
/// replicas go round-robin over the brokers and the followers are shifted,
/// the shift growing by one after each round of the brokers. Kafka starts
/// each topic at a random broker; here the start comes from the topic's
/// name, so the same input gives the same proposal and topics still spread.
pub fn propose(current: &Assignment, brokers: &[i32]) -> Result<Assignment> {
    check_broker_list(brokers)?;
    let mut brokers = brokers.to_vec();
    brokers.sort_unstable();
    let mut by_topic: BTreeMap<&str, Vec<(i32, usize)>> = BTreeMap::new();
    for ((t, p), replicas) in current {
        by_topic.entry(t).or_default().push((*p, replicas.len()));
    }
    let n = brokers.len();
    let mut out = Assignment::new();
    for (topic, parts) in by_topic {
        if let Some((_, rf)) = parts.iter().find(|(_, rf)| *rf > n) {
            bail!("Replication factor: {rf} larger than available brokers: {n} (topic {topic})");
        }
        let h = name_hash(topic);
        let start = (h % n as u64) as usize;
        let shift = ((h / n as u64) % n as u64) as usize;
        for ((p, _), replicas) in parts
            .iter()
            .zip(assign_topic(&parts, &brokers, start, shift)?)
        {
            out.insert((topic.to_string(), *p), replicas);
        }
    }
    Ok(out)
}

/// Kafka's striping for one topic's partitions (in partition order), from
/// broker index `start` with follower shift `shift`.
fn assign_topic(
    parts: &[(i32, usize)],
    brokers: &[i32],
    start: usize,
    mut shift: usize,
) -> Result<Vec<Vec<i32>>> {
    let n = brokers.len();
    let mut out = Vec::with_capacity(parts.len());
    for (i, (p, rf)) in parts.iter().enumerate() {
        if *rf > n {
            bail!("Replication factor: {rf} larger than available brokers: {n} (partition {p})");
        }
        if i > 0 && i % n == 0 {
            shift += 1;
        }
        let first = (i + start) % n;
        let mut replicas = vec![brokers[first]];
        for j in 0..rf.saturating_sub(1) {
            // n >= 2 here: rf >= 2 and rf <= n.
            let offset = 1 + (shift + j) % (n - 1);
            replicas.push(brokers[(first + offset) % n]);
        }
        out.push(replicas);
    }
    Ok(out)
}

/// FNV-1a of a topic name: a stable start broker per topic.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> Tp {
        (t.to_string(), p)
    }

    #[test]
    fn parses_kafkas_format() {
        let a = parse_reassignment(
            r#"{"version":1,"partitions":[
                {"topic":"t","partition":1,"replicas":[4,5],"log_dirs":["any","any"]},
                {"topic":"t","partition":0,"replicas":[4]}]}"#,
        )
        .expect("parse");
        assert_eq!(a.len(), 2);
        assert_eq!(a[&tp("t", 0)], [4]);
        assert_eq!(a[&tp("t", 1)], [4, 5]);
        // version may be left out.
        parse_reassignment(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1]}]}"#)
            .expect("no version");
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse_reassignment(text).expect_err(text))
    }

    #[test]
    fn bad_files_are_readable_errors() {
        assert!(
            err("{not json").starts_with("not valid JSON"),
            "{}",
            err("{not json")
        );
        assert_eq!(err("[]"), "expected a JSON object, got an array");
        assert_eq!(err(r#"{"version":1}"#), "the file: missing \"partitions\"");
        assert!(err(r#"{"version":2,"partitions":[]}"#).contains("Not supported version"));
        assert_eq!(
            err(r#"{"version":1,"partitions":[]}"#),
            "Partition reassignment list cannot be empty"
        );
        assert_eq!(
            err(r#"{"partitions":[{"topic":"t","partition":"0","replicas":[1]}]}"#),
            "partitions[0]: \"partition\" must be a non-negative integer, got \"0\""
        );
        assert_eq!(
            err(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1,-2]}]}"#),
            "partitions[0] (t-0): a replica must be a non-negative integer, got -2"
        );
        assert_eq!(
            err(r#"{"partitions":[{"topic":"t","partition":0}]}"#),
            "partitions[0] (t-0): missing \"replicas\""
        );
        assert_eq!(
            err(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[]}]}"#),
            "Partition replica list cannot be empty (t-0)"
        );
        assert!(err(
            r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1],"log_dirs":["/d"]}]}"#
        )
        .contains("log_dirs other than \"any\" are not supported"));
        assert!(err(
            r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any"]}]}"#
        )
        .contains("Size of replicas list 2 is different from size of log dirs list 1"));
        assert_eq!(
            err(r#"{"partitions":[{"partition":0,"replicas":[1]}]}"#),
            "partitions[0]: missing \"topic\""
        );
        assert!(err("").starts_with("not valid JSON"));
    }

    #[test]
    fn duplicates_are_refused_like_kafka() {
        assert_eq!(
            err(
                r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1]},
                {"topic":"u","partition":0,"replicas":[1]},
                {"topic":"t","partition":0,"replicas":[2]}]}"#
            ),
            "Partition reassignment list cannot contain duplicates: t-0"
        );
        assert_eq!(
            err(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1,2,1]}]}"#),
            "Partition replica lists may not contain duplicate entries: \
             t-0 contains multiple entries for 1"
        );
    }

    #[test]
    fn topics_to_move() {
        let t = parse_topics_to_move(r#"{"topics":[{"topic":"a"},{"topic":"b"}],"version":1}"#)
            .expect("parse");
        assert_eq!(t, ["a", "b"]);
        let e =
            parse_topics_to_move(r#"{"topics":[{"topic":"a"},{"topic":"a"}]}"#).expect_err("dup");
        assert_eq!(
            e.to_string(),
            "List of topics to reassign contains duplicate entries: a"
        );
        let e = parse_topics_to_move(r#"{"topics":["a"]}"#).expect_err("shape");
        assert!(
            e.to_string().contains("expected {\"topic\": \"NAME\"}"),
            "{e}"
        );
        assert!(parse_topics_to_move(r#"{"topics":[]}"#).is_err());
        assert!(parse_topics_to_move("nope").is_err());
    }

    #[test]
    fn broker_list_repeats_refused() {
        assert_eq!(
            check_broker_list(&[1, 2, 1]).expect_err("dup").to_string(),
            "Broker list contains duplicate entries: 1"
        );
    }

    #[test]
    fn format_round_trips() {
        let mut a = Assignment::new();
        a.insert(tp("b", 0), vec![2]);
        a.insert(tp("a\"x", 1), vec![1, 3]);
        let text = format_reassignment(&a);
        assert_eq!(
            text,
            r#"{"version":1,"partitions":[{"topic":"a\"x","partition":1,"replicas":[1,3],"log_dirs":["any","any"]},{"topic":"b","partition":0,"replicas":[2],"log_dirs":["any"]}]}"#
        );
        assert_eq!(parse_reassignment(&text).expect("parse"), a);
    }

    #[test]
    fn striping_is_kafkas() {
        // Kafka's AdminUtilsTest example: 5 brokers, 10 partitions, RF 3,
        // start index 0, shift 0.
        let parts: Vec<(i32, usize)> = (0..10).map(|p| (p, 3)).collect();
        let got = assign_topic(&parts, &[0, 1, 2, 3, 4], 0, 0).expect("assign");
        let want: Vec<Vec<i32>> = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn proposal_keeps_replica_counts_and_uses_only_given_brokers() {
        let mut current = Assignment::new();
        for p in 0..6 {
            current.insert(tp("t", p), vec![1]);
        }
        current.insert(tp("u", 0), vec![1, 2]);
        current.insert(tp("u", 1), vec![2, 1]);
        let got = propose(&current, &[6, 4, 5]).expect("propose");
        assert_eq!(got.len(), current.len());
        for (k, replicas) in &got {
            assert_eq!(replicas.len(), current[k].len(), "{k:?}");
            assert!(replicas.iter().all(|b| [4, 5, 6].contains(b)), "{k:?}");
            assert!(repeats(replicas).is_empty(), "{k:?}");
        }
        // Round-robin: six single-replica partitions over three brokers, two each.
        let mut count = BTreeMap::new();
        for p in 0..6 {
            *count.entry(got[&tp("t", p)][0]).or_insert(0) += 1;
        }
        assert_eq!(count.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
        // Same input, same proposal.
        assert_eq!(propose(&current, &[4, 5, 6]).expect("again"), got);
    }

    #[test]
    fn proposal_refuses_too_few_brokers() {
        let mut current = Assignment::new();
        current.insert(tp("t", 0), vec![1, 2, 3]);
        let e = propose(&current, &[1, 2]).expect_err("rf");
        assert!(
            e.to_string()
                .starts_with("Replication factor: 3 larger than available brokers: 2"),
            "{e}"
        );
        assert!(propose(&current, &[1, 1, 2]).is_err());
    }
}
