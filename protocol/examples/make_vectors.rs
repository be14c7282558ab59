//! Writes the pass-code conformance vectors to `protocol/tests/vectors/`.
//!
//! `cargo run -p checkpoint-protocol --example make_vectors`. The output must not change for a
//! given format version; the conformance test fails if the files and the program disagree.

#[path = "../tests/vectors_gen/mod.rs"]
mod vectors_gen;

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    std::fs::create_dir_all(&dir)?;
    let vectors = vectors_gen::vectors();
    for (name, value) in &vectors {
        std::fs::write(dir.join(name), vectors_gen::render(value))?;
    }
    println!("wrote {} vectors to {}", vectors.len(), dir.display());
    Ok(())
}
