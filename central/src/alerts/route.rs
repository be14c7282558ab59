//! Who hears of an alert, and what they read.
//!
//! Roles are resolved from the roster: the person (the event's subject), their counsellor and
//! department head (roster ids of other people), the building manager of the place, and the
//! facilities list from the configuration. Each message carries only what its recipient needs:
//! a person reads their own reading without their name; a counsellor reads the name of the
//! student with a fever; facilities read box ids, never people.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::rules::{Alert, AlertKind};
use crate::roster::{Person, Place};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Person,
    Counsellor,
    DepartmentHead,
    BuildingManager,
    Facilities,
}

/// Who gets each kind unless the configuration says otherwise.
pub fn default_roles(kind: AlertKind) -> Vec<Role> {
    match kind {
        AlertKind::Temperature => vec![Role::Person],
        AlertKind::Fever => vec![Role::Person, Role::Counsellor, Role::DepartmentHead],
        AlertKind::Crowding => vec![Role::BuildingManager],
        AlertKind::BoxOffline
        | AlertKind::Backlog
        | AlertKind::TrustStale
        | AlertKind::SequenceGap => vec![Role::Facilities],
        AlertKind::Digest => Vec::new(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub role: Role,
    /// Roster id (or the facilities entry's name).
    pub id: String,
    pub wecom_id: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    En,
    Zh,
}

/// The roster as routing needs it, plus the facilities list.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub people: HashMap<String, Person>,
    pub places: HashMap<String, Place>,
    pub facilities: Vec<Recipient>,
    /// Times in messages are the site's.
    pub site: crate::site::Site,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl Directory {
    pub fn new(people: Vec<Person>, places: Vec<Place>, facilities: Vec<Recipient>) -> Self {
        Directory {
            people: people.into_iter().map(|p| (p.id.clone(), p)).collect(),
            places: places
                .into_iter()
                .map(|p| (p.checkpoint.clone(), p))
                .collect(),
            facilities,
            site: crate::site::Site::utc(),
        }
    }

    /// The same, with times shown in `site`'s zone.
    pub fn in_site(mut self, site: crate::site::Site) -> Self {
        self.site = site;
        self
    }

    fn person(&self, role: Role, id: &str) -> Result<Recipient, String> {
        let p = self
            .people
            .get(id)
            .ok_or_else(|| format!("{role:?} {id} is not in the roster"))?;
        Ok(Recipient {
            role,
            id: p.id.clone(),
            wecom_id: some(&p.wecom_id),
            email: some(&p.email),
        })
    }

    /// The recipients of `alert` for `roles`, without duplicates, and why any role has none.
    pub fn recipients(&self, alert: &Alert, roles: &[Role]) -> (Vec<Recipient>, Vec<String>) {
        let mut out: Vec<Recipient> = Vec::new();
        let mut missing = Vec::new();
        let subject = alert.subject.as_deref();
        for &role in roles {
            let found: Result<Vec<Recipient>, String> = match role {
                Role::Person => match subject {
                    Some(s) => self.person(role, s).map(|r| vec![r]),
                    None => Err("no person (unknown subject)".into()),
                },
                Role::Counsellor | Role::DepartmentHead => match subject {
                    Some(s) => self
                        .people
                        .get(s)
                        .ok_or_else(|| format!("{s} is not in the roster"))
                        .and_then(|p| {
                            let id = if role == Role::Counsellor {
                                &p.counsellor
                            } else {
                                &p.department_head
                            };
                            some(id)
                                .ok_or_else(|| format!("{s} has no {role:?} in the roster"))
                                .and_then(|id| self.person(role, &id))
                        })
                        .map(|r| vec![r]),
                    None => Err(format!("no person, so no {role:?}")),
                },
                Role::BuildingManager => alert
                    .checkpoint
                    .as_deref()
                    .and_then(|cp| self.places.get(cp))
                    .and_then(|p| some(&p.manager))
                    .ok_or_else(|| "the place has no manager in the roster".to_string())
                    .and_then(|m| self.person(role, &m))
                    .map(|r| vec![r]),
                Role::Facilities => Ok(self.facilities.clone()),
            };
            match found {
                Ok(rs) => {
                    for r in rs {
                        if !out.iter().any(|o| o.id == r.id) {
                            out.push(r);
                        }
                    }
                }
                Err(m) => missing.push(m),
            }
        }
        (out, missing)
    }

    fn place_name(&self, alert: &Alert) -> String {
        let cp = alert.checkpoint.clone().unwrap_or_default();
        self.places
            .get(&cp)
            .map(|p| p.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or(cp)
    }

    /// The message for one recipient role.
    pub fn render(&self, alert: &Alert, role: Role, lang: Language) -> String {
        let when = self.site.minute(alert.ts_ms);
        let place = self.place_name(alert);
        let value = alert.value.map(|v| format!("{v:.1}")).unwrap_or_default();
        let count = alert.value.map(|v| format!("{v:.0}")).unwrap_or_default();
        let bx = alert.box_id.clone().unwrap_or_default();
        // The person's identity, only for those responsible for them.
        let who = alert
            .subject
            .as_deref()
            .and_then(|s| self.people.get(s))
            .map(|p| {
                let group = [p.department.as_str(), p.class.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("/");
                format!("{} ({}, {group})", p.name, p.number)
            })
            .or_else(|| alert.subject.clone())
            .unwrap_or_else(|| "?".into());
        let up = alert.raised;
        use AlertKind as K;
        use Language::{En, Zh};
        match (lang, alert.kind, role) {
            (En, K::Temperature, _) => format!("Your temperature at {place}, {when}: {value} °C."),
            (Zh, K::Temperature, _) => format!("您于 {when} 在{place}的体温：{value} °C。"),
            (En, K::Fever, Role::Person) => format!(
                "Your temperature at {place}, {when} was {value} °C, at or above the fever \
                 threshold. Please see the health office before entering."
            ),
            (Zh, K::Fever, Role::Person) => {
                format!("您于 {when} 在{place}测得体温 {value} °C，达到发热标准，请先前往校医室。")
            }
            (En, K::Fever, _) => format!("Fever: {who}, {value} °C at {place}, {when}."),
            (Zh, K::Fever, _) => format!("发热：{who}，{when} 在{place}测得 {value} °C。"),
            (En, K::Crowding, _) if up => {
                format!("Crowding at {place}: {count} people inside ({when}).")
            }
            (En, K::Crowding, _) => format!("{place} is below its capacity again ({when})."),
            (Zh, K::Crowding, _) if up => format!("{place}人员拥挤：当前 {count} 人（{when}）。"),
            (Zh, K::Crowding, _) => format!("{place}人数已回落（{when}）。"),
            (En, K::BoxOffline, _) if up => format!("Box {bx} is offline ({when})."),
            (En, K::BoxOffline, _) => format!("Box {bx} is back online ({when})."),
            (Zh, K::BoxOffline, _) if up => format!("设备 {bx} 离线（{when}）。"),
            (Zh, K::BoxOffline, _) => format!("设备 {bx} 已恢复在线（{when}）。"),
            (En, K::Backlog, _) if up => {
                format!("Box {bx} holds {count} events it could not deliver ({when}).")
            }
            (En, K::Backlog, _) => format!("Box {bx} has delivered its backlog ({when})."),
            (Zh, K::Backlog, _) if up => format!("设备 {bx} 积压 {count} 条未上传记录（{when}）。"),
            (Zh, K::Backlog, _) => format!("设备 {bx} 的积压记录已上传（{when}）。"),
            (En, K::TrustStale, _) if up => {
                format!("Box {bx} has pass-code keys {count} h old: is central reachable? ({when})")
            }
            (En, K::TrustStale, _) => format!("Box {bx} has fresh pass-code keys ({when})."),
            (Zh, K::TrustStale, _) if up => {
                format!("设备 {bx} 的通行码密钥已 {count} 小时未更新（{when}）。")
            }
            (Zh, K::TrustStale, _) => format!("设备 {bx} 的通行码密钥已更新（{when}）。"),
            (En, K::SequenceGap, _) => {
                format!("Box {bx} lost {count} events (its outbox was full) ({when}).")
            }
            (Zh, K::SequenceGap, _) => format!("设备 {bx} 丢失 {count} 条记录（{when}）。"),
            (_, K::Digest, _) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, name: &str, counsellor: &str, head: &str) -> Person {
        Person {
            id: id.into(),
            number: format!("N-{id}"),
            name: name.into(),
            department: "Physics".into(),
            class: "P1".into(),
            counsellor: counsellor.into(),
            department_head: head.into(),
            wecom_id: format!("wx-{id}"),
            email: String::new(),
        }
    }

    fn dir() -> Directory {
        Directory::new(
            vec![
                person("s1", "Student One", "c1", "h1"),
                person("s2", "Student Two", "h1", "h1"),
                person("c1", "Counsellor", "", ""),
                person("h1", "Head", "", ""),
                person("m1", "Manager", "", ""),
            ],
            vec![Place {
                checkpoint: "lib".into(),
                name: "Main Library".into(),
                building: "B1".into(),
                capacity: Some(10),
                manager: "m1".into(),
            }],
            vec![Recipient {
                role: Role::Facilities,
                id: "facilities".into(),
                wecom_id: Some("wx-fac".into()),
                email: Some("fac@example.org".into()),
            }],
        )
    }

    fn fever(subject: &str) -> Alert {
        Alert {
            key: "fever:x".into(),
            kind: AlertKind::Fever,
            raised: true,
            ts_ms: 1_800_000_000_000,
            subject: Some(subject.into()),
            checkpoint: Some("lib".into()),
            box_id: Some("gate-1".into()),
            value: Some(38.2),
        }
    }

    #[test]
    fn a_fever_goes_to_the_person_their_counsellor_and_head_once_each() {
        let d = dir();
        let roles = default_roles(AlertKind::Fever);
        let (r, missing) = d.recipients(&fever("s1"), &roles);
        let ids: Vec<&str> = r.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["s1", "c1", "h1"]);
        assert!(missing.is_empty());
        assert_eq!(r[1].wecom_id.as_deref(), Some("wx-c1"));
        // The counsellor is the head: one message, not two.
        let (r, _) = d.recipients(&fever("s2"), &roles);
        assert_eq!(r.len(), 2);
        // Someone not in the roster: nobody to tell, and it says why.
        let (r, missing) = d.recipients(&fever("zz"), &roles);
        assert!(r.is_empty());
        assert_eq!(missing.len(), 3, "{missing:?}");
    }

    #[test]
    fn messages_carry_only_what_the_recipient_needs() {
        let d = dir();
        let to_person = d.render(&fever("s1"), Role::Person, Language::En);
        assert!(to_person.contains("38.2 °C") && to_person.contains("Main Library"));
        assert!(!to_person.contains("Student One"), "{to_person}");
        let to_counsellor = d.render(&fever("s1"), Role::Counsellor, Language::En);
        assert!(
            to_counsellor.contains("Student One (N-s1, Physics/P1)"),
            "{to_counsellor}"
        );
        let zh = d.render(&fever("s1"), Role::Counsellor, Language::Zh);
        assert!(zh.starts_with("发热：Student One"), "{zh}");
        let offline = Alert {
            key: "box_offline:gate-1".into(),
            kind: AlertKind::BoxOffline,
            subject: None,
            value: None,
            ..fever("s1")
        };
        let (r, _) = d.recipients(&offline, &default_roles(AlertKind::BoxOffline));
        assert_eq!(r[0].id, "facilities");
        assert_eq!(
            d.render(&offline, Role::Facilities, Language::En),
            "Box gate-1 is offline (2027-01-15 08:00 UTC)."
        );
        // In the site's zone, as the people there read their clocks.
        let local = dir().in_site(crate::site::Site::named("Asia/Shanghai").unwrap());
        assert_eq!(
            local.render(&offline, Role::Facilities, Language::En),
            "Box gate-1 is offline (2027-01-15 16:00 CST)."
        );
        let crowd = Alert {
            kind: AlertKind::Crowding,
            subject: None,
            value: Some(12.0),
            ..fever("s1")
        };
        let (r, _) = d.recipients(&crowd, &default_roles(AlertKind::Crowding));
        assert_eq!(r[0].id, "m1");
        assert!(d
            .render(&crowd, Role::BuildingManager, Language::En)
            .starts_with("Crowding at Main Library: 12 people inside"));
    }
}
