use super::*;
use image::Luma;
use qrcode::bits::Bits;
use qrcode::{EcLevel, QrCode, Version};

fn render(code: &QrCode, module_px: u32) -> GrayImage {
    code.render::<Luma<u8>>()
        .module_dimensions(module_px, module_px)
        .build()
}

fn rendered(text: &str, module_px: u32) -> GrayImage {
    render(&QrCode::new(text.as_bytes()).unwrap(), module_px)
}

/// A code built segment by segment: `eci` first when given, then the segments.
fn segments(eci: Option<u32>, byte: &[u8], kanji: &[u8]) -> GrayImage {
    let mut bits = Bits::new(Version::Normal(4));
    if let Some(eci) = eci {
        bits.push_eci_designator(eci).unwrap();
    }
    if !byte.is_empty() {
        bits.push_byte_data(byte).unwrap();
    }
    if !kanji.is_empty() {
        bits.push_kanji_data(kanji).unwrap();
    }
    bits.push_terminator(EcLevel::M).unwrap();
    render(&QrCode::with_bits(bits, EcLevel::M).unwrap(), 6)
}

fn cfg(mode: Mode) -> QrConfig {
    QrConfig {
        mode,
        ..QrConfig::default()
    }
}

/// Every mode this build runs, so each test holds for both decoders and their combinations.
fn modes() -> Vec<Mode> {
    if HAS_ZXING {
        vec![Mode::Zxing, Mode::Rqrr, Mode::Door, Mode::Thorough]
    } else {
        vec![Mode::Rqrr]
    }
}

#[track_caller]
fn check(frame: &GrayImage, expect: &[&str]) {
    for mode in modes() {
        let d = decode(frame, &cfg(mode));
        let mut got = d.payloads();
        got.sort();
        let mut want: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{mode:?}");
        assert_eq!(d.panics, 0, "{mode:?}");
    }
}

#[test]
fn clean_code_decodes() {
    check(&rendered("CP1:HELLO", 6), &["CP1:HELLO"]);
    let d = decode(&rendered("CP1:HELLO", 6), &cfg(Mode::Rqrr));
    assert_eq!(d.strategy, Some(Strategy::Plain));
    assert_eq!(d.codes[0].engine, Engine::Rqrr);
}

#[test]
fn the_door_reads_a_clean_code_with_one_zxing_pass() {
    if !HAS_ZXING {
        return;
    }
    let d = decode(&rendered("CP1:HELLO", 6), &cfg(Mode::Door));
    assert_eq!(d.attempts, 1);
    assert_eq!(d.codes[0].engine, Engine::Zxing);
    assert_eq!(d.strategy, None);
}

#[test]
fn an_idle_frame_costs_the_door_one_zxing_pass() {
    if !HAS_ZXING {
        return;
    }
    let blank = GrayImage::from_pixel(640, 480, Luma([200]));
    let d = decode(&blank, &cfg(Mode::Door));
    assert_eq!((d.attempts, d.codes.len(), d.undecoded), (1, 0, 0));
    // scan tries rqrr's whole chain on the same frame.
    assert!(decode(&blank, &cfg(Mode::Thorough)).attempts > 1);
}

#[test]
fn inverted_code() {
    let frame = preprocess::invert(&rendered("dark mode", 6));
    check(&frame, &["dark mode"]);
    let d = decode(&frame, &cfg(Mode::Rqrr));
    assert_eq!(d.strategy, Some(Strategy::Inverted));
}

#[test]
fn shift_jis_payloads_decode_to_their_text() {
    // "入口" (entrance) in Shift-JIS: once as Kanji-mode segments, once as plain bytes.
    let sjis = [0x93, 0xfc, 0x8c, 0xfb];
    check(&segments(None, b"", &sjis), &["入口"]);
    check(&segments(None, &sjis, b""), &["入口"]);
    for mode in modes() {
        let d = decode(&segments(None, b"", &sjis), &cfg(mode));
        assert_eq!(
            d.codes[0].bytes, sjis,
            "{mode:?}: bytes are the payload as encoded"
        );
    }
}

#[test]
fn eci_utf8_and_ascii_codes_decode_exactly() {
    check(&segments(Some(26), "门口 Ä".as_bytes(), b""), &["门口 Ä"]);
    check(&rendered("plain ascii 123", 5), &["plain ascii 123"]);
}

#[test]
fn binary_payloads_are_shown_as_hex_never_as_lossy_text() {
    // Not UTF-8, not Shift-JIS (0x80 and 0xff start no Shift-JIS character).
    let bytes = [0x00, 0xff, 0x80, 0x81, 0xfe, 0x07];
    for mode in modes() {
        let d = decode(&segments(None, &bytes, b""), &cfg(mode));
        assert_eq!(d.codes.len(), 1, "{mode:?}");
        assert_eq!(d.codes[0].bytes, bytes, "{mode:?}");
        if d.codes[0].engine == Engine::Rqrr {
            assert_eq!(d.codes[0].text, None);
        }
        assert!(
            !d.codes[0].payload().contains('\u{fffd}'),
            "{mode:?}: {}",
            d.codes[0].payload()
        );
    }
    assert_eq!(
        Code::from_bytes(bytes.to_vec(), Engine::Rqrr).payload(),
        "hex:00ff8081fe07"
    );
}

#[test]
fn two_codes_in_one_frame() {
    let (a, b) = (rendered("first", 5), rendered("second", 5));
    let mut frame = GrayImage::from_pixel(
        a.width() + b.width(),
        a.height().max(b.height()),
        Luma([255]),
    );
    image::imageops::replace(&mut frame, &a, 0, 0);
    image::imageops::replace(&mut frame, &b, i64::from(a.width()), 0);
    check(&frame, &["first", "second"]);
}

#[test]
fn empty_and_codeless_frames() {
    check(&GrayImage::new(0, 0), &[]);
    let noise = GrayImage::from_fn(320, 240, |x, y| {
        Luma([((x * 7919 + y * 104_729) % 251) as u8])
    });
    for mode in modes() {
        let d = decode(&noise, &cfg(mode));
        assert!(d.codes.is_empty(), "{mode:?}");
        assert!(d.attempts >= 1, "{mode:?}");
    }
}

#[test]
fn budget_stops_the_chain_after_one_attempt() {
    let cfg = QrConfig {
        budget: Duration::ZERO,
        mode: Mode::Rqrr,
        ..QrConfig::default()
    };
    let d = decode(&GrayImage::from_pixel(100, 100, Luma([128])), &cfg);
    assert_eq!(d.attempts, 1);
    assert!(d.out_of_budget);
}

#[test]
fn large_frames_are_scaled_to_the_cap_for_rqrr() {
    let code = rendered("big", 40);
    let cfg = QrConfig {
        max_side: 400,
        budget: Duration::from_secs(5),
        mode: Mode::Rqrr,
    };
    assert!(code.width() > 400);
    assert_eq!(decode(&code, &cfg).payloads(), ["big"]);
}

#[test]
fn a_panic_inside_a_decoder_is_contained_and_flagged() {
    assert!(!panic_is_contained());
    let r: Result<(), ()> = contained(|| {
        assert!(panic_is_contained());
        std::panic::resume_unwind(Box::new("decoder bug"))
    });
    assert_eq!(r, Err(()));
    assert!(!panic_is_contained());
    assert_eq!(contained(|| 7), Ok(7));
}

#[test]
fn a_frame_that_makes_rqrr_panic_is_counted_not_fatal() {
    // Five finder-like squares, found by a random search: rqrr 0.11's `detect_grids` fails an
    // assertion in `Perspective::map` on it (rqrr issue #54).
    let frame = image::load_from_memory(include_bytes!("../../../tests/data/qr/rqrr-panic.png"))
        .unwrap()
        .to_luma8();
    let d = decode_with(&frame, &cfg(Mode::Rqrr), &[Strategy::Plain]);
    assert_eq!((d.panics, d.codes.len()), (1, 0));
    assert!(!panic_is_contained());
    for mode in modes() {
        assert!(decode(&frame, &cfg(mode)).codes.is_empty(), "{mode:?}");
    }
}
