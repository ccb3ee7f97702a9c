//! Broker integration tests: an in-process broker on an ephemeral port,
//! driven over real TCP with `kafka-protocol` messages.

mod bad_input;
mod client;
mod groups;
mod hostile_admin;
mod idempotence;
mod idle;
mod metadata_log;
mod poison;
mod produce_fetch;
mod topics;

use strom_broker::{BrokerConfig, ServerHandle};
use strom_protocol::alloc::GuardedAlloc;

#[global_allocator]
static ALLOC: GuardedAlloc = GuardedAlloc;

/// Starts a broker on 127.0.0.1:0 in `dir` with extra configs.
pub async fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> ServerHandle {
    let mut o = std::collections::BTreeMap::new();
    o.insert("listeners".to_string(), "127.0.0.1:0".to_string());
    o.insert("log.dirs".to_string(), dir.display().to_string());
    for (k, v) in extra {
        o.insert(k.to_string(), v.to_string());
    }
    strom_broker::start(BrokerConfig::from_overrides(&o).expect("config"))
        .await
        .expect("start")
}
