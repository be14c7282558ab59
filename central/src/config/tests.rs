use super::*;

#[test]
fn example_parses() {
    let cfg = CentralConfig::parse(EXAMPLE).unwrap();
    let b = cfg.broker.as_ref().unwrap();
    assert_eq!(b.client_id, "checkpoint-central");
    assert!(matches!(b.transport, Transport::Tls { .. }));
    assert_eq!(
        cfg.retention.events,
        std::time::Duration::from_secs(28 * 86_400)
    );
    assert!(cfg.deprecated.is_empty(), "{:?}", cfg.deprecated);
    assert_eq!(
        cfg.alerts
            .routes
            .get(&crate::alerts::rules::AlertKind::Fever)
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(cfg.alerts.facilities[0].id, "facilities-desk");
    assert_eq!(cfg.site.time_zone.as_deref(), Some("Asia/Shanghai"));
    let small = CentralConfig::parse(EMBEDDED_EXAMPLE).unwrap();
    assert!(matches!(small.source(), Some(Source::Embedded(_))));
    assert_eq!(cfg.ingest.gap_grace, std::time::Duration::from_secs(600));
}

#[test]
fn problems_are_listed_with_paths() {
    let text = "data_dir = \"/x\"\n[broker]\nhost = \"\"\nport = 0\ntransport = { kind = \"plain\" }\n[ingest]\nbatch_max = 0\n[api]\ntoken_file = \"/t\"\n";
    let err = CentralConfig::parse(text).unwrap_err();
    for p in ["broker.host", "broker.port", "ingest.batch_max"] {
        assert!(err.contains(p), "{p} in {err}");
    }
    let err =
        CentralConfig::parse("data_dir = \"/x\"\n[broker]\nhost = \"h\"\nport = 1\n").unwrap_err();
    assert!(err.contains("transport"), "{err}");
    let err = CentralConfig::parse("data_dir = \"/x\"\nbogus = 1\n").unwrap_err();
    assert!(err.contains("bogus"), "{err}");
    let err = CentralConfig::parse("data_dir = \"/x\"\n[api]\ntoken_file = \"/t\"\n").unwrap_err();
    assert!(err.contains("[embedded_broker]"), "{err}");
    let err = CentralConfig::parse(
        "data_dir = \"/x\"\n[site]\ntime_zone = \"Mars/Olympus\"\n[api]\ntoken_file = \"/t\"\n",
    )
    .unwrap_err();
    assert!(err.contains("site.time_zone: \"Mars/Olympus\""), "{err}");
}

#[test]
fn an_embedded_broker_is_tls_only_with_a_pki() {
    let base = "data_dir = \"/x\"\n[api]\ntoken_file = \"/t\"\n";
    let ok = format!(
        "{base}[embedded_broker]\nlisten = \"127.0.0.1:8883\"\npki_dir = \"/etc/checkpoint/pki\"\n"
    );
    let cfg = CentralConfig::parse(&ok).unwrap();
    assert!(matches!(cfg.source(), Some(Source::Embedded(_))));
    // The earlier broker's settings are refused with what replaced them.
    let err = CentralConfig::parse(&format!(
        "{base}[embedded_broker]\nlisten = \"127.0.0.1:8883\"\npki_dir = \"/p\"\nplain = \"127.0.0.1:1883\"\n\
         tls = {{ listen = \"127.0.0.1:8883\", ca = \"a\", cert = \"b\", key = \"c\" }}\n"
    ))
    .unwrap_err();
    assert!(
        err.contains("embedded_broker.plain: the embedded broker has no plain listener"),
        "{err}"
    );
    assert!(err.contains("embedded_broker.tls: replaced by"), "{err}");
    let err = CentralConfig::parse(&format!(
        "{base}[embedded_broker]\nlisten = \"127.0.0.1:8883\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("pki_dir"), "{err}");
    let both =
        format!("{ok}[broker]\nhost = \"h\"\nport = 1\ntransport = {{ kind = \"plain\" }}\n");
    assert!(CentralConfig::parse(&both)
        .unwrap_err()
        .contains("not both"));
}

#[test]
fn alert_settings_are_checked() {
    let base = "data_dir = \"/x\"\n[api]\ntoken_file = \"/t\"\n[embedded_broker]\nlisten = \"127.0.0.1:1\"\npki_dir = \"/p\"\n";
    let err = CentralConfig::parse(&format!(
        "{base}[alerts]\nfever_threshold_c = 30.0\nwebhook = {{ url = \"ftp://x\", secret_file = \"/s\" }}\n"
    ))
    .unwrap_err();
    assert!(err.contains("alerts.fever_threshold_c"), "{err}");
    assert!(err.contains("alerts.webhook.url"), "{err}");
    let err = CentralConfig::parse(&format!("{base}[alerts.routes]\nfever = [\"janitor\"]\n"))
        .unwrap_err();
    assert!(err.contains("janitor"), "{err}");
    let err = CentralConfig::parse(&format!(
        "{base}[alerts.webhook]\nurl = \"https://x\"\nsecret_file = \"/s\"\nsecret_env = \"S\"\n\
         [alerts.email]\nserver = \"smtp\"\nfrom = \"nobody\"\nusername = \"u\"\n"
    ))
    .unwrap_err();
    assert!(
        err.contains("exactly one of webhook.secret_file and webhook.secret_env"),
        "{err}"
    );
    assert!(err.contains("alerts.email.from"), "{err}");
    assert!(err.contains("email.password_file"), "{err}");
    let ok = CentralConfig::parse(&format!(
        "{base}[alerts.email]\nserver = \"smtp\"\nfrom = \"a@b.org\"\ntls = \"tls\"\nroles = [\"facilities\"]\n"
    ))
    .unwrap();
    let email = ok.alerts.email.unwrap();
    assert_eq!(email.tls, crate::alerts::email::TlsMode::Tls);
    assert_eq!(
        email.roles,
        Some(vec![crate::alerts::route::Role::Facilities])
    );
}

#[test]
fn the_store_section_is_checked_for_its_kind() {
    let base = "data_dir = \"/x\"\n[broker]\nhost = \"h\"\nport = 1\ntransport = { kind = \"plain\" }\n[api]\ntoken_file = \"/t\"\n";
    let cfg = CentralConfig::parse(base).unwrap();
    assert_eq!(cfg.store.kind, StoreKind::Sqlite);
    assert_eq!(cfg.sqlite_path(), Path::new("/x/central.sqlite"));
    let err = CentralConfig::parse(&format!("{base}[store]\nkind = \"postgres\"\n")).unwrap_err();
    assert!(err.contains("store.url: needed"), "{err}");
    let err = CentralConfig::parse(&format!(
        "{base}[store]\nkind = \"postgres\"\nurl = \"postgresql://u:secret@h/db\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("password_file"), "{err}");
    let err = CentralConfig::parse(&format!("{base}[store]\nurl = \"postgresql://u@h/db\"\n"))
        .unwrap_err();
    assert!(err.contains("only with kind = \"postgres\""), "{err}");
    let ok = CentralConfig::parse(&format!(
        "{base}[store]\nkind = \"postgres\"\nurl = \"host=db user=checkpoint dbname=cp\"\n"
    ))
    .unwrap();
    assert_eq!(ok.store.pool_size, 8);
    let err = CentralConfig::parse(&format!("{base}[store]\nkind = \"mysql\"\n")).unwrap_err();
    assert!(
        err.contains("mysql") || err.contains("unknown variant"),
        "{err}"
    );
}

#[test]
fn the_old_integer_duration_keys_still_load_with_a_warning_each() {
    let base = "data_dir = \"/x\"\n[broker]\nhost = \"b\"\nport = 1883\ntransport = { kind = \"plain\" }\n{B}\n[api]\ntoken_file = \"/t\"\n[retention]\n{R}\n[alerts.webhook]\nurl = \"https://h/\"\nsecret_env = \"S\"\n{W}\n";
    let fill =
        |b: &str, r: &str, w: &str| base.replace("{B}", b).replace("{R}", r).replace("{W}", w);
    let old = CentralConfig::parse(&fill(
        "keep_alive_s = 45",
        "events_days = 7\npurge_every_min = 30",
        "timeout_ms = 2500",
    ))
    .unwrap();
    let new = CentralConfig::parse(&fill(
        "keep_alive = \"45s\"",
        "events = \"7d\"\npurge_every = \"30m\"",
        "timeout = \"2.5s\"",
    ))
    .unwrap();
    assert!(new.deprecated.is_empty());
    assert_eq!(old.deprecated.len(), 4, "{:?}", old.deprecated);
    assert!(old.deprecated.contains(
        &"retention.events_days is deprecated: write retention.events = \"7d\"".to_string()
    ));
    assert_eq!(
        old.broker.as_ref().unwrap().keep_alive,
        new.broker.as_ref().unwrap().keep_alive
    );
    assert_eq!(
        (old.retention.events, old.retention.purge_every),
        (new.retention.events, new.retention.purge_every)
    );
    assert_eq!(
        old.alerts.webhook.as_ref().unwrap().timeout,
        std::time::Duration::from_millis(2500)
    );
    // Both spellings, or a bare number for a new key, are refused.
    let both =
        CentralConfig::parse(&fill("keep_alive = \"45s\"\nkeep_alive_s = 45", "", "")).unwrap_err();
    assert!(
        both.contains("broker.keep_alive_s: give broker.keep_alive only"),
        "{both}"
    );
    let bare = CentralConfig::parse(&fill("keep_alive = 45", "", "")).unwrap_err();
    assert!(bare.contains("keep_alive"), "{bare}");
    let short = CentralConfig::parse(&fill("", "events = \"1h\"", "")).unwrap_err();
    assert!(
        short.contains("retention.events: 1h is not within 1day..="),
        "{short}"
    );
}

#[test]
fn galleries_need_tls_on_every_path() {
    let base = |broker: &str| {
        format!(
            "data_dir = \"/d\"\n{broker}\n[api]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"/t\"\n"
        )
    };
    let parse = |text: &str| CentralConfig::parse(text).unwrap();
    let plain = parse(&base(
        "[broker]\nhost = \"h\"\nport = 1\ntransport = { kind = \"plain\" }",
    ));
    assert!(crate::gallery::tls_only(plain.broker_path())
        .unwrap_err()
        .contains("without TLS"));
    let tls = parse(&base(
        "[broker]\nhost = \"h\"\nport = 1\ntransport = { kind = \"tls\", ca = \"/c\", cert = \"/c\", key = \"/k\" }",
    ));
    assert_eq!(crate::gallery::tls_only(tls.broker_path()), Ok(()));
    let embedded = parse(&base(
        "[embedded_broker]\nlisten = \"127.0.0.1:8883\"\npki_dir = \"/p\"",
    ));
    assert_eq!(crate::gallery::tls_only(embedded.broker_path()), Ok(()));
}
