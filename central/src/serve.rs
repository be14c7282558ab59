//! `checkpoint-central serve`: opens the store and runs ingest until shutdown.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpoint_link::clock::SharedClock;
use checkpoint_link::sync::Recover;
use tokio_util::sync::CancellationToken;

use crate::config::CentralConfig;
use crate::ingest::{self, Counters, IngestError};
use crate::registry::Registry;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error(transparent)]
    Signing(#[from] checkpoint_pki::signing::SigningError),
    #[error(transparent)]
    Channel(#[from] crate::alerts::setup::SetupError),
    #[error(transparent)]
    Embedded(#[from] crate::embedded::EmbeddedError),
    #[error("no broker configured: give [broker] or [embedded_broker]")]
    NoBroker,
    #[error("ingest task: {0}")]
    Task(String),
    #[error("API token: {message}")]
    Token {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("{0}")]
    Site(String),
    #[error("API cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub async fn run(cfg: CentralConfig, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ServeError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let site = crate::site::Site::from_config(&cfg.site).map_err(ServeError::Site)?;
    // Opening may connect to PostgreSQL, whose client blocks: off the runtime.
    let store: Arc<dyn Store> = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || crate::store::open(&cfg.store, &cfg.data_dir))
            .await
            .map_err(|e| ServeError::Task(format!("opening the store: {e}")))??
    };
    let source = cfg.source().ok_or(ServeError::NoBroker)?;
    let (embedded, broker) = match source {
        crate::config::Source::External(b) => (None, b),
        crate::config::Source::Embedded(e) => {
            let (prepared, b) = crate::embedded::prepare(&e, &cfg.data_dir)?;
            (Some(prepared), b)
        }
    };
    // Fail now, with a clear message, on bad TLS material.
    ingest::mqtt_options(&broker)?;
    let token_text = checkpoint_pki::secrets::read_private(&cfg.api.token_file)
        .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_string()))
        .map_err(|message| ServeError::Token {
            path: cfg.api.token_file.clone(),
            message,
        })?;
    let api_token = token_text.trim().to_string();
    if api_token.len() < 16 {
        return Err(ServeError::Token {
            path: cfg.api.token_file.clone(),
            message: format!(
                "{}: the token must be at least 16 characters",
                cfg.api.token_file.display()
            ),
        });
    }
    let listener = tokio::net::TcpListener::bind(cfg.api.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: cfg.api.listen,
            source,
        })?;
    let token = CancellationToken::new();
    let broker_task = match embedded {
        Some(prepared) => {
            let child = prepared.start().await?;
            Some(tokio::spawn(prepared.supervise(child, token.child_token())))
        }
        None => None,
    };
    let clock = checkpoint_link::clock::system();
    let registry = Arc::new(Registry::new(clock.clone()));
    let counters = Arc::new(Mutex::new(Counters::default()));
    let dyn_store = store.clone();
    let registry_for_api = registry.clone();
    let trust_changed = Arc::new(tokio::sync::Notify::new());
    let signer = match &cfg.trust.signing_key {
        Some(path) => Some(Arc::new(checkpoint_pki::signing::ConfigSigner::load(
            path,
            &cfg.data_dir,
        )?)),
        None => None,
    };
    let trust = ingest::TrustPublish {
        keys: crate::trust::load_keys(&cfg.trust.keys)?,
        signer,
        every: cfg.trust.republish_every,
        changed: trust_changed.clone(),
    };
    let (alert_tx, alert_rx) = tokio::sync::mpsc::channel(10_000);
    // Before ingest starts: readings a crash left unhandled, not the ones ingest will hand over.
    let backlog = crate::store::blocking(&store, |s| s.unhandled_readings(100_000)).await?;
    let engine = crate::alerts::dispatch::Engine {
        store: dyn_store.clone(),
        registry: registry.clone(),
        channels: crate::alerts::setup::channels(&cfg.alerts, &clock)?,
        cfg: cfg.alerts.clone(),
        silent_after: cfg.ingest.box_silent,
        max_stay_ms: i64::try_from(cfg.trace.max_stay.as_millis()).unwrap_or(i64::MAX),
        site: site.clone(),
        backlog,
        clock: clock.clone(),
    };
    let alert_task = tokio::spawn(engine.run(alert_rx, token.clone()));
    let (gallery_tx, gallery_rx) = tokio::sync::mpsc::channel(4);
    let task = tokio::spawn(ingest::run(
        broker,
        cfg.ingest.clone(),
        ingest::Shared {
            store: dyn_store,
            registry: registry.clone(),
            counters: counters.clone(),
            trust,
            clock: clock.clone(),
            alerts: Some(ingest::AlertTap {
                tx: alert_tx,
                limits: crate::alerts::rules::Limits {
                    fever_threshold_c: cfg.alerts.fever_threshold_c,
                    temperature_to_person: cfg.alerts.temperature_to_person,
                    backlog_events: cfg.alerts.backlog_events,
                    trust_stale: cfg.alerts.trust_stale,
                },
            }),
        },
        gallery_rx,
        token.clone(),
    ));
    let site_name = site.name().to_string();
    let api_state = crate::api::ApiState {
        store: store.clone(),
        registry: registry_for_api,
        token: Arc::new(api_token),
        window_s: cfg.trace.window.as_secs(),
        max_stay_s: cfg.trace.max_stay.as_secs(),
        trust_changed,
        silent_after_s: cfg.ingest.box_silent.as_secs(),
        backup_dir: cfg.data_dir.clone(),
        galleries: gallery_tx,
        galleries_allowed: crate::gallery::tls_only(cfg.broker_path()),
        site,
        clock: clock.clone(),
    };
    let retention = tokio::spawn(retain(
        store.clone(),
        cfg.retention.clone(),
        clock,
        token.clone(),
    ));
    let api_stop = token.clone();
    let api_task = tokio::spawn(crate::api::serve(listener, api_state, async move {
        api_stop.cancelled().await
    }));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let events = crate::store::blocking(&store, |s| s.len()).await?;
    tracing::info!(message = "Central running.", events, data_dir = %cfg.data_dir.display(), time_zone = site_name);
    let mut report = tokio::time::interval(Duration::from_secs(60));
    report.tick().await;
    // Half the unit's WatchdogSec (systemd passes it as WATCHDOG_USEC), else every 10 s.
    let ping_every = watchdog_usec()
        .map(|usec| Duration::from_micros(usec / 2).max(Duration::from_millis(200)))
        .unwrap_or(Duration::from_secs(10));
    let mut watchdog = tokio::time::interval(ping_every);
    tokio::pin!(shutdown);
    let mut task = task;
    let ended = loop {
        tokio::select! {
            _ = &mut shutdown => break None,
            r = &mut task => break Some(r),
            _ = report.tick() => {
                let c = counters.lock_or_recover().clone();
                tracing::info!(message = "Ingest.", received = c.received, stored = c.stored, duplicates = c.duplicates, rejected = ?c.rejected, gaps_lost = c.gaps_lost, store_failures = c.store_failures);
            }
            // The ingest task is alive (its end breaks this loop) and the runtime turns.
            _ = watchdog.tick() => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
        }
    };
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    token.cancel();
    let result = match ended {
        Some(r) => r,
        None => match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(r) => r,
            Err(_) => return Err(ServeError::Task("did not stop in 10 s".into())),
        },
    };
    match result {
        Ok(r) => r?,
        Err(e) => return Err(ServeError::Task(e.to_string())),
    }
    match tokio::time::timeout(Duration::from_secs(5), api_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(message = "API stopped with an error.", %error),
        Ok(Err(error)) => tracing::warn!(message = "API task failed.", %error),
        Err(_) => tracing::warn!(message = "API did not stop in 5 s."),
    }
    retention.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), alert_task).await;
    if let Some(t) = broker_task {
        // The supervisor stops the broker with SIGTERM and waits for it (at most ~10 s).
        let _ = tokio::time::timeout(Duration::from_secs(12), t).await;
    }
    let c = counters.lock_or_recover().clone();
    tracing::info!(message = "Stopped.", stored = c.stored, duplicates = c.duplicates, rejected = ?c.rejected);
    Ok(())
}

/// Purges events older than the retention limit now and then every `purge_every`.
async fn retain(
    store: Arc<dyn Store>,
    cfg: crate::config::RetentionConfig,
    clock: SharedClock,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(cfg.purge_every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let cutoff = retention_cutoff(clock.now_ms(), cfg.events);
        let mut purged = 0u64;
        loop {
            let s = store.clone();
            // Small steps: ingest waits for at most one of them.
            match tokio::task::spawn_blocking(move || s.purge_before(cutoff, 2000)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => purged += n,
                Ok(Err(error)) => {
                    tracing::error!(message = "Retention purge failed; retrying later.", %error);
                    break;
                }
                Err(error) => {
                    tracing::error!(message = "Retention task failed.", %error);
                    break;
                }
            }
            if stop.is_cancelled() {
                break;
            }
        }
        if purged > 0 {
            tracing::info!(
                message = "Retention purge.",
                purged,
                older_than = %checkpoint_link::durations::show(cfg.events)
            );
        }
    }
}

/// Events before this time (Unix ms) are past their retention `keep` at `now_ms`.
fn retention_cutoff(now_ms: i64, keep: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, when `WATCHDOG_PID` is absent or
/// ours).
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    match std::env::var("WATCHDOG_PID").ok().map(|p| p.parse::<u32>()) {
        Some(Ok(pid)) if pid != std::process::id() => None,
        _ => (usec > 0).then_some(usec),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_retention_cutoff_is_whole_days_before_now() {
        let now = 1_796_256_000_000;
        let days = |n: u64| std::time::Duration::from_secs(n * 86_400);
        assert_eq!(
            super::retention_cutoff(now, days(28)),
            now - 28 * 86_400_000
        );
        assert_eq!(super::retention_cutoff(i64::MIN + 5, days(1)), i64::MIN);
    }
}
