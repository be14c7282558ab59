//! Strict decoding of every wire record on arbitrary bytes: never panics, and a decoded record
//! re-encodes to something that decodes to the same record.
#![no_main]

use checkpoint_protocol::records::{self, Ack, Event, Status, Telemetry, TrustConfig};
use libfuzzer_sys::fuzz_target;

fn round_trip<T: records::Record + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(record) = records::decode::<T>(data) {
        let again: T = records::decode(&records::encode(&record)).expect("re-encoded record decodes");
        assert_eq!(again, record);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Event>(data);
    round_trip::<Status>(data);
    round_trip::<Telemetry>(data);
    round_trip::<Ack>(data);
    round_trip::<TrustConfig>(data);
});
