//! The `[api]` section of central's configuration: where the HTTP API listens, and its token.
//! Parsed and checked with the rest of the file by [`crate::config`].

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where the HTTP API listens; localhost unless a reverse proxy with TLS fronts it.
    #[serde(default = "default_listen")]
    pub listen: std::net::SocketAddr,
    /// A file holding the bearer token (mode 0600, or a systemd credential).
    pub token_file: PathBuf,
}

fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8480))
}
