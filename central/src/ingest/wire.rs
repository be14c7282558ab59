//! Where ingest's messages come from and where its acks and configuration go: an MQTT client
//! of the broker (external, or the Mosquitto central supervises), feeding the [`Net`] channel.

use std::time::Duration;

use checkpoint_link::{Backoff, Net};
use checkpoint_protocol::topic;
use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::IngestError;
use crate::config::BrokerConfig;

pub(super) struct Wire(AsyncClient);

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wire")
    }
}

/// Connects to the broker: the wire, its messages, and the task that produces them.
pub(super) fn open(
    broker: &BrokerConfig,
) -> Result<(Wire, mpsc::Receiver<Net>, JoinHandle<()>), IngestError> {
    let opts = super::mqtt_options(broker)?;
    let (client, eventloop) = AsyncClient::new(opts, 4096);
    let backoff = Backoff::new(
        Duration::from_millis(broker.backoff_min_ms),
        Duration::from_millis(broker.backoff_max_ms),
    );
    let (poller, rx) = checkpoint_link::spawn_poller(eventloop, backoff, 8192);
    Ok((Wire(client), rx, poller))
}

impl Wire {
    /// Subscribes to every box's events, status and telemetry (after each connect: the
    /// session may be new).
    pub(super) fn subscribe(&self) {
        for f in topic::central_filters() {
            if let Err(error) = self.0.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                tracing::error!(message = "Subscribe failed.", %error, filter = f);
            }
        }
    }

    /// Publishes at QoS 1 without waiting; an error means it was not queued.
    pub(super) async fn publish(
        &self,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        self.0
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(|e| e.to_string())
    }

    pub(super) fn disconnect(&self) {
        let _ = self.0.try_disconnect();
    }
}
