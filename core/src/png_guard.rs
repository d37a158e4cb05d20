//! Structure the `png` crate (0.18, the newest) panics on instead of
//! reporting, checked before any PNG reaches it: a palette (PLTE) whose
//! length is not a whole number of RGB entries, or more than 256 of them,
//! makes its palette expansion index past a slice (found by the
//! `decode_image` fuzz target). The PNG specification forbids both, so
//! refusing them changes nothing for valid files.

use std::io::{Read, Seek, SeekFrom};

use crate::error::{CoreError, Result};

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// If `input` is a PNG, walks its chunks up to the first IDAT and fails
/// on a malformed PLTE; leaves `input` at its start either way. Only chunk
/// headers are read (the data of each chunk is skipped with a seek), and
/// a file that ends early is left for the decoder to report.
pub(crate) fn check<R: Read + Seek>(input: &mut R) -> Result<()> {
    let start = input.stream_position()?;
    let result = walk(input);
    input.seek(SeekFrom::Start(start))?;
    result
}

fn walk<R: Read + Seek>(input: &mut R) -> Result<()> {
    let mut sig = [0u8; 8];
    if input.read_exact(&mut sig).is_err() || sig != *SIGNATURE {
        return Ok(());
    }
    let mut head = [0u8; 8];
    while input.read_exact(&mut head).is_ok() {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        match &head[4..8] {
            b"IDAT" => break,
            b"PLTE" if len == 0 || len % 3 != 0 || len > 3 * 256 => {
                return Err(CoreError::Decode(format!(
                    "malformed PNG: its palette (PLTE) is {len} bytes, not 1 to 256 RGB entries"
                )));
            }
            _ => {}
        }
        // The chunk's data and its 4-byte CRC.
        input.seek(SeekFrom::Current(i64::from(len) + 4))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A PNG up to its PLTE chunk (of `plte` bytes) and an empty IDAT.
    fn png_with_palette(plte: usize) -> Vec<u8> {
        let mut f = SIGNATURE.to_vec();
        let chunk = |f: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
            f.extend_from_slice(&(data.len() as u32).to_be_bytes());
            f.extend_from_slice(kind);
            f.extend_from_slice(data);
            f.extend_from_slice(&[0; 4]);
        };
        chunk(&mut f, b"IHDR", &[0, 0, 0, 5, 0, 0, 0, 3, 8, 3, 0, 0, 0]);
        chunk(&mut f, b"tEXt", b"a\0b");
        chunk(&mut f, b"PLTE", &vec![7; plte]);
        chunk(&mut f, b"IDAT", &[]);
        f
    }

    #[test]
    fn palettes_of_whole_entries_pass_and_others_fail_leaving_the_input_at_its_start() {
        for (plte, ok) in [
            (3, true),
            (768, true),
            (0, false),
            (638, false),
            (4, false),
            (771, false),
        ] {
            let mut input = Cursor::new(png_with_palette(plte));
            assert_eq!(check(&mut input).is_ok(), ok, "a {plte}-byte palette");
            assert_eq!(input.position(), 0, "rewound");
        }
    }

    #[test]
    fn other_input_passes_untouched() {
        for bytes in [&b""[..], b"GIF89a", &SIGNATURE[..5], &SIGNATURE[..]] {
            let mut input = Cursor::new(bytes);
            assert!(check(&mut input).is_ok());
            assert_eq!(input.position(), 0);
        }
    }
}
