//! Real photographs (the corpus `bench/photo_corpus.sh` builds from Debian's
//! wallpaper packages; `./setup.sh test` builds it): every header is found
//! by the streaming scanner in any chunking, as the decoder reads it.

use std::path::PathBuf;

use nlimage_core::codec::head::HeadScan;

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

#[test]
fn every_photos_header_is_found_in_any_chunking() {
    for path in corpus() {
        let file = std::fs::read(&path).unwrap();
        let (w, h) = image::ImageReader::new(std::io::Cursor::new(&file))
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap();
        for chunk in [1, 7, 64 << 10] {
            let mut scan = HeadScan::new();
            let found = file
                .chunks(chunk)
                .find_map(|c| scan.push(c).unwrap())
                .unwrap_or_else(|| panic!("{}: no header", path.display()));
            assert_eq!(
                (found.format, found.width, found.height),
                ("jpeg", w, h),
                "{} in chunks of {chunk}",
                path.display()
            );
        }
    }
}
