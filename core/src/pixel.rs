//! Pixel formats, image geometry with checked sizes, and the owned image
//! buffer the kernels work on.

use crate::error::{CoreError, Result};

/// How a pixel is laid out: 8 bits per channel, channels interleaved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// One byte per pixel.
    Gray8,
    /// Red, green, blue.
    Rgb8,
    /// Red, green, blue, straight alpha.
    Rgba8,
}

impl PixelFormat {
    /// Bytes (= channels) per pixel.
    pub const fn channels(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 => 4,
        }
    }

    /// A short lowercase name, for messages and logs.
    pub const fn name(self) -> &'static str {
        match self {
            PixelFormat::Gray8 => "gray8",
            PixelFormat::Rgb8 => "rgb8",
            PixelFormat::Rgba8 => "rgba8",
        }
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The geometry of an image: width, height and pixel format.
///
/// Constructed only through [`ImageInfo::new`], which rejects zero sizes and
/// sizes whose byte length overflows `usize`; every size method is therefore
/// infallible afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageInfo {
    width: u32,
    height: u32,
    format: PixelFormat,
}

impl ImageInfo {
    /// Validates and builds an image geometry.
    pub fn new(width: u32, height: u32, format: PixelFormat) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(CoreError::InvalidInput(format!(
                "image is {width}x{height}: width and height must both be at least 1"
            )));
        }
        let bytes = (width as u64)
            .checked_mul(height as u64)
            .and_then(|p| p.checked_mul(format.channels() as u64))
            .filter(|&b| usize::try_from(b).is_ok());
        if bytes.is_none() {
            return Err(CoreError::TooLarge(format!(
                "image is {width}x{height} {format}: its size overflows this machine's address space"
            )));
        }
        Ok(Self {
            width,
            height,
            format,
        })
    }

    /// Width in pixels (>= 1).
    pub const fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels (>= 1).
    pub const fn height(&self) -> u32 {
        self.height
    }

    /// Pixel format.
    pub const fn format(&self) -> PixelFormat {
        self.format
    }

    /// Channels (bytes) per pixel.
    pub const fn channels(&self) -> usize {
        self.format.channels()
    }

    /// Number of pixels.
    pub const fn pixels(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// Bytes in one row.
    pub const fn row_bytes(&self) -> usize {
        self.width as usize * self.format.channels()
    }

    /// Bytes in the whole image.
    pub const fn byte_len(&self) -> usize {
        self.row_bytes() * self.height as usize
    }

    /// The same image with width and height swapped (a quarter turn).
    pub const fn transposed(&self) -> Self {
        Self {
            width: self.height,
            height: self.width,
            format: self.format,
        }
    }
}

impl std::fmt::Display for ImageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} {}", self.width, self.height, self.format)
    }
}

/// An owned image: geometry plus exactly `info.byte_len()` row-major bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageBuf {
    info: ImageInfo,
    data: Vec<u8>,
}

impl ImageBuf {
    /// Wraps pixel bytes, checking that their length matches the geometry.
    pub fn new(info: ImageInfo, data: Vec<u8>) -> Result<Self> {
        if data.len() != info.byte_len() {
            return Err(CoreError::InvalidInput(format!(
                "a {info} image needs {} bytes of pixels, got {}",
                info.byte_len(),
                data.len()
            )));
        }
        Ok(Self { info, data })
    }

    /// Builds an image from raw parts, validating both size and length.
    pub fn from_raw(width: u32, height: u32, format: PixelFormat, data: Vec<u8>) -> Result<Self> {
        Self::new(ImageInfo::new(width, height, format)?, data)
    }

    /// A zero-filled image; fails cleanly if memory is short.
    pub fn zeroed(info: ImageInfo) -> Result<Self> {
        Ok(Self {
            info,
            data: crate::error::try_alloc(info.byte_len())?,
        })
    }

    /// The geometry.
    pub const fn info(&self) -> ImageInfo {
        self.info
    }

    /// The pixel bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The pixel bytes, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Gives up the pixel bytes.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

impl std::fmt::Debug for ImageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageBuf")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_dimensions_are_invalid() {
        assert!(matches!(
            ImageInfo::new(0, 5, PixelFormat::Gray8),
            Err(CoreError::InvalidInput(_))
        ));
        assert!(matches!(
            ImageInfo::new(5, 0, PixelFormat::Rgb8),
            Err(CoreError::InvalidInput(_))
        ));
    }

    #[test]
    fn sizes_are_computed_per_format() {
        let info = ImageInfo::new(7, 3, PixelFormat::Rgba8).unwrap();
        assert_eq!(info.row_bytes(), 28);
        assert_eq!(info.byte_len(), 84);
        assert_eq!(info.pixels(), 21);
        assert_eq!(info.transposed().width(), 3);
    }

    #[test]
    fn wrong_data_length_is_rejected() {
        let err = ImageBuf::from_raw(2, 2, PixelFormat::Rgb8, vec![0; 11]).unwrap_err();
        assert!(err.to_string().contains("needs 12 bytes"), "{err}");
    }
}
