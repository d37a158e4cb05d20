//! `nlimage.v1.ImageService/Process`: a header, then pixel chunks in; the
//! output header, then output chunks out.
//!
//! The handler validates the header before anything is allocated, has the
//! executor plan and admit the stream, and answers at once with the output
//! header; the executor's streaming driver ([`crate::exec::stream`]) then
//! runs the chunks through the pipeline while they arrive, so a stencil-only
//! pipeline streams while the upload goes on. This file only adapts tonic's
//! request stream and response channel to the driver's source and sink.

use std::pin::Pin;

use nlimage::convert;
use nlimage::v1::image_service_server::ImageService;
use nlimage::v1::{ProcessRequest, ProcessResponse, process_request, process_response};
use nlimage_core::{ImageInfo, Limits, Operation};
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::config::MAX_CHUNK_BYTES;
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::exec::plan::{OUTPUT_QUEUE, check_plan};
use crate::exec::stream::{ChunkSink, ChunkSource};
use crate::gate;
use crate::log::RequestLog;

type Outbound = mpsc::Sender<std::result::Result<ProcessResponse, Status>>;

/// The streaming `ImageService`.
#[derive(Clone, Debug)]
pub struct ProcessService {
    exec: Executor,
}

impl ProcessService {
    /// A service running its work on `exec`.
    pub fn new(exec: Executor) -> Self {
        Self { exec }
    }

    /// A Process call whose source is a stored image: decoded whole within
    /// the budget, processed, and sent back as raw pixels.
    async fn process_stored(
        &self,
        header: &nlimage::v1::ProcessHeader,
        deadline: Option<tokio::time::Instant>,
        log: &mut RequestLog,
    ) -> Result<mpsc::Receiver<std::result::Result<ProcessResponse, Status>>> {
        if header.image.is_some() {
            return Err(Error::invalid(
                "the header names both a stored source and an image size: a stored image has its own, leave `image` unset",
            ));
        }
        let ops = convert::operations(&header.operations)?;
        log.describe(format!(
            "stored {} [{}]",
            header.source_id,
            describe_ops(&ops)
        ));
        let (img, permit) = self
            .exec
            .stored_pixels(&header.source_id, ops, deadline)
            .await?;
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
        let header = convert::image_header(img.info());
        log.add_out(img.info().byte_len());
        tokio::spawn(async move {
            let _permit = permit;
            if tx
                .send(Ok(response(process_response::Message::Header(header))))
                .await
                .is_ok()
            {
                let _ = Sink(&tx).send_chunk(img.into_data().into()).await;
            }
        });
        Ok(rx)
    }
}

#[tonic::async_trait]
impl ImageService for ProcessService {
    type ProcessStream =
        Pin<Box<dyn Stream<Item = std::result::Result<ProcessResponse, Status>> + Send + 'static>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessRequest>>,
    ) -> std::result::Result<Response<Self::ProcessStream>, Status> {
        let id = gate::request_id(request.metadata());
        let deadline = gate::deadline(request.metadata());
        let mut log = RequestLog::start("nlimage.v1.ImageService/Process", id);
        let mut inbound = request.into_inner();
        let first = match inbound.message().await {
            Ok(m) => m,
            Err(s) => {
                let e = Error::from_status(&s);
                log.finish(Err(&e));
                return Err(s);
            }
        };
        if let Some(ProcessRequest {
            message: Some(process_request::Message::Header(h)),
        }) = &first
            && !h.source_id.is_empty()
        {
            let answer = self.process_stored(h, deadline, &mut log).await;
            // The result is computed; what is left is sending it.
            log.finish(answer.as_ref().map(|_| ()));
            return answer
                .map(|rx| Response::new(Box::pin(ReceiverStream::new(rx)) as Self::ProcessStream))
                .map_err(Status::from);
        }
        // Validate, then wait for a worker slot and the memory this request
        // will hold; nothing is allocated before both.
        let started = async {
            let (info, ops) = parse_header(first, &self.exec.limits)?;
            log.describe(format!("{info} [{}]", describe_ops(&ops)));
            self.exec.admit_stream(info, &ops, deadline).await
        }
        .await;
        let stream = match started {
            Ok(s) => s,
            Err(e) => {
                log.finish(Err(&e));
                return Err(e.into());
            }
        };
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
        let header = convert::image_header(stream.output_info());
        tx.send(Ok(response(process_response::Message::Header(header))))
            .await
            .map_err(|_| Status::cancelled("client left"))?;
        tokio::spawn(async move {
            let source = Source {
                inbound,
                received: 0,
            };
            let outcome = stream.run(source, Sink(&tx)).await;
            match &outcome {
                Ok(stats) => {
                    log.add_in(stats.bytes_in as usize);
                    log.add_out(stats.bytes_out as usize);
                    tracing::debug!(hops = stats.hops, "stream ended");
                }
                // Tell the client, unless it is the one who left.
                Err(e) => {
                    let _ = tx.send(Err(e.clone().into())).await;
                }
            }
            log.finish(outcome.as_ref().map(|_| ()));
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The pixel chunks of a Process request, checked one by one.
struct Source {
    inbound: Streaming<ProcessRequest>,
    received: usize,
}

impl ChunkSource for Source {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let Some(msg) = self
            .inbound
            .message()
            .await
            .map_err(|s| Error::from_status(&s))?
        else {
            return Ok(None);
        };
        let chunk = parse_chunk(msg, self.received)?;
        self.received += chunk.len();
        Ok(Some(chunk))
    }
}

/// The response channel, in chunks of at most [`MAX_CHUNK_BYTES`].
struct Sink<'a>(&'a Outbound);

impl ChunkSink for Sink<'_> {
    async fn send_chunk(&mut self, mut out: Bytes) -> Result<()> {
        while !out.is_empty() {
            let piece = out.split_to(out.len().min(MAX_CHUNK_BYTES));
            self.0
                .send(Ok(response(process_response::Message::Chunk(piece))))
                .await
                .map_err(|_| Error::Cancelled("the client stopped reading".into()))?;
        }
        Ok(())
    }

    async fn closed(&mut self) {
        self.0.closed().await
    }
}

/// The first message of a stream, which must be a valid header within
/// `limits`: the input geometry and the operations.
pub fn parse_header(
    first: Option<ProcessRequest>,
    limits: &Limits,
) -> Result<(ImageInfo, Vec<Operation>)> {
    let header = match first {
        None => {
            return Err(Error::invalid(
                "the stream ended before its header: send a header first",
            ));
        }
        Some(ProcessRequest {
            message: Some(process_request::Message::Header(h)),
        }) => h,
        Some(ProcessRequest {
            message: Some(process_request::Message::Chunk(_)),
        }) => {
            return Err(Error::invalid(
                "the first message is a pixel chunk: send a header first",
            ));
        }
        Some(ProcessRequest { message: None }) => {
            return Err(Error::invalid(
                "the first message is empty: send a header first",
            ));
        }
    };
    if !header.source_id.is_empty() {
        return Err(Error::invalid(
            "a stored source (source_id) is read by the server: send no pixels with it",
        ));
    }
    let image = header
        .image
        .as_ref()
        .ok_or_else(|| Error::invalid("the header has no image size and format"))?;
    let info = convert::image_info(image)?;
    let ops = convert::operations(&header.operations)?;
    check_plan(info, &ops, limits)?;
    Ok((info, ops))
}

/// A message after the header, which must be a pixel chunk of at most
/// [`MAX_CHUNK_BYTES`]; `received` is the pixel bytes before it.
pub fn parse_chunk(msg: ProcessRequest, received: usize) -> Result<Bytes> {
    let chunk = match msg.message {
        Some(process_request::Message::Chunk(c)) => c,
        Some(process_request::Message::Header(_)) => {
            return Err(Error::invalid(format!(
                "a second header arrived after {received} bytes of pixels: send exactly one header, first"
            )));
        }
        None => {
            return Err(Error::invalid(
                "an empty message arrived: send pixel chunks after the header",
            ));
        }
    };
    if chunk.len() > MAX_CHUNK_BYTES {
        return Err(Error::invalid(format!(
            "a pixel chunk of {} bytes is over the limit of {MAX_CHUNK_BYTES} bytes: send smaller chunks",
            chunk.len()
        )));
    }
    Ok(chunk)
}

fn describe_ops(ops: &[Operation]) -> String {
    ops.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn response(message: process_response::Message) -> ProcessResponse {
    ProcessResponse {
        message: Some(message),
    }
}
