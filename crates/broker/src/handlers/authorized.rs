//! Authorized operations as Kafka reports them with no authorizer
//! configured: every operation the resource type has, as a bit set of
//! Kafka's `AclOperation` codes; `i32::MIN` when the client did not ask.

/// "Not requested": the client did not ask for authorized operations.
pub const OMITTED: i32 = i32::MIN;

const READ: i32 = 3;
const WRITE: i32 = 4;
const CREATE: i32 = 5;
const DELETE: i32 = 6;
const ALTER: i32 = 7;
const DESCRIBE: i32 = 8;
const CLUSTER_ACTION: i32 = 9;
const DESCRIBE_CONFIGS: i32 = 10;
const ALTER_CONFIGS: i32 = 11;
const IDEMPOTENT_WRITE: i32 = 12;

const fn bits(ops: &[i32]) -> i32 {
    let mut v = 0;
    let mut i = 0;
    while i < ops.len() {
        v |= 1 << ops[i];
        i += 1;
    }
    v
}

/// A topic's operations.
pub const TOPIC: i32 = bits(&[
    READ,
    WRITE,
    CREATE,
    DELETE,
    ALTER,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
]);

/// A group's operations.
pub const GROUP: i32 = bits(&[READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS]);

/// The cluster's operations.
pub const CLUSTER: i32 = bits(&[
    CREATE,
    ALTER,
    DESCRIBE,
    CLUSTER_ACTION,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    IDEMPOTENT_WRITE,
]);

/// `ops` when the client asked for them, else [`OMITTED`].
pub fn if_asked(asked: bool, ops: i32) -> i32 {
    if asked {
        ops
    } else {
        OMITTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_sets_are_kafkas() {
        // As Kafka 4.4 answers with no authorizer.
        assert_eq!(TOPIC, 3576);
        assert_eq!(GROUP, 3400);
        assert_eq!(CLUSTER, 8096);
    }
}
