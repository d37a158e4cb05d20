//! A stored file turned into the pixels a request asks for: decoded (at a
//! reduced size where the first operation allows, unless `exact`), turned
//! upright by its EXIF orientation, and run through the core pipeline on the
//! executor's code path with the request's stop. Runs on the calling thread:
//! call it on the compute pool.

use std::io::Cursor;

use nlimage_core::codec::Colour;
use nlimage_core::ops::orient::Orientation;
use nlimage_core::ops::resize::{Fit, Resize};
use nlimage_core::{ImageBuf, Limits, Operation, Pipeline, Run};

/// Decodes `file`, orients it and applies `ops` as `run` says. Unless
/// `exact`, a JPEG whose first operation resizes it to half or less is
/// decoded at a reduced size (DCT scaling, shrink-on-load) of at least twice
/// the resize's, and resized from there to exactly the size the exact path
/// gives.
pub fn decode_apply(
    file: &[u8],
    ops: &[Operation],
    limits: &Limits,
    exact: bool,
    colour: Colour,
    run: &Run,
) -> nlimage_core::Result<ImageBuf> {
    let orientation = nlimage_core::codec::orientation(Cursor::new(file))?;
    let mut all = orientation.operations();
    if !exact
        && let Some(Operation::Resize(r)) = ops.first()
        && let Some(img) = reduced(file, orientation, r, limits, colour)?
    {
        all.extend(img.1);
        all.extend_from_slice(&ops[1..]);
        return process(&img.0, &all, run);
    }
    let img = tracing::info_span!("decode", bytes = file.len())
        .in_scope(|| nlimage_core::codec::decode_in(Cursor::new(file), limits, colour))?;
    run.stop.check()?;
    all.extend_from_slice(ops);
    process(&img, &all, run)
}

/// Applies `ops` in a span naming them and the planned stages (for an
/// exported trace). The pipeline looks at `run.stop` between bands.
fn process(img: &ImageBuf, ops: &[Operation], run: &Run) -> nlimage_core::Result<ImageBuf> {
    // The planned stages run interleaved, band by band, so their times are
    // not separable: the span records the operations and the plan.
    let span = tracing::info_span!(
        "process",
        operations = ops.len(),
        ops = tracing::field::Empty,
        stages = tracing::field::Empty,
    );
    // Only for an exported trace: the names and a second plan cost work that
    // the log lines (which show span fields) do not need.
    if crate::otel::exported(&span) {
        let names: Vec<String> = ops.iter().map(ToString::to_string).collect();
        span.record("ops", tracing::field::display(names.join(", ")));
        if let Ok(plan) = nlimage_core::Plan::new(img.info(), ops) {
            let stages: Vec<String> = plan.steps().iter().map(|(_, s)| s.to_string()).collect();
            span.record("stages", tracing::field::display(stages.join(" -> ")));
        }
    }
    let _in = span.enter();
    Pipeline::apply_with(img, ops, run)
}

/// The DCT-scaled decode (shrink-on-load) and the operations that replace the
/// first resize `r`: an exact resize to the size `r` gives on the full
/// image (then `fill`'s crop), so the output has the same size either way.
fn reduced(
    file: &[u8],
    orientation: Orientation,
    r: &Resize,
    limits: &Limits,
    colour: Colour,
) -> nlimage_core::Result<Option<(ImageBuf, Vec<Operation>)>> {
    // Only JPEGs shrink while decoding; every other format (HEIC, AVIF, ...
    // which the generic probe does not read) is decoded whole.
    if !file.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(None);
    }
    let probe = nlimage_core::codec::probe(file, limits)?;
    let turned = orientation.rotation.quarter_turns() % 2 == 1;
    let (ow, oh) = if turned {
        (probe.height, probe.width)
    } else {
        (probe.width, probe.height)
    };
    let (a, b, crop) = r.plan(ow, oh);
    if u64::from(a) * 2 > u64::from(ow) || u64::from(b) * 2 > u64::from(oh) {
        return Ok(None);
    }
    // At least twice the resize's size, in the file's own orientation.
    let (mw, mh) = if turned {
        (2 * b, 2 * a)
    } else {
        (2 * a, 2 * b)
    };
    let reduced = tracing::info_span!("decode", bytes = file.len(), shrunk = true)
        .in_scope(|| nlimage_core::codec::decode_jpeg_reduced(file, mw, mh, limits, colour))?;
    let Some(img) = reduced else {
        return Ok(None);
    };
    let mut ops = vec![Operation::Resize(Resize {
        width: Some(a),
        height: Some(b),
        fit: Fit::Exact,
        filter: r.filter,
    })];
    if let Some(c) = crop {
        ops.push(Operation::Crop(c));
    }
    Ok(Some((img, ops)))
}

#[cfg(test)]
mod tests {
    use nlimage_core::{CoreError, ImageInfo, PixelFormat, Stop};

    use super::*;

    fn picture(w: u32, h: u32) -> ImageBuf {
        let info = ImageInfo::new(w, h, PixelFormat::Rgb8).unwrap();
        let data = (0..info.byte_len()).map(|i| (i * 31 % 251) as u8).collect();
        ImageBuf::new(info, data).unwrap()
    }

    #[test]
    fn processing_in_bands_equals_the_whole_image_and_a_stop_ends_it() {
        // Larger than one band, so that the input is cut.
        let img = picture(1300, 1101);
        let ops = [
            Operation::parse("blur=1").unwrap(),
            Operation::parse("rotate=90").unwrap(),
            Operation::parse("resize=800x").unwrap(),
        ];
        let whole = nlimage_core::ops::naive::apply_all(&img, &ops).unwrap();
        assert_eq!(process(&img, &ops, &Run::default()).unwrap(), whole);
        let stopped = Stop::new();
        stopped.stop();
        let e = process(&img, &ops, &Run::with_stop(stopped)).unwrap_err();
        assert!(matches!(e, CoreError::Cancelled), "{e}");
    }
}
