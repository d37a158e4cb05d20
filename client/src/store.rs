//! The image store from the client: [`Client::put`] uploads a file (or any
//! byte stream) and returns its id; [`Client::get`] fetches it, converted or
//! with operations applied; [`Client::stat`], [`Client::delete`] and
//! [`Client::list`] do what they say.

use std::collections::HashMap;
use std::path::Path;

use nlimage::convert;
use nlimage::v1::image_store_client::ImageStoreClient;
use nlimage::v1::{
    DeleteRequest, EncodeOptions, GetHeader, GetRequest, ListRequest, PutHeader, PutRequest,
    StatRequest, get_response, put_request,
};
use prost::bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

pub use nlimage::v1::StoredImage;

use crate::{CHUNK_BYTES, Client, ClientError, Operation, Stub};

/// What to fetch besides the id.
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    /// Output format as an extension ("png", "jpg", "webp"...); `None`: the
    /// stored file as it was uploaded.
    pub format: Option<String>,
    /// Operations, in order.
    pub ops: Vec<Operation>,
    /// Quality of the lossy encodings, 1-100 [default: the server's, JPEG
    /// 90, WebP 80].
    pub jpeg_quality: Option<u32>,
    /// PNG compression: none, fast, balanced, best [default: fast].
    pub png_compression: Option<String>,
    /// WebP: lossless instead of lossy.
    pub lossless: bool,
    /// JPEG: progressive scans instead of baseline.
    pub progressive: bool,
    /// What of the source's EXIF and XMP the result keeps: strip (the
    /// default), copyright or keep.
    pub meta: Option<String>,
    /// Keep the source's ICC profile instead of converting to sRGB.
    pub keep_icc: bool,
    /// With format "auto": the media types this caller accepts
    /// ("image/webp", ...); the server picks the most compact it encodes.
    pub accept: Vec<String>,
    /// A tag from an earlier fetch: if it still matches, no bytes come back.
    pub if_none_match: Option<String>,
    /// Decode whole even before a first downscale. By default the server
    /// shrinks a JPEG while decoding it (DCT scaling) when the operations
    /// begin with a resize to half or less: faster thumbnails, as close to
    /// a full-decode Lanczos as libvips', not identical to `exact`.
    pub exact: bool,
}

/// A fetched image.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Content type, length, tag, size; `not_modified` if the tag matched.
    pub header: GetHeader,
    /// The encoded bytes (empty when not modified).
    pub bytes: Bytes,
}

/// Labels and names an upload may carry.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// A file name, kept for people.
    pub filename: String,
    /// A content type, kept for people.
    pub content_type: String,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// The upload's length, if known: the server then refuses a stream that
    /// ends short (a read error part-way) instead of storing a truncated file.
    pub length: Option<u64>,
}

impl Client {
    fn store_stub(&self) -> ImageStoreClient<Stub> {
        let mut stub = ImageStoreClient::new(self.stub());
        if let Some(c) = self.options.compression {
            stub = stub.send_compressed(c).accept_compressed(c);
        }
        stub
    }

    /// Uploads the file at `path`, read in chunks; returns what the store
    /// found (its id is the SHA-256 of the bytes).
    pub async fn put_file(&self, path: &Path) -> Result<StoredImage, ClientError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::Io(format!("cannot read '{}': {e}", path.display())))?;
        let length = file.metadata().await.ok().map(|m| m.len());
        let options = PutOptions {
            filename: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            length,
            ..PutOptions::default()
        };
        self.put_reader(file, options).await
    }

    /// Uploads `bytes`.
    pub async fn put(
        &self,
        bytes: Bytes,
        mut options: PutOptions,
    ) -> Result<StoredImage, ClientError> {
        options.length = Some(bytes.len() as u64);
        self.put_reader(std::io::Cursor::new(bytes), options).await
    }

    /// Uploads everything `reader` yields, in chunks of [`CHUNK_BYTES`]. Set
    /// `options.length` when it is known: a read error part-way then makes
    /// the server refuse the upload instead of storing what arrived.
    pub async fn put_reader<R>(
        &self,
        mut reader: R,
        options: PutOptions,
    ) -> Result<StoredImage, ClientError>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let header = PutRequest {
            message: Some(put_request::Message::Header(PutHeader {
                filename: options.filename,
                content_type: options.content_type,
                labels: options.labels,
                length: options.length.unwrap_or(0),
                source_url: String::new(),
            })),
        };
        let reading = tokio::spawn(async move {
            if tx.send(header).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
            loop {
                let mut buf = Vec::with_capacity(CHUNK_BYTES);
                let n = (&mut reader)
                    .take(CHUNK_BYTES as u64)
                    .read_to_end(&mut buf)
                    .await?;
                if n == 0 {
                    return Ok(());
                }
                let msg = PutRequest {
                    message: Some(put_request::Message::Chunk(buf.into())),
                };
                if tx.send(msg).await.is_err() {
                    // The server answered early (an error): it says why.
                    return Ok(());
                }
            }
        });
        let answer = self
            .store_stub()
            .put(self.request(ReceiverStream::new(rx)))
            .await;
        match reading.await {
            Ok(Err(e)) => return Err(ClientError::Io(format!("cannot read the upload: {e}"))),
            Err(e) => return Err(ClientError::Internal(e.to_string())),
            Ok(Ok(())) => {}
        }
        Ok(answer?.into_inner())
    }

    /// Has the server fetch `url` (http or https) and store it; returns what
    /// the store found. The server refuses non-public addresses unless its
    /// operator allowed them (nl-server --allow-source-net).
    pub async fn put_url(
        &self,
        url: &str,
        labels: HashMap<String, String>,
    ) -> Result<StoredImage, ClientError> {
        let header = PutRequest {
            message: Some(put_request::Message::Header(PutHeader {
                labels,
                source_url: url.to_owned(),
                ..PutHeader::default()
            })),
        };
        let stream = tokio_stream::iter([header]);
        Ok(self
            .store_stub()
            .put(self.request(stream))
            .await?
            .into_inner())
    }

    /// Fetches `id` as `options` say.
    pub async fn get(&self, id: &str, options: &GetOptions) -> Result<Fetched, ClientError> {
        let req = GetRequest {
            id: id.to_owned(),
            format: options.format.clone().unwrap_or_default(),
            operations: options.ops.iter().map(convert::to_wire).collect(),
            encode: Some(EncodeOptions {
                jpeg_quality: options.jpeg_quality,
                png_compression: options.png_compression.clone().unwrap_or_default(),
                lossless: options.lossless,
                progressive: options.progressive,
                effort: None,
                meta: options.meta.clone().unwrap_or_default(),
                keep_icc: options.keep_icc,
            }),
            if_none_match: options.if_none_match.clone().unwrap_or_default(),
            exact: options.exact,
            draft: false,
            accept: options.accept.clone(),
        };
        let mut stream = self.store_stub().get(self.request(req)).await?.into_inner();
        let header = match stream.next().await.transpose()?.and_then(|m| m.message) {
            Some(get_response::Message::Header(h)) => h,
            _ => {
                return Err(ClientError::Protocol(
                    "the server's answer did not start with a header".into(),
                ));
            }
        };
        let mut bytes =
            Vec::with_capacity(usize::try_from(header.length).unwrap_or(0).min(1 << 30));
        while let Some(m) = stream.next().await.transpose()? {
            match m.message {
                Some(get_response::Message::Chunk(c)) => bytes.extend_from_slice(&c),
                _ => {
                    return Err(ClientError::Protocol(
                        "a second header in the server's answer".into(),
                    ));
                }
            }
        }
        if bytes.len() as u64 != header.length {
            return Err(ClientError::Protocol(format!(
                "the server announced {} bytes and sent {}",
                header.length,
                bytes.len()
            )));
        }
        Ok(Fetched {
            header,
            bytes: bytes.into(),
        })
    }

    /// What the store knows about `id`.
    pub async fn stat(&self, id: &str) -> Result<StoredImage, ClientError> {
        let req = StatRequest { id: id.to_owned() };
        Ok(self
            .store_stub()
            .stat(self.request(req))
            .await?
            .into_inner())
    }

    /// Deletes `id` and its cached results; returns how many results went.
    pub async fn delete(&self, id: &str) -> Result<u64, ClientError> {
        let req = DeleteRequest { id: id.to_owned() };
        Ok(self
            .store_stub()
            .delete(self.request(req))
            .await?
            .into_inner()
            .results_removed)
    }

    /// One page of stored images after `page_token` (empty for the first);
    /// returns them and the next page's token (empty on the last page).
    pub async fn list(
        &self,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<StoredImage>, String), ClientError> {
        let req = ListRequest {
            page_size,
            page_token: page_token.to_owned(),
        };
        let r = self
            .store_stub()
            .list(self.request(req))
            .await?
            .into_inner();
        Ok((r.images, r.next_page_token))
    }
}
