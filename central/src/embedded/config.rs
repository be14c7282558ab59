//! `[embedded_broker]`: central starts and supervises its own Mosquitto for a small site
//! (see [`crate::embedded`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::de::IgnoredAny;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedBrokerConfig {
    /// Where boxes connect (mutual TLS only).
    pub listen: SocketAddr,
    /// The site PKI (`checkpoint-admin pki`): `ca.pem`, `server.pem`/`.key` (naming the
    /// address central connects to, or localhost), `clients/central.pem`/`.key`, `crl.pem`.
    pub pki_dir: PathBuf,
    /// The Mosquitto binary; found in /usr/sbin, /usr/bin or /usr/local/sbin when not given.
    #[serde(default)]
    pub mosquitto: Option<PathBuf>,
    /// Settings of the earlier rumqttd broker, named so the error says what replaced them.
    #[serde(default)]
    plain: Option<IgnoredAny>,
    #[serde(default)]
    tls: Option<IgnoredAny>,
}

impl EmbeddedBrokerConfig {
    pub(crate) fn problems(&self, out: &mut Vec<String>) {
        let p = "embedded_broker";
        if self.plain.is_some() {
            out.push(format!(
                "{p}.plain: the embedded broker has no plain listener any more (anyone on the \
                 network could read events and cut central off); boxes connect with mutual TLS"
            ));
        }
        if self.tls.is_some() {
            out.push(format!(
                "{p}.tls: replaced by `listen = \"ADDR:PORT\"` and `pki_dir` (the directory of \
                 `checkpoint-admin pki`, which holds the files tls named)"
            ));
        }
        if self.pki_dir.as_os_str().is_empty() {
            out.push(format!("{p}.pki_dir: must not be empty"));
        }
        if self.listen.port() == 0 {
            out.push(format!("{p}.listen: give a port"));
        }
    }
}
