//! `nlimage.v1.ImageService/Process`: a header, then pixel chunks in; the
//! output header, then output chunks out.
//!
//! The handler validates the header before anything is allocated and answers
//! at once with the output header; a task then feeds each chunk through the
//! core [`Pipeline`] on the compute pool and forwards whatever output is
//! ready, so a stencil-only pipeline streams while the upload goes on. The
//! response channel is bounded: a slow reader slows the pipeline down instead
//! of letting output pile up, and a reader that leaves stops it.

use std::pin::Pin;

use nlimage::convert;
use nlimage::v1::image_service_server::ImageService;
use nlimage::v1::{ProcessRequest, ProcessResponse, process_request, process_response};
use nlimage_core::{ImageInfo, Limits, Operation, Pipeline};
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Shared;
use crate::config::MAX_CHUNK_BYTES;
use crate::gate;
use crate::log::RequestLog;
use crate::status::{from_core, invalid};

/// Output messages buffered per stream before the pipeline waits for the
/// client to read.
const OUTPUT_QUEUE: usize = 4;

type Outbound = mpsc::Sender<Result<ProcessResponse, Status>>;

/// The streaming `ImageService`.
#[derive(Clone, Debug)]
pub struct ProcessService {
    shared: Shared,
}

impl ProcessService {
    /// A service running its work on `shared`'s pool within its limits.
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// A Process call whose source is a stored image: decoded whole within
    /// the budget, processed, and sent back as raw pixels.
    async fn process_stored(
        &self,
        header: &nlimage::v1::ProcessHeader,
        deadline: Option<tokio::time::Instant>,
        log: &mut RequestLog,
    ) -> Result<mpsc::Receiver<Result<ProcessResponse, Status>>, Status> {
        use crate::store::render::{decode_apply, whole_image_memory};
        let store = self.shared.store()?;
        if header.image.is_some() {
            return Err(invalid(
                "the header names both a stored source and an image size: a stored image has its own, leave `image` unset",
            ));
        }
        let ops = convert::operations(&header.operations).map_err(from_core)?;
        let meta = store.stat(&header.source_id).await?;
        log.describe(format!("stored {} [{}]", meta.id, describe_ops(&ops)));
        let probe = ImageInfo::new(meta.width, meta.height, nlimage_core::PixelFormat::Rgba8)
            .map_err(from_core)?;
        let out = check_plan(probe, &ops, &self.shared.limits)?.output_info();
        let permit = self
            .shared
            .admission
            .admit(whole_image_memory(meta.bytes, probe, out), deadline)
            .await?;
        let file = store.original(&meta.id).await?;
        let limits = self.shared.limits;
        let img = self
            .shared
            .compute
            .run(move || decode_apply(&file, &ops, &limits, false, None))
            .await?
            .map_err(from_core)?;
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
        let header = convert::image_header(img.info());
        tokio::spawn(async move {
            let _permit = permit;
            if tx
                .send(Ok(response(process_response::Message::Header(header))))
                .await
                .is_ok()
            {
                let _ = send_chunks(&tx, img.into_data().into()).await;
            }
        });
        log.add_out(out.byte_len());
        Ok(rx)
    }
}

#[tonic::async_trait]
impl ImageService for ProcessService {
    type ProcessStream =
        Pin<Box<dyn Stream<Item = Result<ProcessResponse, Status>> + Send + 'static>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let id = gate::request_id(request.metadata());
        let deadline = gate::deadline(request.metadata());
        let mut log = RequestLog::start("nlimage.v1.ImageService/Process", id);
        let mut inbound = request.into_inner();
        let first = match inbound.message().await {
            Ok(m) => m,
            Err(e) => {
                log.finish(Err(&e));
                return Err(e);
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
                .map(|rx| Response::new(Box::pin(ReceiverStream::new(rx)) as Self::ProcessStream));
        }
        // Validate, then wait for a worker slot and the memory this request
        // will hold; nothing is allocated before both.
        let started = async {
            let plan = start(first, &mut log, &self.shared).await?;
            let permit = self.shared.admission.admit(plan.memory, deadline).await?;
            let pipeline = Pipeline::from_plan(&plan.plan, |info, orientation| {
                crate::spill::hold_for(info, orientation, plan.spill, &self.shared.spill_dir)
            })
            .map_err(from_core)?;
            Ok::<_, Status>((pipeline, permit))
        }
        .await;
        let (pipeline, permit) = match started {
            Ok(p) => p,
            Err(e) => {
                log.finish(Err(&e));
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
        let header = convert::image_header(pipeline.output_info());
        tx.send(Ok(response(process_response::Message::Header(header))))
            .await
            .map_err(|_| Status::cancelled("client left"))?;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            // The permit lives as long as the work: dropped at the end of
            // this task, however it ends.
            let _permit = permit;
            let work = drive(pipeline, inbound, &tx, &shared, &mut log);
            let outcome = match deadline {
                Some(d) => tokio::time::timeout_at(d, work).await.unwrap_or_else(|_| {
                    Err(Status::deadline_exceeded(
                        "the request's deadline passed; its work was stopped",
                    ))
                }),
                None => work.await,
            };
            if let Err(status) = &outcome {
                // Tell the client, unless it is the one who left.
                let _ = tx.send(Err(status.clone())).await;
            }
            log.finish(outcome.as_ref().map(|_| ()));
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A validated request: what to run and what it may hold.
struct Plan {
    plan: nlimage_core::Plan,
    /// Bytes to reserve from the memory budget.
    memory: u64,
    /// Spill threshold for this request's holds (0: always spill).
    spill: usize,
}

/// Reads and validates the header; takes the memory to reserve from the
/// core's plan: its streaming stages, the chunks in flight on either side,
/// and each hold's image (or one strip of it, when spilled).
async fn start(
    first: Option<ProcessRequest>,
    log: &mut RequestLog,
    shared: &Shared,
) -> Result<Plan, Status> {
    let (info, ops) = parse_header(first, &shared.limits)?;
    log.describe(format!("{info} [{}]", describe_ops(&ops)));
    let plan = nlimage_core::Plan::new(info, &ops).map_err(from_core)?;
    let mem = plan.memory(MAX_CHUNK_BYTES);
    let streaming = mem.streaming + (2 + OUTPUT_QUEUE as u64) * MAX_CHUNK_BYTES as u64;
    let whole: u64 = mem.holds.iter().map(|h| h.byte_len() as u64).sum();
    // Holds keep their images in memory when each is under the spill
    // threshold and the budget could hold them; otherwise they spill, and
    // each holds one strip.
    let in_memory = mem.holds.iter().all(|h| h.byte_len() <= shared.spill_above)
        && shared.admission.fits(whole + streaming);
    let (memory, spill) = if mem.holds.is_empty() || in_memory {
        (whole + streaming, shared.spill_above)
    } else {
        (
            streaming + (mem.holds.len() * crate::spill::STRIP_BYTES) as u64,
            0,
        )
    };
    Ok(Plan {
        plan,
        memory,
        spill,
    })
}

/// The first message of a stream, which must be a valid header within
/// `limits`: the input geometry and the operations.
pub fn parse_header(
    first: Option<ProcessRequest>,
    limits: &Limits,
) -> Result<(ImageInfo, Vec<Operation>), Status> {
    let header = match first {
        None => {
            return Err(invalid(
                "the stream ended before its header: send a header first",
            ));
        }
        Some(ProcessRequest {
            message: Some(process_request::Message::Header(h)),
        }) => h,
        Some(ProcessRequest {
            message: Some(process_request::Message::Chunk(_)),
        }) => {
            return Err(invalid(
                "the first message is a pixel chunk: send a header first",
            ));
        }
        Some(ProcessRequest { message: None }) => {
            return Err(invalid("the first message is empty: send a header first"));
        }
    };
    if !header.source_id.is_empty() {
        return Err(invalid(
            "a stored source (source_id) is read by the server: send no pixels with it",
        ));
    }
    let image = header
        .image
        .as_ref()
        .ok_or_else(|| invalid("the header has no image size and format"))?;
    let info = convert::image_info(image).map_err(from_core)?;
    let ops = convert::operations(&header.operations).map_err(from_core)?;
    check_plan(info, &ops, limits)?;
    Ok((info, ops))
}

/// Plans `ops` over an `info` image, checking the input and every image the
/// operations make (a resize can enlarge) against `limits` before anything is
/// allocated for them.
pub fn check_plan(
    info: ImageInfo,
    ops: &[Operation],
    limits: &Limits,
) -> Result<nlimage_core::Plan, Status> {
    limits.check(&info).map_err(from_core)?;
    let plan = nlimage_core::Plan::new(info, ops).map_err(from_core)?;
    for made in plan
        .steps()
        .iter()
        .skip(1)
        .map(|(g, _)| *g)
        .chain([plan.output_info()])
    {
        limits.check(&made).map_err(|e| {
            from_core(match e {
                nlimage_core::CoreError::LimitExceeded(m) => {
                    nlimage_core::CoreError::LimitExceeded(format!(
                        "the operations make a {made} image: {m}"
                    ))
                }
                e => e,
            })
        })?;
    }
    Ok(plan)
}

/// A message after the header, which must be a pixel chunk of at most
/// [`MAX_CHUNK_BYTES`]; `received` is the pixel bytes before it.
pub fn parse_chunk(msg: ProcessRequest, received: usize) -> Result<Bytes, Status> {
    let chunk = match msg.message {
        Some(process_request::Message::Chunk(c)) => c,
        Some(process_request::Message::Header(_)) => {
            return Err(invalid(format!(
                "a second header arrived after {received} bytes of pixels: send exactly one header, first"
            )));
        }
        None => {
            return Err(invalid(
                "an empty message arrived: send pixel chunks after the header",
            ));
        }
    };
    if chunk.len() > MAX_CHUNK_BYTES {
        return Err(invalid(format!(
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

/// Feeds the chunks through the pipeline and sends the output on.
async fn drive(
    mut pipeline: Pipeline,
    mut inbound: Streaming<ProcessRequest>,
    tx: &Outbound,
    shared: &Shared,
    log: &mut RequestLog,
) -> Result<(), Status> {
    while let Some(msg) = inbound.message().await? {
        let chunk = parse_chunk(msg, pipeline.received())?;
        log.add_in(chunk.len());
        let (p, out) = shared
            .compute
            .run(move || {
                let mut out = Vec::new();
                let r = pipeline.push(&chunk, &mut out);
                (pipeline, r.map(|_| out))
            })
            .await?;
        pipeline = p;
        let out = out.map_err(from_core)?;
        log.add_out(out.len());
        send_chunks(tx, out.into()).await?;
    }
    let mut rest = shared
        .compute
        .run(move || pipeline.finish())
        .await?
        .map_err(from_core)?;
    loop {
        let (r, band) = shared
            .compute
            .run(move || {
                let band = rest.next_band(MAX_CHUNK_BYTES);
                (rest, band)
            })
            .await?;
        rest = r;
        match band.map_err(from_core)? {
            Some(b) => {
                log.add_out(b.len());
                send_chunks(tx, b).await?
            }
            None => return Ok(()),
        }
    }
}

/// Sends `out` as chunks of at most [`MAX_CHUNK_BYTES`], without copying.
async fn send_chunks(tx: &Outbound, mut out: Bytes) -> Result<(), Status> {
    while !out.is_empty() {
        let piece = out.split_to(out.len().min(MAX_CHUNK_BYTES));
        tx.send(Ok(response(process_response::Message::Chunk(piece))))
            .await
            .map_err(|_| Status::cancelled("the client stopped reading"))?;
    }
    Ok(())
}

fn response(message: process_response::Message) -> ProcessResponse {
    ProcessResponse {
        message: Some(message),
    }
}
