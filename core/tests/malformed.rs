//! Malformed files that once crashed a decoder (found by the fuzz targets):
//! each must come back as an error, never a panic.

use std::io::Cursor;

use nlimage_core::{CoreError, Limits, codec, rows};

const LIMITS: Limits = Limits {
    max_pixels: 1 << 20,
    max_dimension: 1 << 14,
};

/// A 5x3 paletted PNG whose PLTE chunk is 638 bytes (not whole RGB
/// entries): the `png` crate's palette expansion indexed past a slice.
const BAD_PALETTE: &[u8] = include_bytes!("data/png_bad_palette.png");

#[test]
fn a_png_palette_of_partial_entries_is_a_decode_error() {
    match rows::open_reader(Cursor::new(BAD_PALETTE.to_vec()), &LIMITS) {
        Err(CoreError::Decode(msg)) => assert!(msg.contains("PLTE"), "{msg}"),
        Err(other) => panic!("a decode error, not {other:?}"),
        Ok(_) => panic!("the streaming reader accepted it"),
    }
    match codec::decode(Cursor::new(BAD_PALETTE), &LIMITS) {
        Err(CoreError::Decode(msg)) => assert!(msg.contains("PLTE"), "{msg}"),
        Err(other) => panic!("a decode error, not {other:?}"),
        Ok(_) => panic!("the whole-image decoder accepted it"),
    }
}
