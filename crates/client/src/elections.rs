//! Leader elections, as Kafka's Admin `electLeaders` does them
//! (ElectLeaders, API key 43): the preferred replica, or (unclean) any live
//! replica of a partition with no live in-sync one. Sent to the connected
//! broker, which has the controller decide.

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::ClientError;
use crate::reassign::readable_error;

/// How long the controller may take (below the CLI's 30 s call timeout).
const TIMEOUT_MS: i32 = 25_000;

/// Kafka's election types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The first replica of the assignment.
    Preferred,
    /// Any live replica when no in-sync one is left (records may be lost).
    Unclean,
}

impl ElectionType {
    /// Kafka's name (`PREFERRED`, `UNCLEAN`), as its tool prints it.
    pub fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }

    fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
}

/// One partition's answer to ElectLeaders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionOutcome {
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Kafka error code: 0 elected, 84 (ELECTION_NOT_NEEDED) already led
    /// by the replica the election would choose.
    pub error_code: i16,
    /// The broker's message, if it sent one.
    pub error_message: Option<String>,
}

/// ELECTION_NOT_NEEDED.
pub const ELECTION_NOT_NEEDED: i16 = 84;

impl ElectionOutcome {
    /// A readable description of the error, `None` on success.
    pub fn error(&self) -> Option<String> {
        (self.error_code != 0)
            .then(|| readable_error(self.error_code, self.error_message.as_deref()))
    }
}

impl Admin {
    /// Elects leaders of `partitions` (`None`: every partition; the answer
    /// then holds only those whose election was needed). A top-level error
    /// is an `Err`; per-partition ones are in the outcomes.
    pub async fn elect_leaders(
        &mut self,
        how: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<ElectionOutcome>, ClientError> {
        let topics = partitions.map(|ps| {
            let mut topics: Vec<TopicPartitions> = Vec::new();
            for (t, p) in ps {
                match topics.iter_mut().find(|x| x.topic.0.as_str() == t) {
                    Some(x) => x.partitions.push(*p),
                    None => topics.push(
                        TopicPartitions::default()
                            .with_topic(TopicName(StrBytes::from_string(t.clone())))
                            .with_partitions(vec![*p]),
                    ),
                }
            }
            topics
        });
        let req = ElectLeadersRequest::default()
            .with_election_type(how.code())
            .with_topic_partitions(topics)
            .with_timeout_ms(TIMEOUT_MS);
        let (_, r): (i16, ElectLeadersResponse) =
            self.conn.call(ApiKey::ElectLeaders, &req).await?;
        ClientError::check(r.error_code, "electing leaders")?;
        Ok(r.replica_election_results
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partition_result
                    .into_iter()
                    .map(move |p| ElectionOutcome {
                        topic: topic.clone(),
                        partition: p.partition_id,
                        error_code: p.error_code,
                        error_message: p.error_message.map(|m| m.to_string()),
                    })
            })
            .collect())
    }
}
