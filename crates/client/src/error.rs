//! Client errors.

use thiserror::Error;

/// What went wrong talking to a broker.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker could not be reached.
    #[error("cannot connect to {addr}")]
    Connect {
        /// Bootstrap address.
        addr: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// A call took longer than the timeout.
    #[error("{0} timed out")]
    Timeout(String),
    /// The connection failed mid-call.
    #[error("connection to the broker failed: {0}")]
    Io(#[from] std::io::Error),
    /// The broker does not serve a version of this API we can speak.
    #[error("the broker does not support {0:?}")]
    Unsupported(kafka_protocol::messages::ApiKey),
    /// A setting is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A request or response did not encode or decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker answered with a Kafka error code.
    #[error("{context}: {error}")]
    Kafka {
        /// What was being done.
        context: String,
        /// Kafka's error.
        error: kafka_protocol::error::ResponseError,
    },
}

impl ClientError {
    /// Wraps a non-zero Kafka error code, if it is one.
    pub fn check(code: i16, context: impl Into<String>) -> Result<(), ClientError> {
        match kafka_protocol::error::ResponseError::try_from_code(code) {
            Some(error) => Err(ClientError::Kafka {
                context: context.into(),
                error,
            }),
            None => Ok(()),
        }
    }
}
