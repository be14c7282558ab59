use super::*;

#[test]
fn the_generated_configuration_is_the_shipped_one_with_this_sites_paths() {
    let files = Files::of(Path::new("/site/pki"));
    let listen: SocketAddr = "127.0.0.1:18883".parse().unwrap();
    let conf = mosquitto_conf(&files, Path::new("/data/broker"), &listen, true, false).unwrap();
    for line in [
        "listener 18883 127.0.0.1",
        "cafile /site/pki/ca.pem",
        "certfile /site/pki/server.pem",
        "keyfile /site/pki/server.key",
        "crlfile /site/pki/crl.pem",
        "acl_file /data/broker/checkpoint.acl",
        "persistence_location /data/broker/",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "allow_anonymous false",
        "log_dest stderr",
        "pid_file /data/broker/mosquitto.pid",
    ] {
        assert!(
            conf.lines().any(|l| l == line),
            "missing {line:?} in\n{conf}"
        );
    }
    assert!(!conf.contains("/etc/checkpoint"), "{conf}");
    assert!(!conf.contains("syslog"), "{conf}");
    assert!(!conf.contains("user root"));
    // Without a list the line goes; as root the broker keeps root's rights.
    let conf = mosquitto_conf(&files, Path::new("/d"), &listen, false, true).unwrap();
    assert!(!conf.contains("crlfile"));
    assert!(conf.lines().any(|l| l == "user root"));
}

#[test]
fn central_connects_over_loopback_to_a_wildcard_listener() {
    assert_eq!(
        connect_ip(&"0.0.0.0:8883".parse().unwrap()),
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    assert_eq!(
        connect_ip(&"10.1.2.3:8883".parse().unwrap()),
        "10.1.2.3".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn the_broker_certificate_must_name_the_address_central_connects_to() {
    let dir = tempfile::tempdir().unwrap();
    let v = checkpoint_pki::Validity::days(2).unwrap();
    checkpoint_pki::init(dir.path(), "CA", v).unwrap();
    let ca = checkpoint_pki::Ca::load(dir.path()).unwrap();
    let cert = dir.path().join("server.pem");
    ca.issue_server(&["broker.example".into()], v).unwrap();
    let e = server_host(&cert, IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap_err();
    assert!(e.to_string().contains("broker.example"), "{e}");
    assert!(e.to_string().contains("issue-server"), "{e}");
    ca.issue_server(&["broker.example".into(), "localhost".into()], v)
        .unwrap();
    assert_eq!(
        server_host(&cert, IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap(),
        "localhost"
    );
    ca.issue_server(&["broker.example".into(), "127.0.0.1".into()], v)
        .unwrap();
    assert_eq!(
        server_host(&cert, IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap(),
        "127.0.0.1"
    );
}
