//! Pass-code verification on arbitrary text: never panics, and whatever verifies re-encodes to
//! the same text.
#![no_main]

use checkpoint_protocol::passcode::{self, IssuerKey, TrustStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut trust = TrustStore::new();
    // The key of the conformance vectors, so valid-looking seeds reach the signature check.
    trust.add_key(IssuerKey::from_seed([0x11; 32]).public());
    let _ = passcode::decode(&text);
    if passcode::verify(&text, &trust, 1_795_420_860, 30).is_ok() {
        let body = passcode::decode_text(&text).expect("verified text decodes");
        assert_eq!(passcode::encode_text(&body), text, "base45 is canonical");
    }
});
