//! Conversions between the `nlimage.v1` wire types and `nlimage-core`'s
//! domain types, shared by the server and the client so that both validate
//! and describe headers and operations the same way.

use nlimage_core::{CoreError, ImageInfo, Operation, PixelFormat, Rotation};

use crate::v1;

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
    match &op.op {
        Some(v1::operation::Op::Mean(_)) => Ok(Operation::Mean3x3),
        Some(v1::operation::Op::Rotate(r)) => match v1::Rotation::try_from(r.rotation) {
            Ok(v1::Rotation::None) => Ok(Operation::Rotate(Rotation::None)),
            Ok(v1::Rotation::Rotation90) => Ok(Operation::Rotate(Rotation::Ccw90)),
            Ok(v1::Rotation::Rotation180) => Ok(Operation::Rotate(Rotation::Ccw180)),
            Ok(v1::Rotation::Rotation270) => Ok(Operation::Rotate(Rotation::Ccw270)),
            Err(_) => Err(CoreError::InvalidInput(format!(
                "operation {index}: unknown rotation {}: use 0 (none), 1 (90), 2 (180) or 3 (270)",
                r.rotation
            ))),
        },
        None => Err(CoreError::InvalidInput(format!(
            "operation {index} is empty or of a kind this server does not know"
        ))),
    }
}

/// Validates every operation of a header, in order.
pub fn operations(ops: &[v1::Operation]) -> Result<Vec<Operation>, CoreError> {
    ops.iter()
        .enumerate()
        .map(|(i, op)| operation(i, op))
        .collect()
}

/// The wire form of an operation.
pub fn to_wire(op: Operation) -> v1::Operation {
    let op = match op {
        Operation::Mean3x3 => v1::operation::Op::Mean(v1::MeanFilter {}),
        Operation::Rotate(r) => {
            let rotation = match r {
                Rotation::None => v1::Rotation::None,
                Rotation::Ccw90 => v1::Rotation::Rotation90,
                Rotation::Ccw180 => v1::Rotation::Rotation180,
                Rotation::Ccw270 => v1::Rotation::Rotation270,
            };
            v1::operation::Op::Rotate(v1::Rotate {
                rotation: rotation as i32,
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
        for op in [
            Operation::Mean3x3,
            Operation::Rotate(Rotation::None),
            Operation::Rotate(Rotation::Ccw90),
            Operation::Rotate(Rotation::Ccw180),
            Operation::Rotate(Rotation::Ccw270),
        ] {
            assert_eq!(operation(0, &to_wire(op)).unwrap(), op);
        }
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
    }
}
