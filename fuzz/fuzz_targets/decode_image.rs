//! The client's decoders on arbitrary bytes: the row reader (PNG streamed,
//! other formats whole) and the whole-image decoder, under small limits.
//! Nothing panics, nothing allocates past the limits, and a reader that
//! opens yields exactly its declared rows or an error. The upload's header
//! and frame scanners read the same bytes in chunks of a size the input
//! picks, and agree with themselves whatever the chunking. A JPEG is also
//! decoded as shrink-on-load does (DCT-scaled, a progressive one from its
//! coarse scans).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use nlimage_core::{Limits, codec, rows};

const LIMITS: Limits = Limits {
    max_pixels: 1 << 20,
    max_dimension: 1 << 14,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = rows::open_reader(Cursor::new(data.to_vec()), &LIMITS) {
        let info = reader.info();
        assert!(info.pixels() <= LIMITS.max_pixels);
        let mut row = vec![0u8; info.row_bytes()];
        for _ in 0..info.height() {
            if reader.read_rows(&mut row).is_err() {
                break;
            }
        }
    }
    if let Ok(img) = codec::decode(Cursor::new(data), &LIMITS) {
        assert!(img.info().pixels() <= LIMITS.max_pixels);
    }
    // Shrink-on-load: a DCT-scaled decode, of a progressive file's coarse
    // scans alone (the scan walk reads the same untrusted bytes).
    if let Ok(Some(img)) = codec::decode_jpeg_reduced(data, 8, 8, &LIMITS, codec::Colour::Srgb) {
        assert!(img.info().pixels() <= LIMITS.max_pixels);
        assert!(img.info().width() >= 8 && img.info().height() >= 8);
    }
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let head = |size: usize| {
        let mut s = codec::head::HeadScan::new();
        for c in data.chunks(size) {
            match s.push(c) {
                Ok(Some(h)) => return Some(h),
                Ok(None) => {}
                Err(_) => return None,
            }
        }
        s.finish().ok()
    };
    assert_eq!(head(chunk), head(data.len().max(1)), "the chunking changed the header");
    let mut frames = codec::frames::FrameScan::new(LIMITS);
    for c in data.chunks(chunk) {
        if frames.push(c).is_err() {
            break;
        }
    }
});
