//! Conversions between the `nlimage.v1` wire types and `nlimage-core`'s
//! domain types, shared by the server and the client so that both validate
//! and describe headers and operations the same way.

use nlimage_core::codec::meta::MetaKeep;
use nlimage_core::{
    CoreError, CropBox, EncodeOptions, Flip, ImageInfo, Kernel, Operation, OutputFormat,
    PixelFormat, PngCompression, Rotation,
};

use crate::v1;

/// An output format named by extension (`png`, `.jpg`, `webp`); empty is
/// `None` (the stored file as it is).
pub fn output_format(ext: &str) -> Result<Option<OutputFormat>, CoreError> {
    if ext.is_empty() {
        return Ok(None);
    }
    OutputFormat::from_extension(ext.trim_start_matches('.'))
        .map(Some)
        .ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "unknown output format '{ext}': use one of {}",
                OutputFormat::EXTENSIONS
            ))
        })
}

/// Encoder options from the wire (defaults where absent), checked.
pub fn encode_options(o: Option<&v1::EncodeOptions>) -> Result<EncodeOptions, CoreError> {
    let Some(o) = o else {
        return Ok(EncodeOptions::default());
    };
    let quality = o.jpeg_quality.map(|q| u8::try_from(q).unwrap_or(0));
    let png = if o.png_compression.is_empty() {
        PngCompression::default()
    } else {
        PngCompression::from_name(&o.png_compression).ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "unknown PNG compression '{}': use none, fast, balanced or best",
                o.png_compression
            ))
        })?
    };
    let effort = o.effort.map(|e| u8::try_from(e).unwrap_or(u8::MAX));
    let meta = if o.meta.is_empty() {
        MetaKeep::default()
    } else {
        MetaKeep::from_name(&o.meta).ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "unknown metadata choice '{}': use strip, copyright or keep",
                o.meta
            ))
        })?
    };
    EncodeOptions {
        progressive: o.progressive,
        meta,
        keep_icc: o.keep_icc,
        ..EncodeOptions::new(quality, png, o.lossless)?
    }
    .with_effort(effort)
}

/// Validates a wire header into a geometry: known format, non-zero and
/// non-overflowing dimensions.
pub fn image_info(header: &v1::ImageHeader) -> Result<ImageInfo, CoreError> {
    let format = match v1::PixelFormat::try_from(header.format) {
        Ok(v1::PixelFormat::Gray8) => PixelFormat::Gray8,
        Ok(v1::PixelFormat::Rgb8) => PixelFormat::Rgb8,
        Ok(v1::PixelFormat::Rgba8) => PixelFormat::Rgba8,
        Ok(v1::PixelFormat::Unspecified) => {
            return Err(CoreError::InvalidInput(
                "the header's pixel format is unspecified: use GRAY8, RGB8 or RGBA8".into(),
            ));
        }
        Err(_) => {
            return Err(CoreError::InvalidInput(format!(
                "unknown pixel format {}: use GRAY8 (1), RGB8 (2) or RGBA8 (3)",
                header.format
            )));
        }
    };
    ImageInfo::new(header.width, header.height, format)
}

/// The wire header describing `info`.
pub fn image_header(info: ImageInfo) -> v1::ImageHeader {
    let format = match info.format() {
        PixelFormat::Gray8 => v1::PixelFormat::Gray8,
        PixelFormat::Rgb8 => v1::PixelFormat::Rgb8,
        PixelFormat::Rgba8 => v1::PixelFormat::Rgba8,
    };
    v1::ImageHeader {
        width: info.width(),
        height: info.height(),
        format: format as i32,
    }
}

/// Validates the operation at position `index` of a header.
pub fn operation(index: usize, op: &v1::Operation) -> Result<Operation, CoreError> {
    use v1::operation::Op;
    let bad = |why: String| CoreError::InvalidInput(format!("operation {index}: {why}"));
    let op = match &op.op {
        Some(Op::Mean(_)) => Operation::Mean3x3,
        Some(Op::Rotate(r)) => match v1::Rotation::try_from(r.rotation) {
            Ok(v1::Rotation::None) => Operation::Rotate(Rotation::None),
            Ok(v1::Rotation::Rotation90) => Operation::Rotate(Rotation::Ccw90),
            Ok(v1::Rotation::Rotation180) => Operation::Rotate(Rotation::Ccw180),
            Ok(v1::Rotation::Rotation270) => Operation::Rotate(Rotation::Ccw270),
            Err(_) => {
                return Err(bad(format!(
                    "unknown rotation {}: use 0 (none), 1 (90), 2 (180) or 3 (270)",
                    r.rotation
                )));
            }
        },
        Some(Op::Flip(f)) => match v1::flip::Axis::try_from(f.axis) {
            Ok(v1::flip::Axis::Horizontal) => Operation::Flip(Flip::Horizontal),
            Ok(v1::flip::Axis::Vertical) => Operation::Flip(Flip::Vertical),
            _ => {
                return Err(bad(format!(
                    "flip axis {} is not 1 (horizontal) or 2 (vertical)",
                    f.axis
                )));
            }
        },
        Some(Op::Crop(c)) => Operation::Crop(CropBox {
            x: c.x,
            y: c.y,
            width: c.width,
            height: c.height,
        }),
        Some(Op::Blur(b)) => Operation::Blur { sigma: b.sigma },
        Some(Op::Sharpen(s)) => Operation::Sharpen {
            sigma: s.sigma,
            amount: s.amount.unwrap_or(1.0),
        },
        Some(Op::Convolve(c)) => {
            let size = match c.weights.len() {
                9 => 3,
                25 => 5,
                n => return Err(bad(format!("convolve needs 9 or 25 weights, got {n}"))),
            };
            let divisor = c.divisor.unwrap_or_else(|| {
                match c.weights.iter().map(|&w| i64::from(w)).sum::<i64>() {
                    0 => 1,
                    s => i32::try_from(s).unwrap_or(i32::MAX),
                }
            });
            Operation::Convolve(Kernel {
                size,
                weights: c.weights.clone(),
                divisor,
            })
        }
        Some(Op::Gray(_)) => Operation::Gray,
        Some(Op::Brightness(b)) => Operation::Brightness(b.delta),
        Some(Op::Contrast(c)) => Operation::Contrast(c.factor),
        Some(Op::Gamma(g)) => Operation::Gamma(g.gamma),
        Some(Op::Resize(r)) => {
            use nlimage_core::ops::resize::{Filter, Fit, Resize};
            let fit = match v1::resize::Fit::try_from(r.fit) {
                Ok(v1::resize::Fit::Fit) => Fit::Fit,
                Ok(v1::resize::Fit::Fill) => Fit::Fill,
                Ok(v1::resize::Fit::Exact) => Fit::Exact,
                Ok(v1::resize::Fit::Inside) => Fit::Inside,
                Err(_) => return Err(bad(format!("unknown resize fit {}", r.fit))),
            };
            let filter = match v1::resize::Filter::try_from(r.filter) {
                Ok(v1::resize::Filter::Lanczos3) => Filter::Lanczos3,
                Ok(v1::resize::Filter::Cubic) => Filter::Cubic,
                Ok(v1::resize::Filter::Linear) => Filter::Linear,
                Ok(v1::resize::Filter::Box) => Filter::Box,
                Ok(v1::resize::Filter::Nearest) => Filter::Nearest,
                Err(_) => return Err(bad(format!("unknown resize filter {}", r.filter))),
            };
            let side = |v: u32| (v != 0).then_some(v);
            let (width, height) = (side(r.width), side(r.height));
            Operation::Resize(Resize {
                width,
                height,
                // Moot with one side: one spelling, as the spec parser.
                fit: if (width.is_some() && height.is_some()) || fit == Fit::Inside {
                    fit
                } else {
                    Fit::Fit
                },
                filter,
            })
        }
        Some(Op::Overlay(o)) => {
            let header = o
                .image
                .as_ref()
                .ok_or_else(|| bad("the overlay has no image size and format".into()))?;
            let info = image_info(header).map_err(|e| bad(format!("overlay: {e}")))?;
            if info.pixels() > nlimage_core::ops::overlay::MAX_OVERLAY_PIXELS {
                return Err(CoreError::LimitExceeded(format!(
                    "operation {index}: an overlay of {info} is over the limit of {} pixels",
                    nlimage_core::ops::overlay::MAX_OVERLAY_PIXELS
                )));
            }
            let image = nlimage_core::ImageBuf::new(info, o.pixels.to_vec())
                .map_err(|e| bad(format!("overlay: {e}")))?;
            Operation::Overlay(nlimage_core::ops::overlay::Overlay {
                image: std::sync::Arc::new(image),
                x: o.x,
                y: o.y,
                opacity: o.opacity.unwrap_or(1.0),
            })
        }
        Some(Op::Spec(s)) => {
            return Operation::parse(s).map_err(|e| {
                let e = e.to_string();
                bad(e.strip_prefix("operation ").unwrap_or(&e).to_string())
            });
        }
        None => {
            return Err(bad(
                "it is empty or of a kind this server does not know".into()
            ));
        }
    };
    op.validate().map_err(|e| bad(e.to_string()))?;
    Ok(op)
}

/// Validates every operation of a header, in order.
pub fn operations(ops: &[v1::Operation]) -> Result<Vec<Operation>, CoreError> {
    ops.iter()
        .enumerate()
        .map(|(i, op)| operation(i, op))
        .collect()
}

/// The wire form of an operation.
pub fn to_wire(op: &Operation) -> v1::Operation {
    use v1::operation::Op;
    let op = match op {
        Operation::Mean3x3 => Op::Mean(v1::MeanFilter {}),
        Operation::Rotate(r) => {
            let rotation = match r {
                Rotation::None => v1::Rotation::None,
                Rotation::Ccw90 => v1::Rotation::Rotation90,
                Rotation::Ccw180 => v1::Rotation::Rotation180,
                Rotation::Ccw270 => v1::Rotation::Rotation270,
            };
            Op::Rotate(v1::Rotate {
                rotation: rotation as i32,
            })
        }
        Operation::Flip(f) => Op::Flip(v1::Flip {
            axis: match f {
                Flip::Horizontal => v1::flip::Axis::Horizontal,
                Flip::Vertical => v1::flip::Axis::Vertical,
            } as i32,
        }),
        Operation::Crop(b) => Op::Crop(v1::Crop {
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
        }),
        Operation::Blur { sigma } => Op::Blur(v1::GaussianBlur { sigma: *sigma }),
        Operation::Sharpen { sigma, amount } => Op::Sharpen(v1::Sharpen {
            sigma: *sigma,
            amount: Some(*amount),
        }),
        Operation::Convolve(k) => Op::Convolve(v1::Convolve {
            weights: k.weights.clone(),
            divisor: Some(k.divisor),
        }),
        Operation::Gray => Op::Gray(v1::Gray {}),
        Operation::Brightness(n) => Op::Brightness(v1::Brightness { delta: *n }),
        Operation::Contrast(c) => Op::Contrast(v1::Contrast { factor: *c }),
        Operation::Gamma(g) => Op::Gamma(v1::Gamma { gamma: *g }),
        Operation::Overlay(o) => Op::Overlay(v1::Overlay {
            image: Some(image_header(o.image.info())),
            pixels: o.image.data().to_vec().into(),
            x: o.x,
            y: o.y,
            opacity: Some(o.opacity),
        }),
        Operation::Resize(r) => {
            use nlimage_core::ops::resize::{Filter, Fit};
            Op::Resize(v1::Resize {
                width: r.width.unwrap_or(0),
                height: r.height.unwrap_or(0),
                fit: match r.fit {
                    Fit::Fit => v1::resize::Fit::Fit,
                    Fit::Fill => v1::resize::Fit::Fill,
                    Fit::Exact => v1::resize::Fit::Exact,
                    Fit::Inside => v1::resize::Fit::Inside,
                } as i32,
                filter: match r.filter {
                    Filter::Lanczos3 => v1::resize::Filter::Lanczos3,
                    Filter::Cubic => v1::resize::Filter::Cubic,
                    Filter::Linear => v1::resize::Filter::Linear,
                    Filter::Box => v1::resize::Filter::Box,
                    Filter::Nearest => v1::resize::Filter::Nearest,
                } as i32,
            })
        }
    };
    v1::Operation { op: Some(op) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_roundtrip_through_the_wire() {
        for spec in [
            "mean",
            "rotate=0",
            "rotate=90",
            "rotate=180",
            "rotate=270",
            "flip=h",
            "flip=v",
            "crop=1,2,3,4",
            "blur=2.5",
            "sharpen=1,0.5",
            "convolve=0,-1,0,-1,5,-1,0,-1,0",
            "convolve=1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1/25",
            "gray",
            "brightness=-3",
            "contrast=1.5",
            "gamma=2.2",
            "resize=800x600",
            "resize=800x600:fill:cubic",
            "resize=17x:nearest",
            "resize=x9:exact:box",
            "thumbnail=64",
        ] {
            let op = Operation::parse(spec).unwrap();
            assert_eq!(operation(0, &to_wire(&op)).unwrap(), op, "{spec}");
            let text = v1::Operation {
                op: Some(v1::operation::Op::Spec(spec.into())),
            };
            assert_eq!(operation(0, &text).unwrap(), op, "{spec}");
        }
        // An overlay travels with its pixels.
        let logo = nlimage_core::ImageBuf::from_raw(
            2,
            1,
            PixelFormat::Rgba8,
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        )
        .unwrap();
        let overlay = Operation::Overlay(nlimage_core::ops::overlay::Overlay {
            image: std::sync::Arc::new(logo),
            x: -3,
            y: 7,
            opacity: 0.25,
        });
        assert_eq!(operation(0, &to_wire(&overlay)).unwrap(), overlay);
        let mut short = to_wire(&overlay);
        if let Some(v1::operation::Op::Overlay(o)) = &mut short.op {
            o.pixels = vec![0; 7].into();
        }
        let e = operation(1, &short).unwrap_err().to_string();
        assert!(e.starts_with("operation 1: overlay:"), "{e}");
        // Absent optional fields take their documented defaults.
        let sharpen = v1::Operation {
            op: Some(v1::operation::Op::Sharpen(v1::Sharpen {
                sigma: 2.0,
                amount: None,
            })),
        };
        assert_eq!(
            operation(0, &sharpen).unwrap(),
            Operation::Sharpen {
                sigma: 2.0,
                amount: 1.0
            }
        );
        let conv = v1::Operation {
            op: Some(v1::operation::Op::Convolve(v1::Convolve {
                weights: vec![1; 9],
                divisor: None,
            })),
        };
        assert!(matches!(operation(0, &conv).unwrap(), Operation::Convolve(k) if k.divisor == 9));
    }

    #[test]
    fn headers_roundtrip_and_bad_ones_are_named() {
        let info = ImageInfo::new(3, 4, PixelFormat::Rgba8).unwrap();
        assert_eq!(image_info(&image_header(info)).unwrap(), info);
        let bad = v1::ImageHeader {
            width: 3,
            height: 4,
            format: 9,
        };
        assert!(
            image_info(&bad)
                .unwrap_err()
                .to_string()
                .contains("unknown pixel format 9")
        );
        let zero = v1::ImageHeader {
            width: 0,
            height: 4,
            format: 1,
        };
        assert!(image_info(&zero).is_err());
        let op = v1::Operation {
            op: Some(v1::operation::Op::Rotate(v1::Rotate { rotation: 7 })),
        };
        assert!(
            operation(2, &op)
                .unwrap_err()
                .to_string()
                .contains("operation 2: unknown rotation 7")
        );
        let blur = v1::Operation {
            op: Some(v1::operation::Op::Blur(v1::GaussianBlur { sigma: -1.0 })),
        };
        let e = operation(3, &blur).unwrap_err().to_string();
        assert!(e.contains("operation 3: blur=-1: sigma must be > 0"), "{e}");
    }
}
