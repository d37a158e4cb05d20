//! The `nlimage.v1.ImageStore` RPCs: decode and validate the messages, call
//! [`crate::store`], encode the answers.

use std::pin::Pin;

use bytes::Bytes;
use nlimage::convert;
use nlimage::v1::image_store_server::ImageStore;
use nlimage::v1::{
    DeleteRequest, DeleteResponse, GetHeader, GetRequest, GetResponse, ListRequest, ListResponse,
    PutRequest, StatRequest, StoredImage, get_response, put_request,
};
use nlimage_core::{EncodeOptions, OutputFormat, PngCompression};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::Shared;
use crate::config::MAX_CHUNK_BYTES;
use crate::gate;
use crate::log::RequestLog;
use crate::status::from_core;
use crate::store::render::RenderRequest;
use crate::store::upload::{UPLOAD_MEMORY, check_labels};
use crate::store::{Meta, PutInfo, Store};

/// The image store service.
#[derive(Clone, Debug)]
pub struct StoreService {
    shared: Shared,
}

impl StoreService {
    /// A service on `shared` (whose store may be absent: then UNAVAILABLE).
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }

    fn store(&self) -> Result<&Store, Status> {
        self.shared.store()
    }
}

/// The wire form of stored metadata.
pub fn stored_image(m: Meta) -> StoredImage {
    StoredImage {
        id: m.id,
        format: m.format,
        width: m.width,
        height: m.height,
        bytes: m.bytes,
        filename: m.filename,
        content_type: m.content_type,
        labels: m.labels.into_iter().collect(),
        created_unix: m.created_unix,
    }
}

/// Encoder options from the wire (defaults where absent).
pub fn encode_options(o: Option<&nlimage::v1::EncodeOptions>) -> Result<EncodeOptions, Status> {
    let Some(o) = o else {
        return Ok(EncodeOptions::default());
    };
    let quality = match o.jpeg_quality {
        None => nlimage_core::codec::JPEG_QUALITY,
        Some(q) => u8::try_from(q).unwrap_or(0),
    };
    let png = if o.png_compression.is_empty() {
        PngCompression::default()
    } else {
        PngCompression::from_name(&o.png_compression).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown PNG compression '{}': use none, fast, balanced or best",
                o.png_compression
            ))
        })?
    };
    EncodeOptions::new(quality, png).map_err(from_core)
}

/// An output format named by extension; empty is `None` (the original).
pub fn output_format(ext: &str) -> Result<Option<OutputFormat>, Status> {
    if ext.is_empty() {
        return Ok(None);
    }
    OutputFormat::from_extension(ext.trim_start_matches('.'))
        .map(Some)
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown output format '{ext}': use one of {}",
                OutputFormat::EXTENSIONS
            ))
        })
}

type GetStream = Pin<Box<dyn Stream<Item = Result<GetResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ImageStore for StoreService {
    async fn put(
        &self,
        request: Request<Streaming<PutRequest>>,
    ) -> Result<Response<StoredImage>, Status> {
        let deadline = gate::deadline(request.metadata());
        let mut log = RequestLog::start(
            "nlimage.v1.ImageStore/Put",
            gate::request_id(request.metadata()),
        );
        let mut inbound = request.into_inner();
        let result = async {
            let store = self.store()?;
            let header = match inbound.message().await? {
                Some(PutRequest {
                    message: Some(put_request::Message::Header(h)),
                }) => h,
                _ => {
                    return Err(Status::invalid_argument(
                        "the first message of a Put must be its header",
                    ));
                }
            };
            if !header.source_url.is_empty() {
                log.describe(format!("put from '{}'", header.source_url));
                if inbound.message().await?.is_some() {
                    return Err(Status::invalid_argument(
                        "a Put from a URL carries no chunks after its header",
                    ));
                }
                let labels = header.labels.into_iter().collect();
                check_labels(&labels)?;
                let meta = self
                    .shared
                    .sources
                    .fetch_into(store, &header.source_url, &self.shared.limits, labels)
                    .await?;
                log.add_in(meta.bytes as usize);
                return Ok(stored_image(meta));
            }
            let info = PutInfo {
                filename: header.filename,
                content_type: header.content_type,
                labels: header.labels.into_iter().collect(),
                length: (header.length > 0).then_some(header.length),
            };
            log.describe(format!("put '{}'", info.filename));
            let _memory = self
                .shared
                .admission
                .reserve(UPLOAD_MEMORY, deadline)
                .await?;
            let chunks = inbound.map(|m| match m?.message {
                Some(put_request::Message::Chunk(c)) if c.len() <= MAX_CHUNK_BYTES => {
                    Ok::<Bytes, Status>(c)
                }
                Some(put_request::Message::Chunk(c)) => Err(Status::invalid_argument(format!(
                    "a chunk of {} bytes: chunks are at most {MAX_CHUNK_BYTES}",
                    c.len()
                ))),
                _ => Err(Status::invalid_argument(
                    "a second header: after the header, send only chunks",
                )),
            });
            let meta = store
                .put(info, &self.shared.limits, Box::pin(chunks))
                .await?;
            log.add_in(meta.bytes as usize);
            Ok(stored_image(meta))
        }
        .await;
        log.finish(result.as_ref().map(|_| ()));
        result.map(Response::new)
    }

    type GetStream = GetStream;

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetStream>, Status> {
        let deadline = gate::deadline(request.metadata());
        let mut log = RequestLog::start(
            "nlimage.v1.ImageStore/Get",
            gate::request_id(request.metadata()),
        );
        let req = request.into_inner();
        let result = async {
            let store = self.store()?;
            let ops = convert::operations(&req.operations).map_err(from_core)?;
            log.describe(format!(
                "get {} as '{}' ({} ops)",
                req.id,
                req.format,
                ops.len()
            ));
            let r = RenderRequest {
                id: req.id,
                format: output_format(&req.format)?,
                ops,
                options: encode_options(req.encode.as_ref())?,
                if_none_match: (!req.if_none_match.is_empty()).then_some(req.if_none_match),
                draft: req.draft,
                no_cache: false,
                stop: None,
            };
            store.render(&self.shared, r, deadline).await
        }
        .await;
        let rendered = match result {
            Ok(r) => r,
            Err(e) => {
                log.finish(Err(&e));
                return Err(e);
            }
        };
        let header = GetHeader {
            content_type: rendered.content_type.into(),
            length: rendered.body.as_ref().map_or(0, |b| b.len() as u64),
            tag: rendered.tag,
            not_modified: rendered.body.is_none(),
            width: rendered.width,
            height: rendered.height,
            cached: rendered.cached,
        };
        let (tx, rx) = mpsc::channel(4);
        let mut body = rendered.body.unwrap_or_default();
        log.add_out(body.len());
        tokio::spawn(async move {
            let msg = |m| Ok(GetResponse { message: Some(m) });
            let mut ok = tx
                .send(msg(get_response::Message::Header(header)))
                .await
                .is_ok();
            while ok && !body.is_empty() {
                let piece = body.split_to(body.len().min(MAX_CHUNK_BYTES));
                ok = tx
                    .send(msg(get_response::Message::Chunk(piece)))
                    .await
                    .is_ok();
            }
            let left = Status::cancelled("the client stopped reading");
            log.finish(if ok { Ok(()) } else { Err(&left) });
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn stat(&self, request: Request<StatRequest>) -> Result<Response<StoredImage>, Status> {
        let meta = self.store()?.stat(&request.into_inner().id).await?;
        Ok(Response::new(stored_image(meta)))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let id = request.into_inner().id;
        let results_removed = self.store()?.delete(&id).await?;
        tracing::info!("deleted {id} and {results_removed} cached results");
        Ok(Response::new(DeleteResponse { results_removed }))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let req = request.into_inner();
        let size = match req.page_size {
            0 => 100,
            n @ 1..=1000 => n as usize,
            n => {
                return Err(Status::invalid_argument(format!(
                    "page size {n}: use 1 to 1000"
                )));
            }
        };
        let (metas, more) = self.store()?.list(size, &req.page_token).await?;
        let next_page_token = if more {
            metas.last().map(|m| m.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListResponse {
            images: metas.into_iter().map(stored_image).collect(),
            next_page_token,
        }))
    }
}
