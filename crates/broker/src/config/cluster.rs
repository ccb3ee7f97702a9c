//! The cluster side of a node's configuration, in Kafka's syntax:
//! `process.roles`, `node.id`, `controller.quorum.voters`, `listeners`,
//! `advertised.listeners`, `listener.security.protocol.map`,
//! `controller.listener.names`, `inter.broker.listener.name`, `broker.rack`.
//!
//! Parsed and checked once at start-up, with Kafka's messages, into a
//! [`ClusterLayout`] the server binds and the quorum dials from.

use std::collections::BTreeMap;

use super::{BrokerConfig, ConfigError};
use crate::metadata::NodeId;

/// Kafka's default `listener.security.protocol.map`.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// One entry of `listeners` or `advertised.listeners`: `NAME://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, upper case (`PLAINTEXT`, `CONTROLLER`, `INTERNAL`, …).
    pub name: String,
    /// Host; empty binds every interface, as in Kafka.
    pub host: String,
    /// Port; 0 picks a free one when binding.
    pub port: u16,
}

impl Listener {
    /// `host:port`, with IPv6 hosts in brackets; an empty host binds all interfaces.
    pub fn address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// One voter of `controller.quorum.voters`: `id@host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    /// The voter's `node.id`.
    pub id: NodeId,
    /// Host of its controller listener.
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

/// What this process does (`process.roles`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// Serves clients and hosts partitions.
    pub broker: bool,
    /// Votes in the metadata quorum.
    pub controller: bool,
}

/// The checked cluster configuration of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterLayout {
    /// `node.id`.
    pub node_id: NodeId,
    /// `process.roles`.
    pub roles: Roles,
    /// `controller.quorum.voters`; empty means a single node that is its
    /// own one-voter quorum (Strom's newcomer default).
    pub voters: Vec<Voter>,
    /// Listeners clients and other brokers use.
    pub broker_listeners: Vec<Listener>,
    /// The controller listener (the first of `controller.listener.names`
    /// found in `listeners`), on controllers of a multi-voter quorum.
    pub controller_listener: Option<Listener>,
    /// What each broker listener is advertised as.
    pub advertised: Vec<Listener>,
    /// The listener brokers talk to each other on.
    pub inter_broker_listener: String,
    /// Listener name to security protocol.
    pub protocols: BTreeMap<String, String>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn requirement(msg: impl std::fmt::Display) -> ConfigError {
    ConfigError::Refused(format!("requirement failed: {msg}"))
}

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Splits `host:port` (`[v6]:port` too).
fn host_port(s: &str) -> Option<(String, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    Some((h.to_string(), p.parse().ok()?))
}

/// Parses `listeners`-style text: `NAME://host:port,...`. Names are unique.
/// A bare `host:port` is Strom's shorthand for `PLAINTEXT://host:port`
/// (what `--listen` takes).
pub fn parse_listeners(config: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in split_list(value) {
        let bad = || {
            invalid(
                config,
                value,
                format!("Unable to parse {entry} to a broker endpoint"),
            )
        };
        let (name, rest) = entry.split_once("://").unwrap_or(("PLAINTEXT", entry));
        let (host, port) = host_port(rest).ok_or_else(bad)?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad());
        }
        let name = name.to_ascii_uppercase();
        if out.iter().any(|l| l.name == name) {
            return Err(requirement(format!(
                "Each listener must have a different name, listeners: {value}"
            )));
        }
        out.push(Listener { name, host, port });
    }
    Ok(out)
}

/// Parses `controller.quorum.voters`: `id@host:port,...`.
pub fn parse_voters(value: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut out: Vec<Voter> = Vec::new();
    for entry in split_list(value) {
        let bad = || {
            invalid(
                "controller.quorum.voters",
                value,
                format!("Unable to parse {entry}: expected id@host:port"),
            )
        };
        let (id, rest) = entry.split_once('@').ok_or_else(bad)?;
        let id: i32 = id.trim().parse().map_err(|_| bad())?;
        let (host, port) = host_port(rest).ok_or_else(bad)?;
        if id < 0 || host.is_empty() || port == 0 {
            return Err(bad());
        }
        if out.iter().any(|v| v.id.0 == id) {
            return Err(invalid(
                "controller.quorum.voters",
                value,
                format!("voter id {id} appears more than once"),
            ));
        }
        out.push(Voter {
            id: NodeId(id),
            host,
            port,
        });
    }
    Ok(out)
}

fn parse_roles(value: &str) -> Result<Roles, ConfigError> {
    let mut roles = Roles {
        broker: false,
        controller: false,
    };
    for r in split_list(value) {
        match r {
            "broker" => roles.broker = true,
            "controller" => roles.controller = true,
            other => {
                return Err(invalid(
                    "process.roles",
                    value,
                    format!("Unknown process role '{other}' (must be broker, controller, or both)"),
                ))
            }
        }
    }
    if !roles.broker && !roles.controller {
        return Err(invalid(
            "process.roles",
            value,
            "at least one of broker and controller is required",
        ));
    }
    Ok(roles)
}

fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut map = BTreeMap::new();
    for entry in split_list(value) {
        let (name, proto) = entry.split_once(':').ok_or_else(|| {
            invalid(
                "listener.security.protocol.map",
                value,
                format!("Unable to parse {entry}: expected LISTENER:PROTOCOL"),
            )
        })?;
        let proto = proto.trim().to_ascii_uppercase();
        if !PROTOCOLS.contains(&proto.as_str()) {
            return Err(invalid(
                "listener.security.protocol.map",
                value,
                format!("No enum constant org.apache.kafka.common.security.auth.SecurityProtocol.{proto}"),
            ));
        }
        map.insert(name.trim().to_ascii_uppercase(), proto);
    }
    Ok(map)
}

impl ClusterLayout {
    /// Reads and checks the cluster configs of `config`.
    pub fn from_config(config: &BrokerConfig) -> Result<ClusterLayout, ConfigError> {
        let node_id = NodeId(config.node_id());
        let roles = parse_roles(&config.get("process.roles"))?;
        let voters = parse_voters(&config.get("controller.quorum.voters"))?;
        let listeners = parse_listeners("listeners", &config.get("listeners"))?;
        let protocols = parse_protocol_map(&config.get("listener.security.protocol.map"))?;
        let controller_names: Vec<String> = split_list(&config.get("controller.listener.names"))
            .map(str::to_ascii_uppercase)
            .collect();
        for l in &listeners {
            if !protocols.contains_key(&l.name) {
                return Err(ConfigError::Refused(format!(
                    "No security protocol defined for listener {}",
                    l.name
                )));
            }
        }
        let is_controller_listener = |l: &Listener| controller_names.contains(&l.name);
        let broker_listeners: Vec<Listener> = listeners
            .iter()
            .filter(|l| !is_controller_listener(l))
            .cloned()
            .collect();
        let controller_listener = listeners
            .iter()
            .find(|l| is_controller_listener(l))
            .cloned();
        if !voters.is_empty() {
            if controller_names.is_empty() {
                return Err(requirement(
                    "controller.listener.names must contain at least one value when running in KRaft mode",
                ));
            }
            if roles.controller && controller_listener.is_none() {
                return Err(requirement(format!(
                    "The listeners config must contain a listener named {} when process.roles contains controller",
                    controller_names.join(",")
                )));
            }
            if roles.controller != voters.iter().any(|v| v.id == node_id) {
                return Err(ConfigError::Refused(if roles.controller {
                    format!("If process.roles contains controller then node.id {node_id} must be one of the voters in controller.quorum.voters")
                } else {
                    format!("If process.roles does not contain controller then node.id {node_id} must not be one of the voters in controller.quorum.voters")
                }));
            }
        } else if !(roles.broker && roles.controller) {
            return Err(ConfigError::Refused(
                "controller.quorum.voters is required unless this node runs both roles alone (process.roles=broker,controller)".into(),
            ));
        }
        if roles.broker && broker_listeners.is_empty() {
            return Err(requirement(
                "listeners must contain at least one listener that is not a controller listener when process.roles contains broker",
            ));
        }
        if !roles.broker && !broker_listeners.is_empty() {
            return Err(requirement(format!(
                "The listeners config must only contain KRaft controller listeners from controller.listener.names when process.roles=controller: {}",
                config.get("listeners")
            )));
        }
        let advertised = match config.get("advertised.listeners").trim() {
            "" => broker_listeners.clone(),
            text => {
                let given = parse_listeners("advertised.listeners", text)?;
                if let Some(c) = given.iter().find(|l| is_controller_listener(l)) {
                    return Err(requirement(format!(
                        "advertised.listeners cannot use the controller listener {}",
                        c.name
                    )));
                }
                // A listener not advertised explicitly is advertised as bound.
                broker_listeners
                    .iter()
                    .map(|b| given.iter().find(|g| g.name == b.name).unwrap_or(b).clone())
                    .collect()
            }
        };
        let inter_broker_listener = match config.get("inter.broker.listener.name").trim() {
            "" => broker_listeners
                .first()
                .map(|l| l.name.clone())
                .unwrap_or_default(),
            name => {
                let name = name.to_ascii_uppercase();
                if roles.broker && !broker_listeners.iter().any(|l| l.name == name) {
                    return Err(requirement(format!(
                        "inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options based on currently configured listeners are {}",
                        broker_listeners.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(",")
                    )));
                }
                name
            }
        };
        let rack = Some(config.get("broker.rack").trim().to_string()).filter(|r| !r.is_empty());
        Ok(ClusterLayout {
            node_id,
            roles,
            voters,
            broker_listeners,
            controller_listener,
            advertised,
            inter_broker_listener,
            protocols,
            rack,
        })
    }

    /// True for the newcomer's default: one process, its own one-voter quorum.
    pub fn single_node(&self) -> bool {
        self.voters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(pairs: &[(&str, &str)]) -> Result<ClusterLayout, ConfigError> {
        let values = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClusterLayout::from_config(&BrokerConfig::from_overrides(&values)?)
    }

    #[test]
    fn the_default_is_one_combined_node() {
        let l = layout(&[]).unwrap();
        assert!(l.single_node());
        assert_eq!((l.roles.broker, l.roles.controller), (true, true));
        assert_eq!(l.broker_listeners[0].address(), "127.0.0.1:9092");
        assert_eq!(l.advertised, l.broker_listeners);
        assert_eq!(l.inter_broker_listener, "PLAINTEXT");
    }

    #[test]
    fn a_combined_voter_of_three() {
        let l = layout(&[
            ("node.id", "2"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097",
            ),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("advertised.listeners", "PLAINTEXT://broker2.example:9094"),
            ("broker.rack", "r1"),
        ])
        .unwrap();
        assert_eq!(l.voters.len(), 3);
        assert_eq!(l.voters[1].id, NodeId(2));
        assert_eq!(l.controller_listener.unwrap().port, 9095);
        assert_eq!(l.broker_listeners.len(), 1);
        assert_eq!(l.advertised[0].host, "broker2.example");
        assert_eq!(l.rack.as_deref(), Some("r1"));
    }

    #[test]
    fn kafka_refusals() {
        let voters = ("controller.quorum.voters", "1@127.0.0.1:9093");
        // No controller listener names in a quorum.
        assert!(layout(&[voters]).is_err());
        // A controller without its listener.
        let e = layout(&[voters, ("controller.listener.names", "CONTROLLER")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("must contain a listener named CONTROLLER"),
            "{e}"
        );
        // A voter id that is not this node, on a controller.
        let e = layout(&[
            ("controller.quorum.voters", "7@127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("must be one of the voters"), "{e}");
        // A broker-only node needs voters to find the quorum.
        assert!(layout(&[("process.roles", "broker")]).is_err());
        assert!(layout(&[("process.roles", "brokr")]).is_err());
        assert!(parse_voters("1@host").is_err());
        assert!(parse_voters("x@host:1").is_err());
        assert!(parse_voters("1@h:1,1@h:2").is_err());
        assert!(parse_listeners("listeners", "PLAINTEXT://:9092,PLAINTEXT://:9093").is_err());
        assert!(parse_listeners("listeners", "127.0.0.1").is_err());
        assert!(parse_listeners("listeners", "PLAINTEXT://127.0.0.1:x").is_err());
        assert_eq!(
            parse_listeners("listeners", "127.0.0.1:0").unwrap()[0].name,
            "PLAINTEXT"
        );
        assert!(layout(&[("listeners", "INTERNAL://:9092")]).is_err());
    }

    #[test]
    fn a_broker_only_node() {
        let l = layout(&[
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", "PLAINTEXT://127.0.0.1:9100"),
        ])
        .unwrap();
        assert!(!l.roles.controller);
        assert!(l.controller_listener.is_none());
    }

    #[test]
    fn ipv6_and_empty_hosts() {
        let l = parse_listeners("listeners", "PLAINTEXT://[::1]:9092,SSL://:9093").unwrap();
        assert_eq!(l[0].host, "::1");
        assert_eq!(l[0].address(), "[::1]:9092");
        assert_eq!(l[1].address(), "0.0.0.0:9093");
    }
}
