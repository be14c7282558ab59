//! Base45 (RFC 9285): bytes to the QR alphanumeric alphabet, so a code uses QR's compact mode.

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// Why a base45 text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base45Error {
    #[error("character {0:?} is not in the base45 alphabet")]
    BadChar(char),
    #[error("a single trailing character cannot encode a byte")]
    DanglingChar,
    #[error("a group decodes to {0}, which does not fit its bytes")]
    Overflow(u32),
}

/// Encodes bytes as base45 text.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(2) * 3);
    let push = |out: &mut String, mut n: u32, digits: usize| {
        for _ in 0..digits {
            out.push(char::from(ALPHABET[(n % 45) as usize]));
            n /= 45;
        }
    };
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        push(&mut out, u32::from(pair[0]) * 256 + u32::from(pair[1]), 3);
    }
    if let [last] = chunks.remainder() {
        push(&mut out, u32::from(*last), 2);
    }
    out
}

fn value(c: u8) -> Result<u32, Base45Error> {
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .map(|p| p as u32)
        .ok_or(Base45Error::BadChar(char::from(c)))
}

/// Decodes base45 text. Rejects characters outside the alphabet, a dangling single character and
/// groups whose value does not fit (the RFC's "decode error" cases).
pub fn decode(text: &str) -> Result<Vec<u8>, Base45Error> {
    let raw = text.as_bytes();
    if let Some(&c) = raw.iter().find(|c| !c.is_ascii()) {
        return Err(Base45Error::BadChar(char::from(c)));
    }
    let mut out = Vec::with_capacity(raw.len() / 3 * 2 + 1);
    let mut chunks = raw.chunks_exact(3);
    for group in &mut chunks {
        let n = value(group[0])? + value(group[1])? * 45 + value(group[2])? * 45 * 45;
        if n > 0xFFFF {
            return Err(Base45Error::Overflow(n));
        }
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
    match chunks.remainder() {
        [] => {}
        [a, b] => {
            let n = value(*a)? + value(*b)? * 45;
            if n > 0xFF {
                return Err(Base45Error::Overflow(n));
            }
            out.push(n as u8);
        }
        _ => return Err(Base45Error::DanglingChar),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9285_examples() {
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(encode(b"ietf!"), "QED8WEX0");
        assert_eq!(decode("QED8WEX0").as_deref(), Ok(&b"ietf!"[..]));
        assert_eq!(decode("GGW"), Err(Base45Error::Overflow(65_536)));
        assert_eq!(decode("ab"), Err(Base45Error::BadChar('a')));
        assert_eq!(decode("BB8B"), Err(Base45Error::DanglingChar));
        assert_eq!(decode("Bé").unwrap_err(), Base45Error::BadChar('\u{c3}'));
        assert_eq!(decode(":;"), Err(Base45Error::BadChar(';')));
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode(&encode(&bytes)), Ok(bytes));
        }

        #[test]
        fn decode_never_panics(text in ".{0,64}") {
            let _ = decode(&text);
        }
    }
}
