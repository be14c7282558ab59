//! Runs the pass-code conformance suite in `tests/vectors/` and checks that the checked-in files
//! are exactly what the generator program produces.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on broken fixtures.

mod vectors_gen;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use checkpoint_protocol::passcode::{self, RejectReason, Step};
use checkpoint_protocol::records::{self, TrustConfig};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn files() -> Vec<(String, String)> {
    let mut out: Vec<_> = std::fs::read_dir(vector_dir())
        .expect("vector dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read vector"))
        })
        .collect();
    out.sort();
    out
}

/// What the verifier says, in the vector's terms.
fn outcome(vector: &Value) -> Value {
    let ctx = &vector["context"];
    let trust_bytes = serde_json::to_vec(&ctx["trust"]).unwrap();
    let trust = records::decode::<TrustConfig>(&trust_bytes)
        .expect("trust context")
        .to_trust_store()
        .unwrap();
    let now = OffsetDateTime::parse(ctx["now"].as_str().unwrap(), &Rfc3339).unwrap();
    let skew = u32::try_from(ctx["clock_skew_s"].as_u64().unwrap()).unwrap();
    let input = vector["input"].as_str().unwrap();

    let result = passcode::verify(input, &trust, now.unix_timestamp(), skew);
    let mut steps = ["ok"; 4].map(String::from);
    let (verdict, claims) = match &result {
        Ok(c) => ("valid".to_string(), Some(c.clone())),
        Err(r) => {
            let failed = match r.reason.step() {
                Step::Decode => 0,
                Step::Signature => 1,
                Step::Validity => 2,
                Step::Revocation => 3,
            };
            steps[failed] = r.reason.as_str().to_string();
            for s in &mut steps[failed + 1..] {
                *s = "not_reached".to_string();
            }
            (r.reason.as_str().to_string(), r.claims.clone())
        }
    };
    json!({
        "decode": steps[0],
        "signature": steps[1],
        "validity": steps[2],
        "revocation": steps[3],
        "verdict": verdict,
        "status": result.as_ref().ok().map(|c| c.status.as_str()),
        "claims": claims.as_ref().map_or(Value::Null, vectors_gen::claims_json),
    })
}

#[test]
fn every_vector_verifies_as_expected() {
    let files = files();
    assert!(files.len() >= 30, "only {} vectors found", files.len());
    let mut failures = vec![];
    for (name, text) in &files {
        let vector: Value = serde_json::from_str(text).expect("vector JSON");
        let got = outcome(&vector);
        if got != vector["expected"] {
            failures.push(format!(
                "{name}:\n  expected {}\n  got      {got}",
                vector["expected"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_reason_has_a_vector() {
    let seen: BTreeSet<String> = files()
        .iter()
        .map(|(_, t)| {
            let v: Value = serde_json::from_str(t).unwrap();
            v["expected"]["verdict"].as_str().unwrap().to_string()
        })
        .collect();
    for reason in RejectReason::ALL {
        assert!(seen.contains(reason.as_str()), "no vector for {reason}");
    }
    assert!(seen.contains("valid"));
}

#[test]
fn vectors_are_stable() {
    let generated: Vec<(String, String)> = vectors_gen::vectors()
        .iter()
        .map(|(n, v)| (n.clone(), vectors_gen::render(v)))
        .collect();
    let mut generated_sorted = generated.clone();
    generated_sorted.sort();
    let on_disk = files();
    let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&on_disk), names(&generated_sorted), "vector file set");
    for ((name, disk), (_, generated)) in on_disk.iter().zip(&generated_sorted) {
        assert_eq!(
            disk, generated,
            "{name} differs from the generator: a format change needs a new version"
        );
    }
}
