//! The delivery channels `[alerts]` asks for, with their secrets.
//!
//! A secret is never in the main config in clear: it comes from a file (`*_file`; a relative
//! path is looked up in `$CREDENTIALS_DIRECTORY`, where systemd's `LoadCredential=` puts it) or
//! from an environment variable (`*_env`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use checkpoint_link::clock::SharedClock;

use super::dispatch::Route;
use super::email::{Email, Settings};
use super::webhook::{Channel, Webhook};
use super::wecom::{limit::Limits, WeCom};
use super::AlertsConfig;

#[derive(Debug, thiserror::Error)]
#[error("alerts.{channel}: {message}")]
pub struct SetupError {
    pub channel: &'static str,
    pub message: String,
}

/// Where a secret is read from: exactly one of a file or an environment variable.
pub fn read_secret(
    file: Option<&Path>,
    env: Option<&str>,
    min_len: usize,
) -> Result<String, String> {
    let text = match (file, env) {
        (Some(f), None) => {
            let path: PathBuf = match std::env::var_os("CREDENTIALS_DIRECTORY") {
                Some(dir) if f.is_relative() => Path::new(&dir).join(f),
                _ => f.to_path_buf(),
            };
            let bytes = checkpoint_pki::secrets::read_private(&path)?;
            String::from_utf8(bytes)
                .map_err(|_| format!("{}: not UTF-8 text", path.display()))?
                .trim()
                .to_string()
        }
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| format!("environment variable {var} is not set"))?
            .trim()
            .to_string(),
        (Some(_), Some(_)) => {
            return Err("give the secret as a file or a variable, not both".into())
        }
        (None, None) => return Err("no secret given (a *_file or *_env setting)".into()),
    };
    if text.chars().count() < min_len {
        return Err(format!("the secret must be at least {min_len} characters"));
    }
    Ok(text)
}

/// Builds every configured channel; an unreadable secret or bad setting stops `serve`.
pub fn channels(cfg: &AlertsConfig, clock: &SharedClock) -> Result<Vec<Route>, SetupError> {
    let mut out = Vec::new();
    if let Some(w) = &cfg.webhook {
        let err = |message| SetupError {
            channel: "webhook",
            message,
        };
        let secret =
            read_secret(w.secret_file.as_deref(), w.secret_env.as_deref(), 16).map_err(err)?;
        let ch: Arc<dyn Channel> = Arc::new(Webhook::new(&w.url, secret.into_bytes(), w.timeout));
        out.push(Route::new(ch, w.roles.clone()));
    }
    if let Some(w) = &cfg.wecom {
        let err = |message| SetupError {
            channel: "wecom",
            message,
        };
        let secret =
            read_secret(w.secret_file.as_deref(), w.secret_env.as_deref(), 16).map_err(err)?;
        let ch: Arc<dyn Channel> = Arc::new(
            WeCom::new(
                &w.base_url,
                &w.corp_id,
                &secret,
                w.agent_id,
                Limits::default(),
                w.timeout,
            )
            .with_clock(clock.clone()),
        );
        out.push(Route::new(ch, w.roles.clone()));
    }
    if let Some(m) = &cfg.email {
        let err = |message| SetupError {
            channel: "email",
            message,
        };
        let login = match &m.username {
            Some(user) => Some((
                user.clone(),
                read_secret(m.password_file.as_deref(), m.password_env.as_deref(), 1)
                    .map_err(err)?,
            )),
            None => None,
        };
        let ca_pem = match &m.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| err(format!("{}: {e}", p.display())))?),
            None => None,
        };
        let ch: Arc<dyn Channel> = Arc::new(
            Email::new(Settings {
                server: m.server.clone(),
                port: m.port.unwrap_or(match m.tls {
                    super::email::TlsMode::Starttls => 587,
                    super::email::TlsMode::Tls => 465,
                }),
                tls: m.tls,
                from: m.from.clone(),
                login,
                ca_pem,
                timeout: m.timeout,
                language: cfg.language,
            })
            .map_err(err)?,
        );
        out.push(Route::new(ch, m.roles.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_comes_from_one_place_and_is_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "0123456789abcdef\n").unwrap();
        // Readable by others: refused with the fix.
        assert!(read_secret(Some(&f), None, 16)
            .unwrap_err()
            .contains("chmod 600"));
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(Some(&f), None, 16).unwrap(), "0123456789abcdef");
        assert!(read_secret(Some(&f), None, 17)
            .unwrap_err()
            .contains("at least 17"));
        assert!(read_secret(Some(&f), Some("X"), 1)
            .unwrap_err()
            .contains("not both"));
        assert!(read_secret(None, None, 1)
            .unwrap_err()
            .contains("no secret"));
        let missing = dir.path().join("missing");
        assert!(read_secret(Some(&missing), None, 1)
            .unwrap_err()
            .contains("missing"));
        assert!(read_secret(None, Some("CHECKPOINT_TEST_SURELY_UNSET"), 1)
            .unwrap_err()
            .contains("CHECKPOINT_TEST_SURELY_UNSET"));
        // PATH is set in any test environment.
        assert!(read_secret(None, Some("PATH"), 1).is_ok());
    }
}
