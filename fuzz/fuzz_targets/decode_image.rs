//! The client's decoders on arbitrary bytes: the row reader (PNG streamed,
//! other formats whole) and the whole-image decoder, under small limits.
//! Nothing panics, nothing allocates past the limits, and a reader that
//! opens yields exactly its declared rows or an error.
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
});
