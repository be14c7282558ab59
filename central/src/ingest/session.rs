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

use super::BrokerConfig;
use super::IngestError;

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
            cmd = commands.recv() => {
                if !command(&client, cmd, &mut net, &connected, &incoming).await {
                    return;
                }
            }
            n = net.recv() => {
                let Some(out) = heard(&client, n, &connected) else {
                    let _ = incoming.try_send(Incoming::Closed);
                    return;
                };
                // Forwarded while commands are still served: the reader may be waiting for the
                // answer to a publish (an ack) before it reads again.
                let send = incoming.send(out);
                tokio::pin!(send);
                loop {
                    tokio::select! {
                        sent = &mut send => {
                            if sent.is_err() {
                                return;
                            }
                            break;
                        }
                        cmd = commands.recv() => {
                            if !command(&client, cmd, &mut net, &connected, &incoming).await {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Carries out one command; `false` when the session is over.
async fn command(
    client: &AsyncClient,
    cmd: Option<Command>,
    net: &mut mpsc::Receiver<Net>,
    connected: &watch::Sender<bool>,
    incoming: &mpsc::Sender<Incoming>,
) -> bool {
    match cmd {
        Some(Command::Publish {
            topic,
            retain,
            payload,
            done,
        }) => {
            let r = client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .map_err(|e| e.to_string());
            let _ = done.send(r);
            true
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
            // A reader that is behind sees the channel close instead.
            let _ = incoming.try_send(Incoming::Closed);
            false
        }
    }
}

/// What the poller reported, as the session's clients hear it; `None` when the session ended.
fn heard(
    client: &AsyncClient,
    n: Option<Net>,
    connected: &watch::Sender<bool>,
) -> Option<Incoming> {
    match n {
        Some(Net::Connected) => {
            for f in topic::central_filters() {
                if let Err(error) = client.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                    tracing::error!(message = "Subscribe failed.", %error, filter = f);
                }
            }
            let _ = connected.send(true);
            Some(Incoming::Connected)
        }
        Some(Net::Message(p)) => Some(Incoming::Message {
            topic: p.topic,
            payload: p.payload.to_vec(),
        }),
        Some(Net::Down(error)) => {
            let _ = connected.send(false);
            Some(Incoming::Down(error))
        }
        Some(Net::Disconnected) | None => {
            let _ = connected.send(false);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The actor over a client whose event loop nobody polls, fed by a hand-held poller channel.
    fn actor(
        incoming_room: usize,
    ) -> (
        Session,
        mpsc::Sender<Net>,
        mpsc::Receiver<Incoming>,
        JoinHandle<()>,
        rumqttc::EventLoop,
    ) {
        let (client, eventloop) =
            AsyncClient::new(rumqttc::MqttOptions::new("central", "localhost", 1), 16);
        let (net_tx, net) = mpsc::channel(16);
        let (commands, commands_rx) = mpsc::channel(16);
        let (connected_tx, connected) = watch::channel(false);
        let (incoming_tx, incoming) = mpsc::channel(incoming_room);
        let task = tokio::spawn(run(client, net, commands_rx, connected_tx, incoming_tx));
        (
            Session {
                commands,
                connected,
            },
            net_tx,
            incoming,
            task,
            // Held (never polled) so the client's request queue stays open.
            eventloop,
        )
    }

    fn message(n: u8) -> Net {
        Net::Message(rumqttc::Publish::new(
            "checkpoint/v1/box/gate-1/event",
            QoS::AtLeastOnce,
            vec![n],
        ))
    }

    #[tokio::test]
    async fn a_publish_is_served_while_the_reader_is_behind() {
        let (session, net, mut incoming, task, _eventloop) = actor(1);
        net.send(Net::Connected).await.unwrap();
        net.send(message(1)).await.unwrap();
        net.send(message(2)).await.unwrap();
        // Let the actor take them (this test runs on one thread): it is now waiting to hand
        // over message 1.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(session.is_connected());
        // Nobody reads: the channel holds one, the actor waits to hand over the next. An ack
        // published now must still get its answer (ingest waits for it before reading again).
        let acked = tokio::time::timeout(
            Duration::from_secs(5),
            session.publish("checkpoint/v1/box/gate-1/ack".into(), false, b"{}".to_vec()),
        )
        .await;
        assert_eq!(acked.expect("publish answered"), Ok(()));
        assert!(session.is_connected());
        assert!(matches!(incoming.recv().await, Some(Incoming::Connected)));
        for n in [1, 2] {
            match incoming.recv().await {
                Some(Incoming::Message { topic, payload }) => {
                    assert_eq!(
                        (topic.as_str(), payload),
                        ("checkpoint/v1/box/gate-1/event", vec![n])
                    )
                }
                other => panic!("expected message {n}, got {other:?}"),
            }
        }
        session.disconnect().await;
        assert!(matches!(
            incoming.recv().await,
            Some(Incoming::Closed) | None
        ));
        assert!(!session.is_connected());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn the_session_ends_when_the_poller_does() {
        let (session, net, mut incoming, task, _eventloop) = actor(4);
        net.send(Net::Connected).await.unwrap();
        net.send(Net::Down("refused".into())).await.unwrap();
        net.send(Net::Disconnected).await.unwrap();
        assert!(matches!(incoming.recv().await, Some(Incoming::Connected)));
        assert!(matches!(incoming.recv().await, Some(Incoming::Down(e)) if e == "refused"));
        assert!(matches!(incoming.recv().await, Some(Incoming::Closed)));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(!session.is_connected());
        assert!(session.publish("t".into(), false, vec![]).await.is_err());
    }
}
