use super::*;

#[test]
fn options_carry_the_will_and_a_persistent_session() {
    let cfg = crate::config::DaemonConfig::parse(crate::config::EXAMPLE).unwrap();
    // The example's TLS files do not exist here: a clear error naming the file.
    let err = mqtt_options(&cfg.uplink, &cfg.identity.box_id).unwrap_err();
    assert!(
        err.to_string().contains("/etc/checkpoint/tls/ca.pem"),
        "{err}"
    );
    let mut plain = cfg.uplink.clone();
    plain.transport = checkpoint_link::Transport::Plain;
    let o = mqtt_options(&plain, &cfg.identity.box_id).unwrap();
    assert!(!o.clean_session());
    assert_eq!(o.client_id(), "library-gate-1");
    let will = o.last_will().unwrap();
    assert_eq!(will.topic, "checkpoint/v1/box/library-gate-1/status");
    assert!(will.retain);
    let status: Status = records::decode(&will.message).unwrap();
    assert_eq!(status.state, BoxState::Offline);
}
