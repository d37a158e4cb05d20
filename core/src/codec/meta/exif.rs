//! The few EXIF edits a derived image needs, on the TIFF structure EXIF
//! is: the orientation set to upright, and a new EXIF of the artist and
//! copyright alone. Malformed EXIF gives nothing, never a panic.

/// Tag of the orientation (SHORT).
const ORIENTATION: u16 = 0x0112;
/// Tags kept by `meta=copyright` (ASCII).
const ARTIST: u16 = 0x013B;
const COPYRIGHT: u16 = 0x8298;
/// The TIFF type of ASCII text.
const ASCII: u16 = 2;

/// A TIFF structure's byte order.
#[derive(Clone, Copy)]
struct Order(bool);

impl Order {
    fn of(exif: &[u8]) -> Option<Self> {
        match exif.get(..4)? {
            b"II*\0" => Some(Self(true)),
            b"MM\0*" => Some(Self(false)),
            _ => None,
        }
    }
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let b: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.0 {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let b: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.0 {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    fn put16(self, v: u16) -> [u8; 2] {
        if self.0 {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }
    fn put32(self, v: u32) -> [u8; 4] {
        if self.0 {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }
}

/// A directory entry: tag, type, count, where its 12 bytes start.
type Entry = (u16, u16, u32, usize);

/// The first directory's entries.
fn ifd0(exif: &[u8]) -> Option<(Order, Vec<Entry>)> {
    let o = Order::of(exif)?;
    let at = o.u32(exif, 4)? as usize;
    let n = o.u16(exif, at)? as usize;
    let entries = (0..n)
        .map_while(|i| {
            let e = at + 2 + 12 * i;
            Some((o.u16(exif, e)?, o.u16(exif, e + 2)?, o.u32(exif, e + 4)?, e))
        })
        .collect();
    Some((o, entries))
}

/// Sets the orientation in `exif` to 1 (upright) where it has one.
pub(super) fn set_orientation_upright(exif: &mut [u8]) {
    let Some((o, entries)) = ifd0(exif) else {
        return;
    };
    for (tag, typ, count, e) in entries {
        if tag == ORIENTATION
            && typ == 3
            && count == 1
            && let Some(v) = exif.get_mut(e + 8..e + 10)
        {
            v.copy_from_slice(&o.put16(1));
        }
    }
}

/// A new EXIF holding only the source's artist and copyright, or `None`
/// when it has neither.
pub(super) fn copyright_only(exif: &[u8]) -> Option<Vec<u8>> {
    let (o, entries) = ifd0(exif)?;
    let mut kept: Vec<(u16, &[u8])> = Vec::new();
    for (tag, typ, count, e) in entries {
        if (tag == ARTIST || tag == COPYRIGHT) && typ == ASCII {
            let n = count as usize;
            let at = if n <= 4 {
                e + 8
            } else {
                o.u32(exif, e + 8)? as usize
            };
            kept.push((tag, exif.get(at..at.checked_add(n)?)?));
        }
    }
    if kept.is_empty() {
        return None;
    }
    kept.sort_by_key(|k| k.0);
    let mut out = exif[..4].to_vec();
    out.extend(o.put32(8));
    out.extend(o.put16(kept.len() as u16));
    let mut data_at = 8 + 2 + 12 * kept.len() + 4;
    let mut data = Vec::new();
    for (tag, value) in &kept {
        out.extend(o.put16(*tag));
        out.extend(o.put16(ASCII));
        out.extend(o.put32(value.len() as u32));
        if value.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..value.len()].copy_from_slice(value);
            out.extend(inline);
        } else {
            out.extend(o.put32(data_at as u32));
            data.extend_from_slice(value);
            if value.len() % 2 == 1 {
                data.push(0);
            }
            data_at = 8 + 2 + 12 * kept.len() + 4 + data.len();
        }
    }
    out.extend(o.put32(0));
    out.extend(data);
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A little-endian EXIF with `entries` (tag, type, count, value bytes)
    /// in IFD0, values over four bytes stored after it.
    pub(crate) fn exif(entries: &[(u16, u16, &[u8])]) -> Vec<u8> {
        let mut out = b"II*\0".to_vec();
        out.extend(8u32.to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        let data_start = 8 + 2 + 12 * entries.len() + 4;
        let mut data = Vec::new();
        for (tag, typ, value) in entries {
            out.extend(tag.to_le_bytes());
            out.extend(typ.to_le_bytes());
            let count = if *typ == 3 {
                value.len() / 2
            } else {
                value.len()
            };
            out.extend((count as u32).to_le_bytes());
            if value.len() <= 4 {
                let mut v = [0u8; 4];
                v[..value.len()].copy_from_slice(value);
                out.extend(v);
            } else {
                out.extend(((data_start + data.len()) as u32).to_le_bytes());
                data.extend_from_slice(value);
            }
        }
        out.extend(0u32.to_le_bytes());
        out.extend(data);
        out
    }

    /// The value bytes of a tag of `exif`'s IFD0 (ASCII or SHORT).
    pub(crate) fn ascii(exif: &[u8], want: u16) -> Option<Vec<u8>> {
        let (o, entries) = ifd0(exif)?;
        let (_, typ, count, e) = entries.into_iter().find(|x| x.0 == want)?;
        let n = count as usize * if typ == 3 { 2 } else { 1 };
        let at = if n <= 4 {
            e + 8
        } else {
            o.u32(exif, e + 8)? as usize
        };
        Some(exif.get(at..at + n)?.to_vec())
    }

    #[test]
    fn copyright_is_kept_alone_and_orientation_set_upright() {
        let gps_pointer = 0x8825u16;
        let src = exif(&[
            (ORIENTATION, 3, &6u16.to_le_bytes()),
            (ARTIST, ASCII, b"Ansel A.\0"),
            (COPYRIGHT, ASCII, b"(c)\0"),
            (gps_pointer, 4, &200u32.to_le_bytes()),
        ]);
        let kept = copyright_only(&src).unwrap();
        assert_eq!(ascii(&kept, ARTIST).unwrap(), b"Ansel A.\0");
        assert_eq!(ascii(&kept, COPYRIGHT).unwrap(), b"(c)\0");
        assert!(ascii(&kept, gps_pointer).is_none());
        assert!(ascii(&kept, ORIENTATION).is_none());
        let mut upright = src.clone();
        set_orientation_upright(&mut upright);
        assert_eq!(
            ascii(&upright, ORIENTATION).unwrap()[..2],
            1u16.to_le_bytes()
        );
        // Nothing to keep; malformed input gives nothing and no panic.
        assert!(copyright_only(&exif(&[(ORIENTATION, 3, &[1, 0])])).is_none());
        for cut in 0..src.len() {
            let _ = copyright_only(&src[..cut]);
            set_orientation_upright(&mut src[..cut].to_vec());
        }
        assert!(copyright_only(b"MM\0*\xFF\xFF\xFF\xFF").is_none());
    }
}
