//! Signed configuration on arbitrary bytes: the gallery envelope as it arrives (never panics,
//! never opens without central's signature), a genuine envelope around arbitrary content (opens
//! to exactly that content, whose gallery decoding never panics), and trust records checked
//! against a configuration key.
#![no_main]

use checkpoint_protocol::gallery::{self, signed as envelope};
use checkpoint_protocol::ids::BoxId;
use checkpoint_protocol::passcode::IssuerKey;
use checkpoint_protocol::records::{self, TrustConfig};
use checkpoint_protocol::signed::ConfigKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = IssuerKey::from_seed([7; 32]);
    let keys = ConfigKeys(vec![key.public()]);
    if let Ok(g) = envelope::open(data, &keys) {
        let _ = gallery::decode(g.gallery);
    }
    let b: BoxId = "gate-1".parse().expect("box id");
    let genuine = envelope::wrap(&b, 1, 0, data, &key);
    let opened = envelope::open(&genuine, &keys).expect("a genuine envelope opens");
    assert_eq!(opened.gallery, data);
    assert_eq!(opened.box_id, b);
    let _ = gallery::decode(opened.gallery);
    if let Ok(t) = records::decode::<TrustConfig>(data) {
        let _ = t.verify(&keys);
    }
});
