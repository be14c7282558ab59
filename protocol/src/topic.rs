//! The MQTT topic tree. One namespace per box, so a broker ACL can pin each box's certificate
//! identity (`%u` in Mosquitto) to its own topics:
//!
//! ```text
//! checkpoint/v1/box/{box}/event            box -> central   QoS 1, events from the outbox
//! checkpoint/v1/box/{box}/status           box -> central   retained; Last Will "offline"
//! checkpoint/v1/box/{box}/telemetry        box -> central   periodic health
//! checkpoint/v1/box/{box}/ack              central -> box   end-to-end acks of stored events
//! checkpoint/v1/box/{box}/command          central -> box   operator commands
//! checkpoint/v1/box/{box}/config/{kind}    central -> box   retained per-box configuration
//! checkpoint/v1/shared/config/{kind}       central -> all   retained configuration for every box
//! ```
//! `kind` is `trust` (issuer keys and revocations) or `gallery` (face embeddings, per box only).

use std::fmt;

use crate::ids::{BoxId, IdError};

/// First two levels of every topic. A new topic layout is a new version here.
pub const ROOT: &str = "checkpoint/v1";

/// What a retained configuration topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    Trust,
    Gallery,
}

impl ConfigKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::Trust => "trust",
            ConfigKind::Gallery => "gallery",
        }
    }
}

/// A parsed topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Event(BoxId),
    Status(BoxId),
    Telemetry(BoxId),
    Ack(BoxId),
    Command(BoxId),
    BoxConfig(BoxId, ConfigKind),
    SharedConfig(ConfigKind),
}

/// Why a topic string was not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is not under {ROOT}/")]
    Foreign,
    #[error("unknown topic layout {0:?}")]
    Unknown(String),
    #[error("bad box id in topic: {0}")]
    BoxId(#[from] IdError),
}

impl Topic {
    /// Parses a concrete topic (no wildcards). Anything that is not exactly one of the layouts
    /// above is an error, including extra or empty levels.
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let rest = topic
            .strip_prefix(ROOT)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(TopicError::Foreign)?;
        let levels: Vec<&str> = rest.split('/').collect();
        let unknown = || TopicError::Unknown(rest.to_string());
        let config_kind = |k: &str| match k {
            "trust" => Ok(ConfigKind::Trust),
            "gallery" => Ok(ConfigKind::Gallery),
            _ => Err(unknown()),
        };
        match levels.as_slice() {
            ["shared", "config", kind] => match config_kind(kind)? {
                ConfigKind::Trust => Ok(Topic::SharedConfig(ConfigKind::Trust)),
                // Biometric data never goes to every box.
                ConfigKind::Gallery => Err(unknown()),
            },
            ["box", id, leaf @ ..] => {
                let id = BoxId::new(*id)?;
                match leaf {
                    ["event"] => Ok(Topic::Event(id)),
                    ["status"] => Ok(Topic::Status(id)),
                    ["telemetry"] => Ok(Topic::Telemetry(id)),
                    ["ack"] => Ok(Topic::Ack(id)),
                    ["command"] => Ok(Topic::Command(id)),
                    ["config", kind] => Ok(Topic::BoxConfig(id, config_kind(kind)?)),
                    _ => Err(unknown()),
                }
            }
            _ => Err(unknown()),
        }
    }

    /// The box whose namespace this topic is in, if any.
    pub fn box_id(&self) -> Option<&BoxId> {
        match self {
            Topic::Event(b)
            | Topic::Status(b)
            | Topic::Telemetry(b)
            | Topic::Ack(b)
            | Topic::Command(b)
            | Topic::BoxConfig(b, _) => Some(b),
            Topic::SharedConfig(_) => None,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Event(b) => write!(f, "{ROOT}/box/{b}/event"),
            Topic::Status(b) => write!(f, "{ROOT}/box/{b}/status"),
            Topic::Telemetry(b) => write!(f, "{ROOT}/box/{b}/telemetry"),
            Topic::Ack(b) => write!(f, "{ROOT}/box/{b}/ack"),
            Topic::Command(b) => write!(f, "{ROOT}/box/{b}/command"),
            Topic::BoxConfig(b, k) => write!(f, "{ROOT}/box/{b}/config/{}", k.as_str()),
            Topic::SharedConfig(k) => write!(f, "{ROOT}/shared/config/{}", k.as_str()),
        }
    }
}

/// Subscription filters central uses for everything boxes send.
pub fn central_filters() -> [String; 3] {
    [
        format!("{ROOT}/box/+/event"),
        format!("{ROOT}/box/+/status"),
        format!("{ROOT}/box/+/telemetry"),
    ]
}

/// Subscription filters a box uses for everything central sends it.
pub fn box_filters(id: &BoxId) -> [String; 4] {
    [
        Topic::Ack(id.clone()).to_string(),
        Topic::Command(id.clone()).to_string(),
        format!("{ROOT}/box/{id}/config/+"),
        Topic::SharedConfig(ConfigKind::Trust).to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> BoxId {
        BoxId::new(s).unwrap()
    }

    #[track_caller]
    fn check(topic: &str, expect: Result<Topic, &str>) {
        match (Topic::parse(topic), expect) {
            (Ok(got), Ok(want)) => {
                assert_eq!(got, want);
                assert_eq!(got.to_string(), topic, "round trip");
            }
            (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{topic}: {e}"),
            (got, want) => panic!("{topic}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn topics() {
        check(
            "checkpoint/v1/box/gate-1/event",
            Ok(Topic::Event(b("gate-1"))),
        );
        check("checkpoint/v1/box/g/status", Ok(Topic::Status(b("g"))));
        check(
            "checkpoint/v1/box/g/telemetry",
            Ok(Topic::Telemetry(b("g"))),
        );
        check("checkpoint/v1/box/g/ack", Ok(Topic::Ack(b("g"))));
        check("checkpoint/v1/box/g/command", Ok(Topic::Command(b("g"))));
        check(
            "checkpoint/v1/box/g/config/gallery",
            Ok(Topic::BoxConfig(b("g"), ConfigKind::Gallery)),
        );
        check(
            "checkpoint/v1/shared/config/trust",
            Ok(Topic::SharedConfig(ConfigKind::Trust)),
        );
        check("checkpoint/v1/shared/config/gallery", Err("unknown topic"));
        check("checkpoint/v2/box/g/event", Err("not under"));
        check("checkpoint/v1", Err("not under"));
        check("checkpoint/v1/", Err("unknown topic"));
        check("checkpoint/v1/box/G/event", Err("bad box id"));
        check("checkpoint/v1/box/+/event", Err("bad box id"));
        check("checkpoint/v1/box//event", Err("bad box id"));
        check("checkpoint/v1/box/g/event/", Err("unknown topic"));
        check("checkpoint/v1/box/g/events", Err("unknown topic"));
        check("checkpoint/v1/box/g/config/x", Err("unknown topic"));
        check("/checkpoint/v1/box/g/event", Err("not under"));
    }

    #[test]
    fn filters_cover_topics() {
        assert_eq!(central_filters()[0], "checkpoint/v1/box/+/event");
        assert_eq!(box_filters(&b("g"))[2], "checkpoint/v1/box/g/config/+");
    }
}
