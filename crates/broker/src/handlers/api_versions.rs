//! ApiVersions: the served API ranges (KIP-511 for versions we do not know).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use strom_protocol::versions;

/// Builds the response; `supported` is false when the request's version is
/// outside our range, which gets UNSUPPORTED_VERSION plus the ranges.
pub fn handle(supported: bool) -> ApiVersionsResponse {
    let api_keys = versions::SUPPORTED
        .iter()
        .map(|(k, lo, hi)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*lo)
                .with_max_version(*hi)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(if supported {
            0
        } else {
            ResponseError::UnsupportedVersion.code()
        })
        .with_api_keys(api_keys)
}

/// Kafka's rule for v3+ (KIP-511): `client_software_name` and
/// `client_software_version` are non-empty, of letters, digits, `-` and
/// `.`, and begin and end with a letter or digit.
pub fn names_valid(req: &ApiVersionsRequest) -> bool {
    valid_name(&req.client_software_name) && valid_name(&req.client_software_version)
}

fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

/// The answer to a v3+ request with invalid names: INVALID_REQUEST, as Kafka.
pub fn invalid_names() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(ResponseError::InvalidRequest.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_kafka_validates_them() {
        for ok in [
            "strom",
            "librdkafka",
            "confluent-kafka-python",
            "2.16.1",
            "a",
            "v1.2-rc.3",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", "x-", ".x", "x.", "a b", "a_b", "ü", "a\n"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
