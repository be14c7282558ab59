//! Files that hold secrets (the API token, alert secrets and passwords): read only when no one
//! but their owner can read them, as the keys are.

use std::path::Path;

/// The file's bytes, or why not: missing, unreadable, or readable by group or others (with the
/// command that fixes it).
pub fn read_private(path: &Path) -> Result<Vec<u8>, String> {
    checkpoint_link::files::ensure_private(path)?;
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_secret_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "secret").unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_private(&p).unwrap_err();
            assert!(e.contains("chmod 600"), "{e}");
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private(&p).unwrap(), b"secret");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_private(&p).unwrap(), b"secret");
        let e = read_private(&dir.path().join("missing")).unwrap_err();
        assert!(e.contains("missing"), "{e}");
    }
}
