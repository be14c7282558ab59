//! rqrr's second opinion on its own thread, for the door.
//!
//! zxing-cpp reads a frame in about a millisecond; rqrr's chain takes tens to hundreds. When
//! zxing-cpp located a symbol it could not decode, the door offers the frame here and goes on
//! with the next one: the camera loop never waits for rqrr. An answer comes back with the tag the
//! frame was offered with (the door passes the capture instant, so frame-to-decision stays honest)
//! and is picked up at the door's next poll. One frame is worked on and at most one waits; an
//! offer beyond that is dropped, because the same code will be in the next frames too. The
//! rotation of strategies moves on with every frame worked on, so a code held in view meets the
//! whole chain over a few frames.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;

use image::GrayImage;

use super::{decode_rotating, Decoded, Mode, QrConfig, Rotation};

/// A decoded frame and the tag it was offered with.
#[derive(Debug)]
pub struct Answer<T> {
    pub decoded: Decoded,
    pub tag: T,
}

/// The worker thread and its two channels. Dropping it stops the thread after the frame it is
/// working on.
#[derive(Debug)]
pub struct SecondOpinion<T: Send + 'static> {
    jobs: Option<SyncSender<(GrayImage, T)>>,
    answers: Receiver<Answer<T>>,
    worker: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> SecondOpinion<T> {
    /// Starts the worker. `cfg`'s budget bounds each frame's work; `per_frame` is the rotation's
    /// width (see [`Rotation`]).
    pub fn start(cfg: &QrConfig, per_frame: usize) -> std::io::Result<Self> {
        let (jobs, job_rx) = mpsc::sync_channel::<(GrayImage, T)>(1);
        let (answer_tx, answers) = mpsc::channel();
        let cfg = QrConfig {
            mode: Mode::Rqrr,
            ..cfg.clone()
        };
        let worker = std::thread::Builder::new()
            .name("qr-second".into())
            .spawn(move || {
                let mut rotation = Rotation::new(per_frame);
                while let Ok((frame, tag)) = job_rx.recv() {
                    let decoded = decode_rotating(&frame, &cfg, &mut rotation);
                    if answer_tx.send(Answer { decoded, tag }).is_err() {
                        break;
                    }
                }
            })?;
        Ok(SecondOpinion {
            jobs: Some(jobs),
            answers,
            worker: Some(worker),
        })
    }

    /// Offers a frame; `false` when the worker is busy and one frame already waits (dropped).
    pub fn offer(&self, frame: &GrayImage, tag: T) -> bool {
        match &self.jobs {
            Some(jobs) => match jobs.try_send((frame.clone(), tag)) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        }
    }

    /// The answers ready now.
    pub fn answers(&self) -> Vec<Answer<T>> {
        let mut out = vec![];
        loop {
            match self.answers.try_recv() {
                Ok(a) => out.push(a),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return out,
            }
        }
    }
}

impl<T: Send + 'static> Drop for SecondOpinion<T> {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait<T: Send>(s: &SecondOpinion<T>) -> Vec<Answer<T>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = s.answers();
            if !a.is_empty() || Instant::now() > deadline {
                return a;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn answers_carry_the_tag_and_a_busy_worker_drops_offers() {
        let code = qrcode::QrCode::new(b"second")
            .unwrap()
            .render::<image::Luma<u8>>()
            .module_dimensions(5, 5)
            .build();
        let s = SecondOpinion::start(&QrConfig::default(), 2).unwrap();
        assert!(s.offer(&code, 7u32));
        let a = wait(&s);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].tag, 7);
        assert_eq!(a[0].decoded.payloads(), ["second"]);
        // A large frame keeps the worker busy; of many offers at once most are dropped.
        let big = image::imageops::resize(&code, 1280, 1280, image::imageops::FilterType::Nearest);
        let taken = (0..20).filter(|&i| s.offer(&big, i)).count();
        assert!((1..20).contains(&taken), "{taken} of 20 offers taken");
        drop(s); // joins the worker
    }

    /// The photos of `tests/data/qr` that zxing-cpp locates but cannot read, and rqrr reads.
    #[test]
    #[cfg(feature = "zxing")]
    fn photos_zxing_cannot_read_are_read_by_the_second_opinion() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/qr");
        let manifest = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
        let zxing = QrConfig {
            mode: Mode::Zxing,
            ..QrConfig::default()
        };
        let s = SecondOpinion::start(&QrConfig::default(), 9).unwrap();
        let mut second_only = 0;
        for line in manifest.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split('\t');
            let (name, expected) = (f.next().unwrap(), f.next().unwrap());
            let frame = image::open(dir.join(name)).unwrap().to_luma8();
            let first = super::super::decode(&frame, &zxing);
            if !first.codes.is_empty() || first.undecoded == 0 {
                continue;
            }
            let rqrr = super::super::decode(
                &frame,
                &QrConfig {
                    mode: Mode::Rqrr,
                    ..QrConfig::default()
                },
            );
            if !rqrr.payloads().contains(&expected.to_string()) {
                continue;
            }
            assert!(s.offer(&frame, second_only));
            let a = wait(&s);
            assert_eq!(a.len(), 1, "{name}");
            assert_eq!(a[0].tag, second_only);
            assert_eq!(a[0].decoded.payloads(), [expected], "{name}");
            second_only += 1;
        }
        assert!(
            second_only >= 1,
            "no photo needs the second opinion: the test shows nothing"
        );
        eprintln!("{second_only} photos read by the second opinion only");
    }
}
