//! Prometheus metrics: after a request, `/metrics` on the metrics address
//! counts it by method and code, with its bytes and latency. (Its own test
//! binary: the exporter is process-wide.)

mod common;

use nlimage_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 GET of /metrics, with a bounded wait.
async fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        Some(body)
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), get)
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn requests_are_counted_by_method_and_code() {
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    nlimage_server::metrics::serve(metrics_addr).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = common::server(Config {
        store: nlimage_server::store::StoreConfig {
            location: nlimage_server::store::StoreLocation::Dir(data.path().join("store")),
            ..Default::default()
        },
        jobs: nlimage_server::jobs::JobsConfig {
            database: Some(format!(
                "sqlite://{}",
                data.path().join("jobs.sqlite").display()
            )),
            ..Default::default()
        },
        ..Config::default()
    })
    .await;
    let mut classic = common::classic(&server).await;
    let img = nlimage::classic::NlImage {
        color: false,
        data: vec![9; 12].into(),
        width: 4,
        height: 3,
    };
    classic.mean_filter(img.clone()).await.unwrap();
    let bad = nlimage::classic::NlImage { width: 5, ..img };
    classic.mean_filter(bad).await.unwrap_err();
    // The exporter's listener starts in the background; give it a moment.
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(metrics_addr).await.unwrap_or_default();
        if text.contains("nlimage_requests_total") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        text.contains(r#"nlimage_requests_total{method="NLImageService/MeanFilter",code="Ok"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"code="InvalidArgument"} 1"#), "{text}");
    assert!(
        text.contains(r#"nlimage_bytes_in_total{method="NLImageService/MeanFilter"} 24"#),
        "{text}"
    );
    assert!(
        text.contains("nlimage_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("nlimage_memory_budget_in_use_bytes"),
        "{text}"
    );

    // A job is counted by outcome, with its wait and run time.
    let ch = common::channel(&server).await;
    let png = {
        let info = nlimage_core::ImageInfo::new(8, 6, nlimage_core::PixelFormat::Rgb8).unwrap();
        let img = nlimage_core::ImageBuf::new(info, common::noise(info.byte_len(), 1)).unwrap();
        let mut out = std::io::Cursor::new(Vec::new());
        nlimage_core::encode(&img, nlimage_core::OutputFormat::Png, &mut out).unwrap();
        out.into_inner()
    };
    use nlimage::v1::{PutHeader, PutRequest, put_request};
    let id = nlimage::v1::image_store_client::ImageStoreClient::new(ch.clone())
        .put(tokio_stream::iter([
            PutRequest {
                message: Some(put_request::Message::Header(PutHeader::default())),
            },
            PutRequest {
                message: Some(put_request::Message::Chunk(png.into())),
            },
        ]))
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut jobs = nlimage::v1::jobs_client::JobsClient::new(ch);
    let job = jobs
        .submit(nlimage::v1::SubmitRequest {
            spec: Some(nlimage::v1::JobSpec {
                source: Some(nlimage::v1::job_spec::Source::SourceId(id)),
                format: "jpg".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..200 {
        let j = jobs
            .get(nlimage::v1::GetJobRequest { id: job.id.clone() })
            .await
            .unwrap()
            .into_inner();
        if j.done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let text = scrape(metrics_addr).await.unwrap_or_default();
    assert!(
        text.contains(r#"nlimage_jobs_total{outcome="succeeded"} 1"#),
        "{text}"
    );
    assert!(text.contains("nlimage_job_queue_wait_seconds"), "{text}");
    assert!(text.contains("nlimage_job_run_seconds"), "{text}");
}
