//! Ingest: every box's events, status and telemetry from the broker into the store, with the
//! end-to-end ack back to the box once the events are durable.
//!
//! - One persistent MQTT session (clean session off): what boxes publish while central is down
//!   waits at the broker. Central acks the broker on receipt, but a box deletes an event only
//!   on central's own ack, published after the store's flush; a crash in between means the box
//!   resends, and the store deduplicates.
//! - Events are stored in batches (`batch_max`, `batch_wait_ms`): one flush per batch, one ack
//!   per box per batch, naming ranges of sequence numbers. One batch is written (off the
//!   runtime) while the next one fills.
//! - Every message is validated strictly (`records::decode`: size, syntax, schema, shape) and the
//!   box in the payload must be the box in the topic. A bad message is counted by reason and
//!   logged with its topic; it never stops ingest.
//! - Per-box sequence gaps are tracked; a gap that persists longer than `gap_grace_s` is logged
//!   as lost and recorded, so later gaps are still seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpoint_link::clock::SharedClock;
use checkpoint_link::sync::Recover;
use checkpoint_link::Net;
use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::records::{self, Ack, Event, SeqRange, MAX_ACK_RANGES};
use checkpoint_protocol::topic::{ConfigKind, Topic};
use rumqttc::MqttOptions;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerConfig, IngestConfig};
use crate::registry::Registry;
use crate::store::{Inserted, Store};

mod accept;
mod gaps;
mod wire;
use accept::{accept, LogThrottle};
use gaps::GapWatch;
use wire::Wire;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("broker TLS: {0}")]
    Tls(#[from] checkpoint_link::tls::TlsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The broker connection ended without central asking it to; central exits non-zero so
    /// systemd restarts it, never 0. (A broker that drops the connection is reconnected to.)
    #[error("broker connection lost for good: {0}")]
    Lost(&'static str),
}

/// Counts for operators (and, later, `/metrics`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub acks_sent: u64,
    /// Rejected messages by reason (`too_large`, `syntax`, `version`, `schema`, `invalid`,
    /// `box_mismatch`, `topic`).
    pub rejected: BTreeMap<String, u64>,
    pub gaps_lost: u64,
    /// Events the store could not take (full disk, I/O error): not acked, so boxes resend them.
    pub store_failures: u64,
}

pub fn mqtt_options(cfg: &BrokerConfig) -> Result<MqttOptions, IngestError> {
    let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    // Validated to 5..=3600 s, so rumqttc's assertion on sub-second values cannot fire.
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s));
    opts.set_clean_session(false);
    // Large enough that an oversized message reaches our decoder (which counts and drops it)
    // instead of breaking the connection, which would make the broker redeliver it forever.
    opts.set_max_packet_size(16 << 20, 256 << 10);
    opts.set_inflight(1000);
    opts.set_transport(cfg.transport.to_rumqttc()?);
    Ok(opts)
}

/// Ranges of sorted, deduplicated sequence numbers, at most [`MAX_ACK_RANGES`] per ack.
pub fn ack_ranges(mut seqs: Vec<u64>) -> Vec<Vec<SeqRange>> {
    seqs.sort_unstable();
    seqs.dedup();
    let mut ranges: Vec<SeqRange> = Vec::new();
    for s in seqs {
        match ranges.last_mut() {
            Some(r) if r.last.checked_add(1) == Some(s) => r.last = s,
            _ => ranges.push(SeqRange { first: s, last: s }),
        }
    }
    ranges
        .chunks(MAX_ACK_RANGES)
        .map(<[SeqRange]>::to_vec)
        .collect()
}

/// How long ingest waits after the store refused a batch.
const STORE_PAUSE: Duration = Duration::from_secs(2);

/// What central publishes as trust material, and when.
#[derive(Debug, Clone)]
pub struct TrustPublish {
    pub keys: Vec<checkpoint_protocol::passcode::TrustedKey>,
    /// Signs trust material and galleries; `None`: central publishes neither.
    pub signer: Option<Arc<crate::signing::ConfigSigner>>,
    pub every: Duration,
    /// Signalled after a revocation.
    pub changed: Arc<tokio::sync::Notify>,
}

/// Alerts from newly stored events go to the alert engine.
#[derive(Debug, Clone)]
pub struct AlertTap {
    pub tx: tokio::sync::mpsc::Sender<crate::alerts::rules::Reading>,
    pub limits: crate::alerts::rules::Limits,
}

/// What ingest shares with the rest of `serve`.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub counters: Arc<Mutex<Counters>>,
    pub trust: TrustPublish,
    pub alerts: Option<AlertTap>,
    /// Batch waits, gap grace, box allow-list refreshes and signing times are by this clock.
    pub clock: SharedClock,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// `galleries`: face galleries the API hands over for publishing (see [`crate::gallery`]).
pub async fn run(
    broker: BrokerConfig,
    cfg: IngestConfig,
    shared: Shared,
    mut galleries: tokio::sync::mpsc::Receiver<crate::gallery::GalleryPublish>,
    token: CancellationToken,
) -> Result<(), IngestError> {
    let Shared {
        store,
        registry,
        counters,
        trust,
        alerts,
        clock,
    } = shared;
    let what = format!("{}:{}", broker.host, broker.port);
    let (wire, mut rx, poller) = wire::open(&broker)?;

    let states = crate::store::blocking(&store, |s| s.seq_states()).await?;
    let mut gaps = GapWatch::new(states, Duration::from_secs(cfg.gap_grace_s));
    // Every box the store knows is in the registry from the start, not from its next event.
    gaps.report(&registry);
    let mut batch: Vec<Event> = Vec::new();
    let mut batch_started = clock.instant();
    let wait = Duration::from_millis(cfg.batch_wait_ms);
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.batch_wait_ms.max(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gap_tick = tokio::time::interval(Duration::from_secs(5));
    let mut republish = tokio::time::interval(trust.every);
    republish.tick().await;
    let mut connected = false;
    let mut warned = false;
    let mut rejections = LogThrottle::new(Duration::from_secs(60));
    let mut known = accept::KnownBoxes::new(cfg.pki_dir.clone());
    // The batch being written while the next one fills (at most one: the store has one writer).
    let mut writing: Option<Write> = None;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            net = rx.recv() => match net {
                None => break,
                Some(Net::Connected) => {
                    warned = false;
                    connected = true;
                    tracing::info!(message = "Connected to the broker.", broker = %what);
                    wire.subscribe();
                    publish_trust(&trust, &store, &wire, clock.now()).await;
                }
                Some(Net::Disconnected) => break,
                Some(Net::Down(error)) => {
                    connected = false;
                    if !warned {
                        tracing::warn!(message = "Broker unreachable; boxes keep their events until central is back.", %error);
                        warned = true;
                    }
                }
                Some(Net::Message(p)) => {
                    if let Some(e) = accept(&p, &registry, &mut known, &counters, &mut rejections, clock.instant()) {
                        if batch.is_empty() {
                            batch_started = clock.instant();
                        }
                        batch.push(e);
                        if batch.len() >= cfg.batch_max {
                            if let Some(w) = writing.take() {
                                finish(w.done().await, &wire, &counters, &mut gaps, alerts.as_ref()).await;
                                gaps.report(&registry);
                            }
                            writing = Some(Write::start(&mut batch, &store));
                        }
                    }
                }
            },
            written = Write::next(&mut writing) => {
                finish(written, &wire, &counters, &mut gaps, alerts.as_ref()).await;
                gaps.report(&registry);
            }
            _ = tick.tick() => {
                if writing.is_none() && !batch.is_empty() && batch_started.elapsed() >= wait {
                    writing = Some(Write::start(&mut batch, &store));
                }
            }
            _ = trust.changed.notified() => {
                if connected {
                    publish_trust(&trust, &store, &wire, clock.now()).await;
                }
            }
            _ = republish.tick() => {
                if connected {
                    publish_trust(&trust, &store, &wire, clock.now()).await;
                }
            }
            Some(g) = galleries.recv() => {
                let result = if connected {
                    match sign_gallery(trust.signer.clone(), &g, clock.now()).await {
                        Ok(envelope) => {
                            let topic = Topic::BoxConfig(g.box_id.clone(), ConfigKind::Gallery).to_string();
                            wire.publish(topic, true, envelope).await
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    Err("central is not connected to the broker".to_string())
                };
                match &result {
                    Ok(()) => tracing::info!(message = "Face gallery published.", box_id = %g.box_id),
                    Err(error) => tracing::warn!(message = "Face gallery not published.", box_id = %g.box_id, %error),
                }
                let _ = g.done.send(result);
            }
            _ = gap_tick.tick() => {
                for (b, first, last) in gaps.expired(clock.instant()) {
                    let st = {
                        let store = store.clone();
                        let b = b.clone();
                        tokio::task::spawn_blocking(move || store.mark_lost(&b, first, last)).await
                    };
                    match st {
                        Ok(Ok(st)) => {
                            tracing::warn!(message = "Sequence gap: events lost.", box_id = %b, first, last);
                            registry.sequence(&b, &st);
                            gaps.replace(&b, st);
                            counters.lock_or_recover().gaps_lost += (last - first).saturating_add(1);
                        }
                        Ok(Err(error)) => tracing::error!(message = "Cannot record a gap.", %error),
                        Err(error) => tracing::error!(message = "Gap task failed.", %error),
                    }
                }
            }
        }
    }
    if let Some(w) = writing.take() {
        finish(w.done().await, &wire, &counters, &mut gaps, alerts.as_ref()).await;
    }
    if !batch.is_empty() {
        let w = Write::start(&mut batch, &store);
        finish(w.done().await, &wire, &counters, &mut gaps, alerts.as_ref()).await;
    }
    wire.disconnect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    poller.abort();
    if token.is_cancelled() {
        Ok(())
    } else {
        Err(IngestError::Lost(
            "the broker closed central's session; restarting is the way back",
        ))
    }
}

/// Publishes the current trust material, retained. A failure is logged; the next connect,
/// revocation or period publishes again.
async fn publish_trust(
    trust: &TrustPublish,
    store: &Arc<dyn Store>,
    wire: &Wire,
    now: time::OffsetDateTime,
) {
    let Some(signer) = trust.signer.clone() else {
        return;
    };
    if trust.keys.is_empty() {
        return;
    }
    let (keys, store) = (trust.keys.clone(), store.clone());
    let record = tokio::task::spawn_blocking(move || {
        crate::trust::current(&keys, store.as_ref(), &signer, now)
    })
    .await;
    match record {
        Ok(Ok(cfg)) => {
            let topic =
                Topic::SharedConfig(checkpoint_protocol::topic::ConfigKind::Trust).to_string();
            match wire.publish(topic, true, records::encode(&cfg)).await {
                Ok(()) => tracing::info!(
                    message = "Trust material published.",
                    serial = cfg.serial,
                    keys = cfg.keys.len(),
                    revocations = cfg.revocations.len()
                ),
                Err(error) => tracing::warn!(message = "Trust material not published.", %error),
            }
        }
        Ok(Err(error)) => tracing::error!(message = "Cannot build the trust material.", %error),
        Err(error) => tracing::error!(message = "Trust task failed.", %error),
    }
}

/// Wraps a gallery for its box and signs it (off the runtime: the serial is saved).
async fn sign_gallery(
    signer: Option<Arc<crate::signing::ConfigSigner>>,
    g: &crate::gallery::GalleryPublish,
    now: time::OffsetDateTime,
) -> Result<Vec<u8>, String> {
    let signer = signer.ok_or_else(|| {
        "central has no configuration-signing key ([trust] signing_key); boxes apply only signed galleries".to_string()
    })?;
    let (box_id, bytes) = (g.box_id.clone(), g.bytes.clone());
    tokio::task::spawn_blocking(move || signer.gallery(&box_id, &bytes, now))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// A batch on its way into the store (off the runtime), with its events for the acks.
struct Write {
    events: Arc<Vec<Event>>,
    task: tokio::task::JoinHandle<Result<Vec<Inserted>, crate::store::StoreError>>,
}

/// A batch the store took or refused.
struct Written {
    events: Arc<Vec<Event>>,
    result: Result<Vec<Inserted>, String>,
}

impl Write {
    fn start(batch: &mut Vec<Event>, store: &Arc<dyn Store>) -> Write {
        let events = Arc::new(std::mem::take(batch));
        let task = {
            let (store, events) = (store.clone(), events.clone());
            tokio::task::spawn_blocking(move || store.insert(&events))
        };
        Write { events, task }
    }

    async fn done(self) -> Written {
        Written {
            result: outcome(self.task.await),
            events: self.events,
        }
    }

    /// Waits for the write in `slot`, if any (never returns without one), and empties it.
    async fn next(slot: &mut Option<Write>) -> Written {
        let Some(w) = slot.as_mut() else {
            return std::future::pending().await;
        };
        let result = outcome((&mut w.task).await);
        let events = w.events.clone();
        *slot = None;
        Written { events, result }
    }
}

fn outcome(
    r: Result<Result<Vec<Inserted>, crate::store::StoreError>, tokio::task::JoinError>,
) -> Result<Vec<Inserted>, String> {
    match r {
        Ok(Ok(outcomes)) => Ok(outcomes),
        Ok(Err(error)) => Err(error.to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// Acks what a write stored, counts it, and hands its readings to the alert engine.
async fn finish(
    written: Written,
    wire: &Wire,
    counters: &Mutex<Counters>,
    gaps: &mut GapWatch,
    alerts: Option<&AlertTap>,
) {
    let Written { events, result } = written;
    let outcomes = match result {
        Ok(o) => o,
        Err(error) => {
            // Not stored, not acked: the boxes keep the events and resend them. Pausing lets a
            // full disk or a stalled device recover instead of failing every message at once.
            counters.lock_or_recover().store_failures += events.len() as u64;
            tracing::error!(
                message = "The store refused a batch; not acked, boxes will resend. Pausing ingest.",
                events = events.len(),
                %error,
                pause_s = STORE_PAUSE.as_secs()
            );
            tokio::time::sleep(STORE_PAUSE).await;
            return;
        }
    };
    let mut per_box: HashMap<&BoxId, Vec<u64>> = HashMap::new();
    {
        let mut c = counters.lock_or_recover();
        for (e, o) in events.iter().zip(&outcomes) {
            match o {
                Inserted::New => {
                    c.stored += 1;
                    gaps.add(&e.box_id, e.seq);
                }
                Inserted::Duplicate => c.duplicates += 1,
                Inserted::Conflict => {
                    c.conflicts += 1;
                    tracing::warn!(message = "Sequence number reused with another event id; kept apart.", box_id = %e.box_id, seq = e.seq);
                }
            }
            per_box.entry(&e.box_id).or_default().push(e.seq);
        }
    }
    for (b, seqs) in per_box {
        for ranges in ack_ranges(seqs) {
            let ack = Ack {
                schema: records::Schema,
                box_id: b.clone(),
                ranges,
            };
            match wire
                .publish(
                    Topic::Ack(b.clone()).to_string(),
                    false,
                    records::encode(&ack),
                )
                .await
            {
                Ok(()) => counters.lock_or_recover().acks_sent += 1,
                // The box resends after its timeout and gets the ack then.
                Err(error) => tracing::warn!(message = "Ack not sent.", box_id = %b, %error),
            }
        }
    }
    if let Some(tap) = alerts {
        for (e, o) in events.iter().zip(&outcomes) {
            if *o != Inserted::New {
                continue;
            }
            if let Some(r) = crate::alerts::rules::Reading::of(&tap.limits, e) {
                // After the acks (boxes are not kept waiting); waits when the engine is behind:
                // ingest slows rather than drop an alert. A crash before the engine handled it
                // leaves the reading in the store for the next start.
                if tap.tx.send(r).await.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_compress_into_ranges_and_split() {
        let r = ack_ranges(vec![5, 1, 2, 3, 3, 9, 10]);
        assert_eq!(r.len(), 1);
        let pairs: Vec<(u64, u64)> = r[0].iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(pairs, [(1, 3), (5, 5), (9, 10)]);
        let many: Vec<u64> = (0..3000).map(|i| i * 2 + 1).collect();
        let chunks = ack_ranges(many);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [1024, 1024, 952]
        );
    }
}
