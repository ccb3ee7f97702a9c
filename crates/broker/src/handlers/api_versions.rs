//! ApiVersions: the served API ranges (KIP-511 for versions we do not know).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;
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
