//! Where ingest's messages come from and where its acks and configuration go: a network MQTT
//! client to an external broker, or the in-process link to the embedded broker. Both feed the
//! same [`Net`] channel, so the ingest loop cannot tell them apart (nor can boxes).

use std::time::Duration;

use checkpoint_link::{Backoff, Net};
use checkpoint_protocol::topic;
use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::IngestError;
use crate::config::Source;

pub(super) enum Wire {
    Mqtt(AsyncClient),
    #[cfg(feature = "embedded-broker")]
    Link(tokio::sync::Mutex<rumqttd::local::LinkTx>),
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Wire::Mqtt(_) => "Wire::Mqtt",
            #[cfg(feature = "embedded-broker")]
            Wire::Link(_) => "Wire::Link",
        })
    }
}

/// Connects to the source: the wire, its messages, and the task that produces them.
pub(super) fn open(
    source: Source,
) -> Result<(Wire, mpsc::Receiver<Net>, JoinHandle<()>), IngestError> {
    match source {
        Source::External(broker) => {
            let opts = super::mqtt_options(&broker)?;
            let (client, eventloop) = AsyncClient::new(opts, 4096);
            let backoff = Backoff::new(
                Duration::from_millis(broker.backoff_min_ms),
                Duration::from_millis(broker.backoff_max_ms),
            );
            let (poller, rx) = checkpoint_link::spawn_poller(eventloop, backoff, 8192);
            Ok((Wire::Mqtt(client), rx, poller))
        }
        #[cfg(feature = "embedded-broker")]
        Source::Embedded(cfg) => {
            let (mut tx, rx) = crate::embedded::start(&cfg)?;
            for f in topic::central_filters() {
                // Retained status comes with a new subscription, as from Mosquitto.
                tx.subscribe(f)
                    .map_err(|e| IngestError::Embedded(e.to_string()))?;
            }
            let (net_tx, net_rx) = mpsc::channel(8192);
            let reader = tokio::spawn(read_link(rx, net_tx));
            Ok((Wire::Link(tokio::sync::Mutex::new(tx)), net_rx, reader))
        }
        #[cfg(not(feature = "embedded-broker"))]
        Source::Embedded(_) => Err(IngestError::Embedded(
            "this build has no embedded broker (cargo feature `embedded-broker`)".into(),
        )),
    }
}

/// Turns the link's notifications into [`Net`] messages.
#[cfg(feature = "embedded-broker")]
async fn read_link(mut rx: rumqttd::local::LinkRx, tx: mpsc::Sender<Net>) {
    use rumqttd::Notification;
    if tx.send(Net::Connected).await.is_err() {
        return;
    }
    loop {
        match rx.next().await {
            Ok(Some(Notification::Forward(f))) => {
                let topic = String::from_utf8_lossy(&f.publish.topic).into_owned();
                let mut p =
                    rumqttc::Publish::new(topic, QoS::AtLeastOnce, f.publish.payload.to_vec());
                p.retain = f.publish.retain;
                if tx.send(Net::Message(p)).await.is_err() {
                    return;
                }
            }
            // The router paused this link because its buffer filled: ask for more.
            Ok(Some(Notification::Unschedule)) => {
                if let Err(error) = rx.wake().await {
                    tracing::error!(message = "Embedded broker link lost.", %error);
                    let _ = tx.send(Net::Disconnected).await;
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(message = "Embedded broker link lost.", %error);
                let _ = tx.send(Net::Disconnected).await;
                return;
            }
        }
    }
}

impl Wire {
    /// Subscribes to every box's events, status and telemetry (after each network connect;
    /// the link subscribed once when it was opened).
    pub(super) fn subscribe(&self) {
        if let Wire::Mqtt(client) = self {
            for f in topic::central_filters() {
                if let Err(error) = client.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                    tracing::error!(message = "Subscribe failed.", %error, filter = f);
                }
            }
        }
    }

    /// Publishes at QoS 1 (the embedded router delivers at each subscriber's QoS) without
    /// waiting; an error means it was not queued.
    pub(super) async fn publish(
        &self,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        match self {
            Wire::Mqtt(client) => client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .map_err(|e| e.to_string()),
            #[cfg(feature = "embedded-broker")]
            Wire::Link(tx) => {
                let mut tx = tx.lock().await;
                if retain {
                    let p = rumqttd::protocol::Publish::new(
                        bytes::Bytes::from(topic),
                        bytes::Bytes::from(payload),
                        true,
                    );
                    tx.send(rumqttd::protocol::Packet::Publish(p, None))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                } else {
                    tx.try_publish(topic, payload)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            }
        }
    }

    pub(super) fn disconnect(&self) {
        if let Wire::Mqtt(client) = self {
            let _ = client.try_disconnect();
        }
    }
}
