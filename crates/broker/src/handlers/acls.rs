//! DescribeAcls, CreateAcls and DeleteAcls. Strom has no authorizer (every
//! client may do everything), so it answers as Kafka does when
//! `authorizer.class.name` is unset: SECURITY_DISABLED for the request, or
//! for each creation and filter, with Kafka's message.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsResponse,
};

use super::s;

/// Kafka's message for ACL changes on a broker without an authorizer.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";
/// Kafka's message for DescribeAcls on a broker without an authorizer.
const NO_AUTHORIZER_DESCRIBE: &str = "No Authorizer is configured on the broker";

fn disabled() -> i16 {
    ResponseError::SecurityDisabled.code()
}

/// DescribeAcls: SECURITY_DISABLED.
pub fn describe() -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(disabled())
        .with_error_message(Some(s(NO_AUTHORIZER_DESCRIBE)))
}

/// CreateAcls: SECURITY_DISABLED for each creation.
pub fn create(req: CreateAclsRequest) -> CreateAclsResponse {
    let results = req
        .creations
        .iter()
        .map(|_| {
            AclCreationResult::default()
                .with_error_code(disabled())
                .with_error_message(Some(s(NO_AUTHORIZER)))
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// DeleteAcls: SECURITY_DISABLED for each filter.
pub fn delete(req: DeleteAclsRequest) -> DeleteAclsResponse {
    let results = req
        .filters
        .iter()
        .map(|_| {
            DeleteAclsFilterResult::default()
                .with_error_code(disabled())
                .with_error_message(Some(s(NO_AUTHORIZER)))
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
