//! Kafka's `ConfigDef` validation of one value: the parse, the range or
//! choices, the special validators, and Kafka's error messages.

use super::ConfigType::{self, Boolean, Double, Int, List, Long, Short};
use super::{Check, ConfigDef, ConfigError};

/// Checks `value` against `def` as Kafka's `ConfigDef` does, returning the
/// value as Kafka would report it (trimmed; booleans lower case; lists
/// joined with `,`; doubles as Java prints them).
pub fn validate(def: &ConfigDef, value: &str) -> Result<String, ConfigError> {
    let bad = |reason: String| ConfigError::Invalid {
        name: def.name.to_string(),
        value: value.to_string(),
        reason,
    };
    let trimmed = value.trim();
    match def.kind {
        Short | Int | Long => {
            let type_name = match def.kind {
                Short => "SHORT",
                Int => "INT",
                _ => "LONG",
            };
            let v: i64 = trimmed
                .parse()
                .ok()
                .filter(|v| match def.kind {
                    Short => i16::try_from(*v).is_ok(),
                    Int => i32::try_from(*v).is_ok(),
                    _ => true,
                })
                .ok_or_else(|| bad(format!("Not a number of type {type_name}")))?;
            if def.check == Check::GzipLevel {
                if v != -1 && !(1..=9).contains(&v) {
                    return Err(bad("Value must be between 1 and 9 or equal to -1".into()));
                }
            } else if v < def.min {
                return Err(bad(format!("Value must be at least {}", def.min)));
            } else if v > def.max {
                return Err(bad(format!("Value must be no more than {}", def.max)));
            }
            Ok(v.to_string())
        }
        Double => {
            let v: f64 = trimmed
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() || trimmed.contains("Infinity"))
                .ok_or_else(|| bad("Not a number of type DOUBLE".into()))?;
            if v < def.min as f64 {
                return Err(bad(format!("Value must be at least {}", def.min)));
            }
            if def.max != i64::MAX && v > def.max as f64 {
                return Err(bad(format!("Value must be no more than {}", def.max)));
            }
            Ok(java_double(v))
        }
        Boolean => {
            let v = trimmed.to_ascii_lowercase();
            if v != "true" && v != "false" {
                return Err(bad("Expected value to be either true or false".into()));
            }
            if let Check::NotTrue(why) = def.check {
                if v == "true" {
                    return Err(ConfigError::Refused(why.to_string()));
                }
            }
            Ok(v)
        }
        ConfigType::String => {
            if !def.choices.is_empty() && !def.choices.contains(&trimmed) {
                return Err(bad(format!(
                    "String must be one of: {}",
                    def.choices.join(", ")
                )));
            }
            Ok(trimmed.to_string())
        }
        List => {
            let items: Vec<&str> = if trimmed.is_empty() {
                Vec::new()
            } else {
                trimmed.split(',').map(str::trim).collect()
            };
            let listed = || format!("[{}]", items.join(", "));
            if items.iter().any(|x| x.is_empty()) {
                return Err(ConfigError::Refused(format!(
                    "Configuration '{}' values must not be empty.",
                    def.name
                )));
            }
            if !def.choices.is_empty() {
                if let Some(x) = items.iter().find(|x| !def.choices.contains(x)) {
                    return Err(ConfigError::Invalid {
                        name: def.name.to_string(),
                        value: x.to_string(),
                        reason: format!("String must be one of: {}", def.choices.join(", ")),
                    });
                }
            }
            if def.check == Check::ThrottledReplicas && !throttled_replicas_valid(&items) {
                return Err(ConfigError::Invalid {
                    name: def.name.to_string(),
                    value: listed(),
                    reason: format!("{} must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...", def.name),
                });
            }
            Ok(items.join(","))
        }
    }
}

/// Kafka's `ThrottledReplicaListValidator`: `*`, or `partition:broker` pairs.
fn throttled_replicas_valid(items: &[&str]) -> bool {
    let pair = |x: &str| {
        x.split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<i32>().is_ok() && b.trim().parse::<i32>().is_ok()
        })
    };
    items == ["*"] || items.iter().all(|x| pair(x))
}

/// A double as Java's `Double.toString` prints it (`1.0`, `0.5`, `1.0E-5`).
pub fn java_double(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if v == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{v:E}");
    match s.split_once('E') {
        Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
        _ => s,
    }
}
