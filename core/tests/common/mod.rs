//! What the photo tests share: the corpus of real photographs.

use std::path::PathBuf;

/// The corpus's photos, or a failure saying how to build it.
pub fn corpus() -> Vec<PathBuf> {
    let dir = std::env::var_os("NL_PHOTO_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/photo-corpus"),
        PathBuf::from,
    );
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "no photo corpus in {} ({e}): run bench/photo_corpus.sh (./setup.sh test does)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    photos.sort();
    assert!(photos.len() >= 40, "the corpus has {} photos", photos.len());
    photos
}
