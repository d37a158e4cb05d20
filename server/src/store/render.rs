//! Fetching: a stored image as uploaded, or converted with operations
//! applied -- from the result cache when it is there, else decoded, processed
//! and encoded on the compute pool within the admission budget (once,
//! however many ask at the same time), then cached.

use std::io::Cursor;

use bytes::Bytes;
use nlimage_core::{EncodeOptions, ImageInfo, Operation, OutputFormat, Pipeline, PixelFormat};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::cache::result_path;
use super::{Store, id};
use crate::service::Shared;
use crate::service::process::check_plan;
use crate::status::from_core;

/// What to fetch.
#[derive(Clone, Debug, Default)]
pub struct RenderRequest {
    /// The stored image.
    pub id: String,
    /// Output format; `None`: the stored bytes as they are.
    pub format: Option<OutputFormat>,
    /// Operations, in order, after the EXIF orientation.
    pub ops: Vec<Operation>,
    /// Encoder options.
    pub options: EncodeOptions,
    /// An `If-None-Match` value.
    pub if_none_match: Option<String>,
    /// Allow DCT-scaled JPEG decoding before a first downscale.
    pub draft: bool,
    /// Do not keep the result in the result cache (a job stores its result
    /// as an image of its own; a second copy would cost a file per job).
    pub no_cache: bool,
    /// Stops the work at its next chunk or band once cancelled (a job).
    pub stop: Option<CancellationToken>,
}

/// A fetched result.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// Its media type.
    pub content_type: &'static str,
    /// A strong tag of its bytes, quoted.
    pub tag: String,
    /// Its size in pixels (0 when not modified and not known).
    pub width: u32,
    /// Its size in pixels.
    pub height: u32,
    /// Whether it came from the result cache.
    pub cached: bool,
    /// Its bytes; `None` when the request's tag matched (not modified).
    pub body: Option<Bytes>,
}

/// Decodes a stored file, turns it upright by its EXIF orientation, and
/// applies `ops` (on the calling thread: run it on the compute pool). With
/// `draft`, a JPEG whose first operation resizes it to half or less is
/// decoded at a reduced size (DCT scaling) of at least twice the resize's,
/// and resized from there to exactly the size the exact path gives.
pub fn decode_apply(
    file: &[u8],
    ops: &[Operation],
    limits: &nlimage_core::Limits,
    draft: bool,
    stop: Option<&CancellationToken>,
) -> nlimage_core::Result<nlimage_core::ImageBuf> {
    let orientation = nlimage_core::codec::orientation(Cursor::new(file))?;
    let mut all = orientation.operations();
    if draft
        && let Some(Operation::Resize(r)) = ops.first()
        && let Some(img) = reduced(file, orientation, r, limits)?
    {
        all.extend(img.1);
        all.extend_from_slice(&ops[1..]);
        return process(&img.0, &all, stop);
    }
    let img = tracing::info_span!("decode", bytes = file.len())
        .in_scope(|| nlimage_core::decode(Cursor::new(file), limits))?;
    all.extend_from_slice(ops);
    process(&img, &all, stop)
}

/// A planned stage, briefly (for traces).
fn stage_name(step: &nlimage_core::pipeline::plan::Step) -> String {
    use nlimage_core::pipeline::plan::Step;
    match step {
        Step::Point(_) => "point".into(),
        Step::Crop(b) => format!("crop {}x{}", b.width, b.height),
        Step::Mean => "mean".into(),
        Step::Blur(taps) => format!("blur {} taps", taps.len()),
        Step::Sharpen(taps, _) => format!("sharpen {} taps", taps.len()),
        Step::Convolve(_) => "convolve".into(),
        Step::Orient(o) => format!("orient {o:?}"),
        Step::Overlay(_) => "overlay".into(),
        Step::Resize {
            width,
            height,
            filter,
        } => format!("resize {width}x{height} {filter:?}"),
    }
}

/// Input bytes pushed between two looks at `stop`.
const STOP_CHECK_BYTES: usize = 4 << 20;

/// Applies `ops` in a span naming them. With `stop`, the image goes through
/// the pipeline in chunks and comes out in bands, and a cancelled `stop`
/// ends the work at the next chunk or band (the result is the same: the
/// pipeline streams identically however its input is cut).
fn process(
    img: &nlimage_core::ImageBuf,
    ops: &[Operation],
    stop: Option<&CancellationToken>,
) -> nlimage_core::Result<nlimage_core::ImageBuf> {
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
        let names: Vec<String> = ops.iter().map(|o| format!("{o:?}")).collect();
        span.record("ops", tracing::field::display(names.join(", ")));
        if let Ok(plan) = nlimage_core::Plan::new(img.info(), ops) {
            let stages: Vec<String> = plan.steps().iter().map(|(_, s)| stage_name(s)).collect();
            span.record("stages", tracing::field::display(stages.join(" -> ")));
        }
    }
    let _in = span.enter();
    let Some(stop) = stop else {
        return Pipeline::apply(img, ops);
    };
    let stopped = || nlimage_core::CoreError::InvalidInput("stopped: cancelled".into());
    let mut p = Pipeline::new(img.info(), ops)?;
    let info = p.output_info();
    let mut out = Vec::new();
    out.try_reserve_exact(info.byte_len())
        .map_err(|_| nlimage_core::CoreError::OutOfMemory(info.byte_len()))?;
    for chunk in img.data().chunks(STOP_CHECK_BYTES) {
        if stop.is_cancelled() {
            return Err(stopped());
        }
        p.push(chunk, &mut out)?;
    }
    let mut rest = p.finish()?;
    while let Some(band) = rest.next_band(STOP_CHECK_BYTES)? {
        if stop.is_cancelled() {
            return Err(stopped());
        }
        out.extend_from_slice(&band);
    }
    nlimage_core::ImageBuf::new(info, out)
}

/// The DCT-scaled decode for `draft` and the operations that replace the
/// first resize `r`: an exact resize to the size `r` gives on the full
/// image (then `fill`'s crop), so the output has the same size either way.
fn reduced(
    file: &[u8],
    orientation: nlimage_core::ops::orient::Orientation,
    r: &nlimage_core::ops::resize::Resize,
    limits: &nlimage_core::Limits,
) -> nlimage_core::Result<Option<(nlimage_core::ImageBuf, Vec<Operation>)>> {
    use nlimage_core::ops::resize::{Fit, Resize};
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
    let reduced = tracing::info_span!("decode", bytes = file.len(), draft = true)
        .in_scope(|| nlimage_core::codec::decode_jpeg_reduced(file, mw, mh, limits))?;
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

/// Memory a whole-image fetch holds: the file, its decoded pixels (a
/// decoder may hold 16-bit samples), the output pixels and their encoding.
pub fn whole_image_memory(file_bytes: u64, input: ImageInfo, output: ImageInfo) -> u64 {
    file_bytes + 2 * input.byte_len() as u64 + 2 * output.byte_len() as u64
}

fn mime_of(format: &str) -> &'static str {
    OutputFormat::from_extension(format).map_or("application/octet-stream", OutputFormat::mime)
}

fn not_modified(inm: &Option<String>, tag: &str) -> bool {
    inm.as_deref().is_some_and(|v| id::matches(v, tag))
}

impl Store {
    /// Fetches what `req` asks for.
    pub async fn render(
        &self,
        shared: &Shared,
        req: RenderRequest,
        deadline: Option<Instant>,
    ) -> Result<Rendered, Status> {
        id::check(&req.id).map_err(Status::invalid_argument)?;
        let mut format = req.format;
        // Metadata read here is kept for the steps below (one read each).
        let mut known = None;
        if let Some(f) = format
            && req.ops.is_empty()
            && req.options == EncodeOptions::default()
        {
            // The stored file in its own format is served as it is.
            let meta = self.stat(&req.id).await?;
            if OutputFormat::from_extension(&meta.format) == Some(f) {
                format = None;
            }
            known = Some(meta);
        }
        let Some(format) = format else {
            if !req.ops.is_empty() {
                return Err(Status::invalid_argument(
                    "operations need an output format: name one (png, jpg, webp, ...)",
                ));
            }
            let meta = match known {
                Some(m) => m,
                None => self.stat(&req.id).await?,
            };
            let tag = id::original_tag(&req.id);
            let body = if not_modified(&req.if_none_match, &tag) {
                None
            } else {
                Some(self.original(&req.id).await?)
            };
            return Ok(Rendered {
                content_type: mime_of(&meta.format),
                tag,
                width: meta.width,
                height: meta.height,
                cached: true,
                body,
            });
        };
        let path = result_path(&req.id, &req.ops, format, req.options, req.draft);
        if let Some(hot) = self.cache.get_hot(&path) {
            let body = (!not_modified(&req.if_none_match, &hot.tag)).then_some(hot.bytes);
            return Ok(Rendered {
                content_type: format.mime(),
                tag: hot.tag,
                width: hot.width,
                height: hot.height,
                cached: true,
                body,
            });
        }
        if req.if_none_match.is_some()
            && let Some(tag) = self.cache.tag(&path).await?
            && not_modified(&req.if_none_match, &tag)
        {
            return Ok(Rendered {
                content_type: format.mime(),
                tag,
                width: 0,
                height: 0,
                cached: true,
                body: None,
            });
        }
        if let Some(hit) = self.cached(&path, format, &req.if_none_match).await? {
            return Ok(hit);
        }
        let flight = self.cache.flight(&path).await;
        if let Some(hit) = self.cached(&path, format, &req.if_none_match).await? {
            return Ok(hit);
        }
        let meta = match known {
            Some(m) => m,
            None => self.stat(&req.id).await?,
        };
        // Operations are checked against the limits before anything is read
        // (as RGBA, the largest layout a decoder gives).
        let probe_info =
            ImageInfo::new(meta.width, meta.height, PixelFormat::Rgba8).map_err(from_core)?;
        let plan = check_plan(probe_info, &req.ops, &shared.limits)?;
        let out = plan.output_info();
        let memory = whole_image_memory(meta.bytes, probe_info, out);
        if !shared.admission.fits(memory) {
            return Err(Status::resource_exhausted(format!(
                "fetching this needs about {} MiB, more than the server's whole memory budget (nl-server --memory-budget-mib)",
                memory >> 20
            )));
        }
        let permit = shared.admission.admit(memory, deadline).await?;
        let file = self.original(&req.id).await?;
        let limits = shared.limits;
        let (ops, options, draft, no_cache) = (req.ops, req.options, req.draft, req.no_cache);
        let stop = req.stop;
        let parent = tracing::Span::current();
        let (bytes, width, height) = shared
            .compute
            .run(move || {
                let _in = parent.enter();
                let img = decode_apply(&file, &ops, &limits, draft, stop.as_ref())?;
                drop(file);
                let mut out = Cursor::new(Vec::new());
                tracing::info_span!("encode", format = format.extension())
                    .in_scope(|| nlimage_core::encode_options(&img, format, options, &mut out))?;
                Ok::<_, nlimage_core::CoreError>((
                    out.into_inner(),
                    img.info().width(),
                    img.info().height(),
                ))
            })
            .await?
            .map_err(from_core)?;
        drop(permit);
        let bytes = Bytes::from(bytes);
        let tag = id::tag_of(&bytes);
        if !no_cache {
            self.cache.insert(&path, bytes.clone(), tag.clone()).await;
            self.cache
                .put_hot(&path, bytes.clone(), tag.clone(), width, height);
        }
        drop(flight);
        let body = (!not_modified(&req.if_none_match, &tag)).then_some(bytes);
        Ok(Rendered {
            content_type: format.mime(),
            tag,
            width,
            height,
            cached: false,
            body,
        })
    }

    async fn cached(
        &self,
        path: &object_store::path::Path,
        format: OutputFormat,
        inm: &Option<String>,
    ) -> Result<Option<Rendered>, Status> {
        let Some((bytes, tag)) = self.cache.get(path).await? else {
            return Ok(None);
        };
        // Sizes from the header alone: no pixel is decoded for a hit.
        let (width, height) = nlimage_core::codec::probe(
            &bytes[..bytes.len().min(1 << 16)],
            &nlimage_core::Limits {
                max_pixels: u64::MAX,
                max_dimension: u32::MAX,
            },
        )
        .map_or((0, 0), |p| (p.width, p.height));
        self.cache
            .put_hot(path, bytes.clone(), tag.clone(), width, height);
        let body = (!not_modified(inm, &tag)).then_some(bytes);
        Ok(Some(Rendered {
            content_type: format.mime(),
            tag,
            width,
            height,
            cached: true,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: u32, h: u32) -> nlimage_core::ImageBuf {
        let info = ImageInfo::new(w, h, PixelFormat::Rgb8).unwrap();
        let data = (0..info.byte_len()).map(|i| (i * 31 % 251) as u8).collect();
        nlimage_core::ImageBuf::new(info, data).unwrap()
    }

    #[test]
    fn processing_in_chunks_equals_the_whole_image_and_a_stop_ends_it() {
        // Larger than one chunk, so that the input is cut.
        let img = picture(1300, 1101);
        let ops = [
            Operation::parse("blur=1").unwrap(),
            Operation::parse("rotate=90").unwrap(),
            Operation::parse("resize=800x").unwrap(),
        ];
        let whole = Pipeline::apply(&img, &ops).unwrap();
        let live = CancellationToken::new();
        assert_eq!(process(&img, &ops, Some(&live)).unwrap(), whole);
        assert_eq!(process(&img, &ops, None).unwrap(), whole);
        let stopped = CancellationToken::new();
        stopped.cancel();
        let e = process(&img, &ops, Some(&stopped)).unwrap_err();
        assert!(e.to_string().contains("cancelled"), "{e}");
    }
}
