//! Face recognition for the kiosk (DESIGN.md §3): YuNet detection decoded by our own code over
//! OpenCV's `dnn` ([`decode`], [`engine`]), SFace embeddings, the box's gallery with 1:N search
//! ([`gallery`]) and the policy that keeps unknowns unknown ([`matcher`]).
//!
//! Only [`engine`] touches OpenCV; the rest is plain Rust, tested without models.

pub mod decode;
pub mod engine;
pub mod gallery;
pub mod matcher;
