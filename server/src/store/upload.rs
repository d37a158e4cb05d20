//! Uploads: an encoded file arrives in chunks; its header is read (format,
//! size, limits) before anything is stored, its bytes are hashed on the way,
//! and it becomes visible under its id only when all of it is stored.
//!
//! A file of at most [`SMALL`] bytes is kept in memory and written with one
//! atomic PUT (a rename on disk). A larger one streams into a staging object
//! (a multipart upload, [`PART`] bytes per part) that is renamed to its id
//! once complete; a stream that ends early or fails aborts the upload, so
//! nothing is left behind.

use std::collections::BTreeMap;

use crate::error::Error;
use bytes::Bytes;
use nlimage_core::{CoreError, Limits};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio_stream::{Stream, StreamExt};

use super::{Meta, PutInfo, Store, now_unix, original_path};

/// Files up to this size are written with a single PUT.
pub const SMALL: usize = 8 << 20;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
pub const PART: usize = 8 << 20;
/// Memory an upload holds at most: the small-file buffer or two parts in
/// flight plus one filling.
pub const UPLOAD_MEMORY: u64 = (SMALL + 3 * PART) as u64;

/// Longest file name or content type an upload may declare, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Checks what an upload declares besides its bytes: a file name and a
/// content type of at most [`MAX_NAME_BYTES`], and its labels.
pub fn check_put_info(info: &PutInfo) -> Result<(), Error> {
    for (what, v) in [
        ("file name", &info.filename),
        ("content type", &info.content_type),
    ] {
        if v.len() > MAX_NAME_BYTES {
            return Err(Error::invalid(format!(
                "a {what} of {} bytes: at most {MAX_NAME_BYTES} are kept",
                v.len()
            )));
        }
    }
    check_labels(&info.labels)
}

/// Checks an upload's labels: at most 32, keys 1-256 bytes, values at most
/// 256 bytes.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), Error> {
    if labels.len() > 32 {
        return Err(Error::invalid(format!(
            "{} labels: at most 32 are allowed",
            labels.len()
        )));
    }
    for (k, v) in labels {
        if k.is_empty() || k.len() > 256 || v.len() > 256 {
            return Err(Error::invalid(format!(
                "label '{}': keys must be 1 to 256 bytes and values at most 256",
                k.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// The header's verdict on an upload: within `limits`, else the refusal a
/// client reads.
fn judge(found: nlimage_core::codec::head::Head, limits: &Limits) -> Result<(), Error> {
    let info =
        nlimage_core::ImageInfo::new(found.width, found.height, nlimage_core::PixelFormat::Gray8)?;
    limits.check(&info)?;
    Ok(())
}

/// A header that cannot be read, as the client reads it.
fn refused(e: CoreError) -> Error {
    match e {
        CoreError::Decode(_) => Error::invalid(format!("refused before storing: {e}")),
        e => e.into(),
    }
}

impl Store {
    /// Stores the file `chunks` carry; returns its metadata (that of the
    /// first upload if these bytes were stored before).
    #[tracing::instrument(name = "store.write", skip_all, fields(filename = %info.filename))]
    pub async fn put<S>(&self, info: PutInfo, limits: &Limits, mut chunks: S) -> Result<Meta, Error>
    where
        S: Stream<Item = Result<Bytes, Error>> + Unpin,
    {
        check_put_info(&info)?;
        let too_big = |n: u64| {
            Error::too_large(
                format!(
                    "the upload reaches {n} bytes, more than the server accepts (nl-server --max-upload-mib: {} MiB)",
                    self.max_upload >> 20
                ),
                "--max-upload-mib",
            )
        };
        // An announced length over the limit is refused before any byte.
        if let Some(n) = info.length
            && n > self.max_upload
        {
            return Err(too_big(n));
        }
        let mut hasher = Sha256::new();
        let mut frames = nlimage_core::codec::frames::FrameScan::new(*limits);
        let mut total: u64 = 0;
        let mut buffer: Vec<u8> = Vec::new();
        let mut head = None;
        let mut scan = nlimage_core::codec::head::HeadScan::new();
        let mut staged: Option<(Path, WriteMultipart)> = None;
        let result = async {
            loop {
                let chunk = chunks.next().await.transpose()?;
                let ended = chunk.is_none();
                if let Some(c) = &chunk {
                    total += c.len() as u64;
                    if total > self.max_upload {
                        return Err(too_big(total));
                    }
                    if let Some(n) = info.length
                        && total > n
                    {
                        return Err(Error::invalid(format!(
                            "the upload carries more than the {n} bytes its header announced"
                        )));
                    }
                    hasher.update(c);
                    // Every frame's size, as the bytes go by: a GIF or WebP
                    // frame over the limits is refused before it is stored.
                    frames.push(c)?;
                }
                if ended
                    && let Some(n) = info.length
                    && total != n
                {
                    return Err(Error::invalid(format!(
                        "the upload ended after {total} of the {n} bytes its header announced: nothing was stored"
                    )));
                }
                if head.is_none() {
                    // The header, wherever it ends, with bounded memory.
                    let found = match &chunk {
                        Some(c) => scan.push(c).map_err(refused)?,
                        None if total == 0 => {
                            return Err(Error::invalid("the upload holds no bytes"));
                        }
                        None => Some(scan.finish().map_err(refused)?),
                    };
                    if let Some(h) = found {
                        judge(h, limits)?;
                        head = Some(h);
                    }
                }
                if let Some(c) = &chunk {
                    match &mut staged {
                        Some((_, w)) => {
                            w.put(c.clone());
                            w.wait_for_capacity(2).await.map_err(Error::from)?;
                        }
                        None => buffer.extend_from_slice(c),
                    }
                }
                if staged.is_none() && buffer.len() > SMALL {
                    // Too large to hold: stream the rest into a staging object.
                    let path = Path::from(format!("staging/{}", uuid::Uuid::new_v4()));
                    let upload = self
                        .objects
                        .put_multipart(&path)
                        .await
                        .map_err(Error::from)?;
                    let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
                    w.put(Bytes::from(std::mem::take(&mut buffer)));
                    staged = Some((path, w));
                }
                if ended {
                    break;
                }
            }
            let probe = head.expect("the loop ends only with a header");

            let id = hex::encode(hasher.finalize_reset());
            let target = original_path(&id);
            match staged.take() {
                None => {
                    self.objects
                        .put(&target, PutPayload::from(std::mem::take(&mut buffer)))
                        .await
                        .map_err(Error::from)?;
                }
                Some((path, w)) => {
                    w.finish().await.map_err(Error::from)?;
                    let stored = self.objects.head(&path).await.map_err(Error::from)?;
                    if stored.size != total {
                        let _ = self.objects.delete(&path).await;
                        return Err(Error::unavailable(format!(
                            "the store kept {} of {total} bytes: retry the upload",
                            stored.size
                        )));
                    }
                    // Identical bytes under the same name: overwriting is harmless.
                    self.objects
                        .rename(&path, &target)
                        .await
                        .map_err(Error::from)?;
                }
            }
            self.publish(Meta {
                id,
                format: probe.format.to_owned(),
                width: probe.width,
                height: probe.height,
                bytes: total,
                filename: info.filename.clone(),
                content_type: info.content_type.clone(),
                labels: info.labels.clone(),
                alpha: probe.alpha,
                frame_pixels: frames.largest_pixels(),
                created_unix: now_unix(),
            })
            .await
        }
        .await;
        if let Some((path, w)) = staged.take() {
            // Failed part-way: nothing of it stays.
            let _ = w.abort().await;
            let _ = self.objects.delete(&path).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        let mut l = BTreeMap::new();
        assert!(check_labels(&l).is_ok());
        l.insert("k".into(), "v".repeat(256));
        assert!(check_labels(&l).is_ok());
        l.insert("big".into(), "v".repeat(257));
        assert_eq!(
            check_labels(&l).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let many: BTreeMap<_, _> = (0..33).map(|i| (i.to_string(), String::new())).collect();
        assert!(check_labels(&many).is_err());
    }

    #[test]
    fn headers_are_judged_by_limits_and_format() {
        use nlimage_core::codec::head::Head;
        let l = Limits {
            max_pixels: 1_000_000,
            max_dimension: 2000,
        };
        let head = |format, width, height| Head {
            format,
            width,
            height,
            alpha: false,
        };
        assert!(judge(head("jpeg", 1000, 1000), &l).is_ok());
        let e = judge(head("png", 2001, 10), &l).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        // iPhone photos: 12 MP HEIC.
        let l12 = Limits {
            max_pixels: 13_000_000,
            max_dimension: 5000,
        };
        assert!(judge(head("heic", 4032, 3024), &l12).is_ok());
        assert!(judge(head("avif", 4032, 3024), &l).is_err());
        let e = refused(CoreError::Decode("not an image".into()));
        assert!(e.to_string().starts_with("refused before storing"), "{e}");
    }
}
