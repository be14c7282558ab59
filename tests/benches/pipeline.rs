//! Kiosk pipeline benchmark. `cargo bench -p checkpoint-e2e --bench pipeline` prints:
//! 1. frame-to-decision latency of the door loop (decode, verify, thermometer, decide, outbox
//!    append+flush, gate) for frames with a code, and the cost of a frame without one; then the
//!    same for camera-like photos held in view, with the strategy rotation and without;
//! 2. outbox append+flush latency and throughput, and ack throughput, on the real file system;
//! 3. the drain rate of a real `checkpointd run` after an outage, against a real Mosquitto, for
//!    several `drain_per_s` settings;
//! 4. the daemon's resident memory while it runs with the sim camera.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_daemon::clock::ClockWatch;
use checkpoint_daemon::config::{ClockCheck, DaemonConfig, WhenFull};
use checkpoint_daemon::door::DoorSetup;
use checkpoint_daemon::gate::SimGate;
use checkpoint_daemon::outbox::Outbox;
use checkpoint_daemon::pipeline::{Door, Frame};
use checkpoint_daemon::qr::QrConfig;
use checkpoint_daemon::stats::{self, Stats};
use checkpoint_daemon::thermo::SimThermometer;
use checkpoint_daemon::trust::Trust;
use checkpoint_e2e::broker::Mosquitto;
use checkpoint_e2e::central::{wait_until, TestCentral};
use checkpoint_e2e::kiosk::{self, BoxSpec, Kiosk};
use checkpoint_e2e::TempDir;
use checkpoint_protocol::ids::SubjectId;
use checkpoint_protocol::passcode::{self, IssuerKey, PassRequest, PassStatus};
use checkpoint_protocol::records::{self, Decision, Direction, Event, Method, Reason, Schema};
use image::{GrayImage, Luma};

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (pct(&v, 0.5), pct(&v, 0.99), v[v.len() - 1])
}

fn frame_with(text: Option<&str>, w: u32, h: u32) -> GrayImage {
    let mut frame = GrayImage::from_pixel(w, h, Luma([225]));
    if let Some(text) = text {
        let qr = qrcode::QrCode::new(text.as_bytes())
            .unwrap()
            .render::<Luma<u8>>()
            .min_dimensions(h / 2, h / 2)
            .build();
        let (x, y) = ((w - qr.width()) / 2, (h - qr.height()) / 2);
        image::imageops::overlay(&mut frame, &qr, i64::from(x), i64::from(y));
    }
    frame
}

fn door(dir: &std::path::Path, key: &IssuerKey) -> Door {
    let cfg = DaemonConfig::parse(&format!(
        "state_dir = \"{}\"\n[identity]\nsite = \"s\"\nbox_id = \"bench\"\ncheckpoint = \"c\"\ndirection = \"in\"\n\
         [camera]\nkind = \"sim\"\ndir = \"/f\"\n[thermometer]\nkind = \"sim\"\nreadings = [36.6]\n\
         [gate]\nkind = \"sim\"\n[policy]\ntemperature = \"hard\"\n\
         [uplink]\nhost = \"h\"\nport = 1\ntransport = {{ kind = \"plain\" }}\n",
        dir.display()
    ))
    .unwrap();
    std::fs::write(dir.join("passcode.pub"), key.public().to_pem().unwrap()).unwrap();
    Door {
        setup: DoorSetup {
            identity: cfg.identity,
            policy: cfg.policy,
            face_cooldown_ms: None,
        },
        qr: QrConfig {
            max_side: cfg.qr.max_side,
            budget: cfg.qr.frame_budget,
            mode: checkpoint_daemon::qr::Mode::Door,
        },
        strategies_per_frame: cfg.qr.strategies_per_frame,
        outbox: Arc::new(
            Outbox::open(&dir.join("outbox"), 64 << 20, WhenFull::RefuseNew, 8 << 20).unwrap(),
        ),
        trust: Arc::new(
            Trust::load(
                &checkpoint_daemon::trust::TrustSetup {
                    state_dir: dir,
                    bootstrap: &[dir.join("passcode.pub")],
                    config_keys: &[],
                    max_age: std::time::Duration::ZERO,
                    max_skew_s: 300,
                },
                time::OffsetDateTime::now_utc(),
            )
            .unwrap(),
        ),
        stats: Arc::new(Stats::new(stats::ok())),
        sync: Arc::new(ClockWatch::new(ClockCheck::AssumeSynced)),
        clock: checkpoint_link::clock::system(),
        gate: Box::new(SimGate::new(None)),
        thermometer: Some(Box::new(SimThermometer::new(vec![36.6], None))),
        appended: Arc::new(tokio::sync::Notify::new()),
        face: None,
    }
}

fn door_latency() {
    println!("## Door loop: frame to decision (in process)\n");
    println!("| frame | attempts | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    let key = IssuerKey::from_seed([7; 32]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u32;
    for (w, h) in [(640u32, 480u32), (1280, 720)] {
        let dir = TempDir::new("bench-door");
        let mut d = door(dir.path(), &key);
        let mut state = d.state();
        let n = 150;
        let mut with_code = Vec::new();
        for i in 0..n {
            let text = passcode::issue(
                &key,
                &PassRequest {
                    status: PassStatus::Green,
                    subject: SubjectId::new(format!("person-{i}")).unwrap(),
                    dependants: vec![],
                    issued_at: now - 60,
                    expires_at: now + 3600,
                },
            )
            .unwrap();
            let image = frame_with(Some(&text), w, h);
            let frame = Frame {
                image,
                rgb: None,
                captured: Instant::now(),
            };
            let out = d.frame(&mut state, &frame);
            let ms = frame.captured.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(out.len(), 1, "one attempt per frame");
            assert_eq!(
                (out[0].decision, out[0].reason),
                (Decision::Admit, Reason::Ok)
            );
            with_code.push(ms);
        }
        let (p50, p99, max) = summary(with_code);
        println!("| {w}x{h} with a pass code | {n} | {p50:.1} | {p99:.1} | {max:.1} |");
        let mut empty = Vec::new();
        let blank = frame_with(None, w, h);
        for _ in 0..40 {
            let frame = Frame {
                image: blank.clone(),
                rgb: None,
                captured: Instant::now(),
            };
            assert!(d.frame(&mut state, &frame).is_empty());
            empty.push(frame.captured.elapsed().as_secs_f64() * 1000.0);
        }
        let (p50, p99, max) = summary(empty);
        println!("| {w}x{h} without a code | 40 | {p50:.1} | {p99:.1} | {max:.1} |");
    }
    println!();
}

/// A person holds a code in front of the camera: the same camera-like photo arrives frame after
/// frame until the door decides. Time and frames from the first frame to the decision.
fn door_photos() {
    println!("## Door loop: camera-like photos held in view (tests/data/qr, 120 photos)\n");
    println!("| strategies per frame | decided within 15 frames | frames p50 | frames p99 | ms p50 | ms p99 | idle frame ms p50 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let data = checkpoint_e2e::workspace().join("tests/data/qr");
    let manifest = std::fs::read_to_string(data.join("expected.tsv")).unwrap();
    let photos: Vec<GrayImage> = manifest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').next())
        .map(|name| checkpoint_daemon::scan::load_luma(&data.join(name)).unwrap())
        .collect();
    let key = IssuerKey::from_seed([7; 32]);
    for per_frame in [2usize, 9] {
        let dir = TempDir::new("bench-photos");
        let mut d = door(dir.path(), &key);
        d.strategies_per_frame = per_frame;
        let (mut frames, mut ms, mut decided) = (Vec::new(), Vec::new(), 0);
        for photo in &photos {
            let mut state = d.state();
            let t0 = Instant::now();
            for n in 1..=15 {
                // Frames come at a camera's pace (15 fps): rqrr's second opinion works on its
                // own thread meanwhile, and its answer is picked up with a later frame.
                let due = t0 + Duration::from_millis(66 * (n - 1));
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let frame = Frame {
                    image: photo.clone(),
                    rgb: None,
                    captured: Instant::now(),
                };
                if !d.frame(&mut state, &frame).is_empty() {
                    decided += 1;
                    frames.push(n as f64);
                    ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
            }
        }
        let mut idle = Vec::new();
        let mut state = d.state();
        let blank = frame_with(None, 640, 480);
        for _ in 0..30 {
            let frame = Frame {
                image: blank.clone(),
                rgb: None,
                captured: Instant::now(),
            };
            d.frame(&mut state, &frame);
            idle.push(frame.captured.elapsed().as_secs_f64() * 1000.0);
        }
        let (f50, f99, _) = summary(frames);
        let (m50, m99, _) = summary(ms);
        let (i50, _, _) = summary(idle);
        println!(
            "| {per_frame} | {decided}/{} | {f50:.0} | {f99:.0} | {m50:.0} | {m99:.0} | {i50:.1} |",
            photos.len()
        );
    }
    println!();
}

fn event(seq: u64) -> Event {
    Event {
        schema: Schema,
        id: uuid::Uuid::new_v4(),
        seq,
        site: "campus".parse().unwrap(),
        box_id: "bench-box".parse().unwrap(),
        checkpoint: "library-main".parse().unwrap(),
        direction: Direction::In,
        method: Method::Qr,
        subject: Some(SubjectId::new("p-000123").unwrap()),
        dependants: vec![],
        pass_status: Some(PassStatus::Green),
        decision: Decision::Admit,
        reason: Reason::Ok,
        flags: vec![],
        temperature_c: Some(36.6),
        ts: time::OffsetDateTime::now_utc(),
        clock_synced: true,
    }
}

fn outbox_latency() {
    println!("## Outbox: append + flush (sled, durable before the door opens)\n");
    let dir = TempDir::new("bench-outbox");
    let ob = Outbox::open(
        &dir.path().join("outbox"),
        256 << 20,
        WhenFull::RefuseNew,
        8 << 20,
    )
    .unwrap();
    let n = 3000u64;
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        ob.append(0, |seq| records::encode(&event(seq))).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = t0.elapsed().as_secs_f64();
    let bytes = ob.stats().bytes / n;
    let (p50, p99, max) = summary(lat);
    let t1 = Instant::now();
    for first in (1..=n).step_by(100) {
        ob.ack(&[(first, first + 99)]).unwrap();
    }
    let ack_rate = n as f64 / t1.elapsed().as_secs_f64();
    println!("| events | bytes/event | p50 ms | p99 ms | max ms | appends/s | acked events/s (acks of 100) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {bytes} | {p50:.2} | {p99:.2} | {max:.2} | {:.0} | {ack_rate:.0} |\n",
        n as f64 / total
    );
}

/// Fills a box's outbox while "offline", then starts it against a broker and times the drain.
fn drain_rate() {
    println!("## Drain after an outage (real checkpointd, real Mosquitto, central acks)\n");
    println!("| drain_per_s | backlog | drained in s | events/s |");
    println!("|---:|---:|---:|---:|");
    for (rate, n) in [(100u32, 1000u64), (1000, 3000), (10000, 3000)] {
        let dir = TempDir::new("bench-drain");
        let broker = Mosquitto::start(&dir.path().join("broker"), None);
        let central = TestCentral::connect(&broker, None, true);
        let spec = BoxSpec {
            uplink: format!(
                "telemetry_interval_s = 1\nresend_after_s = 60\ndrain_per_s = {rate}\n"
            ),
            ..BoxSpec::new("bench-box", dir.path(), &broker, None)
        };
        std::fs::create_dir_all(&spec.frames).unwrap();
        kiosk::blank_frame(&spec.frames.join("0.png"));
        {
            let ob = Outbox::open(
                &spec.state_dir.join("outbox"),
                256 << 20,
                WhenFull::RefuseNew,
                8 << 20,
            )
            .unwrap();
            for _ in 0..n {
                ob.append(0, |seq| records::encode(&event(seq))).unwrap();
            }
        }
        let mut k = Kiosk::start(&spec);
        wait_until(Duration::from_secs(60), "first event", || {
            !central.events().is_empty()
        });
        let t0 = Instant::now();
        wait_until(Duration::from_secs(120), "backlog drained", || {
            central.unique_events().len() as u64 >= n
        });
        let secs = t0.elapsed().as_secs_f64();
        println!("| {rate} | {n} | {secs:.1} | {:.0} |", n as f64 / secs);
        k.terminate();
    }
    println!();
}

fn rss() {
    println!(
        "## checkpointd memory (sim camera 10 fps, 640x480 codes, thermometer, broker, acks)\n"
    );
    let dir = TempDir::new("bench-rss");
    let broker = Mosquitto::start(&dir.path().join("broker"), None);
    let central = TestCentral::connect(&broker, None, true);
    let keys = kiosk::keygen(&dir.path().join("keys"));
    let spec = BoxSpec {
        fps: 10.0,
        looping: true,
        readings: vec![36.5, 36.7],
        bootstrap_key: Some(keys.join("passcode.pub")),
        policy: "duplicate_cooldown_ms = 500\n".to_string(),
        ..BoxSpec::new("rss-box", dir.path(), &broker, None)
    };
    std::fs::create_dir_all(&spec.frames).unwrap();
    for i in 0..10 {
        let code = kiosk::issue(&keys, &format!("p{i}"), "green", "1h", None);
        kiosk::qr_frame(&code, &spec.frames.join(format!("{i:02}.png")));
    }
    let mut k = Kiosk::start(&spec);
    println!("| box | after | attempts | fps | VmRSS kB | VmHWM kB |");
    println!("|---|---|---:|---:|---:|---:|");
    report_rss(&mut k, &central, "QR only");
    println!();
}

/// Runs the box for 20 s, then prints a row of its memory figures.
fn report_rss(k: &mut Kiosk, central: &TestCentral, what: &str) {
    std::thread::sleep(Duration::from_secs(20));
    let pid = k.pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            .unwrap_or_default()
    };
    let events = central.unique_events().len();
    let fps = central.telemetry().last().map_or(0.0, |t| t.fps);
    println!(
        "| {what} | 20 s | {events} | {fps:.1} | {} | {} |",
        field("VmRSS:"),
        field("VmHWM:")
    );
    k.terminate();
}

/// The same with face recognition on: models loaded, a gallery of `n` identities (two real
/// people plus random ones), door frames of the two people and empty frames in a loop.
fn rss_face() {
    use checkpoint_e2e::face::{door_frame, models, photo};
    use checkpoint_face::engine::FaceEngine;
    use checkpoint_face::gallery::Gallery;
    println!("## checkpointd memory with face recognition (sim camera 10 fps, 640x480)\n");
    println!("| box | after | attempts | fps | VmRSS kB | VmHWM kB |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut e = FaceEngine::load(&models(), Default::default()).expect("scripts/models");
    for n in [2usize, 10_000] {
        let dir = TempDir::new("bench-rss-face");
        let broker = Mosquitto::start(&dir.path().join("broker"), None);
        let central = TestCentral::connect(&broker, None, true);
        let mut g = Gallery::new(128);
        for (id, file) in [("p-obama", "obama.jpg"), ("p-eileen", "astronaut.png")] {
            let img = image::open(photo(file)).unwrap().to_rgb8();
            let f = e.detect(&img).unwrap()[0];
            g.add(id, &e.embed(&img, &f).unwrap()).unwrap();
        }
        for i in 2..n {
            let v: Vec<f32> = (0..128).map(|_| fastrand::f32() - 0.5).collect();
            g.add(&format!("p-{i}"), &v).unwrap();
        }
        let gallery = dir.path().join("gallery.bin");
        g.save(&gallery).unwrap();
        let mut spec = BoxSpec {
            fps: 10.0,
            looping: true,
            readings: vec![36.5, 36.7],
            ..BoxSpec::new("rss-face", dir.path(), &broker, None)
        };
        spec.extra = format!(
            "[face]\nenabled = true\nmodels_dir = \"{}\"\ngallery = \"{}\"\ncooldown_ms = 500\n",
            models().display(),
            gallery.display()
        );
        std::fs::create_dir_all(&spec.frames).unwrap();
        // Each person in view for 4 frames (a match needs 3), then nobody for 2.
        let astronaut = dir.path().join("astronaut.png");
        image::open(photo("astronaut.png"))
            .unwrap()
            .fliph()
            .save(&astronaut)
            .unwrap();
        for (i, who) in [photo("obama2.jpg"), astronaut].iter().enumerate() {
            for j in 0..4 {
                door_frame(&mut e, who, 180.0, &spec.frames.join(format!("{i}{j}.png")));
            }
            for j in 4..6 {
                kiosk::blank_frame(&spec.frames.join(format!("{i}{j}.png")));
            }
        }
        let mut k = Kiosk::start(&spec);
        report_rss(&mut k, &central, &format!("face, gallery of {n}"));
    }
    println!();
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    if want("door") {
        door_latency();
        door_photos();
    }
    if want("outbox") {
        outbox_latency();
    }
    if want("drain") {
        drain_rate();
    }
    if want("rss") {
        rss();
    }
    if want("rss-face") {
        rss_face();
    }
}
