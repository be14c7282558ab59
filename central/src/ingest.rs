//! Ingest: every box's events, status and telemetry from the broker into the store, with the
//! end-to-end ack back to the box once the events are durable.
//!
//! - One persistent MQTT session (clean session off): what boxes publish while central is down
//!   waits at the broker. Central acks the broker on receipt, but a box deletes an event only
//!   on central's own ack, published after the store's flush; a crash in between means the box
//!   resends, and the store deduplicates.
//! - Events are stored in batches (`batch_max`, `batch_wait`): one flush per batch, one ack
//!   per box per batch, naming ranges of sequence numbers. One batch is written (off the
//!   runtime) while the next one fills.
//! - Every message is validated strictly (`records::decode`: size, syntax, schema, shape) and the
//!   box in the payload must be the box in the topic. A bad message is counted by reason and
//!   logged with its topic; it never stops ingest.
//! - Per-box sequence gaps are tracked; a gap that persists longer than `gap_grace` is logged
//!   as lost and recorded, so later gaps are still seen.
//!
//! Every rule above is the pure core's ([`core`], table-tested); this module is its shell: it
//! reads the broker [`session`], runs the store calls off the runtime, and publishes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpoint_link::clock::SharedClock;
use checkpoint_link::sync::Recover;
use checkpoint_protocol::records::{self, SeqRange, MAX_ACK_RANGES};
use checkpoint_protocol::topic::Topic;
use rumqttc::MqttOptions;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;
use crate::store::{Inserted, Store};

mod config;
pub use config::{BrokerConfig, IngestConfig};
mod accept;
mod core;
mod gaps;
mod publish;
pub mod session;
use self::core::{Core, Effect, Input};
use session::{Incoming, Session};

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
    opts.set_keep_alive(cfg.keep_alive);
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

/// What central publishes as trust material, and when.
#[derive(Debug, Clone)]
pub struct TrustPublish {
    pub keys: Vec<checkpoint_protocol::passcode::TrustedKey>,
    /// Signs trust material and galleries; `None`: central publishes neither.
    pub signer: Option<Arc<checkpoint_pki::signing::ConfigSigner>>,
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
    galleries: tokio::sync::mpsc::Receiver<crate::gallery::GalleryPublish>,
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
    let (session, mut incoming, session_task) = session::open(&broker)?;
    let states = crate::store::blocking(&store, |s| s.seq_states()).await?;
    let setup = core::Setup {
        batch_max: cfg.batch_max,
        batch_wait: cfg.batch_wait,
        gap_grace: cfg.gap_grace,
        alerts: alerts.as_ref().map(|a| a.limits.clone()),
    };
    let mut core = Core::new(setup, states, counters.clone());
    let mut known = accept::KnownBoxes::new(cfg.pki_dir.clone());
    let publishers = token.child_token();
    let signer = trust.signer.clone();
    let trust_task = tokio::spawn(publish::trust(
        trust,
        store.clone(),
        session.clone(),
        clock.clone(),
        publishers.clone(),
    ));
    let gallery_task = tokio::spawn(publish::galleries(
        galleries,
        signer,
        session.clone(),
        clock.clone(),
        publishers.clone(),
    ));
    let mut shell = Shell {
        store,
        registry,
        counters,
        session: session.clone(),
        alerts: alerts.map(|a| a.tx),
        writing: None,
        clock,
    };
    let first = core.start();
    shell.apply(&mut core, &mut known, first).await;
    let mut tick = tokio::time::interval(cfg.batch_wait.max(Duration::from_millis(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        let effects = tokio::select! {
            _ = token.cancelled() => break,
            written = Shell::next_write(&mut shell.writing) => {
                core.handle(Input::Written(written), shell.clock.instant(), &mut known)
            }
            _ = tick.tick() => core.handle(Input::Tick, shell.clock.instant(), &mut known),
            heard = incoming.recv() => match heard {
                None | Some(Incoming::Closed) => break,
                Some(Incoming::Connected) => {
                    warned = false;
                    tracing::info!(message = "Connected to the broker.", broker = %what);
                    continue;
                }
                Some(Incoming::Down(error)) => {
                    if !warned {
                        tracing::warn!(message = "Broker unreachable; boxes keep their events until central is back.", %error);
                        warned = true;
                    }
                    continue;
                }
                Some(Incoming::Message { topic, payload }) => core.handle(
                    Input::Message { topic: &topic, payload: &payload },
                    shell.clock.instant(),
                    &mut known,
                ),
            },
        };
        shell.apply(&mut core, &mut known, effects).await;
    }
    // What is batched is stored (and acked, if the session is still up) before leaving.
    loop {
        let effects = core.handle(Input::Closing, shell.clock.instant(), &mut known);
        if effects.is_empty() {
            break;
        }
        shell.apply(&mut core, &mut known, effects).await;
    }
    publishers.cancel();
    let _ = trust_task.await;
    let _ = gallery_task.await;
    session.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), session_task).await;
    if token.is_cancelled() {
        Ok(())
    } else {
        Err(IngestError::Lost(
            "the broker closed central's session; restarting is the way back",
        ))
    }
}

/// The I/O of ingest: carries out the core's effects in order. An answer the core waits for (a
/// write's result, a recorded gap) is handed in at once, and its effects come before the rest.
struct Shell {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    counters: Arc<Mutex<Counters>>,
    session: Session,
    alerts: Option<tokio::sync::mpsc::Sender<crate::alerts::rules::Reading>>,
    /// The store write in flight (off the runtime).
    writing: Option<tokio::task::JoinHandle<Result<Vec<Inserted>, crate::store::StoreError>>>,
    clock: SharedClock,
}

impl Shell {
    async fn apply(
        &mut self,
        core: &mut Core,
        known: &mut accept::KnownBoxes,
        effects: Vec<Effect>,
    ) {
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            let answer = match effect {
                Effect::Write(events) => {
                    let store = self.store.clone();
                    self.writing = Some(tokio::task::spawn_blocking(move || store.insert(&events)));
                    None
                }
                Effect::AwaitWrite => match self.writing.take() {
                    Some(task) => Some(Input::Written(outcome(task.await))),
                    None => None,
                },
                Effect::Ack(ack) => {
                    let topic = Topic::Ack(ack.box_id.clone()).to_string();
                    match self
                        .session
                        .publish(topic, false, records::encode(&ack))
                        .await
                    {
                        Ok(()) => self.counters.lock_or_recover().acks_sent += 1,
                        // The box resends after its timeout and gets the ack then.
                        Err(error) => {
                            tracing::warn!(message = "Ack not sent.", box_id = %ack.box_id, %error)
                        }
                    }
                    None
                }
                Effect::Alert(reading) => {
                    if let Some(tx) = &self.alerts {
                        // Waits when the engine is behind: ingest slows rather than drop an alert.
                        if tx.send(reading).await.is_err() {
                            tracing::debug!(
                                message = "Alert engine gone; reading left for the next start."
                            );
                        }
                    }
                    None
                }
                Effect::MarkLost {
                    box_id,
                    first,
                    last,
                } => {
                    let (store, b) = (self.store.clone(), box_id.clone());
                    let state =
                        tokio::task::spawn_blocking(move || store.mark_lost(&b, first, last))
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.to_string()));
                    Some(Input::Lost {
                        box_id,
                        first,
                        last,
                        state,
                    })
                }
                Effect::Pause(d) => {
                    tokio::time::sleep(d).await;
                    None
                }
                Effect::Status(s) => {
                    self.registry.status(s);
                    None
                }
                Effect::Telemetry(t) => {
                    self.registry.telemetry(*t);
                    None
                }
                Effect::Sequence(b, st) => {
                    self.registry.sequence(&b, &st);
                    None
                }
            };
            if let Some(input) = answer {
                let more = core.handle(input, self.clock.instant(), known);
                for e in more.into_iter().rev() {
                    queue.push_front(e);
                }
            }
        }
    }

    /// Waits for the write in flight, if any (never returns without one), and empties the slot.
    async fn next_write(
        slot: &mut Option<tokio::task::JoinHandle<Result<Vec<Inserted>, crate::store::StoreError>>>,
    ) -> Result<Vec<Inserted>, String> {
        let Some(task) = slot.as_mut() else {
            return std::future::pending().await;
        };
        let r = outcome(task.await);
        *slot = None;
        r
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
