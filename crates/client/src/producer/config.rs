//! Producer settings under the Java client's property names and defaults.

use std::time::Duration;

use strom_record::Compression;

use crate::error::ClientError;
use crate::props::{boolean, ms, num};

/// Producer configuration. Build it with [`ProducerConfig::new`] and
/// [`ProducerConfig::set`] (Kafka property names), or fill the fields.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `client.id`.
    pub client_id: String,
    /// `acks`: -1 (`all`, default), 0 or 1.
    pub acks: i16,
    /// `linger.ms` (default 5, as Kafka 4.0).
    pub linger: Duration,
    /// `batch.size` in bytes (default 16384).
    pub batch_size: usize,
    /// `compression.type` (default none).
    pub compression: Compression,
    /// `retries` (default unbounded within `delivery.timeout.ms`).
    pub retries: u32,
    /// `retry.backoff.ms` (default 100).
    pub retry_backoff: Duration,
    /// `delivery.timeout.ms` (default 120000): a record fails when it is not acknowledged by then.
    pub delivery_timeout: Duration,
    /// `request.timeout.ms` (default 30000).
    pub request_timeout: Duration,
    /// `max.in.flight.requests.per.connection` (default 5; at most 5 with idempotence).
    pub max_in_flight: usize,
    /// `enable.idempotence` (default true).
    pub enable_idempotence: bool,
    /// `transactional.id` (implies idempotence).
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms` (default 60000).
    pub transaction_timeout: Duration,
    /// `buffer.memory` (default 32 MiB): `send` waits while this much is queued.
    pub buffer_memory: usize,
    /// `max.block.ms` (default 60000): longest `send` waits for buffer space or metadata.
    pub max_block: Duration,
    /// `partitioner.ignore.keys` (default false).
    pub partitioner_ignore_keys: bool,
    /// `reconnect.backoff.ms` (default 50): the first wait before
    /// reconnecting to a broker that refused or dropped a connection.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms` (default 1000): the longest such wait.
    pub reconnect_backoff_max: Duration,
    idempotence_explicit: bool,
}

impl ProducerConfig {
    /// Defaults for a producer of `bootstrap_servers`.
    pub fn new(bootstrap_servers: &str) -> ProducerConfig {
        ProducerConfig {
            bootstrap_servers: bootstrap_servers.to_string(),
            client_id: "strom-producer".into(),
            acks: -1,
            linger: Duration::from_millis(5),
            batch_size: 16384,
            compression: Compression::None,
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
            delivery_timeout: Duration::from_millis(120_000),
            request_timeout: Duration::from_millis(30_000),
            max_in_flight: 5,
            enable_idempotence: true,
            transactional_id: None,
            transaction_timeout: Duration::from_millis(60_000),
            buffer_memory: 32 << 20,
            max_block: Duration::from_millis(60_000),
            partitioner_ignore_keys: false,
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(1000),
            idempotence_explicit: false,
        }
    }

    /// Sets one property by its Kafka name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<&mut Self, ClientError> {
        match name {
            "bootstrap.servers" => self.bootstrap_servers = value.to_string(),
            "client.id" => self.client_id = value.to_string(),
            "acks" => {
                self.acks = match value {
                    "all" | "-1" => -1,
                    "0" => 0,
                    "1" => 1,
                    _ => {
                        return Err(ClientError::Config(format!(
                            "acks must be all, -1, 0 or 1, not '{value}'"
                        )))
                    }
                }
            }
            "linger.ms" => self.linger = ms(name, value)?,
            "batch.size" => self.batch_size = num::<usize>(name, value)?.max(1),
            "compression.type" => {
                self.compression = Compression::from_name(value).ok_or_else(|| {
                    ClientError::Config(format!(
                        "compression.type must be none, gzip, snappy, lz4 or zstd, not '{value}'"
                    ))
                })?
            }
            "retries" => self.retries = num(name, value)?,
            "retry.backoff.ms" => self.retry_backoff = ms(name, value)?,
            "delivery.timeout.ms" => self.delivery_timeout = ms(name, value)?,
            "request.timeout.ms" => self.request_timeout = ms(name, value)?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = num::<usize>(name, value)?.max(1)
            }
            "enable.idempotence" => {
                self.enable_idempotence = boolean(name, value)?;
                self.idempotence_explicit = true;
            }
            "transactional.id" => {
                self.transactional_id = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            "transaction.timeout.ms" => self.transaction_timeout = ms(name, value)?,
            "buffer.memory" => self.buffer_memory = num(name, value)?,
            "max.block.ms" => self.max_block = ms(name, value)?,
            "partitioner.ignore.keys" => self.partitioner_ignore_keys = boolean(name, value)?,
            "reconnect.backoff.ms" => self.reconnect_backoff = ms(name, value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = ms(name, value)?,
            other => {
                return Err(ClientError::Config(format!(
                    "unknown producer property '{other}'"
                )))
            }
        }
        Ok(self)
    }

    /// A configuration from `(name, value)` properties.
    pub fn from_properties<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<ProducerConfig, ClientError> {
        let mut c = ProducerConfig::new("");
        for (k, v) in props {
            c.set(k, v)?;
        }
        if c.bootstrap_servers.is_empty() {
            return Err(ClientError::Config("bootstrap.servers is required".into()));
        }
        Ok(c)
    }

    /// Whether the producer runs idempotent, checking the settings it needs
    /// as the Java client does: an explicit `enable.idempotence=true` with
    /// acks other than all is an error; the default quietly turns off.
    pub fn idempotent(&self) -> Result<bool, ClientError> {
        let wanted = self.enable_idempotence || self.transactional_id.is_some();
        let compatible = self.acks == -1 && self.max_in_flight <= 5 && self.retries > 0;
        if wanted && !compatible {
            if self.idempotence_explicit || self.transactional_id.is_some() {
                return Err(ClientError::Config(
                    "idempotence needs acks=all, retries > 0 and max.in.flight.requests.per.connection <= 5".into(),
                ));
            }
            return Ok(false);
        }
        Ok(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_and_idempotence_rules() {
        let c = ProducerConfig::from_properties([
            ("bootstrap.servers", "h:1"),
            ("linger.ms", "7"),
            ("acks", "1"),
        ])
        .expect("valid");
        assert_eq!(c.linger, Duration::from_millis(7));
        assert_eq!(
            c.idempotent().ok(),
            Some(false),
            "default idempotence yields to acks=1"
        );
        let c = ProducerConfig::from_properties([
            ("bootstrap.servers", "h:1"),
            ("acks", "1"),
            ("enable.idempotence", "true"),
        ])
        .expect("valid");
        assert!(c.idempotent().is_err());
        assert_eq!(ProducerConfig::new("h:1").idempotent().ok(), Some(true));
        assert!(ProducerConfig::from_properties([
            ("bootstrap.servers", "h:1"),
            ("compression.type", "brotli")
        ])
        .is_err());
        assert!(ProducerConfig::from_properties([("linger", "1")]).is_err());
    }
}
