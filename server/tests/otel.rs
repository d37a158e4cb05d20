//! Traces: the built `nl-server` with `--otlp-endpoint` exports spans to an
//! OTLP collector running in this test (the real OTLP/gRPC protocol): a
//! trace per request and per job with their steps, a caller's `traceparent`
//! continued, and log lines carrying the trace id.

mod common;
#[path = "common/services.rs"]
mod services;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nlimage::v1::image_store_client::ImageStoreClient;
use nlimage::v1::jobs_client::JobsClient;
use nlimage::v1::{
    GetJobRequest, JobSpec, Operation, PutHeader, PutRequest, SubmitRequest, job_spec, operation,
    put_request,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::bytes::Bytes;
use services::Replica;

#[derive(Clone, Debug)]
struct Span {
    name: String,
    trace: String,
    id: String,
    parent: String,
    /// Attributes, key = value as text.
    attributes: Vec<String>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push(Span {
                        name: s.name,
                        trace: hex::encode(&s.trace_id),
                        id: hex::encode(&s.span_id),
                        parent: hex::encode(&s.parent_span_id),
                        attributes: s
                            .attributes
                            .iter()
                            .map(|kv| format!("{} = {:?}", kv.key, kv.value))
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn png() -> Vec<u8> {
    let info = nlimage_core::ImageInfo::new(64, 48, nlimage_core::PixelFormat::Rgb8).unwrap();
    let img = nlimage_core::ImageBuf::new(info, common::noise(info.byte_len(), 3)).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    nlimage_core::encode(&img, nlimage_core::OutputFormat::Png, &mut out).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_and_jobs_are_traced_and_logs_carry_the_trace_id() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let mut server = Replica::start(
        &[
            "--data-dir".into(),
            data.path().to_str().unwrap().into(),
            "--otlp-endpoint".into(),
            format!("http://{otlp}"),
            "--debug".into(),
        ],
        &[],
        Some(&log),
    );
    let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", server.port))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // A Put continuing the caller's trace.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut put = tonic::Request::new(tokio_stream::iter([
        PutRequest {
            message: Some(put_request::Message::Header(PutHeader::default())),
        },
        PutRequest {
            message: Some(put_request::Message::Chunk(Bytes::from(png()))),
        },
    ]));
    put.metadata_mut().insert(
        "traceparent",
        format!("00-{caller_trace}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let id = ImageStoreClient::new(ch.clone())
        .put(put)
        .await
        .unwrap()
        .into_inner()
        .id;
    // A job.
    let spec = JobSpec {
        source: Some(job_spec::Source::SourceId(id)),
        operations: vec![Operation {
            op: Some(operation::Op::Spec("blur=1".into())),
        }],
        format: "jpg".into(),
        ..JobSpec::default()
    };
    let mut jobs = JobsClient::new(ch);
    let job = jobs
        .submit(SubmitRequest {
            spec: Some(spec),
            labels: HashMap::new(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let t0 = Instant::now();
    while !jobs
        .get(GetJobRequest { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .done
    {
        assert!(t0.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGTERM: a graceful stop exports what is buffered.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    server.wait(Duration::from_secs(30));

    let spans = collector.0.lock().unwrap().clone();
    let named = |n: &str| spans.iter().filter(|s| s.name == n).collect::<Vec<_>>();
    // The Put continued the caller's trace.
    let put = named("/nlimage.v1.ImageStore/Put");
    assert_eq!(put.len(), 1, "{spans:#?}");
    assert_eq!(put[0].trace, caller_trace);
    let writes = named("store.write");
    assert!(
        writes.iter().any(|w| w.parent == put[0].id),
        "the Put's store write is its child: {spans:#?}"
    );
    // The job: one trace holding its queue wait, decode, processing,
    // encoding and store I/O.
    let job_span = named("job");
    assert_eq!(job_span.len(), 1, "{spans:#?}");
    let trace = &job_span[0].trace;
    for step in [
        "queue wait",
        "store.read",
        "decode",
        "process",
        "encode",
        "store.write",
    ] {
        assert!(
            spans.iter().any(|s| s.name == step && &s.trace == trace),
            "no '{step}' span in the job's trace: {spans:#?}"
        );
    }
    // The processing span names the planned stages.
    let process = spans
        .iter()
        .find(|s| s.name == "process" && &s.trace == trace)
        .unwrap();
    assert!(
        process
            .attributes
            .iter()
            .any(|a| a.starts_with("stages = ") && a.contains("blur")),
        "{process:?}"
    );
    // Log lines inside a traced request carry its trace id.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("ImageStore/Put") && l.contains(caller_trace)),
        "{text}"
    );
}
