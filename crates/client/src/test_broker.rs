//! An in-process broker for the client's unit tests (the integration tests
//! in `tests/` have their own in `tests/common`).

use std::collections::BTreeMap;

use strom_broker::{BrokerConfig, ServerHandle};

/// Starts a broker on 127.0.0.1:0 in `dir` with extra configs.
pub async fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> ServerHandle {
    let mut o = BTreeMap::new();
    o.insert("listeners".to_string(), "127.0.0.1:0".to_string());
    o.insert("log.dirs".to_string(), dir.display().to_string());
    for (k, v) in extra {
        o.insert(k.to_string(), v.to_string());
    }
    strom_broker::start(BrokerConfig::from_overrides(&o).expect("config"))
        .await
        .expect("start")
}
