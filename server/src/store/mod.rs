//! The image store: encoded originals under an id derived from their bytes,
//! their metadata, and cached results, on one object-storage abstraction
//! (`object_store`: a local directory or S3-compatible storage).
//!
//! Layout under the store's root (a directory or `s3://bucket/prefix`):
//! - `images/{id}`: the file as uploaded; `images/{id}.json`: its
//!   [`Meta`]. An image exists once its metadata does, which is written only
//!   after its bytes are in place; both writes are atomic (a rename on disk,
//!   a single PUT or a completed multipart upload on S3), so a crash leaves
//!   no partial image visible.
//! - `results/{id}/{key}.{ext}`: a derived result, keyed on the canonical
//!   encoding of the operations, the format and the encoder options
//!   ([`cache`]).
//! - `staging/{uuid}`: uploads in progress, renamed into `images/` when
//!   complete and verified; leftovers of crashed servers are removed after a
//!   day.
//!
//! Handlers call this module; it knows nothing of gRPC messages or HTTP.

pub mod cache;
pub mod id;
pub mod upload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

pub use cache::{Flight, ResultCache};

/// Where the store keeps its objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// No store: the store's calls answer UNAVAILABLE.
    None,
    /// A local directory (created if missing).
    Dir(PathBuf),
    /// S3-compatible storage, `s3://bucket[/prefix]`, configured by the
    /// standard `AWS_*` environment variables.
    S3(String),
}

impl StoreLocation {
    /// Parses `--store`: `none`, `s3://bucket[/prefix]`, `file:///dir` or a
    /// directory path.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(Self::None);
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            if rest.is_empty() || rest.starts_with('/') {
                return Err(format!("'{s}' names no bucket: use s3://BUCKET[/PREFIX]"));
            }
            return Ok(Self::S3(s.to_owned()));
        }
        if let Some(dir) = s.strip_prefix("file://") {
            return Ok(Self::Dir(dir.into()));
        }
        if s.contains("://") {
            return Err(format!(
                "'{s}' is not a store this server knows: use a directory, s3://BUCKET[/PREFIX] or none"
            ));
        }
        Ok(Self::Dir(s.into()))
    }
}

/// What the store keeps about an image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// SHA-256 of the bytes, hex.
    pub id: String,
    /// Format as an extension ("png", "jpeg", ...).
    pub format: String,
    /// Size in pixels.
    pub width: u32,
    /// Size in pixels.
    pub height: u32,
    /// File length.
    pub bytes: u64,
    /// As given by the first upload.
    #[serde(default)]
    pub filename: String,
    /// As given by the first upload.
    #[serde(default)]
    pub content_type: String,
    /// As given by the first upload.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds since the Unix epoch when the first upload completed.
    pub created_unix: i64,
    /// Whether its header says it has an alpha channel (the format a
    /// browser is sent depends on it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alpha: bool,
    /// The largest frame of a GIF or WebP, in pixels, if larger than
    /// `width` x `height` (a decoder allocates it): what decoding reserves.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frame_pixels: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Meta {
    /// Pixels a decoder of this image may hold at once: the image, or its
    /// largest frame.
    pub fn decode_pixels(&self) -> u64 {
        (u64::from(self.width) * u64::from(self.height)).max(self.frame_pixels)
    }

    /// The limits to decode it with: at most [`Meta::decode_pixels`] (so
    /// that the decoder allocates no more than was reserved for it), and the
    /// server's side limit.
    pub fn decode_limits(&self, server: &nlimage_core::Limits) -> nlimage_core::Limits {
        nlimage_core::Limits {
            max_pixels: self.decode_pixels().min(server.max_pixels),
            max_dimension: server.max_dimension,
        }
    }
}

/// What an upload declares besides its bytes.
#[derive(Clone, Debug, Default)]
pub struct PutInfo {
    /// Optional file name.
    pub filename: String,
    /// Optional content type.
    pub content_type: String,
    /// Optional labels.
    pub labels: BTreeMap<String, String>,
    /// The length the client announced, if any.
    pub length: Option<u64>,
}

/// The store: cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    /// Where it lives, for messages.
    describe: Arc<str>,
    /// The local staging directory, for cleaning up after crashes.
    local_root: Option<PathBuf>,
    /// Largest upload accepted, in bytes.
    pub max_upload: u64,
    /// Results, their index and single flight.
    pub cache: Arc<ResultCache>,
}

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Where objects go.
    pub location: StoreLocation,
    /// Largest upload, in bytes.
    pub max_upload: u64,
    /// Cached results beyond this many bytes are evicted, least recently
    /// used first (local directories only; on S3 use a lifecycle rule).
    pub cache_max: u64,
    /// Recently served results kept in memory, in bytes (0: none); local
    /// stores only (replicas sharing S3 each read the bucket).
    pub memory_cache: u64,
    /// Sync every write of a local store (file and directory) before it is
    /// acknowledged [default: true].
    pub fsync: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            location: StoreLocation::None,
            max_upload: 256 << 20,
            cache_max: 1 << 30,
            memory_cache: 64 << 20,
            fsync: true,
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The object holding an image's bytes.
pub fn original_path(id: &str) -> Path {
    Path::from(format!("images/{id}"))
}

fn meta_path(id: &str) -> Path {
    Path::from(format!("images/{id}.json"))
}

impl Store {
    /// Opens the store `config` names, or `None` for `StoreLocation::None`.
    pub async fn open(config: &StoreConfig) -> Result<Option<Self>, String> {
        let (objects, describe, local_root): (Arc<dyn ObjectStore>, String, _) =
            match &config.location {
                StoreLocation::None => return Ok(None),
                StoreLocation::Dir(dir) => {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        format!("cannot create the store directory '{}': {e}", dir.display())
                    })?;
                    // Every write is synced, file and directory, before it
                    // returns: an image becomes visible (its metadata is
                    // written) only after its bytes are on disk, so a power
                    // loss loses nothing acknowledged.
                    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                        .map_err(|e| format!("cannot open the store '{}': {e}", dir.display()))?
                        .with_automatic_cleanup(true)
                        .with_fsync(config.fsync);
                    (Arc::new(fs), dir.display().to_string(), Some(dir.clone()))
                }
                StoreLocation::S3(url) => {
                    // HTTPS to S3 goes through rustls on ring, as tonic's TLS
                    // does; a provider installed earlier is kept.
                    let _ = rustls::crypto::ring::default_provider().install_default();
                    // A store that is down fails requests within seconds
                    // (UNAVAILABLE, retried by clients) instead of holding
                    // them for object_store's default three minutes.
                    let retry = object_store::RetryConfig {
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(15),
                        ..object_store::RetryConfig::default()
                    };
                    use object_store::ClientConfigKey as C;
                    use object_store::aws::AmazonS3ConfigKey as K;
                    let s3 = object_store::aws::AmazonS3Builder::from_env()
                        .with_url(url)
                        .with_retry(retry)
                        // Set key by key: `with_client_options` would drop
                        // what `from_env` read (AWS_ALLOW_HTTP, proxies).
                        .with_config(K::Client(C::ConnectTimeout), "5s")
                        .with_config(K::Client(C::Timeout), "300s")
                        .build()
                        .map_err(|e| format!("cannot open the store '{url}': {e}"))?;
                    // The bucket comes from the URL; the prefix is ours to apply.
                    let prefix = url
                        .trim_start_matches("s3://")
                        .split_once('/')
                        .map_or("", |(_, p)| p.trim_matches('/'));
                    let objects: Arc<dyn ObjectStore> = if prefix.is_empty() {
                        Arc::new(s3)
                    } else {
                        Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
                    };
                    (objects, url.clone(), None)
                }
            };
        let cache_max = local_root.as_ref().map(|_| config.cache_max);
        let shared = local_root.is_none();
        let store = Self {
            cache: Arc::new(ResultCache::new(
                Arc::clone(&objects),
                cache_max,
                config.memory_cache,
                shared,
            )),
            objects,
            describe: describe.into(),
            local_root,
            max_upload: config.max_upload,
        };
        store.clean_staging().await;
        store.cache.load_index().await;
        Ok(Some(store))
    }

    /// Where the store lives, for logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The object store underneath.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// Whether the store answers (for health checks): a one-item listing.
    pub async fn reachable(&self) -> bool {
        let probe = async {
            let mut l = self.objects.list(Some(&Path::from("images")));
            !matches!(l.next().await, Some(Err(_)))
        };
        tokio::time::timeout(Duration::from_secs(2), probe)
            .await
            .unwrap_or(false)
    }

    /// Removes uploads that crashed servers left behind (older than a day,
    /// so that other replicas' uploads in progress are safe).
    async fn clean_staging(&self) {
        let day = Duration::from_secs(24 * 3600);
        if let Some(root) = &self.local_root {
            // Local multipart uploads write `staging/{uuid}#N` files that the
            // object store's listing hides.
            let Ok(dir) = std::fs::read_dir(root.join("staging")) else {
                return;
            };
            for entry in dir.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > day);
                if old {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            return;
        }
        let mut list = self.objects.list(Some(&Path::from("staging")));
        let cutoff = chrono_cutoff(day);
        while let Some(Ok(o)) = list.next().await {
            if o.last_modified.timestamp() < cutoff {
                let _ = self.objects.delete(&o.location).await;
            }
        }
    }

    /// The metadata of `id`, NOT_FOUND if it is not stored.
    pub async fn stat(&self, id: &str) -> Result<Meta, Error> {
        id::check(id).map_err(Error::InvalidInput)?;
        let path = meta_path(id);
        let got = match self.objects.get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::not_found(format!("no image with id {id}")));
            }
            Err(e) => return Err(Error::store_fault(path.as_ref(), e)),
        };
        let body = got
            .bytes()
            .await
            .map_err(|e| Error::store_fault(path.as_ref(), e))?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::internal(format!("the metadata of {id} is damaged: {e}")))
    }

    /// The stored bytes of `id`.
    #[tracing::instrument(name = "store.read", skip(self))]
    pub async fn original(&self, id: &str) -> Result<Bytes, Error> {
        let path = original_path(id);
        let fault = |e| Error::store_fault(path.as_ref(), e);
        match self.objects.get(&path).await {
            Ok(g) => g.bytes().await.map_err(fault),
            Err(object_store::Error::NotFound { .. }) => {
                Err(Error::not_found(format!("no image with id {id}")))
            }
            Err(e) => Err(fault(e)),
        }
    }

    /// Keeps `bytes`, a result of image `id` at `path`, in the result cache
    /// after its answer has gone (write-behind, bounded by
    /// [`ResultCache::begin_write`]). The write holds `flight`, so an
    /// identical request waits for it and reads the result rather than
    /// computing it again. A delete waits for it; an image deleted before
    /// it began has the result withdrawn once it is written.
    pub fn cache_behind(&self, id: &str, path: Path, bytes: Bytes, tag: String, flight: Flight) {
        let Some(writing) = self.cache.begin_write(id, bytes.len()) else {
            return;
        };
        let (store, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move {
            let _held = (writing, flight);
            store.cache.insert(&path, bytes, tag).await;
            match store.exists(&id).await {
                Ok(true) => {}
                Ok(false) => store.cache.remove(&path).await,
                Err(e) => {
                    tracing::warn!(
                        "cannot tell whether {id} is still stored ({e}): its result {path} is withdrawn"
                    );
                    store.cache.remove(&path).await;
                }
            }
        });
    }

    /// Whether `id` is stored now (its metadata exists): every derived
    /// result is served only while it is, so a delete takes effect at once
    /// for every derived URL on every replica sharing the store. On a local
    /// directory one `stat` of the file; on S3 a HEAD request.
    pub async fn exists(&self, id: &str) -> Result<bool, Error> {
        let path = meta_path(id);
        if let Some(root) = &self.local_root {
            return Ok(root.join("images").join(format!("{id}.json")).exists());
        }
        match self.objects.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store_fault(path.as_ref(), e)),
        }
    }

    /// Records `meta` unless an earlier upload of the same bytes did (the
    /// first upload's name and labels are kept); returns what is stored.
    async fn publish(&self, meta: Meta) -> Result<Meta, Error> {
        let body = serde_json::to_vec(&meta).map_err(|e| Error::internal(e.to_string()))?;
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let path = meta_path(&meta.id);
        match self
            .objects
            .put_opts(&path, PutPayload::from(body), create)
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return self.stat(&meta.id).await,
            Err(e) => return Err(Error::store_fault(path.as_ref(), e)),
        }
        // A delete of the same bytes may have run between their write and
        // this metadata (it removes the bytes, then finds no metadata): the
        // image would be visible without its bytes. Then it is withdrawn and
        // the upload, not acknowledged, is to be sent again.
        match self.objects.head(&original_path(&meta.id)).await {
            Ok(_) => Ok(meta),
            Err(object_store::Error::NotFound { .. }) => {
                let _ = self.objects.delete(&path).await;
                Err(Error::unavailable(
                    "the image was deleted while it was being stored: send it again",
                ))
            }
            Err(e) => Err(Error::store_fault(original_path(&meta.id).as_ref(), e)),
        }
    }

    /// Removes `id`'s metadata, bytes and every cached result; returns how
    /// many results went. NOT_FOUND if it was not stored -- after removing
    /// any results left of it all the same (a result computed while an
    /// earlier delete ran), so that a second delete cleans up.
    pub async fn delete(&self, id: &str) -> Result<u64, Error> {
        let existed = match self.stat(id).await {
            Ok(_) => true,
            Err(Error::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        // Results being written behind their answers finish first, while
        // the image is still stored, so they stay and are swept (and
        // counted) below; a write that begins later finds the image gone
        // once written and withdraws itself.
        self.cache.writes_done(id).await;
        // Metadata first: the image stops being visible before its bytes go,
        // and every derived result with it (see `exists`).
        for p in [meta_path(id), original_path(id)] {
            match self.objects.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store_fault(p.as_ref(), e)),
            }
        }
        let removed = self.cache.remove_all(id).await?;
        if existed {
            Ok(removed)
        } else {
            Err(Error::not_found(format!("no image with id {id}")))
        }
    }

    /// Up to `page_size` images with ids after `after`, ordered by id, and
    /// whether more follow.
    pub async fn list(&self, page_size: usize, after: &str) -> Result<(Vec<Meta>, bool), Error> {
        if !after.is_empty() {
            id::check(after)
                .map_err(|_| Error::invalid(format!("'{after}' is not a page token from List")))?;
        }
        let prefix = Path::from("images");
        let mut list = if after.is_empty() {
            self.objects.list(Some(&prefix))
        } else {
            self.objects
                .list_with_offset(Some(&prefix), &meta_path(after))
        };
        // A local directory lists in no order, so every id after the token is
        // gathered and sorted (ids are small; S3 lists in order anyway).
        let mut ids = Vec::new();
        while let Some(o) = list.next().await {
            let o = o.map_err(Error::from)?;
            let Some(id) = o
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .map(str::to_owned)
            else {
                continue;
            };
            if id::check(&id).is_ok() && id.as_str() > after {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let more = ids.len() > page_size;
        ids.truncate(page_size);
        let metas = tokio_stream::iter(ids)
            .map(|id| async move { self.stat(&id).await })
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            match m.await {
                Ok(m) => out.push(m),
                // Deleted between the listing and now.
                Err(Error::NotFound(_)) => {}
                Err(s) => return Err(s),
            }
        }
        Ok((out, more))
    }
}

fn chrono_cutoff(age: Duration) -> i64 {
    now_unix() - age.as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metadata_whose_bytes_were_deleted_meanwhile_is_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig {
            location: StoreLocation::Dir(dir.path().into()),
            ..StoreConfig::default()
        })
        .await
        .unwrap()
        .unwrap();
        let id = "a".repeat(64);
        let meta = Meta {
            id: id.clone(),
            format: "png".into(),
            width: 1,
            height: 1,
            bytes: 3,
            ..Meta::default()
        };
        // The bytes went (a delete ran between them and the metadata).
        let e = store.publish(meta.clone()).await.unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e}");
        assert!(!store.exists(&id).await.unwrap(), "not visible");
        // With its bytes in place it is published.
        store
            .objects
            .put(&original_path(&id), PutPayload::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(store.publish(meta).await.unwrap().id, id);
        assert!(store.exists(&id).await.unwrap());
        // A delete of an unknown id still sweeps results left of it.
        store
            .objects
            .put(
                &Path::from(format!("results/{}/x.png", "b".repeat(64))),
                PutPayload::from_static(b"r"),
            )
            .await
            .unwrap();
        let e = store.delete(&"b".repeat(64)).await.unwrap_err();
        assert!(matches!(e, Error::NotFound(_)));
        assert!(
            !dir.path()
                .join("results")
                .join("b".repeat(64))
                .join("x.png")
                .exists(),
            "the orphan went"
        );
    }
}
