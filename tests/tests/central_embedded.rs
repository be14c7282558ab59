//! Central's end-to-end test with its embedded broker (the Mosquitto it supervises): two boxes
//! over mutual TLS, central killed with SIGKILL mid-stream (its broker, orphaned, is stopped by
//! the next start and its persistence kept).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use checkpoint_e2e::broker::{free_port, Pki};
use checkpoint_e2e::central::{wait_until, CentralProc};
use checkpoint_e2e::kiosk::{self, BoxSpec, Kiosk};
use checkpoint_e2e::TempDir;

fn frames(spec: &BoxSpec, keys: &std::path::Path, people: &[&str]) {
    std::fs::create_dir_all(&spec.frames).unwrap();
    kiosk::blank_frame(&spec.frames.join("000.png"));
    for (i, p) in people.iter().enumerate() {
        let code = kiosk::issue(keys, p, "green", "1h", None);
        kiosk::qr_frame(&code, &spec.frames.join(format!("{:03}.png", i + 1)));
    }
}

/// Stored events per box (sequence numbers), through the real CLI.
fn stored(central: &CentralProc) -> Vec<(String, u64, String)> {
    central
        .stored_events()
        .iter()
        .map(|r| {
            (
                r["box_id"].as_str().unwrap().to_string(),
                r["seq"].as_u64().unwrap(),
                r["subject"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn two_boxes_through_the_embedded_broker_and_a_central_crash() {
    let dir = TempDir::new("embedded");
    let pki = Pki::new(&dir.path().join("pki"));
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let port = free_port();
    let mut central = CentralProc::start_embedded(&dir.path().join("central"), &pki, port);

    let people_in = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let people_out = ["alice", "bob", "carol"];
    let spec_in = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        fps: 2.0,
        ..BoxSpec::tls_to("lib-in", &dir.path().join("in"), port, &pki)
    };
    let spec_out = BoxSpec {
        bootstrap_key: Some(keys.join("passcode.pub")),
        direction: "out",
        // Half the in-box's rate: everyone leaves after they entered.
        fps: 1.0,
        ..BoxSpec::tls_to("lib-out", &dir.path().join("out"), port, &pki)
    };
    frames(&spec_in, &keys, &people_in);
    frames(&spec_out, &keys, &people_out);
    let _box_in = Kiosk::start(&spec_in);
    let _box_out = Kiosk::start(&spec_out);

    central.command(&["boxes"]); // the API is up
    wait_until(Duration::from_secs(30), "first events stored", || {
        stored(&central).len() >= 2
    });
    central.kill9();
    std::thread::sleep(Duration::from_millis(700));
    central.restart();
    central.command(&["boxes"]);

    wait_until(
        Duration::from_secs(60),
        "every event stored and both outboxes drained by acks",
        || {
            let boxes = central.query(&["boxes"]);
            let rows = boxes.as_array().cloned().unwrap_or_default();
            rows.len() == 2
                && rows.iter().all(|b| {
                    b["outbox_depth"] == 0
                        && b["state"] == "online"
                        && b["stored_upto"].as_u64()
                            == Some(if b["box_id"] == "lib-in" { 6 } else { 3 })
                })
        },
    );
    let all = stored(&central);
    let unique: HashSet<(String, u64)> = all.iter().map(|(b, s, _)| (b.clone(), *s)).collect();
    assert_eq!(all.len(), 9, "{all:?}");
    assert_eq!(unique.len(), 9, "nothing duplicated: {all:?}");
    let mut went_in: Vec<&str> = all
        .iter()
        .filter(|(b, _, _)| b == "lib-in")
        .map(|(_, _, p)| p.as_str())
        .collect();
    went_in.sort_unstable();
    assert_eq!(went_in, ["alice", "bob", "carol", "dave", "erin", "frank"]);

    let traj = central.query(&["trace", "--person", "alice"]);
    let dirs: Vec<&str> = traj
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["direction"].as_str().unwrap())
        .collect();
    assert_eq!(dirs, ["in", "out"], "{traj}");
    let contacts = central.query(&["contacts", "--person", "alice"]);
    let met: HashSet<&str> = contacts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    // Everyone passed the library within seconds of alice.
    let everyone_else: HashSet<&str> = people_in
        .iter()
        .copied()
        .filter(|p| *p != "alice")
        .collect();
    assert_eq!(met, everyone_else, "{contacts}");
    let occ = central.query(&["occupancy", "--place", "library"]);
    assert_eq!(
        (
            occ["inside"].as_u64(),
            occ["ins"].as_u64(),
            occ["outs"].as_u64()
        ),
        (Some(3), Some(6), Some(3)),
        "{occ}"
    );
    assert!(
        central.terminate().unwrap().success(),
        "{}",
        central.log_text()
    );
}
