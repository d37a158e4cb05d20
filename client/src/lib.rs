//! nlimage-client: an async Rust client for nl-server.
//!
//! [`Client::connect`] opens one HTTP/2 channel; [`Client::process`] sends an
//! image through the streaming `nlimage.v1` `Process` RPC and returns the
//! result; [`Client::process_stream`] is the same call for callers that
//! produce and consume pixel chunks themselves. The classic unary contract
//! is reachable through [`Client::classic`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), nlimage_client::ClientError> {
//! use nlimage_client::{Client, Operation, Rotation};
//! let mut client = Client::connect("127.0.0.1:50051").await?;
//! let img = nlimage_core::ImageBuf::from_raw(2, 1, nlimage_core::PixelFormat::Gray8, vec![0, 255])?;
//! let out = client.process(&img, &[Operation::Rotate(Rotation::Ccw90), Operation::Mean3x3]).await?;
//! assert_eq!(out.info().height(), 2);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::time::Duration;

use nlimage::classic::nl_image_service_client::NlImageServiceClient;
use nlimage::convert;
use nlimage::v1::image_service_client::ImageServiceClient;
use nlimage::v1::{
    ProcessHeader, ProcessRequest, ProcessResponse, process_request, process_response,
};
use nlimage_core::rows::{RowReader, RowWriter};
use prost::bytes::Bytes;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Streaming;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub use tonic::codec::CompressionEncoding;

mod error;
pub use error::{ClientError, status_name};
pub mod store;
pub use store::{Fetched, GetOptions, PutOptions, StoredImage};
pub mod jobs;
pub use jobs::{Job, JobRequest, JobState, Source};

pub use nlimage_core::{CoreError, Flip, ImageBuf, ImageInfo, Operation, PixelFormat, Rotation};

/// Size of the pixel chunks [`Client::process`] sends (the contract allows
/// up to 1 MiB).
pub const CHUNK_BYTES: usize = 1 << 20;

/// Largest classic-contract message the client accepts.
const MAX_CLASSIC_MESSAGE: usize = 1 << 30;

/// How to reach and talk to the server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Connect with TLS: `Some(None)` trusts the public web roots,
    /// `Some(Some(pem))` trusts this CA certificate.
    pub tls: Option<Option<Vec<u8>>>,
    /// Name to check the server certificate against [default: the host].
    pub tls_domain: Option<String>,
    /// Bearer token sent with every request.
    pub token: Option<String>,
    /// Compress requests with this encoding (and accept it in responses).
    pub compression: Option<CompressionEncoding>,
    /// Deadline of each call (sent as `grpc-timeout`).
    pub timeout: Option<Duration>,
}

/// Adds the bearer token to every request of a stub.
#[derive(Clone, Debug)]
pub struct Auth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The channel every stub of a [`Client`] goes through.
pub type Stub = InterceptedService<Channel, Auth>;

/// A connection to an nl-server.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    addr: String,
    auth: Auth,
    options: Options,
}

impl Client {
    /// Connects to `addr` (`HOST:PORT`, or a full `http://` URI).
    pub async fn connect(addr: impl Into<String>) -> Result<Self, ClientError> {
        Self::connect_with(addr, Options::default()).await
    }

    /// Connects to `addr` with TLS, a token, compression or a deadline.
    pub async fn connect_with(
        addr: impl Into<String>,
        options: Options,
    ) -> Result<Self, ClientError> {
        let addr = addr.into();
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let uri = if addr.contains("://") {
            addr.clone()
        } else {
            format!("{scheme}://{addr}")
        };
        let auth = match &options.token {
            Some(t) => Auth(Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| ClientError::Token)?,
            )),
            None => Auth(None),
        };
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|_| ClientError::Address(addr.clone()))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            // Windows of several chunks keep the server's output flowing
            // while this side encodes.
            .initial_stream_window_size(4 * CHUNK_BYTES as u32)
            .initial_connection_window_size(8 * CHUNK_BYTES as u32);
        if let Some(ca) = &options.tls {
            let mut tls = ClientTlsConfig::new();
            tls = match ca {
                Some(pem) => {
                    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                        return Err(ClientError::Ca(
                            "no PEM certificate ('-----BEGIN CERTIFICATE-----') in it".into(),
                        ));
                    }
                    tls.ca_certificate(Certificate::from_pem(pem))
                }
                None => tls.with_webpki_roots(),
            };
            if let Some(d) = &options.tls_domain {
                tls = tls.domain_name(d.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| ClientError::connect(&addr, &e, true))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| ClientError::connect(&addr, &e, options.tls.is_some()))?;
        Ok(Self {
            channel,
            addr,
            auth,
            options,
        })
    }

    fn stub(&self) -> Stub {
        InterceptedService::new(self.channel.clone(), self.auth.clone())
    }

    /// Applies the deadline to a request.
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = self.options.timeout {
            req.set_timeout(t);
        }
        req
    }

    /// The address this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A stub for the classic unary contract on the same connection, with
    /// message limits raised for whole images.
    pub fn classic(&self) -> NlImageServiceClient<Stub> {
        let mut stub = NlImageServiceClient::new(self.stub())
            .max_decoding_message_size(MAX_CLASSIC_MESSAGE)
            .max_encoding_message_size(MAX_CLASSIC_MESSAGE);
        if let Some(c) = self.options.compression {
            stub = stub.send_compressed(c).accept_compressed(c);
        }
        stub
    }

    /// A health-check stub (`grpc.health.v1`) on the same connection.
    pub fn health(&self) -> tonic_health::pb::health_client::HealthClient<Stub> {
        tonic_health::pb::health_client::HealthClient::new(self.stub())
    }

    /// Sends `image` through `ops` (applied in order) and returns the result.
    pub async fn process(
        &mut self,
        image: &ImageBuf,
        ops: &[Operation],
    ) -> Result<ImageBuf, ClientError> {
        let data = Bytes::copy_from_slice(image.data());
        let chunks = tokio_stream::iter(
            (0..data.len())
                .step_by(CHUNK_BYTES)
                .map(move |start| data.slice(start..(start + CHUNK_BYTES).min(data.len()))),
        );
        let mut output = self.process_stream(image.info(), ops, chunks).await?;
        let info = output.info();
        let mut pixels = Vec::new();
        pixels
            .try_reserve_exact(info.byte_len())
            .map_err(|_| CoreError::OutOfMemory(info.byte_len()))?;
        while let Some(chunk) = output.next_chunk().await? {
            if chunk.len() > info.byte_len() - pixels.len() {
                return Err(ClientError::Protocol(format!(
                    "the server sent more than the {} bytes of a {info} image",
                    info.byte_len()
                )));
            }
            pixels.extend_from_slice(&chunk);
        }
        if pixels.len() != info.byte_len() {
            return Err(ClientError::Protocol(format!(
                "the server ended after {} of the {} bytes of a {info} image",
                pixels.len(),
                info.byte_len()
            )));
        }
        Ok(ImageBuf::new(info, pixels)?)
    }

    /// Starts a `Process` call for an image of geometry `info`, sending the
    /// header and then every chunk `chunks` yields (each at most 1 MiB,
    /// together exactly `info.byte_len()` bytes). Returns as soon as the
    /// server has answered with the output header; read the output with
    /// [`ProcessOutput::next_chunk`] while the upload goes on.
    pub async fn process_stream(
        &mut self,
        info: ImageInfo,
        ops: &[Operation],
        chunks: impl Stream<Item = Bytes> + Send + 'static,
    ) -> Result<ProcessOutput, ClientError> {
        let header = ProcessHeader {
            image: Some(convert::image_header(info)),
            operations: ops.iter().map(convert::to_wire).collect(),
            source_id: String::new(),
        };
        self.start_process(header, chunks).await
    }

    /// Runs `ops` on the image stored under `id` (see [`Client::put`]) and
    /// returns its output as raw pixels, like [`Client::process_stream`].
    pub async fn process_stored(
        &mut self,
        id: &str,
        ops: &[Operation],
    ) -> Result<ProcessOutput, ClientError> {
        let header = ProcessHeader {
            image: None,
            operations: ops.iter().map(convert::to_wire).collect(),
            source_id: id.to_owned(),
        };
        self.start_process(header, tokio_stream::empty()).await
    }

    async fn start_process(
        &mut self,
        header: ProcessHeader,
        chunks: impl Stream<Item = Bytes> + Send + 'static,
    ) -> Result<ProcessOutput, ClientError> {
        let first = ProcessRequest {
            message: Some(process_request::Message::Header(header)),
        };
        let requests = tokio_stream::once(first).chain(chunks.map(|c| ProcessRequest {
            message: Some(process_request::Message::Chunk(c)),
        }));
        let mut stub = ImageServiceClient::new(self.stub())
            .max_decoding_message_size(CHUNK_BYTES + 4096)
            .max_encoding_message_size(CHUNK_BYTES + 4096);
        if let Some(c) = self.options.compression {
            stub = stub.send_compressed(c).accept_compressed(c);
        }
        let tls = self.options.tls.is_some();
        let first = |s| ClientError::first_call(s, &self.addr, tls);
        let mut inbound = stub
            .process(self.request(requests))
            .await
            .map_err(first)?
            .into_inner();
        let info = match inbound.message().await.map_err(first)? {
            Some(ProcessResponse {
                message: Some(process_response::Message::Header(h)),
            }) => convert::image_info(&h).map_err(|e| {
                ClientError::Protocol(format!("the server sent a bad output header: {e}"))
            })?,
            Some(_) => {
                return Err(ClientError::Protocol(
                    "the server's first message is not a header".into(),
                ));
            }
            None => {
                return Err(ClientError::Protocol(
                    "the server ended the stream without a header".into(),
                ));
            }
        };
        Ok(ProcessOutput { info, inbound })
    }
}

impl Client {
    /// Streams an image from `source` through `ops` into the sink that
    /// `make_sink` opens for the output geometry, decoding, sending,
    /// receiving and encoding at once: with a streaming reader and writer
    /// (PNG), memory stays a few chunks whatever the image size. Decoding and
    /// encoding run on blocking threads. A decode error is reported as such,
    /// not as the server's complaint about the short upload it causes; the
    /// sink is finished only when the whole output has arrived.
    pub async fn process_rows(
        &mut self,
        mut source: Box<dyn RowReader>,
        ops: &[Operation],
        make_sink: impl FnOnce(ImageInfo) -> Result<Box<dyn RowWriter>, CoreError>,
    ) -> Result<ImageInfo, ClientError> {
        let info = source.info();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let decoding = tokio::task::spawn_blocking(move || -> Result<(), CoreError> {
            let rb = info.row_bytes();
            let per_read = (CHUNK_BYTES / rb).max(1);
            let height = info.height() as usize;
            let mut y = 0;
            while y < height {
                let n = per_read.min(height - y);
                let mut buf = vec![0u8; n * rb];
                source.read_rows(&mut buf)?;
                let mut rows = Bytes::from(buf);
                while !rows.is_empty() {
                    let piece = rows.split_to(rows.len().min(CHUNK_BYTES));
                    if tx.blocking_send(piece).is_err() {
                        return Ok(()); // the call failed; its error is reported
                    }
                }
                y += n;
            }
            Ok(())
        });
        let result = self
            .receive_into(info, ops, ReceiverStream::new(rx), make_sink)
            .await;
        let decoded = decoding
            .await
            .map_err(|e| ClientError::Internal(format!("the decoder thread failed: {e}")))?;
        decoded?; // a decode error explains whatever the server then said
        result
    }

    async fn receive_into(
        &mut self,
        info: ImageInfo,
        ops: &[Operation],
        chunks: ReceiverStream<Bytes>,
        make_sink: impl FnOnce(ImageInfo) -> Result<Box<dyn RowWriter>, CoreError>,
    ) -> Result<ImageInfo, ClientError> {
        let mut output = self.process_stream(info, ops, chunks).await?;
        let out_info = output.info();
        let mut sink = make_sink(out_info)?;
        enum Piece {
            Data(Bytes),
            End,
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(4);
        let encoding = tokio::task::spawn_blocking(move || -> Result<(), CoreError> {
            while let Some(piece) = rx.blocking_recv() {
                match piece {
                    Piece::Data(d) => sink.write(&d)?,
                    Piece::End => return sink.finish(),
                }
            }
            Err(CoreError::InvalidInput(
                "the output stream was cut off".into(),
            ))
        });
        let mut encoder_failed = false;
        let received = async {
            let mut got = 0usize;
            while let Some(chunk) = output.next_chunk().await? {
                got += chunk.len();
                if got > out_info.byte_len() {
                    return Err(ClientError::Protocol(format!(
                        "the server sent more than the {} bytes of a {out_info} image",
                        out_info.byte_len()
                    )));
                }
                if tx.send(Piece::Data(chunk)).await.is_err() {
                    encoder_failed = true; // its error is reported below
                    return Ok(());
                }
            }
            if got != out_info.byte_len() {
                return Err(ClientError::Protocol(format!(
                    "the server ended after {got} of the {} bytes of a {out_info} image",
                    out_info.byte_len()
                )));
            }
            let _ = tx.send(Piece::End).await;
            Ok(())
        }
        .await;
        if received.is_err() {
            drop(tx); // the encoder stops without finishing the file
        }
        let encoded = encoding
            .await
            .map_err(|e| ClientError::Internal(format!("the encoder thread failed: {e}")))?;
        if !encoder_failed {
            received?;
        }
        encoded?;
        Ok(out_info)
    }
}

/// The output side of a `Process` call.
#[derive(Debug)]
pub struct ProcessOutput {
    info: ImageInfo,
    inbound: Streaming<ProcessResponse>,
}

impl ProcessOutput {
    /// The output image's geometry, from the server's header.
    pub fn info(&self) -> ImageInfo {
        self.info
    }

    /// The next chunk of output pixels, or `None` at the end of the image.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        match self.inbound.message().await? {
            None => Ok(None),
            Some(ProcessResponse {
                message: Some(process_response::Message::Chunk(c)),
            }) => Ok(Some(c)),
            Some(_) => Err(ClientError::Protocol(
                "the server sent a second header".into(),
            )),
        }
    }
}
