//! Unknowns stay unknown: a face is someone only when the gallery's best identity is similar
//! enough, clearly ahead of every other identity, and the same over several consecutive frames.

use crate::gallery::Search;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchPolicy {
    /// Cosine similarity the best identity needs (SFace: 0.363 is OpenCV's equal-error point;
    /// we ask more, since a stranger let in is worse than a known person asked to retry).
    pub threshold: f32,
    /// How far ahead of the best other identity it must be.
    pub margin: f32,
    /// Consecutive frames that must agree.
    pub frames: u32,
}

impl Default for MatchPolicy {
    fn default() -> Self {
        MatchPolicy {
            threshold: 0.45,
            margin: 0.08,
            frames: 3,
        }
    }
}

impl MatchPolicy {
    /// The identity this one frame supports, if any.
    pub fn frame(&self, s: &Search) -> Option<String> {
        match &s.best {
            Some((id, sim)) if *sim >= self.threshold && s.margin() >= self.margin => {
                Some(id.clone())
            }
            _ => None,
        }
    }
}

/// What the frames so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough agreeing frames yet.
    Undecided,
    Known(String),
    /// The frames needed were seen and did not agree on anyone.
    Unknown,
}

/// Agreement over consecutive frames of one face in front of the camera.
#[derive(Debug, Clone)]
pub struct Streak {
    policy: MatchPolicy,
    last: Option<Option<String>>,
    run: u32,
}

impl Streak {
    pub fn new(policy: MatchPolicy) -> Streak {
        Streak {
            policy,
            last: None,
            run: 0,
        }
    }

    /// Adds one frame's search; a verdict other than `Undecided` ends the streak.
    pub fn push(&mut self, s: &Search) -> Verdict {
        let this = self.policy.frame(s);
        if self.last.as_ref() == Some(&this) {
            self.run += 1;
        } else {
            self.last = Some(this.clone());
            self.run = 1;
        }
        if self.run < self.policy.frames.max(1) {
            return Verdict::Undecided;
        }
        self.last = None;
        self.run = 0;
        match this {
            Some(id) => Verdict::Known(id),
            None => Verdict::Unknown,
        }
    }

    pub fn reset(&mut self) {
        self.last = None;
        self.run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, sim: f32, second: f32) -> Search {
        Search {
            best: Some((id.into(), sim)),
            second,
        }
    }

    #[test]
    fn a_match_needs_threshold_margin_and_agreeing_frames() {
        let p = MatchPolicy::default();
        assert_eq!(p.frame(&s("a", 0.7, 0.2)), Some("a".into()));
        assert_eq!(p.frame(&s("a", 0.40, 0.1)), None, "below the threshold");
        assert_eq!(
            p.frame(&s("a", 0.7, 0.65)),
            None,
            "too close to someone else"
        );
        let mut k = Streak::new(p);
        assert_eq!(k.push(&s("a", 0.7, 0.2)), Verdict::Undecided);
        assert_eq!(
            k.push(&s("b", 0.7, 0.2)),
            Verdict::Undecided,
            "disagrees: starts over"
        );
        assert_eq!(k.push(&s("b", 0.7, 0.2)), Verdict::Undecided);
        assert_eq!(k.push(&s("b", 0.7, 0.2)), Verdict::Known("b".into()));
        for _ in 0..2 {
            assert_eq!(k.push(&s("a", 0.3, 0.1)), Verdict::Undecided);
        }
        assert_eq!(k.push(&s("a", 0.3, 0.1)), Verdict::Unknown);
    }
}
