//! DescribeUserScramCredentials and AlterUserScramCredentials
//! (`kafka-configs.sh --entity-type users`, the Admin client's
//! `describeUserScramCredentials` / `alterUserScramCredentials`). As in
//! KRaft the credentials are records of the metadata log, committed through
//! the controller from any broker; checks, codes and messages are Kafka's
//! (`ScramControlManager`, `ScramImage`).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::s;
use crate::broker::Broker;
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::scram::{Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// A refusal for one user: Kafka's code and message.
type Refusal = (ResponseError, String);

fn refusal(e: ResponseError, m: &str) -> Refusal {
    (e, m.to_string())
}

/// Kafka's checks on a user name and mechanism type.
fn check_user(user: &str, mechanism: i8) -> Result<Mechanism, Refusal> {
    if user.is_empty() {
        return Err(refusal(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    Mechanism::from_type(mechanism).ok_or_else(|| {
        refusal(
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        )
    })
}

fn has(image: &MetadataImage, user: &str, mechanism: i8) -> bool {
    image
        .scram_credentials()
        .get(user)
        .is_some_and(|m| m.contains_key(&mechanism))
}

/// DescribeUserScramCredentials: the named users (every user when none is
/// named) with their mechanisms and iteration counts.
pub fn describe(
    broker: &Broker,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = broker.topics.image();
    let all = image.scram_credentials();
    // User name to "named more than once".
    let mut users: BTreeMap<String, bool> = BTreeMap::new();
    match req.users.filter(|u| !u.is_empty()) {
        None => users.extend(all.keys().map(|u| (u.clone(), false))),
        Some(named) => {
            for u in named {
                users
                    .entry(u.name.to_string())
                    .and_modify(|twice| *twice = true)
                    .or_insert(false);
            }
        }
    }
    let results = users
        .into_iter()
        .map(|(user, duplicate)| {
            let r = DescribeUserScramCredentialsResult::default().with_user(s(user.as_str()));
            if duplicate {
                return r
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(s(format!(
                        "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                    ))));
            }
            match all.get(&user) {
                Some(m) => r.with_credential_infos(
                    m.iter()
                        .map(|(t, c)| {
                            CredentialInfo::default()
                                .with_mechanism(*t)
                                .with_iterations(c.iterations)
                        })
                        .collect(),
                ),
                None => r
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(Some(s(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    )))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// AlterUserScramCredentials: deletions and upsertions, each user at most
/// once per request, the accepted ones committed in one batch.
pub fn alter(
    broker: &Broker,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let image = broker.topics.image();
    let twice = || {
        refusal(
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request",
        )
    };
    let mut errors: BTreeMap<String, Refusal> = BTreeMap::new();
    let mut deletions: BTreeMap<String, i8> = BTreeMap::new();
    let mut upserts: BTreeMap<String, MetadataRecord> = BTreeMap::new();
    for d in &req.deletions {
        let user = d.name.to_string();
        if errors.contains_key(&user) {
            continue;
        }
        if deletions.remove(&user).is_some() {
            errors.insert(user, twice());
            continue;
        }
        let checked = check_user(&user, d.mechanism).and_then(|_| {
            if has(&image, &user, d.mechanism) {
                Ok(())
            } else {
                Err(refusal(
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist",
                ))
            }
        });
        match checked {
            Ok(()) => {
                deletions.insert(user, d.mechanism);
            }
            Err(e) => {
                errors.insert(user, e);
            }
        }
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        if errors.contains_key(&user) {
            continue;
        }
        if deletions.remove(&user).is_some() || upserts.remove(&user).is_some() {
            errors.insert(user, twice());
            continue;
        }
        let checked = check_user(&user, u.mechanism).and_then(|m| {
            if u.iterations < MIN_ITERATIONS {
                Err(refusal(
                    ResponseError::UnacceptableCredential,
                    "Too few iterations",
                ))
            } else if u.iterations > MAX_ITERATIONS {
                Err(refusal(
                    ResponseError::UnacceptableCredential,
                    "Too many iterations",
                ))
            } else {
                Ok(m)
            }
        });
        match checked {
            Ok(m) => {
                let record = MetadataRecord::ScramCredential {
                    user: user.clone(),
                    mechanism: u.mechanism,
                    credential: m.credential(&u.salt, &u.salted_password, u.iterations),
                };
                upserts.insert(user, record);
            }
            Err(e) => {
                errors.insert(user, e);
            }
        }
    }
    let accepted: BTreeSet<String> = deletions.keys().chain(upserts.keys()).cloned().collect();
    let batch: Vec<MetadataRecord> = deletions
        .into_iter()
        .map(|(user, mechanism)| MetadataRecord::RemoveScramCredential { user, mechanism })
        .chain(upserts.into_values())
        .collect();
    if !batch.is_empty() {
        if let Err(e) = broker.topics.store().commit(&batch) {
            tracing::warn!(error = %e, "SCRAM credential change not committed");
            let failed = (ResponseError::RequestTimedOut, e.to_string());
            for user in &accepted {
                errors.insert(user.clone(), failed.clone());
            }
        } else {
            tracing::info!(users = accepted.len(), "SCRAM credentials changed");
        }
    }
    let mut results: Vec<AlterUserScramCredentialsResult> = accepted
        .iter()
        .filter(|u| !errors.contains_key(*u))
        .map(|u| AlterUserScramCredentialsResult::default().with_user(s(u.as_str())))
        .collect();
    results.extend(errors.into_iter().map(|(user, (e, m))| {
        AlterUserScramCredentialsResult::default()
            .with_user(s(user))
            .with_error_code(e.code())
            .with_error_message(Some(s(m)))
    }));
    AlterUserScramCredentialsResponse::default().with_results(results)
}
