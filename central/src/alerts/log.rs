//! The notification log: one record per alert change and channel, updated on every attempt.

use serde::{Deserialize, Serialize};

use super::webhook::Outgoing;

// The log's records are what `GET /api/v1/notifications` answers.
pub use checkpoint_api::notifications::{NotificationRecord, Outcome};

/// A delivery waiting for its next attempt, kept in the store so a restart goes on with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDelivery {
    pub record: NotificationRecord,
    pub out: Outgoing,
}

/// The engine's records in the store, as its [`Docs`](crate::store::Docs): the store keeps
/// their JSON and knows nothing of their types.
pub mod kept {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::{NotificationRecord, PendingDelivery};
    use crate::alerts::rules::Alert;
    use crate::store::{Doc, Docs, Store, StoreError};

    fn doc<T: Serialize>(key: String, ord: i64, time_ms: i64, v: &T) -> Result<Doc, StoreError> {
        Ok(Doc {
            json: serde_json::to_string(v).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            })?,
            key,
            ord,
            time_ms,
        })
    }

    fn all<T: DeserializeOwned>(docs: Vec<Doc>, what: &str) -> Result<Vec<T>, StoreError> {
        docs.into_iter()
            .map(|d| {
                serde_json::from_str(&d.json).map_err(|e| StoreError::Corrupt {
                    key: format!("{what}/{}", d.key),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    fn ord(id: u64) -> i64 {
        i64::try_from(id).unwrap_or(i64::MAX)
    }

    /// Adds or updates (by id) a notification record.
    pub fn put_notification(store: &dyn Store, n: &NotificationRecord) -> Result<(), StoreError> {
        store.put_doc(
            Docs::Notifications,
            &doc(n.id.to_string(), ord(n.id), n.first_ms, n)?,
        )
    }

    /// The latest `limit` notification records, newest first.
    pub fn notifications(
        store: &dyn Store,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        all(
            store.docs(Docs::Notifications, true, limit)?,
            "notifications",
        )
    }

    /// Keeps a delivery waiting for a retry (replacing one with the same record id).
    pub fn put_pending(store: &dyn Store, p: &PendingDelivery) -> Result<(), StoreError> {
        let id = p.record.id;
        store.put_doc(
            Docs::Pending,
            &doc(id.to_string(), ord(id), p.record.first_ms, p)?,
        )
    }

    /// Forgets a delivery that was sent or given up.
    pub fn remove_pending(store: &dyn Store, id: u64) -> Result<(), StoreError> {
        store.remove_doc(Docs::Pending, &id.to_string())
    }

    /// Every delivery waiting for a retry, oldest first.
    pub fn pending_deliveries(store: &dyn Store) -> Result<Vec<PendingDelivery>, StoreError> {
        all(store.docs(Docs::Pending, false, usize::MAX)?, "pending")
    }

    /// Replaces the set of active alerts (kept so a restart does not raise them again).
    pub fn put_active_alerts(store: &dyn Store, alerts: &[Alert]) -> Result<(), StoreError> {
        let docs = alerts
            .iter()
            .map(|a| doc(a.key.clone(), a.ts_ms, a.ts_ms, a))
            .collect::<Result<Vec<_>, _>>()?;
        store.replace_docs(Docs::Alerts, &docs)
    }

    pub fn active_alerts(store: &dyn Store) -> Result<Vec<Alert>, StoreError> {
        all(store.docs(Docs::Alerts, false, usize::MAX)?, "alerts")
    }
}
