//! The daemon's configuration parser: any text gives a config or a list of problems, never a
//! panic.
#![no_main]

use checkpoint_daemon::config::DaemonConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = DaemonConfig::parse(text);
    }
});
