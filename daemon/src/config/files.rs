//! `check-config`'s file checks: every file the configuration names exists and is readable, the
//! box's private key is private and belongs to its certificate, so a configuration that passes
//! does not restart-loop at `run`.

use std::path::Path;

use super::{CameraConfig, DaemonConfig, Transport};

fn readable(field: &str, path: &Path, out: &mut Vec<String>) {
    if let Err(e) = std::fs::File::open(path) {
        out.push(format!("{field}: {}: {e}", path.display()));
    }
}

impl DaemonConfig {
    /// Problems with the files this configuration names, one per line with its field.
    pub fn file_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Transport::Tls { ca, cert, key } = &self.uplink.transport {
            if let Err(e) = checkpoint_link::tls::client_config(ca, cert, key) {
                out.push(format!("uplink.transport: {e}"));
            }
        }
        for k in &self.trust.bootstrap_keys {
            readable("trust.bootstrap_keys", k, &mut out);
        }
        for k in &self.trust.config_keys {
            readable("trust.config_keys", k, &mut out);
        }
        if let CameraConfig::Sim { dir, .. } = &self.camera {
            if !dir.is_dir() {
                out.push(format!("camera.dir: {} is not a directory", dir.display()));
            }
        }
        if self.face.enabled {
            if !self.face.models_dir.is_dir() {
                out.push(format!(
                    "face.models_dir: {} is not a directory (scripts/models fetches the models)",
                    self.face.models_dir.display()
                ));
            }
            if let Some(g) = &self.face.gallery {
                readable("face.gallery", g, &mut out);
            }
        }
        out
    }
}
