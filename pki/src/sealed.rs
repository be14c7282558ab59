//! Encrypted backups, in the age format (<https://age-encryption.org/v1>, the `age` crate): to
//! one or more X25519 recipients (`age1…`, from `age-keygen`, whose secret half can stay off the
//! central machine) or under a passphrase (scrypt). A backup holds every event with person ids,
//! so a site that keeps copies elsewhere should seal them. Restore recognises a sealed file by
//! its header and asks for the identity file or the passphrase.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::SecretString;

/// The first bytes of every age file.
const MAGIC: &[u8] = b"age-encryption.org/v1";

/// How a backup is written.
pub enum Seal {
    Plain,
    Recipients(Vec<age::x25519::Recipient>),
    Passphrase(SecretString),
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Seal::Plain => "Seal::Plain",
            Seal::Recipients(_) => "Seal::Recipients",
            Seal::Passphrase(_) => "Seal::Passphrase",
        })
    }
}

/// The passphrase in a private file (its first line).
fn passphrase(path: &Path) -> Result<SecretString, String> {
    let bytes = crate::secrets::read_private(path)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim().to_string();
    if line.chars().count() < 12 {
        return Err(format!(
            "{}: a backup passphrase needs at least 12 characters",
            path.display()
        ));
    }
    Ok(SecretString::from(line))
}

impl Seal {
    /// From the command line: recipients (`age1…`) or a passphrase file, not both.
    pub fn from_args(
        recipients: &[String],
        passphrase_file: Option<&Path>,
    ) -> Result<Seal, String> {
        match (recipients.is_empty(), passphrase_file) {
            (true, None) => Ok(Seal::Plain),
            (false, Some(_)) => Err("give --recipient or --passphrase-file, not both".into()),
            (true, Some(p)) => Ok(Seal::Passphrase(passphrase(p)?)),
            (false, None) => recipients
                .iter()
                .map(|r| {
                    age::x25519::Recipient::from_str(r.trim())
                        .map_err(|e| format!("recipient {r:?}: {e} (an age1… public key)"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Seal::Recipients),
        }
    }

    /// Copies `input` to `out`, sealed as asked; returns the plaintext bytes copied.
    pub fn copy(&self, input: &mut dyn Read, out: &mut dyn Write) -> std::io::Result<u64> {
        let encryptor = match self {
            Seal::Plain => return std::io::copy(input, out),
            Seal::Recipients(rs) => {
                age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(std::io::Error::other)?
            }
            Seal::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
        };
        let mut w = encryptor.wrap_output(out)?;
        let n = std::io::copy(input, &mut w)?;
        w.finish()?;
        Ok(n)
    }
}

/// How a sealed backup is opened.
#[derive(Debug, Default)]
pub struct Unseal<'a> {
    pub identity_file: Option<&'a Path>,
    pub passphrase_file: Option<&'a Path>,
}

/// The backup's plaintext: `input` itself when it is not sealed, else decrypted.
pub fn open<'r>(
    mut input: Box<dyn BufRead + 'r>,
    how: &Unseal<'_>,
) -> Result<Box<dyn Read + 'r>, String> {
    let sealed = input
        .fill_buf()
        .map_err(|e| e.to_string())?
        .starts_with(MAGIC);
    if !sealed {
        if how.identity_file.is_some() || how.passphrase_file.is_some() {
            return Err(
                "the backup is not encrypted; leave out --identity/--passphrase-file".into(),
            );
        }
        return Ok(input);
    }
    let d = age::Decryptor::new_buffered(input).map_err(|e| format!("encrypted backup: {e}"))?;
    let identities: Vec<Box<dyn age::Identity>> = match (how.identity_file, how.passphrase_file) {
        (Some(f), None) => age::IdentityFile::from_file(f.display().to_string())
            .map_err(|e| format!("{}: {e}", f.display()))?
            .into_identities()
            .map_err(|e| format!("{}: {e}", f.display()))?
            .into_iter()
            .map(|i| i as Box<dyn age::Identity>)
            .collect(),
        (None, Some(p)) => vec![Box::new(age::scrypt::Identity::new(passphrase(p)?))],
        (None, None) => {
            return Err(
                "the backup is encrypted: give --identity FILE (the age secret key) or --passphrase-file FILE"
                    .into(),
            )
        }
        (Some(_), Some(_)) => return Err("give --identity or --passphrase-file, not both".into()),
    };
    let r = d
        .decrypt(identities.iter().map(|i| i.as_ref()))
        .map_err(|e| format!("encrypted backup: {e}"))?;
    Ok(Box::new(r))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use age::secrecy::ExposeSecret;

    use super::*;

    fn sealed(seal: &Seal, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal.copy(&mut &plain[..], &mut out).unwrap();
        out
    }

    fn read_all(bytes: Vec<u8>, how: &Unseal<'_>) -> Result<Vec<u8>, String> {
        let mut r = open(Box::new(std::io::Cursor::new(bytes)), how)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn a_backup_sealed_to_a_recipient_opens_only_with_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let key = write("key.txt", id.to_string().expose_secret());
        let wrong = write("other.txt", other.to_string().expose_secret());
        let plain = b"CKPTBAK the events".repeat(1000);
        let seal = Seal::from_args(&[id.to_public().to_string()], None).unwrap();
        let bytes = sealed(&seal, &plain);
        assert!(bytes.starts_with(MAGIC));
        assert!(!bytes.windows(7).any(|w| w == b"CKPTBAK"), "no plaintext");
        let how = Unseal {
            identity_file: Some(&key),
            ..Unseal::default()
        };
        assert_eq!(read_all(bytes.clone(), &how).unwrap(), plain);
        let e = read_all(bytes.clone(), &Unseal::default()).unwrap_err();
        assert!(e.contains("--identity"), "{e}");
        let e = read_all(
            bytes,
            &Unseal {
                identity_file: Some(&wrong),
                ..Unseal::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("encrypted backup"), "{e}");
        // A plain backup stays readable as it is.
        assert_eq!(read_all(plain.clone(), &Unseal::default()).unwrap(), plain);
        assert!(Seal::from_args(&["age1nonsense".into()], None).is_err());
    }

    #[test]
    fn a_backup_sealed_with_a_passphrase_needs_it_and_the_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pass");
        std::fs::write(&p, "correct horse battery staple\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Seal::from_args(&[], Some(&p))
            .unwrap_err()
            .contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let seal = Seal::from_args(&[], Some(&p)).unwrap();
        let bytes = sealed(&seal, b"events");
        let how = Unseal {
            passphrase_file: Some(&p),
            ..Unseal::default()
        };
        assert_eq!(read_all(bytes, &how).unwrap(), b"events");
        let short = dir.path().join("short");
        std::fs::write(&short, "short").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Seal::from_args(&[], Some(&short))
            .unwrap_err()
            .contains("12"));
    }
}
