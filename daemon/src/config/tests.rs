use super::*;

fn problems(text: &str) -> Vec<Problem> {
    match DaemonConfig::parse(text) {
        Err(ParseError::Invalid(p)) => p,
        Err(ParseError::Syntax(s)) => panic!("syntax error: {s}"),
        Ok(_) => panic!("accepted"),
    }
}

const MINIMAL: &str = r#"
state_dir = "/tmp/x"
[identity]
site = "s"
box_id = "b1"
checkpoint = "c"
direction = "out"
[camera]
kind = "sim"
dir = "/frames"
[gate]
kind = "sim"
[uplink]
host = "localhost"
port = 1883
transport = { kind = "plain" }
"#;

#[test]
fn example_parses_with_every_section() {
    let cfg = DaemonConfig::parse(EXAMPLE).unwrap();
    assert!(cfg.deprecated.is_empty(), "{:?}", cfg.deprecated);
    assert_eq!(cfg.uplink.backoff_max, std::time::Duration::from_secs(60));
    assert_eq!(cfg.trust.max_age, std::time::Duration::from_secs(72 * 3600));
    assert_eq!(cfg.identity.box_id.as_str(), "library-gate-1");
    assert!(matches!(cfg.camera, CameraConfig::V4l2 { fps: 15, .. }));
    assert!(matches!(
        cfg.thermometer,
        ThermometerConfig::Mlx90614 { address: 0x5a, .. }
    ));
    assert!(matches!(cfg.gate, GateConfig::Gpio { relay_pin: 17, .. }));
    assert!(matches!(cfg.uplink.transport, Transport::Tls { .. }));
    assert_eq!(cfg.policy.temperature, Mode::Hard);
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = DaemonConfig::parse(MINIMAL).unwrap();
    assert!(matches!(cfg.thermometer, ThermometerConfig::Disabled));
    assert_eq!(cfg.policy.fever_threshold_c, 37.3);
    assert_eq!(
        cfg.policy.admit_statuses,
        vec![checkpoint_protocol::passcode::PassStatus::Green]
    );
    assert_eq!(cfg.outbox.when_full, WhenFull::RefuseNew);
    assert_eq!(cfg.uplink.drain_per_s, 50);
    assert_eq!(cfg.identity.direction, Direction::Out);
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let text = MINIMAL
        .replace("box_id = \"b1\"", "box_id = \"B 1\"")
        .replace("kind = \"sim\"\ndir", "kind = \"sim\"\nfps = 0.0\ndir")
        .replace(
            "port = 1883",
            "port = 1883\nkeep_alive = \"1s\"\ndrain_per_s = 0",
        )
        + "[policy]\ntemperature = \"hard\"\nfever_treshold = 38\n[bogus]\n";
    let p = problems(&text);
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    // Sections that fail to deserialise are reported once each; semantic checks only run on a
    // config whose sections all parsed, so fix those first.
    assert!(paths.contains(&"identity"), "{p:?}");
    assert!(paths.contains(&"policy"), "{p:?}");
    assert!(paths.contains(&"bogus"), "{p:?}");
    assert!(
        p.iter().any(|p| p.message.contains("fever_treshold")),
        "{p:?}"
    );
}

#[test]
fn semantic_problems_are_all_listed() {
    let text = MINIMAL
        .replace("kind = \"sim\"\ndir", "kind = \"sim\"\nfps = 0.0\ndir")
        .replace(
            "port = 1883",
            "port = 1883\nkeep_alive = \"1s\"\ndrain_per_s = 0",
        )
        + "[policy]\ntemperature = \"hard\"\nadmit_statuses = []\n";
    let p = problems(&text);
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "camera.fps",
        "uplink.keep_alive",
        "uplink.drain_per_s",
        "policy.temperature",
        "policy.admit_statuses",
    ] {
        assert!(paths.contains(&want), "{want} missing from {p:?}");
    }
}

#[test]
fn missing_sections_and_syntax_errors_are_clear() {
    let p = problems("state_dir = \"/x\"\n");
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["identity", "camera", "gate", "uplink"]);
    assert!(matches!(
        DaemonConfig::parse("[identity\n"),
        Err(ParseError::Syntax(_))
    ));
}

#[test]
fn transport_must_be_chosen_explicitly() {
    let p = problems(&MINIMAL.replace("transport = { kind = \"plain\" }\n", ""));
    assert!(p
        .iter()
        .any(|p| p.path == "uplink" && p.message.contains("transport")));
    let p = problems(&MINIMAL.replace("kind = \"plain\"", "kind = \"tls\", ca = \"/ca.pem\""));
    assert!(p.iter().any(|p| p.message.contains("cert")), "{p:?}");
}

#[test]
fn check_config_names_missing_files_and_a_readable_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("box.key");
    std::fs::write(&key, "not a key").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = MINIMAL
        .replace("/frames", &dir.path().join("frames").display().to_string())
        .replace(
            "transport = { kind = \"plain\" }",
            &format!(
                "transport = {{ kind = \"tls\", ca = \"{}\", cert = \"{}\", key = \"{}\" }}\n\
                 [trust]\nbootstrap_keys = [\"{}\"]\n",
                dir.path().join("ca.pem").display(),
                dir.path().join("box.pem").display(),
                key.display(),
                dir.path().join("passcode.pub").display()
            ),
        );
    let cfg = DaemonConfig::parse(&text).unwrap();
    let p = cfg.file_problems().join("\n");
    for want in [
        "uplink.transport",
        "ca.pem",
        "trust.bootstrap_keys",
        "camera.dir",
    ] {
        assert!(p.contains(want), "{want} in\n{p}");
    }
    std::fs::create_dir(dir.path().join("frames")).unwrap();
    assert!(!cfg.file_problems().join("\n").contains("camera.dir"));
}

#[test]
fn the_old_integer_duration_keys_still_load_with_a_warning_each() {
    let old = MINIMAL.replace(
        "port = 1883",
        "port = 1883\nkeep_alive_s = 45\nbackoff_max_ms = 2500",
    ) + "[policy]\nanti_passback_s = 600\nduplicate_cooldown_ms = 1500\n[trust]\nmax_age_h = 12\n";
    let new = MINIMAL.replace(
        "port = 1883",
        "port = 1883\nkeep_alive = \"45s\"\nbackoff_max = \"2500ms\"",
    ) + "[policy]\nanti_passback_window = \"10m\"\nduplicate_cooldown = \"1.5s\"\n[trust]\nmax_age = \"12h\"\n";
    let (o, n) = (
        DaemonConfig::parse(&old).unwrap(),
        DaemonConfig::parse(&new).unwrap(),
    );
    assert!(n.deprecated.is_empty());
    assert_eq!(o.deprecated.len(), 5, "{:?}", o.deprecated);
    assert!(o.deprecated.contains(
        &"uplink.keep_alive_s is deprecated: write uplink.keep_alive = \"45s\"".to_string()
    ));
    assert_eq!(
        (o.uplink.keep_alive, o.uplink.backoff_max),
        (n.uplink.keep_alive, n.uplink.backoff_max)
    );
    assert_eq!(o.policy.anti_passback_window, n.policy.anti_passback_window);
    assert_eq!(o.policy.duplicate_cooldown_ms(), 1500);
    assert_eq!(o.trust.max_age, n.trust.max_age);
    // Both spellings at once is a mistake, not a choice.
    let both = new.replace("port = 1883", "port = 1883\nkeep_alive_s = 45");
    let p = problems(&both);
    assert!(p.iter().any(|p| p.path == "uplink.keep_alive_s"), "{p:?}");
    // A duration without a unit is refused with the field named.
    let bare = MINIMAL.replace("port = 1883", "port = 1883\nkeep_alive = 30");
    let p = problems(&bare);
    assert!(p.iter().any(|p| p.path == "uplink"), "{p:?}");
}
