//! Fetching a stored image: as uploaded, or converted with operations
//! applied -- from the result cache when it is there, else decoded,
//! processed and encoded on the compute pool within the admission budget
//! (once, however many ask at the same time), then cached. The work holds
//! its worker slot and memory until it has really stopped, and stops at its
//! next band when its caller goes away.

use bytes::Bytes;
use nlimage_core::{EncodeOptions, ImageInfo, Operation, OutputFormat, PixelFormat, codec};
use tokio::time::Instant;

use super::Executor;
use super::decode::decode_apply;
use super::plan::{check_plan, whole_image_memory};
use crate::error::{Error, Result};
use crate::store::cache::result_path;
use crate::store::{Store, id};

/// What to fetch.
#[derive(Clone, Debug, Default)]
pub struct RenderRequest {
    /// The stored image.
    pub id: String,
    /// Output format; `None`: the stored bytes as they are (unless `auto`).
    pub format: Option<OutputFormat>,
    /// Choose the format from what the client accepts (media types, see
    /// [`super::negotiate`]); overrides `format`.
    pub auto: Option<Vec<String>>,
    /// Operations, in order, after the EXIF orientation.
    pub ops: Vec<Operation>,
    /// Encoder options.
    pub options: EncodeOptions,
    /// An `If-None-Match` value.
    pub if_none_match: Option<String>,
    /// Decode whole even before a first downscale (no shrink-on-load).
    pub exact: bool,
    /// Do not keep the result in the result cache (a job stores its result
    /// as an image of its own; a second copy would cost a file per job).
    pub no_cache: bool,
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

fn mime_of(format: &str) -> &'static str {
    OutputFormat::from_extension(format).map_or("application/octet-stream", OutputFormat::mime)
}

fn not_modified(inm: &Option<String>, tag: &str) -> bool {
    inm.as_deref().is_some_and(|v| id::matches(v, tag))
}

impl Executor {
    /// Fetches what `req` asks for; past `deadline` (or if this future is
    /// dropped) the work stops at its next band.
    pub async fn render(&self, req: RenderRequest, deadline: Option<Instant>) -> Result<Rendered> {
        let store = self.store()?;
        id::check(&req.id).map_err(Error::InvalidInput)?;
        self.check_operations(req.ops.len())?;
        let mut format = req.format;
        // Metadata read here is kept for the steps below (one read each).
        let mut known = None;
        if let Some(accepted) = &req.auto {
            let meta = store.stat(&req.id).await?;
            let chosen = super::negotiate::choose(accepted, meta.alpha);
            metrics::counter!("nlimage_negotiated_total", "format" => chosen.extension())
                .increment(1);
            tracing::debug!(format = chosen.extension(), "format chosen from Accept");
            format = Some(chosen);
            known = Some(meta);
        }
        if let Some(f) = format
            && req.ops.is_empty()
            && req.options == EncodeOptions::default()
        {
            // The stored file in its own format is served as it is.
            let meta = store.stat(&req.id).await?;
            if OutputFormat::from_extension(&meta.format) == Some(f) {
                format = None;
            }
            known = Some(meta);
        }
        let Some(format) = format else {
            if !req.ops.is_empty() {
                return Err(Error::invalid(
                    "operations need an output format: name one (png, jpg, webp, ...)",
                ));
            }
            let meta = match known {
                Some(m) => m,
                None => store.stat(&req.id).await?,
            };
            let tag = id::original_tag(&req.id);
            let body = if not_modified(&req.if_none_match, &tag) {
                None
            } else {
                Some(store.original(&req.id).await?)
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
        let path = result_path(&req.id, &req.ops, format, req.options, req.exact);
        // A derived result is served only while its original is stored: a
        // delete takes effect at once for every derived URL, cached or not,
        // on every replica sharing the store.
        let gone = || Error::not_found(format!("no image with id {}", req.id));
        // The memory tier needs no look at the store: it is on for local
        // stores only, where every delete goes through this process and
        // sweeps it, and nothing enters it before the image is seen to be
        // stored after the entry (see `keep_hot`).
        if let Some(hot) = store.cache.get_hot(&path) {
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
        if known.is_none() && !store.exists(&req.id).await? {
            return Err(gone());
        }
        if req.if_none_match.is_some()
            && let Some(tag) = store.cache.tag(&path).await?
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
        if let Some(hit) = cached(store, &req.id, &path, format, &req.if_none_match).await? {
            return Ok(hit);
        }
        let flight = store.cache.flight(&path).await;
        if let Some(hit) = cached(store, &req.id, &path, format, &req.if_none_match).await? {
            return Ok(hit);
        }
        let meta = match known {
            Some(m) => m,
            None => store.stat(&req.id).await?,
        };
        // Operations are checked against the limits before anything is read
        // (as RGBA, the largest layout a decoder gives).
        let probe_info = ImageInfo::new(meta.width, meta.height, PixelFormat::Rgba8)?;
        let plan = check_plan(probe_info, &req.ops, &self.limits)?;
        let out = plan.output_info();
        let memory = whole_image_memory(meta.bytes, meta.decode_pixels(), out);
        if !self.admission.fits(memory) {
            return Err(Error::too_large(
                format!(
                    "fetching this needs about {} MiB, more than the server's whole memory budget (nl-server --memory-budget-mib)",
                    memory >> 20
                ),
                "--memory-budget-mib",
            ));
        }
        let permit = self.admission.admit(memory, deadline).await?;
        let file = store.original(&req.id).await?;
        // The decoder may allocate what was reserved for it, no more.
        let (limits, cpu) = (meta.decode_limits(&self.limits), self.cpu);
        let (ops, options, exact, no_cache) = (req.ops, req.options, req.exact, req.no_cache);
        let parent = tracing::Span::current();
        let (bytes, width, height) = self
            .run_admitted(permit, deadline, move |stop| {
                let _in = parent.enter();
                let run = nlimage_core::Run {
                    cpu,
                    stop: stop.clone(),
                };
                let img = decode_apply(&file, &ops, &limits, exact, options.colour(), &run)?;
                // What of the source's profile, EXIF and XMP the result
                // keeps (by default nothing, and then the file is not read
                // for it a second time).
                let keeps = options.keep_icc || options.meta != codec::meta::MetaKeep::Strip;
                let meta = if keeps {
                    codec::meta::select(codec::meta::read(&file), options.meta, options.keep_icc)
                } else {
                    codec::meta::Metadata::default()
                };
                drop(file);
                stop.check()?;
                let out = tracing::info_span!("encode", format = format.extension())
                    .in_scope(|| codec::encode_with_meta(&img, format, options, &meta))?;
                Ok((out, img.info().width(), img.info().height()))
            })
            .await?;
        let bytes = Bytes::from(bytes);
        let tag = id::tag_of(&bytes);
        if no_cache {
            drop(flight);
        } else {
            // Deleted while this was computed: not answered, not kept.
            if !keep_hot(store, &req.id, &path, &bytes, &tag, (width, height)).await? {
                return Err(gone());
            }
            // Stored after the answer is on its way (the flight goes along,
            // so an identical request reads it rather than computing it).
            store.cache_behind(&req.id, path, bytes.clone(), tag.clone(), flight);
        }
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
}

impl Executor {
    /// The pixels of stored image `id` with `ops` applied (a Process call
    /// whose source is a stored image), and the permit holding their memory
    /// while the caller sends them.
    pub async fn stored_pixels(
        &self,
        id: &str,
        ops: Vec<Operation>,
        deadline: Option<Instant>,
    ) -> Result<(nlimage_core::ImageBuf, crate::admission::Permit)> {
        let store = self.store()?;
        self.check_operations(ops.len())?;
        let meta = store.stat(id).await?;
        let probe = ImageInfo::new(meta.width, meta.height, PixelFormat::Rgba8)?;
        let out = check_plan(probe, &ops, &self.limits)?.output_info();
        let permit = self
            .admission
            .admit(
                whole_image_memory(meta.bytes, meta.decode_pixels(), out),
                deadline,
            )
            .await?;
        let file = store.original(&meta.id).await?;
        let (limits, cpu) = (meta.decode_limits(&self.limits), self.cpu);
        self.run_holding(permit, deadline, move |stop| {
            let run = nlimage_core::Run {
                cpu,
                stop: stop.clone(),
            };
            Ok(decode_apply(
                &file,
                &ops,
                &limits,
                false,
                codec::Colour::Srgb,
                &run,
            )?)
        })
        .await
    }
}

/// A cached result at `path`, with its size read from its header (no pixel
/// is decoded for a hit), kept in the memory tier.
/// Puts a result of image `id` into the memory tier, then looks whether
/// the image is still stored: a delete removes the metadata before it
/// sweeps the tier, so an entry put after that sweep is seen here and taken
/// out again (`false`: the image is gone).
async fn keep_hot(
    store: &Store,
    id: &str,
    path: &object_store::path::Path,
    bytes: &Bytes,
    tag: &str,
    (width, height): (u32, u32),
) -> Result<bool> {
    store
        .cache
        .put_hot(path, bytes.clone(), tag.to_owned(), width, height);
    if store.exists(id).await? {
        return Ok(true);
    }
    store.cache.remove_hot(path);
    Ok(false)
}

async fn cached(
    store: &Store,
    id: &str,
    path: &object_store::path::Path,
    format: OutputFormat,
    inm: &Option<String>,
) -> Result<Option<Rendered>> {
    let Some((bytes, tag)) = store.cache.get(path).await? else {
        return Ok(None);
    };
    // The streaming scanner reads every output format's header (AVIF's
    // size may lie past the first bytes).
    let (width, height) = codec::head::HeadScan::new()
        .push(&bytes)
        .ok()
        .flatten()
        .map_or((0, 0), |h| (h.width, h.height));
    if !keep_hot(store, id, path, &bytes, &tag, (width, height)).await? {
        // Deleted since the caller looked: its results are being swept.
        return Ok(None);
    }
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
