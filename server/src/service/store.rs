//! The `nlimage.v1.ImageStore` RPCs: decode and validate the messages, call
//! the executor ([`crate::exec`]: uploads, renders) or the store (stat,
//! delete, list), encode the answers.

use std::pin::Pin;

use bytes::Bytes;
use nlimage::convert;
use nlimage::v1::image_store_server::ImageStore;
use nlimage::v1::{
    DeleteRequest, DeleteResponse, GetHeader, GetRequest, GetResponse, ListRequest, ListResponse,
    PutRequest, StatRequest, StoredImage, get_response, put_request,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::config::MAX_CHUNK_BYTES;
use crate::error::Error;
use crate::exec::Executor;
use crate::exec::render::RenderRequest;
use crate::gate;
use crate::log::RequestLog;
use crate::store::{Meta, PutInfo};

/// The image store service.
#[derive(Clone, Debug)]
pub struct StoreService {
    exec: Executor,
}

impl StoreService {
    /// A service on `exec` (whose store may be absent: then UNAVAILABLE).
    pub fn new(exec: Executor) -> Self {
        Self { exec }
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

type GetStream = Pin<Box<dyn Stream<Item = std::result::Result<GetResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ImageStore for StoreService {
    async fn put(
        &self,
        request: Request<Streaming<PutRequest>>,
    ) -> std::result::Result<Response<StoredImage>, Status> {
        let deadline = gate::deadline(request.metadata());
        let mut log = RequestLog::start(
            "nlimage.v1.ImageStore/Put",
            gate::request_id(request.metadata()),
        );
        let mut inbound = request.into_inner();
        let result = async {
            let header = match inbound
                .message()
                .await
                .map_err(|s| Error::from_status(&s))?
            {
                Some(PutRequest {
                    message: Some(put_request::Message::Header(h)),
                }) => h,
                _ => {
                    return Err(Error::invalid(
                        "the first message of a Put must be its header",
                    ));
                }
            };
            if !header.source_url.is_empty() {
                log.describe(format!("put from '{}'", header.source_url));
                if inbound
                    .message()
                    .await
                    .map_err(|s| Error::from_status(&s))?
                    .is_some()
                {
                    return Err(Error::invalid(
                        "a Put from a URL carries no chunks after its header",
                    ));
                }
                let labels = header.labels.into_iter().collect();
                let meta = self.exec.upload_url(&header.source_url, labels).await?;
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
            let chunks = inbound.map(|m| match m.map_err(|s| Error::from_status(&s))?.message {
                Some(put_request::Message::Chunk(c)) if c.len() <= MAX_CHUNK_BYTES => {
                    Ok::<Bytes, Error>(c)
                }
                Some(put_request::Message::Chunk(c)) => Err(Error::invalid(format!(
                    "a chunk of {} bytes: chunks are at most {MAX_CHUNK_BYTES}",
                    c.len()
                ))),
                _ => Err(Error::invalid(
                    "a second header: after the header, send only chunks",
                )),
            });
            let meta = self.exec.upload(info, Box::pin(chunks), deadline).await?;
            log.add_in(meta.bytes as usize);
            Ok(stored_image(meta))
        }
        .await;
        log.finish(result.as_ref().map(|_| ()));
        result.map(Response::new).map_err(Status::from)
    }

    type GetStream = GetStream;

    async fn get(
        &self,
        request: Request<GetRequest>,
    ) -> std::result::Result<Response<GetStream>, Status> {
        let deadline = gate::deadline(request.metadata());
        let mut log = RequestLog::start(
            "nlimage.v1.ImageStore/Get",
            gate::request_id(request.metadata()),
        );
        let req = request.into_inner();
        let result = async {
            let ops = convert::operations(&req.operations)?;
            log.describe(format!(
                "get {} as '{}' ({} ops)",
                req.id,
                req.format,
                ops.len()
            ));
            // "auto": chosen from the formats the caller accepts.
            let auto = (req.format == "auto").then(|| {
                req.accept
                    .iter()
                    .map(|m| m.trim().to_ascii_lowercase())
                    .collect()
            });
            let format = if auto.is_some() {
                None
            } else {
                convert::output_format(&req.format)?
            };
            let r = RenderRequest {
                id: req.id,
                format,
                auto,
                ops,
                options: convert::encode_options(req.encode.as_ref())?,
                if_none_match: (!req.if_none_match.is_empty()).then_some(req.if_none_match),
                exact: req.exact,
                no_cache: false,
            };
            self.exec.render(r, deadline).await
        }
        .await;
        let rendered = match result {
            Ok(r) => r,
            Err(e) => {
                log.finish(Err(&e));
                return Err(e.into());
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
            let left = Error::cancelled("the client stopped reading");
            log.finish(if ok { Ok(()) } else { Err(&left) });
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn stat(
        &self,
        request: Request<StatRequest>,
    ) -> std::result::Result<Response<StoredImage>, Status> {
        let meta = self.exec.store()?.stat(&request.into_inner().id).await?;
        Ok(Response::new(stored_image(meta)))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> std::result::Result<Response<DeleteResponse>, Status> {
        let id = request.into_inner().id;
        let results_removed = self.exec.store()?.delete(&id).await?;
        tracing::info!("deleted {id} and {results_removed} cached results");
        Ok(Response::new(DeleteResponse { results_removed }))
    }

    async fn list(
        &self,
        request: Request<ListRequest>,
    ) -> std::result::Result<Response<ListResponse>, Status> {
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
        let (metas, more) = self.exec.store()?.list(size, &req.page_token).await?;
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
