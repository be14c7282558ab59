//! Durable file replacement, the one way both binaries write state that must survive a crash
//! whole (the box's trust and gallery copies, central's configuration serial).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How [`replace`] writes the new copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replace {
    /// The new file's mode.
    pub mode: u32,
    /// fsync the file before the rename and the directory after it. Off only for advisory
    /// copies (a box's last telemetry) that are not worth wearing an SD card for.
    pub durable: bool,
}

impl Replace {
    /// State nobody else may read, kept across a crash.
    pub const PRIVATE: Replace = Replace {
        mode: 0o600,
        durable: true,
    };
}

/// Write to a temporary file, fsync, rename over the old copy, fsync the directory: a crash
/// leaves either the old or the new copy, never a torn one. The file gets mode 0600: state files
/// are nobody else's business.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, Replace::PRIVATE, |f| f.write_all(bytes))
}

/// Replaces `path` with what `write` puts into a fresh temporary file beside it (created anew,
/// so nothing planted at that name is followed), then renames it over the old copy. A failed
/// `write` leaves the old copy and removes the temporary one.
pub fn replace<T>(
    path: &Path,
    how: Replace,
    write: impl FnOnce(&mut File) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(how.mode)
            .open(&tmp)?;
        let out = write(&mut f)?;
        if how.durable {
            f.sync_all()?;
        }
        Ok(out)
    })();
    let out = match written {
        Ok(out) => out,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, path)?;
    if how.durable {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(out)
}

/// `Ok` when no one but the owner can read `path`; else the reason, with the command that fixes
/// it. For secrets and private keys, which both binaries refuse to use otherwise.
pub fn ensure_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {mode:04o} lets other users read it; run `chmod 600 {}` (owned by the \
             user the service runs as)",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cp-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.join("state.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_old_copy_and_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("cp-files-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("export");
        write_atomically(&p, b"old").unwrap();
        // A stale temporary file from a crash is replaced, not appended to.
        std::fs::write(dir.join("export.tmp"), b"stale").unwrap();
        let r = replace(&p, Replace::PRIVATE, |f| {
            f.write_all(b"half")?;
            Err::<(), _>(std::io::Error::other("download cut"))
        });
        assert_eq!(r.unwrap_err().to_string(), "download cut");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(!dir.join("export.tmp").exists());
        let how = Replace {
            mode: 0o644,
            durable: false,
        };
        assert_eq!(
            replace(&p, how, |f| f.write_all(b"new").map(|()| 3)).unwrap(),
            3
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
