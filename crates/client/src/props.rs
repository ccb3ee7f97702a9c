//! Parsing Kafka client property values.

use std::time::Duration;

use crate::error::ClientError;

/// A `*.ms` property.
pub(crate) fn ms(name: &str, v: &str) -> Result<Duration, ClientError> {
    v.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| ClientError::Config(format!("{name} must be milliseconds, not '{v}'")))
}

/// A numeric property.
pub(crate) fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ClientError> {
    v.parse()
        .map_err(|_| ClientError::Config(format!("{name} must be a number, not '{v}'")))
}

/// A true/false property.
pub(crate) fn boolean(name: &str, v: &str) -> Result<bool, ClientError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ClientError::Config(format!(
            "{name} must be true or false, not '{v}'"
        ))),
    }
}
