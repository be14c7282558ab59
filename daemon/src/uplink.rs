//! The uplink: one MQTT connection (rumqttc, MQTT 3.1.1) over mutual TLS, or plain TCP when the
//! configuration says so explicitly.
//!
//! - Out: events from the outbox (QoS 1, see [`sender`] for the order and rate), the retained
//!   `online` status on every connect (the Last Will is the retained `offline`), telemetry every
//!   `telemetry_interval`.
//! - In: central's end-to-end acks (the only thing that deletes events from the outbox), the
//!   retained trust configuration, and the box's own configuration and command topics.
//! - The session is persistent (clean session off), so acks and configuration published while
//!   the box was away are delivered when it returns. Reconnects back off exponentially with
//!   jitter.
//!
//! A task polls the rumqttc event loop and forwards what happens over a channel; this module's
//! loop owns the scheduling state and never blocks on the network.

use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::{self, Ack, BoxState, Status};
use checkpoint_protocol::topic::{self, ConfigKind, Topic};
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::ClockWatch;
use checkpoint_link::{Backoff, Net};

use crate::outbox::Outbox;
use crate::stats::Stats;
use crate::trust::{Applied, Trust};

mod config;
pub use config::UplinkConfig;
pub mod sender;
mod telemetry;

pub use telemetry::{disk_free, saved_path as telemetry_path};

pub use sender::Sender;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("uplink TLS: {0}")]
    Tls(#[from] checkpoint_link::tls::TlsError),
}

/// Everything the uplink shares with the rest of the daemon.
#[derive(Debug, Clone)]
pub struct Shared {
    pub box_id: BoxId,
    pub outbox: Arc<Outbox>,
    pub trust: Arc<Trust>,
    pub stats: Arc<Stats>,
    pub clock: Arc<ClockWatch>,
    /// Signalled by the door loop after each append, so live events go out at once.
    pub appended: Arc<Notify>,
    pub state_dir: std::path::PathBuf,
    /// The face gallery in force, when face recognition is on; central's retained updates go here.
    #[cfg(feature = "face")]
    pub gallery: Option<Arc<crate::face::GalleryStore>>,
}

pub fn mqtt_options(cfg: &UplinkConfig, box_id: &BoxId) -> Result<MqttOptions, UplinkError> {
    let client_id = cfg.client_id.clone().unwrap_or_else(|| box_id.to_string());
    let mut opts = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    // Validated to 5..=3600 s, so rumqttc's assertion on sub-second values cannot fire.
    opts.set_keep_alive(cfg.keep_alive());
    opts.set_clean_session(false);
    // Incoming: a retained face gallery (plus topic and header); everything else is small.
    opts.set_max_packet_size(
        checkpoint_protocol::gallery::signed::MAX_BYTES + 64 * 1024,
        256 * 1024,
    );
    opts.set_inflight(100);
    let will = Status {
        schema: records::Schema,
        box_id: box_id.clone(),
        state: BoxState::Offline,
        version: None,
    };
    opts.set_last_will(LastWill::new(
        Topic::Status(box_id.clone()).to_string(),
        records::encode(&will),
        QoS::AtLeastOnce,
        true,
    ));
    opts.set_transport(cfg.transport.to_rumqttc()?);
    Ok(opts)
}

/// Runs the uplink until `token` is cancelled; then publishes the retained `offline` status
/// (a clean disconnect does not trigger the Last Will) and disconnects.
pub async fn run(
    cfg: UplinkConfig,
    opts: MqttOptions,
    shared: Shared,
    token: CancellationToken,
) -> Result<(), UplinkError> {
    let (client, eventloop) = AsyncClient::new(opts, 256);
    let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    let (poller, mut rx) = checkpoint_link::spawn_poller(eventloop, backoff, 256);

    let mut sender = Sender::new(cfg.drain_per_s, cfg.resend_after, Instant::now());
    let mut connected = false;
    let mut down_since: Option<Instant> = Some(Instant::now());
    // One warning per outage (and one when the broker is unreachable at start); the retries
    // in between are debug events.
    let mut warned = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut telemetry = tokio::time::interval(cfg.telemetry_interval);
    telemetry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let status_topic = Topic::Status(shared.box_id.clone()).to_string();

    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            net = rx.recv() => match net {
                None => break,
                Some(Net::Connected) => {
                    connected = true;
                    warned = false;
                    let outage = down_since.take().map(|t| t.elapsed());
                    let last_seq = shared.outbox.stats().last_seq;
                    sender.connected(last_seq, Instant::now());
                    tracing::info!(
                        message = "Connected to the broker.",
                        host = %cfg.host,
                        port = cfg.port,
                        outage_s = outage.map(|d| d.as_secs()),
                        backlog = shared.outbox.stats().depth,
                    );
                    on_connect(&client, &shared, &status_topic);
                    pump(&mut sender, &client, &shared);
                }
                Some(Net::Down(error)) => {
                    if connected {
                        down_since = Some(Instant::now());
                    }
                    if warned {
                        tracing::debug!(message = "Broker still unreachable.", %error);
                    } else {
                        tracing::warn!(
                            message = "Broker unreachable; events stay in the outbox and the door keeps working.",
                            host = %cfg.host,
                            port = cfg.port,
                            %error,
                        );
                        warned = true;
                    }
                    connected = false;
                }
                Some(Net::Disconnected) => break,
                Some(Net::Message(p)) => {
                    incoming(p, &shared, &mut sender).await;
                    if connected {
                        pump(&mut sender, &client, &shared);
                    }
                }
            },
            _ = shared.appended.notified(), if connected => pump(&mut sender, &client, &shared),
            _ = tick.tick(), if connected => pump(&mut sender, &client, &shared),
            _ = telemetry.tick() => {
                let clock = shared.clock.clone();
                // `timedatectl` may take a moment: keep it off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || clock.refresh()).await;
                let record = telemetry::build(&shared);
                let bytes = records::encode(&record);
                // The last figures also on disk, for `doctor` beside the running daemon.
                telemetry::save(&shared.state_dir, &bytes);
                if connected {
                    let topic = Topic::Telemetry(shared.box_id.clone()).to_string();
                    if let Err(error) = client.try_publish(topic, QoS::AtMostOnce, false, bytes) {
                        tracing::debug!(message = "Telemetry not sent.", %error);
                    }
                }
            }
        }
    }

    if connected {
        let offline = Status {
            schema: records::Schema,
            box_id: shared.box_id.clone(),
            state: BoxState::Offline,
            version: Some(VERSION.to_string()),
        };
        let _ = client.try_publish(
            &status_topic,
            QoS::AtLeastOnce,
            true,
            records::encode(&offline),
        );
        let _ = client.try_disconnect();
        // Give the event loop a moment to write the status and the DISCONNECT.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(net) = rx.recv().await {
                if matches!(net, Net::Down(_) | Net::Disconnected) {
                    break;
                }
            }
        })
        .await;
    }
    poller.abort();
    Ok(())
}

fn on_connect(client: &AsyncClient, shared: &Shared, status_topic: &str) {
    let online = Status {
        schema: records::Schema,
        box_id: shared.box_id.clone(),
        state: BoxState::Online,
        version: Some(VERSION.to_string()),
    };
    if let Err(error) = client.try_publish(
        status_topic,
        QoS::AtLeastOnce,
        true,
        records::encode(&online),
    ) {
        tracing::warn!(message = "Online status not sent.", %error);
    }
    for filter in topic::box_filters(&shared.box_id) {
        if let Err(error) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
            tracing::warn!(message = "Subscribe failed.", %error, filter);
        }
    }
}

fn pump(sender: &mut Sender, client: &AsyncClient, shared: &Shared) {
    let topic = Topic::Event(shared.box_id.clone()).to_string();
    let mut publish = |seq: u64, record: Vec<u8>| match client.try_publish(
        &topic,
        QoS::AtLeastOnce,
        false,
        record,
    ) {
        Ok(()) => {
            tracing::debug!(message = "Event published.", seq);
            true
        }
        Err(_) => false,
    };
    if let Err(error) = sender::pump(sender, &*shared.outbox, Instant::now(), &mut publish) {
        tracing::error!(message = "Cannot read the outbox.", %error);
    }
}

async fn incoming(p: rumqttc::Publish, shared: &Shared, sender: &mut Sender) {
    let topic = match Topic::parse(&p.topic) {
        Ok(t) => t,
        Err(error) => {
            tracing::warn!(message = "Message on an unexpected topic ignored.", topic = %p.topic, %error);
            return;
        }
    };
    match topic {
        Topic::Ack(b) if b == shared.box_id => {
            // Central's acks are never retained; a retained one is a forgery or a stale mistake.
            if p.retain {
                tracing::warn!(message = "Retained ack ignored.");
                return;
            }
            let ack: Ack = match records::decode(&p.payload) {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(message = "Malformed ack ignored.", kind = error.kind(), %error);
                    return;
                }
            };
            if ack.box_id != shared.box_id {
                tracing::warn!(message = "Ack for another box ignored.", other = %ack.box_id);
                return;
            }
            let named: Vec<(u64, u64)> = ack.ranges.iter().map(|r| (r.first, r.last)).collect();
            let ranges = sender.acked(&named);
            if ranges != named {
                tracing::warn!(
                    message = "Ack names events this box has not sent; those are kept.",
                    named = named.len(),
                    accepted = ranges.len()
                );
            }
            if ranges.is_empty() {
                return;
            }
            let outbox = shared.outbox.clone();
            match tokio::task::spawn_blocking(move || outbox.ack(&ranges)).await {
                Ok(Ok(n)) => {
                    tracing::debug!(message = "Events acknowledged by central.", removed = n)
                }
                Ok(Err(error)) => {
                    tracing::error!(message = "Cannot delete acknowledged events.", %error)
                }
                Err(error) => tracing::error!(message = "Ack task failed.", %error),
            }
        }
        Topic::SharedConfig(ConfigKind::Trust) => {
            let trust = shared.trust.clone();
            let bytes = p.payload.to_vec();
            let now = time::OffsetDateTime::now_utc();
            match tokio::task::spawn_blocking(move || trust.apply(&bytes, now)).await {
                Ok(Ok(Applied::Updated)) => {
                    let t = shared.trust.current();
                    tracing::info!(
                        message = "Trust material updated.",
                        keys = t.store.keys().count(),
                        revocations = t.store.revocations().count(),
                    );
                }
                Ok(Ok(Applied::Unchanged)) => {
                    tracing::debug!(message = "Trust material unchanged.")
                }
                Ok(Err(error)) => {
                    tracing::warn!(message = "Trust configuration refused; keeping the copy in force.", %error, retained = p.retain)
                }
                Err(error) => tracing::error!(message = "Trust task failed.", %error),
            }
        }
        Topic::BoxConfig(b, ConfigKind::Gallery) if b == shared.box_id => {
            gallery_update(shared, &p.payload).await;
        }
        Topic::Command(b) if b == shared.box_id => {
            tracing::warn!(
                message = "Command ignored: no commands are supported yet.",
                bytes = p.payload.len()
            );
        }
        other => tracing::warn!(message = "Message for someone else ignored.", topic = %other),
    }
}

/// A retained gallery from central: checked, saved and put in force, or refused with the
/// gallery in force kept.
#[cfg(feature = "face")]
async fn gallery_update(shared: &Shared, payload: &[u8]) {
    use crate::face::Applied;
    let Some(gallery) = shared.gallery.clone() else {
        tracing::info!(message = "Face gallery update ignored: face recognition is off.");
        return;
    };
    let bytes = payload.to_vec();
    let g = gallery.clone();
    let (trust, box_id) = (shared.trust.clone(), shared.box_id.clone());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let applied = tokio::task::spawn_blocking(move || {
        let check = crate::face::UpdateCheck {
            box_id: &box_id,
            trust: &trust,
            now,
        };
        g.apply(&bytes, check)
    });
    match applied.await {
        Ok(Ok(Applied::Updated)) => tracing::info!(
            message = "Face gallery updated.",
            identities = gallery.current().identities(),
            embeddings = gallery.current().len(),
        ),
        Ok(Ok(Applied::Unchanged)) => tracing::debug!(message = "Face gallery unchanged."),
        Ok(Err(error)) => {
            tracing::warn!(message = "Face gallery refused; keeping the one in force.", %error)
        }
        Err(error) => tracing::error!(message = "Gallery task failed.", %error),
    }
}

#[cfg(not(feature = "face"))]
async fn gallery_update(_shared: &Shared, _payload: &[u8]) {
    // Nothing is applied, so nothing needs checking; a forgery here changes nothing.
    tracing::info!(message = "Face gallery update ignored: this build has no face recognition.");
}

#[cfg(test)]
mod tests;
