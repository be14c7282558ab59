//! Decoding YuNet 2023mar outputs into faces, with non-maximum suppression.
//!
//! OpenCV 4.6's `FaceDetectorYN` knows only the older YuNet layout, so we run the network with
//! `cv::dnn` and decode here. For each stride s in 8, 16, 32 the network gives, per cell of the
//! (padded) input divided by s, row-major: `cls_s` and `obj_s` (one score each), `bbox_s`
//! (dx, dy, log w, log h in cells) and `kps_s` (five landmarks, x and y offsets in cells).
//! A face's score is √(cls × obj), each clamped to 0..=1.

/// Strides of the three output levels, in the order of [`OUTPUT_NAMES`].
pub const STRIDES: [usize; 3] = [8, 16, 32];

/// Output layer names: cls, obj, bbox, kps for each stride.
pub const OUTPUT_NAMES: [&str; 12] = [
    "cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32", "bbox_8", "bbox_16", "bbox_32",
    "kps_8", "kps_16", "kps_32",
];

/// One detected face, in pixels of the input image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    /// Right eye, left eye, nose tip, right and left mouth corner.
    pub landmarks: [[f32; 2]; 5],
    pub score: f32,
}

impl Face {
    /// The row `FaceRecognizerSF::alignCrop` takes: x, y, w, h, ten landmark values, score.
    pub fn row(&self) -> [f32; 15] {
        let mut r = [0.0; 15];
        r[..4].copy_from_slice(&[self.x, self.y, self.w, self.h]);
        for (i, [lx, ly]) in self.landmarks.iter().enumerate() {
            r[4 + 2 * i] = *lx;
            r[5 + 2 * i] = *ly;
        }
        r[14] = self.score;
        r
    }

    fn iou(&self, o: &Face) -> f32 {
        let ix = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let iy = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        inter / (self.w * self.h + o.w * o.h - inter)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Faces scoring below are dropped.
    pub score_threshold: f32,
    /// Overlapping faces (intersection over union above this) keep only the best.
    pub nms_threshold: f32,
    /// Faces narrower than this (pixels) are dropped: too far away to recognise.
    pub min_face_px: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            score_threshold: 0.8,
            nms_threshold: 0.3,
            min_face_px: 40.0,
        }
    }
}

/// The network's outputs for one image, in [`OUTPUT_NAMES`] order.
#[derive(Debug)]
pub struct Outputs<'a> {
    pub cls: [&'a [f32]; 3],
    pub obj: [&'a [f32]; 3],
    pub bbox: [&'a [f32]; 3],
    pub kps: [&'a [f32]; 3],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("detector output {name} has {got} values, {want} expected for a {w}x{h} input")]
pub struct ShapeError {
    pub name: &'static str,
    pub got: usize,
    pub want: usize,
    pub w: usize,
    pub h: usize,
}

/// Faces in an input of `w`×`h` pixels (multiples of 32), best first, after NMS. Faces are
/// clipped to `img_w`×`img_h`, the image inside the padded input.
pub fn decode(
    out: &Outputs<'_>,
    (w, h): (usize, usize),
    (img_w, img_h): (usize, usize),
    p: &Params,
) -> Result<Vec<Face>, ShapeError> {
    let mut faces = Vec::new();
    for (level, &s) in STRIDES.iter().enumerate() {
        let (cols, rows) = (w / s, h / s);
        let n = cols * rows;
        for (name, data, per) in [
            (OUTPUT_NAMES[level], out.cls[level], 1),
            (OUTPUT_NAMES[3 + level], out.obj[level], 1),
            (OUTPUT_NAMES[6 + level], out.bbox[level], 4),
            (OUTPUT_NAMES[9 + level], out.kps[level], 10),
        ] {
            if data.len() != n * per {
                return Err(ShapeError {
                    name,
                    got: data.len(),
                    want: n * per,
                    w,
                    h,
                });
            }
        }
        let sf = s as f32;
        for idx in 0..n {
            let cls = out.cls[level][idx].clamp(0.0, 1.0);
            let obj = out.obj[level][idx].clamp(0.0, 1.0);
            let score = (cls * obj).sqrt();
            if score.is_nan() || score < p.score_threshold {
                continue;
            }
            let (r, c) = ((idx / cols) as f32, (idx % cols) as f32);
            let b = &out.bbox[level][idx * 4..idx * 4 + 4];
            let cx = (c + b[0]) * sf;
            let cy = (r + b[1]) * sf;
            let bw = b[2].min(10.0).exp() * sf;
            let bh = b[3].min(10.0).exp() * sf;
            let k = &out.kps[level][idx * 10..idx * 10 + 10];
            let mut landmarks = [[0.0; 2]; 5];
            for (i, l) in landmarks.iter_mut().enumerate() {
                *l = [(k[2 * i] + c) * sf, (k[2 * i + 1] + r) * sf];
            }
            let (x0, y0) = ((cx - bw / 2.0).max(0.0), (cy - bh / 2.0).max(0.0));
            let x1 = (cx + bw / 2.0).min(img_w as f32);
            let y1 = (cy + bh / 2.0).min(img_h as f32);
            let face = Face {
                x: x0,
                y: y0,
                w: x1 - x0,
                h: y1 - y0,
                landmarks,
                score,
            };
            if face.w >= p.min_face_px && face.h > 0.0 {
                faces.push(face);
            }
        }
    }
    Ok(nms(faces, p.nms_threshold))
}

/// Keeps the best of overlapping faces, best first.
pub fn nms(mut faces: Vec<Face>, threshold: f32) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::new();
    for f in faces {
        if kept.iter().all(|k| k.iou(&f) <= threshold) {
            kept.push(f);
        }
    }
    kept
}

/// The input size the network is run at for an image: each side rounded up to a multiple of 32.
pub fn padded(w: usize, h: usize) -> (usize, usize) {
    (w.div_ceil(32).max(1) * 32, h.div_ceil(32).max(1) * 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outputs for a 64x64 input with one confident cell at stride 8, row 2, column 3.
    fn one_face() -> [Vec<f32>; 12] {
        let n = |s: usize| (64 / s) * (64 / s);
        let mut v: [Vec<f32>; 12] = Default::default();
        for (l, &s) in STRIDES.iter().enumerate() {
            v[l] = vec![0.0; n(s)];
            v[3 + l] = vec![0.0; n(s)];
            v[6 + l] = vec![0.0; n(s) * 4];
            v[9 + l] = vec![0.0; n(s) * 10];
        }
        let idx = 2 * 8 + 3;
        v[0][idx] = 0.81;
        v[3][idx] = 1.0;
        v[6][idx * 4..idx * 4 + 4].copy_from_slice(&[0.5, 0.5, 2f32.ln() * 3.0, 2f32.ln() * 3.0]);
        v[9][idx * 10] = 0.25;
        v[9][idx * 10 + 1] = -0.5;
        v
    }

    fn outputs(v: &[Vec<f32>; 12]) -> Outputs<'_> {
        Outputs {
            cls: [&v[0], &v[1], &v[2]],
            obj: [&v[3], &v[4], &v[5]],
            bbox: [&v[6], &v[7], &v[8]],
            kps: [&v[9], &v[10], &v[11]],
        }
    }

    #[test]
    fn a_cell_decodes_to_its_box_landmarks_and_score() {
        let v = one_face();
        let p = Params {
            min_face_px: 10.0,
            ..Params::default()
        };
        let faces = decode(&outputs(&v), (64, 64), (64, 64), &p).unwrap();
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        // Centre (3.5, 2.5) cells × 8 = (28, 20); sides e^(3 ln 2) = 8 cells = 64 px, clipped
        // to the image: x 0..60, y 0..52.
        assert!((f.score - 0.9).abs() < 1e-6, "{f:?}");
        assert_eq!((f.x, f.y), (0.0, 0.0));
        assert!(
            (f.w - 60.0).abs() < 1e-4 && (f.h - 52.0).abs() < 1e-4,
            "{f:?}"
        );
        assert_eq!(f.landmarks[0], [(3.0 + 0.25) * 8.0, (2.0 - 0.5) * 8.0]);
        assert_eq!(f.row()[4..6], [26.0, 12.0]);
    }

    #[test]
    fn thresholds_and_minimum_size_drop_faces() {
        let v = one_face();
        let strict = Params {
            score_threshold: 0.95,
            ..Params::default()
        };
        assert!(decode(&outputs(&v), (64, 64), (64, 64), &strict)
            .unwrap()
            .is_empty());
        let far = Params {
            min_face_px: 61.0,
            ..Params::default()
        };
        assert!(decode(&outputs(&v), (64, 64), (64, 64), &far)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn outputs_of_the_wrong_size_are_an_error_not_a_panic() {
        let mut v = one_face();
        v[7].pop();
        let e = decode(&outputs(&v), (64, 64), (64, 64), &Params::default()).unwrap_err();
        assert_eq!(e.name, "bbox_16");
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_faces() {
        let f = |x: f32, score: f32| Face {
            x,
            y: 0.0,
            w: 100.0,
            h: 100.0,
            landmarks: [[0.0; 2]; 5],
            score,
        };
        let kept = nms(vec![f(0.0, 0.8), f(10.0, 0.9), f(300.0, 0.85)], 0.3);
        assert_eq!(kept.iter().map(|k| k.x).collect::<Vec<_>>(), [10.0, 300.0]);
    }

    #[test]
    fn inputs_are_padded_to_multiples_of_32() {
        assert_eq!(padded(640, 480), (640, 480));
        assert_eq!(padded(641, 1), (672, 32));
    }
}
