//! Size limits checked before any pixel buffer is allocated.

use crate::error::{CoreError, Result};
use crate::pixel::ImageInfo;

/// Upper bounds on an image's geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most pixels (width x height) an image may have.
    pub max_pixels: u64,
    /// Most pixels along either side.
    pub max_dimension: u32,
}

impl Limits {
    /// 2^30 pixels (3 GiB of RGB), 2^20 pixels per side.
    pub const DEFAULT: Limits = Limits {
        max_pixels: 1 << 30,
        max_dimension: 1 << 20,
    };

    /// Refuses `info` if it is over a limit, saying which and by how much.
    pub fn check(&self, info: &ImageInfo) -> Result<()> {
        let (w, h) = (info.width(), info.height());
        if w > self.max_dimension || h > self.max_dimension {
            return Err(CoreError::LimitExceeded(format!(
                "image is {w}x{h}, a side is over the limit of {} pixels",
                self.max_dimension
            )));
        }
        if info.pixels() > self.max_pixels {
            return Err(CoreError::LimitExceeded(format!(
                "image is {w}x{h} ({}), over the limit of {}",
                human_pixels(info.pixels()),
                human_pixels(self.max_pixels)
            )));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `1234567` -> `"1.2 Mpx"`: pixel counts as people read them.
pub fn human_pixels(px: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "Gpx"), (1_000_000, "Mpx"), (1_000, "kpx")];
    for (scale, unit) in UNITS {
        if px >= scale {
            return format!("{:.1} {unit}", px as f64 / scale as f64);
        }
    }
    format!("{px} px")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::PixelFormat;

    #[test]
    fn over_pixel_limit_names_both_sizes() {
        let l = Limits {
            max_pixels: 268_000_000,
            max_dimension: 1 << 20,
        };
        let info = ImageInfo::new(100_000, 100_000, PixelFormat::Gray8).unwrap();
        let e = l.check(&info).unwrap_err().to_string();
        assert_eq!(
            e,
            "image is 100000x100000 (10.0 Gpx), over the limit of 268.0 Mpx"
        );
    }

    #[test]
    fn over_side_limit_is_refused_and_within_is_accepted() {
        let l = Limits {
            max_pixels: u64::MAX,
            max_dimension: 10,
        };
        assert!(
            l.check(&ImageInfo::new(11, 1, PixelFormat::Gray8).unwrap())
                .is_err()
        );
        assert!(
            l.check(&ImageInfo::new(10, 10, PixelFormat::Rgb8).unwrap())
                .is_ok()
        );
    }
}
