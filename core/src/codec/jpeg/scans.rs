//! A progressive JPEG's coarse scans alone, for shrink-on-load: the stream
//! without its AC refinement scans (those that add the low bits of AC
//! coefficients sent earlier, `Ah > 0`), which are half to two thirds of a
//! high-quality file's entropy-coded bytes and the slowest to decode.
//!
//! What remains is a valid progression (every later scan refines only what
//! was sent before it, and nothing later is dropped out of order): the DC
//! scans whole, and every AC coefficient to within 2^Al of its value. A
//! thumbnail made from a DCT-scaled decode of it, resized further, differs
//! from one made from the whole file by about a level (measured on the
//! corpus, `server/tests/photos.rs`). libjpeg-turbo cannot skip scans
//! itself: it entropy-decodes every scan whatever the output scale, so this
//! is written here, a walk over the markers that copies bytes.

/// `file` without its AC refinement scans, or `None` when it is not a
/// progressive Huffman JPEG, has none, has more than `max_scans` scans (the
/// decoder refuses it whole then) or does not parse (the decoder judges it).
pub(crate) fn without_ac_refinements(file: &[u8], max_scans: u32) -> Option<Vec<u8>> {
    if !file.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut out = Vec::with_capacity(file.len() / 2);
    out.extend_from_slice(&file[..2]);
    let (mut at, mut progressive, mut scans, mut dropped) = (2, false, 0u32, false);
    loop {
        // A marker: 0xFF, any fill 0xFF bytes, then its code.
        if *file.get(at)? != 0xFF {
            return None;
        }
        let mut code_at = at + 1;
        while *file.get(code_at)? == 0xFF {
            code_at += 1;
        }
        let code = file[code_at];
        match code {
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                return (progressive && dropped).then_some(out);
            }
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&[0xFF, code]);
                at = code_at + 1;
                continue;
            }
            _ => {}
        }
        let len_at = code_at + 1;
        let len = usize::from(u16::from_be_bytes([
            *file.get(len_at)?,
            *file.get(len_at + 1)?,
        ]));
        let end = len_at.checked_add(len)?;
        if len < 2 || end > file.len() {
            return None;
        }
        match code {
            0xC2 => progressive = true,
            // Other frame types (baseline, arithmetic, lossless): as they are.
            0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            _ => {}
        }
        if code != 0xDA {
            out.extend_from_slice(&[0xFF, code]);
            out.extend_from_slice(&file[len_at..end]);
            at = end;
            continue;
        }
        scans += 1;
        if scans > max_scans {
            return None;
        }
        // SOS: Ns, Ns x (id, tables), Ss, Se, Ah:Al; then entropy-coded
        // data up to the next marker that is not a stuffed byte or a restart.
        let ns = usize::from(*file.get(len_at + 2)?);
        let spectral = len_at + 3 + 2 * ns;
        if end != spectral + 3 {
            return None;
        }
        let (ss, ah) = (file[spectral], file[spectral + 2] >> 4);
        let data_end = entropy_end(file, end)?;
        if ss > 0 && ah > 0 {
            dropped = true;
        } else {
            out.extend_from_slice(&[0xFF, code]);
            out.extend_from_slice(&file[len_at..data_end]);
        }
        at = data_end;
    }
}

/// Where the entropy-coded data starting at `from` ends: the first 0xFF
/// that is not a stuffed zero, a restart marker or fill before one.
fn entropy_end(file: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let ff = at + file[at..].iter().position(|&b| b == 0xFF)?;
        let mut next = ff + 1;
        while *file.get(next)? == 0xFF {
            next += 1;
        }
        match file[next] {
            0x00 | 0xD0..=0xD7 => at = next + 1,
            _ => return Some(ff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A progressive stream of `scans` (Ss, Ah, entropy bytes, kept), each
    /// after a DHT segment (kept either way); without the scans not kept
    /// when `coarse`.
    fn stream(scans: &[(u8, u8, &[u8], bool)], coarse: bool) -> Vec<u8> {
        let mut f = vec![0xFF, 0xD8, 0xFF, 0xC2, 0, 5, 8, 0, 1];
        for &(ss, ah, data, kept) in scans {
            f.extend_from_slice(&[0xFF, 0xC4, 0, 3, 0x10]);
            if kept || !coarse {
                f.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, ss, 63, ah << 4]);
                f.extend_from_slice(data);
            }
        }
        f.extend_from_slice(&[0xFF, 0xD9]);
        f
    }

    #[test]
    fn ac_refinement_scans_are_dropped_and_everything_else_kept_byte_for_byte() {
        // Stuffed bytes, restart markers and fill bytes inside the data do
        // not end a scan.
        let scans: [(u8, u8, &[u8], bool); 5] = [
            (0, 0, &[1, 0xFF, 0x00, 2, 0xFF, 0xD0, 3], true),
            (1, 0, &[4, 5, 0xFF, 0x00], true),
            (1, 2, &[6, 0xFF, 0xFF, 0xD1, 7, 8], false),
            (0, 1, &[9], true),
            (6, 1, &[10, 11], false),
        ];
        let whole = stream(&scans, false);
        let coarse = without_ac_refinements(&whole, 500).unwrap();
        assert_eq!(coarse, stream(&scans, true));
    }

    #[test]
    fn streams_it_cannot_shorten_or_read_are_left_to_the_decoder() {
        let kept: [(u8, u8, &[u8], bool); 2] = [(0, 0, &[1], true), (1, 0, &[2], true)];
        assert_eq!(without_ac_refinements(&stream(&kept, false), 500), None);
        let scans: [(u8, u8, &[u8], bool); 3] =
            [(0, 0, &[1], true), (1, 0, &[2], true), (1, 1, &[3], false)];
        let whole = stream(&scans, false);
        // Too many scans: the decoder refuses the file whole.
        assert_eq!(without_ac_refinements(&whole, 2), None);
        // Baseline, cut off anywhere, or not a JPEG.
        let mut baseline = whole.clone();
        baseline[3] = 0xC0;
        assert_eq!(without_ac_refinements(&baseline, 500), None);
        for cut in 0..whole.len() - 1 {
            assert_eq!(
                without_ac_refinements(&whole[..cut], 500),
                None,
                "cut at {cut}"
            );
        }
        assert_eq!(without_ac_refinements(b"GIF89a", 500), None);
        // A scan header whose length disagrees with its component count.
        let mut bad = whole.clone();
        let sos = bad.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        bad[sos + 4] = 3;
        assert_eq!(without_ac_refinements(&bad, 500), None);
    }
}
