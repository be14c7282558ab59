//! Central's one broker session, as an actor: it owns the MQTT client, subscribes after every
//! connect, and takes a closed set of [`Command`]s from its [`Session`] handles (ingest's acks,
//! the trust and gallery publishers). What it hears comes out as [`Incoming`], which names no MQTT
//! library type: a second transport (NATS, for the scale-out issue) is another `open` behind the
//! same handle and stream.

use std::time::Duration;

use checkpoint_link::{Backoff, Net};
use checkpoint_protocol::topic;
use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::IngestError;
use crate::config::BrokerConfig;

/// What the session hears.
#[derive(Debug)]
pub enum Incoming {
    /// (Re)connected and subscribed.
    Connected,
    /// The connection failed or dropped; the session reconnects after a backoff.
    Down(String),
    /// A message on one of central's subscriptions.
    Message { topic: String, payload: Vec<u8> },
    /// The session ended (our own disconnect, or the broker closed it for good).
    Closed,
}

/// What the session does for its clients.
#[derive(Debug)]
pub enum Command {
    /// Publish at QoS 1; `done` hears whether it was queued.
    Publish {
        topic: String,
        retain: bool,
        payload: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// A clean disconnect; the session then reports [`Incoming::Closed`].
    Disconnect,
}

/// A handle on the session: cheap to clone, one per client.
#[derive(Debug, Clone)]
pub struct Session {
    commands: mpsc::Sender<Command>,
    connected: watch::Receiver<bool>,
}

impl Session {
    /// Publishes at QoS 1 without waiting for the broker; an error means it was not queued.
    pub async fn publish(
        &self,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        let (done, answer) = oneshot::channel();
        let cmd = Command::Publish {
            topic,
            retain,
            payload,
            done,
        };
        self.commands
            .send(cmd)
            .await
            .map_err(|_| "the broker session has ended".to_string())?;
        answer
            .await
            .map_err(|_| "the broker session has ended".to_string())?
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Follows the connection state (`true` once connected and subscribed).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    pub async fn disconnect(&self) {
        let _ = self.commands.send(Command::Disconnect).await;
    }
}

/// Connects to the broker: the handle, what the session hears, and the actor's task.
pub fn open(
    broker: &BrokerConfig,
) -> Result<(Session, mpsc::Receiver<Incoming>, JoinHandle<()>), IngestError> {
    let opts = super::mqtt_options(broker)?;
    let (client, eventloop) = AsyncClient::new(opts, 4096);
    let backoff = Backoff::new(broker.backoff_min, broker.backoff_max);
    let (poller, net) = checkpoint_link::spawn_poller(eventloop, backoff, 8192);
    let (commands, commands_rx) = mpsc::channel(1024);
    let (connected_tx, connected) = watch::channel(false);
    let (incoming_tx, incoming) = mpsc::channel(8192);
    let task = tokio::spawn(async move {
        run(client, net, commands_rx, connected_tx, incoming_tx).await;
        poller.abort();
    });
    Ok((
        Session {
            commands,
            connected,
        },
        incoming,
        task,
    ))
}

async fn run(
    client: AsyncClient,
    mut net: mpsc::Receiver<Net>,
    mut commands: mpsc::Receiver<Command>,
    connected: watch::Sender<bool>,
    incoming: mpsc::Sender<Incoming>,
) {
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Publish { topic, retain, payload, done }) => {
                    let r = client
                        .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                        .map_err(|e| e.to_string());
                    let _ = done.send(r);
                }
                Some(Command::Disconnect) | None => {
                    let _ = client.try_disconnect();
                    // The poller reports our DISCONNECT written; a dead link may never.
                    let quiet = tokio::time::sleep(Duration::from_millis(200));
                    tokio::pin!(quiet);
                    loop {
                        tokio::select! {
                            _ = &mut quiet => break,
                            n = net.recv() => if matches!(n, None | Some(Net::Disconnected)) { break },
                        }
                    }
                    let _ = connected.send(false);
                    let _ = incoming.send(Incoming::Closed).await;
                    return;
                }
            },
            n = net.recv() => {
                let out = match n {
                    Some(Net::Connected) => {
                        for f in topic::central_filters() {
                            if let Err(error) = client.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                                tracing::error!(message = "Subscribe failed.", %error, filter = f);
                            }
                        }
                        let _ = connected.send(true);
                        Incoming::Connected
                    }
                    Some(Net::Message(p)) => Incoming::Message {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                    },
                    Some(Net::Down(error)) => {
                        let _ = connected.send(false);
                        Incoming::Down(error)
                    }
                    Some(Net::Disconnected) | None => {
                        let _ = connected.send(false);
                        let _ = incoming.send(Incoming::Closed).await;
                        return;
                    }
                };
                if incoming.send(out).await.is_err() {
                    return;
                }
            }
        }
    }
}
