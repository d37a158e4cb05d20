//! The result cache: derived results stored beside the originals, keyed on
//! the image id, the canonical encoding of the operations, the output format
//! and the encoder options; computed once however many requests ask for them
//! at the same time (single flight); on a local directory, least recently
//! used results are evicted past a size limit (originals never are).
//!
//! The index (path -> size, last use, tag) lives in memory and is rebuilt
//! from a listing at start (recency from modification times). On S3 nothing
//! is evicted (a bucket lifecycle rule on `results/` does that) and the
//! index only remembers tags, bounded in size.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::error::Error;
use bytes::Bytes;
use nlimage_core::{EncodeOptions, Operation, OutputFormat};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;

/// Entries remembered at most when nothing is evicted (S3).
const MAX_INDEX_ENTRIES: usize = 200_000;

/// Results larger than this share of the memory tier are not kept there.
const HOT_MAX_SHARE: u64 = 8;

/// A result kept in memory: its bytes, tag and size in pixels.
#[derive(Clone, Debug)]
pub struct HotResult {
    /// The encoded bytes.
    pub bytes: Bytes,
    /// Their strong tag.
    pub tag: String,
    /// Size in pixels.
    pub width: u32,
    /// Size in pixels.
    pub height: u32,
}

/// The memory tier: recently served results, least recently used evicted
/// past a byte budget, so that a hot thumbnail costs no I/O at all.
#[derive(Debug)]
struct Hot {
    entries: lru::LruCache<String, HotResult>,
    bytes: u64,
    max: u64,
}

impl Hot {
    fn get(&mut self, path: &str) -> Option<HotResult> {
        self.entries.get(path).cloned()
    }

    fn put(&mut self, path: String, r: HotResult) {
        let size = r.bytes.len() as u64;
        if self.max == 0 || size > self.max / HOT_MAX_SHARE {
            return;
        }
        if let Some(old) = self.entries.put(path, r) {
            self.bytes -= old.bytes.len() as u64;
        }
        self.bytes += size;
        while self.bytes > self.max {
            match self.entries.pop_lru() {
                Some((_, e)) => self.bytes -= e.bytes.len() as u64,
                None => break,
            }
        }
    }

    fn remove(&mut self, path: &str) {
        if let Some(e) = self.entries.pop(path) {
            self.bytes -= e.bytes.len() as u64;
        }
    }

    fn remove_prefix(&mut self, prefix: &str) {
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.remove(&k);
        }
    }
}

#[derive(Debug)]
struct Entry {
    size: u64,
    tick: u64,
    tag: Option<String>,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    by_age: BTreeMap<u64, String>,
    total: u64,
    next_tick: u64,
}

impl Index {
    fn touch(&mut self, path: &str) -> Option<&Entry> {
        let tick = self.next_tick;
        let e = self.entries.get_mut(path)?;
        self.by_age.remove(&e.tick);
        e.tick = tick;
        self.by_age.insert(tick, path.to_owned());
        self.next_tick += 1;
        self.entries.get(path)
    }

    fn insert(&mut self, path: String, size: u64, tag: Option<String>) {
        self.remove(&path);
        let tick = self.next_tick;
        self.next_tick += 1;
        self.by_age.insert(tick, path.clone());
        self.total += size;
        self.entries.insert(path, Entry { size, tick, tag });
    }

    fn remove(&mut self, path: &str) -> Option<Entry> {
        let e = self.entries.remove(path)?;
        self.by_age.remove(&e.tick);
        self.total -= e.size;
        Some(e)
    }

    /// Drops least recently used entries until `fits` holds; returns them.
    fn evict(&mut self, fits: impl Fn(&Index) -> bool) -> Vec<String> {
        let mut gone = Vec::new();
        while !fits(self) {
            let Some((_, path)) = self.by_age.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&path) {
                self.total -= e.size;
            }
            gone.push(path);
        }
        gone
    }
}

/// Cached results and the computations in flight.
#[derive(Debug)]
pub struct ResultCache {
    objects: Arc<dyn ObjectStore>,
    /// Evict past this many bytes (local directories); `None`: never.
    max_bytes: Option<u64>,
    index: Mutex<Index>,
    hot: Mutex<Hot>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// KiB of results waiting to be written behind their answers.
    behind: Arc<tokio::sync::Semaphore>,
    /// Writes behind answers under way, per image id, and a signal at the
    /// end of each: a delete waits for its image's before it sweeps.
    writing: Mutex<HashMap<String, usize>>,
    written: tokio::sync::Notify,
}

/// One result being written behind its answer (see
/// [`ResultCache::begin_write`]); its end is signalled when dropped.
pub struct Writing {
    cache: Arc<ResultCache>,
    id: String,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut writing = self.cache.writing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = writing.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                writing.remove(&self.id);
            }
        }
        drop(writing);
        self.cache.written.notify_waiters();
    }
}

/// At most this many KiB of results wait to be written behind their answers
/// (64 MiB); past that a result is answered and not kept.
const BEHIND_KIB: usize = 64 * 1024;

/// The right to compute one result: other requests for it wait until this is
/// dropped, then find it in the cache.
pub struct Flight {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    key: String,
    cache: Arc<ResultCache>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut flights = self.cache.flights.lock().unwrap_or_else(|p| p.into_inner());
        // Later arrivals check the cache before they ask for a flight.
        flights.remove(&self.key);
    }
}

/// Where the result of `ops` on `id`, encoded as `format` with `options`
/// (decoded whole if `exact`, else shrunk on load where it can be), is kept:
/// `results/{id}/{key}.{ext}`, the key being 128 bits of the SHA-256 of the
/// canonical request.
pub fn result_path(
    id: &str,
    ops: &[Operation],
    format: OutputFormat,
    options: EncodeOptions,
    exact: bool,
) -> Path {
    let mut h = Sha256::new();
    h.update(b"nlimage-result\0");
    h.update(nlimage_core::ops::canonical_bytes(ops));
    h.update([0]);
    h.update(format.extension().as_bytes());
    h.update([0]);
    h.update(options.canonical_bytes());
    // Shrink-on-load results keep the key `draft=1` gave them before they
    // became the default, and exact ones the key they always had.
    if !exact {
        h.update(b"\0draft");
    }
    let key = hex::encode(&h.finalize()[..16]);
    Path::from(format!("results/{id}/{key}.{}", format.extension()))
}

impl ResultCache {
    /// A cache on `objects`, evicting past `max_bytes` if set, with a
    /// memory tier of `hot_bytes`. A store other replicas share (S3) gets no
    /// memory tier: another replica may delete an image, and only the store
    /// knows.
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        max_bytes: Option<u64>,
        hot_bytes: u64,
        shared: bool,
    ) -> Self {
        Self {
            objects,
            max_bytes,
            index: Mutex::new(Index::default()),
            hot: Mutex::new(Hot {
                entries: lru::LruCache::unbounded(),
                bytes: 0,
                max: if shared { 0 } else { hot_bytes },
            }),
            flights: Mutex::new(HashMap::new()),
            behind: Arc::new(tokio::sync::Semaphore::new(BEHIND_KIB)),
            writing: Mutex::new(HashMap::new()),
            written: tokio::sync::Notify::new(),
        }
    }

    /// Room for a result of image `id`, `len` bytes, to be written behind
    /// its answer, or `None` (counted) while [`BEHIND_KIB`] are waiting
    /// already: the answer never waits for the cache.
    pub fn begin_write(self: &Arc<Self>, id: &str, len: usize) -> Option<Writing> {
        let kib = len.div_ceil(1024).clamp(1, BEHIND_KIB) as u32;
        let Ok(permit) = Arc::clone(&self.behind).try_acquire_many_owned(kib) else {
            metrics::counter!("nlimage_cache_writes_skipped_total").increment(1);
            return None;
        };
        let mut writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        *writing.entry(id.to_owned()).or_default() += 1;
        Some(Writing {
            cache: Arc::clone(self),
            id: id.to_owned(),
            _permit: permit,
        })
    }

    /// Waits until no result of `id` is being written behind its answer.
    pub async fn writes_done(&self, id: &str) {
        loop {
            let signal = self.written.notified();
            tokio::pin!(signal);
            // Registered before the look, so an end between the two wakes it.
            signal.as_mut().enable();
            if !self
                .writing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(id)
            {
                return;
            }
            signal.await;
        }
    }

    /// Waits until every result written behind its answer is stored (or
    /// has failed): for a graceful shutdown.
    pub async fn settled(&self) {
        let _all = self.behind.acquire_many(BEHIND_KIB as u32).await;
    }

    fn hot(&self) -> std::sync::MutexGuard<'_, Hot> {
        self.hot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The result at `path` if it is in the memory tier.
    pub fn get_hot(&self, path: &Path) -> Option<HotResult> {
        let r = self.hot().get(path.as_ref());
        if let Some(r) = &r {
            metrics::counter!("nlimage_cache_hits_total", "tier" => "memory").increment(1);
            metrics::counter!("nlimage_cache_hit_bytes_total").increment(r.bytes.len() as u64);
        }
        r
    }

    /// Keeps a result in the memory tier.
    pub fn put_hot(&self, path: &Path, bytes: Bytes, tag: String, width: u32, height: u32) {
        self.hot().put(
            path.to_string(),
            HotResult {
                bytes,
                tag,
                width,
                height,
            },
        );
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of results the index knows of.
    pub fn bytes(&self) -> u64 {
        self.index().total
    }

    /// Rebuilds the index from the stored results (local directories), oldest
    /// first, and evicts what is over the limit.
    pub async fn load_index(&self) {
        if self.max_bytes.is_none() {
            return;
        }
        let mut found = Vec::new();
        let mut list = self.objects.list(Some(&Path::from("results")));
        while let Some(Ok(o)) = list.next().await {
            found.push((o.last_modified, o.location.to_string(), o.size));
        }
        found.sort();
        {
            let mut index = self.index();
            for (_, path, size) in found {
                index.insert(path, size, None);
            }
        }
        self.evict().await;
    }

    async fn evict(&self) {
        let Some(max) = self.max_bytes else {
            return;
        };
        let gone = self.index().evict(|i| i.total <= max);
        for path in gone {
            metrics::counter!("nlimage_cache_evictions_total").increment(1);
            let _ = self.objects.delete(&Path::from(path)).await;
        }
        metrics::gauge!("nlimage_cache_bytes").set(self.bytes() as f64);
    }

    /// The tag of the result at `path` if it is stored (for a conditional
    /// request: no body is read when the tag is known).
    pub async fn tag(&self, path: &Path) -> Result<Option<String>, Error> {
        let known = self
            .index()
            .touch(path.as_ref())
            .and_then(|e| e.tag.clone());
        let Some(tag) = known else {
            return Ok(self.get(path).await?.map(|(_, tag)| tag));
        };
        // Another replica may have deleted it.
        match self.objects.head(path).await {
            Ok(_) => Ok(Some(tag)),
            Err(object_store::Error::NotFound { .. }) => {
                self.index().remove(path.as_ref());
                Ok(None)
            }
            Err(e) => Err(Error::from(e)),
        }
    }

    /// The stored result at `path` and its tag, if there is one.
    pub async fn get(&self, path: &Path) -> Result<Option<(Bytes, String)>, Error> {
        let body = match self.objects.get(path).await {
            Ok(g) => g.bytes().await,
            Err(e) => Err(e),
        };
        match body {
            Ok(bytes) => {
                let known = self
                    .index()
                    .touch(path.as_ref())
                    .and_then(|e| e.tag.clone());
                let tag = match known {
                    Some(t) => t,
                    None => {
                        let t = super::id::tag_of(&bytes);
                        self.remember(path, bytes.len() as u64, t.clone());
                        t
                    }
                };
                metrics::counter!("nlimage_cache_hits_total", "tier" => "store").increment(1);
                metrics::counter!("nlimage_cache_hit_bytes_total").increment(bytes.len() as u64);
                Ok(Some((bytes, tag)))
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.index().remove(path.as_ref());
                Ok(None)
            }
            // The cache only saves work: a result it cannot read is
            // computed again, not refused (counted and logged).
            Err(e) => {
                metrics::counter!("nlimage_cache_read_failures_total").increment(1);
                tracing::warn!("cannot read the cached result {path}: {e}");
                Ok(None)
            }
        }
    }

    fn remember(&self, path: &Path, size: u64, tag: String) {
        let mut index = self.index();
        index.insert(path.to_string(), size, Some(tag));
        if self.max_bytes.is_none() {
            // Only tags are remembered: keep the map bounded.
            let _ = index.evict(|i| i.entries.len() <= MAX_INDEX_ENTRIES);
        }
    }

    /// Waits for the right to compute `path` (single flight). Check the
    /// cache again after this returns: another request may have filled it.
    pub async fn flight(self: &Arc<Self>, path: &Path) -> Flight {
        let key = path.to_string();
        let lock = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(flights.entry(key.clone()).or_default())
        };
        Flight {
            _guard: lock.lock_owned().await,
            key,
            cache: Arc::clone(self),
        }
    }

    /// Stores a computed result and evicts what no longer fits. A failure to
    /// store is logged, not returned: the caller still has its result.
    pub async fn insert(&self, path: &Path, bytes: Bytes, tag: String) {
        metrics::counter!("nlimage_cache_misses_total").increment(1);
        let size = bytes.len() as u64;
        // The object store writes a whole object or none (a local file is
        // written aside and renamed), so a failed write is never served.
        if let Err(e) = self.objects.put(path, PutPayload::from(bytes)).await {
            metrics::counter!("nlimage_cache_write_failures_total").increment(1);
            tracing::warn!("cannot cache the result {path}: {e}");
            return;
        }
        metrics::counter!("nlimage_cache_written_bytes_total").increment(size);
        self.remember(path, size, tag);
        self.evict().await;
    }

    /// Takes one result out of the memory tier.
    pub fn remove_hot(&self, path: &Path) {
        self.hot().remove(path.as_ref());
    }

    /// Deletes one result (a result of an image deleted while it was
    /// computed); a failure is logged.
    pub async fn remove(&self, path: &Path) {
        self.hot().remove(path.as_ref());
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("cannot remove the result {path}: {e}"),
        }
        self.index().remove(path.as_ref());
    }

    /// Deletes every result of `id`; returns how many.
    pub async fn remove_all(&self, id: &str) -> Result<u64, Error> {
        self.hot().remove_prefix(&format!("results/{id}/"));
        let prefix = Path::from(format!("results/{id}"));
        let mut list = self.objects.list(Some(&prefix));
        let mut paths = Vec::new();
        while let Some(o) = list.next().await {
            paths.push(o.map_err(Error::from)?.location);
        }
        let mut removed = 0;
        for p in paths {
            match self.objects.delete(&p).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::from(e)),
            }
            self.index().remove(p.as_ref());
        }
        metrics::gauge!("nlimage_cache_bytes").set(self.bytes() as f64);
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_evicts_least_recently_used_first() {
        let mut i = Index::default();
        i.insert("a".into(), 10, None);
        i.insert("b".into(), 10, None);
        i.insert("c".into(), 10, None);
        i.touch("a");
        assert_eq!(i.total, 30);
        let gone = i.evict(|i| i.total <= 15);
        assert_eq!(gone, ["b", "c"]);
        assert_eq!(i.total, 10);
        assert!(i.entries.contains_key("a"));
        i.insert("a".into(), 4, None);
        assert_eq!(i.total, 4, "re-inserting replaces the size");
    }

    #[test]
    fn result_paths_differ_by_every_part_of_the_request() {
        let id = "0".repeat(64);
        let o = EncodeOptions::default();
        let a = result_path(&id, &[Operation::Gray], OutputFormat::Png, o, false);
        assert!(a.as_ref().starts_with(&format!("results/{id}/")));
        assert!(a.as_ref().ends_with(".png"));
        assert_eq!(
            a,
            result_path(&id, &[Operation::Gray], OutputFormat::Png, o, false)
        );
        assert_ne!(a, result_path(&id, &[], OutputFormat::Png, o, false));
        assert_ne!(
            a,
            result_path(&id, &[Operation::Gray], OutputFormat::Jpeg, o, false)
        );
        let q = EncodeOptions::new(Some(50), o.png, false).unwrap();
        assert_ne!(
            result_path(&id, &[], OutputFormat::Jpeg, o, false),
            result_path(&id, &[], OutputFormat::Jpeg, q, false)
        );
        assert_ne!(
            a,
            result_path(&id, &[Operation::Gray], OutputFormat::Png, o, true)
        );
        let other = "1".repeat(64);
        assert_ne!(
            a,
            result_path(&other, &[Operation::Gray], OutputFormat::Png, o, false)
        );
    }
}
