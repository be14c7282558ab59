//! `check-config`'s file checks: every file the configuration names exists and is readable, and
//! every secret is private, so a config that passes does not restart-loop at `serve`.
//! (Relative secret paths are systemd credentials, present only under the unit: not checked.)

use std::path::Path;

use super::CentralConfig;
use crate::embedded::Files;

fn readable(field: &str, path: &Path, out: &mut Vec<String>) {
    if let Err(e) = std::fs::File::open(path) {
        out.push(format!("{field}: {}: {e}", path.display()));
    }
}

fn private(field: &str, path: &Path, out: &mut Vec<String>) {
    if path.is_relative() {
        return;
    }
    if let Err(e) = checkpoint_pki::secrets::read_private(path) {
        out.push(format!("{field}: {e}"));
    }
}

impl CentralConfig {
    /// Problems with the files this configuration names, one per line with its field.
    pub fn file_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        private("api.token_file", &self.api.token_file, &mut out);
        if let Some(k) = &self.trust.signing_key {
            private("trust.signing_key", k, &mut out);
        }
        for k in &self.trust.keys {
            readable("trust.keys", k, &mut out);
        }
        if let Some(w) = self
            .alerts
            .webhook
            .as_ref()
            .and_then(|w| w.secret_file.as_ref())
        {
            private("alerts.webhook.secret_file", w, &mut out);
        }
        if let Some(w) = self
            .alerts
            .wecom
            .as_ref()
            .and_then(|w| w.secret_file.as_ref())
        {
            private("alerts.wecom.secret_file", w, &mut out);
        }
        if let Some(m) = &self.alerts.email {
            if let Some(p) = &m.password_file {
                private("alerts.email.password_file", p, &mut out);
            }
            if let Some(c) = &m.ca_file {
                readable("alerts.email.ca_file", c, &mut out);
            }
        }
        if let Some(b) = &self.broker {
            for (name, path) in b.transport.files() {
                readable(&format!("broker.transport.{name}"), path, &mut out);
            }
        }
        if let Some(e) = &self.embedded_broker {
            let f = Files::of(&e.pki_dir);
            for (name, path) in [
                ("ca.pem", &f.ca),
                ("server.pem", &f.server_cert),
                ("server.key", &f.server_key),
                ("clients/central.pem", &f.central_cert),
                ("clients/central.key", &f.central_key),
            ] {
                readable(&format!("embedded_broker.pki_dir ({name})"), path, &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn missing_files_and_readable_secrets_are_named_with_their_field() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("api.token");
        std::fs::write(&token, "0123456789abcdef0123").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "data_dir = \"/x\"\n[api]\ntoken_file = \"{}\"\n[embedded_broker]\n\
             listen = \"127.0.0.1:8883\"\npki_dir = \"{}\"\n\
             [trust]\nkeys = [\"{}\"]\nsigning_key = \"{}\"\n",
            token.display(),
            dir.path().join("pki").display(),
            dir.path().join("missing.pub").display(),
            dir.path().join("missing.key").display(),
        );
        let cfg = CentralConfig::parse(&text).unwrap();
        let p = cfg.file_problems().join("\n");
        for field in [
            "api.token_file",
            "chmod 600",
            "trust.keys",
            "trust.signing_key",
            "embedded_broker.pki_dir (ca.pem)",
            "embedded_broker.pki_dir (clients/central.key)",
        ] {
            assert!(p.contains(field), "{field} in\n{p}");
        }
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!cfg.file_problems().join("\n").contains("api.token_file"));
    }
}
