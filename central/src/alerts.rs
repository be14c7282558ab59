//! Alerts and notifications (DESIGN.md §6): rules decide when an alert is raised or resolved
//! ([`rules`]); routing turns an alert into recipients from the roster and a message in the
//! site's language ([`route`]); channels deliver it ([`webhook`], [`wecom`], [`email`]); every attempt is logged in the
//! store and listed by `checkpoint-admin notifications`.

mod config;
pub use config::{AlertsConfig, Facility, WeComConfig, WebhookConfig};
pub mod dispatch;
pub mod email;
pub mod log;
pub mod route;
pub mod rules;
pub mod setup;
pub mod webhook;
pub mod wecom;
