//! Jobs end to end: the client library against a real server on 127.0.0.1
//! with a local store and the embedded SQLite queue in a temporary directory;
//! remote sources from a plain HTTP server on 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::io::Cursor;
use std::time::Duration;

use common::{encoded, picture};
use nlimage_client::{Client, GetOptions, JobRequest, JobState, Operation, Source, jobs::state};
use nlimage_core::{Limits, OutputFormat, PixelFormat};
use nlimage_server::Config;
use nlimage_server::exec::url::SourcePolicy;
use nlimage_server::jobs::JobsConfig;
use nlimage_server::store::{StoreConfig, StoreLocation};
use prost::bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

fn with_jobs(dir: &std::path::Path) -> Config {
    Config {
        store: StoreConfig {
            location: StoreLocation::Dir(dir.join("store")),
            max_upload: 16 << 20,
            ..StoreConfig::default()
        },
        jobs: JobsConfig {
            database: Some(format!("sqlite://{}", dir.join("jobs.sqlite").display())),
            ..JobsConfig::default()
        },
        ..Config::default()
    }
}

fn code(e: nlimage_client::ClientError) -> Code {
    match e {
        nlimage_client::ClientError::Status(s) => s.code(),
        other => panic!("not a status: {other}"),
    }
}

async fn put_picture(client: &Client, w: u32, h: u32) -> String {
    let png = encoded(&picture(w, h, PixelFormat::Rgb8), OutputFormat::Png);
    client
        .put(Bytes::from(png), Default::default())
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn a_job_runs_the_store_pipeline_and_stores_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_jobs(dir.path());
    config.http_addr = Some("127.0.0.1:0".parse().unwrap());
    let server = common::server(config).await;
    let client = common::client(&server).await;
    let id = put_picture(&client, 61, 47).await;
    let ops = vec![Operation::parse("resize=30x").unwrap(), Operation::Gray];
    let mut req = JobRequest::new(Source::Stored(id.clone()), "png");
    req.ops = ops.clone();
    req.labels = HashMap::from([("batch".to_owned(), "b1".to_owned())]);
    let job = client.submit(&req).await.unwrap();
    assert!(!job.id.is_empty());
    assert!(matches!(
        state(&job),
        JobState::Queued | JobState::Running | JobState::Succeeded
    ));
    let mut seen = Vec::new();
    let done = client
        .wait(&job.id, |j| seen.push((state(j), j.progress)))
        .await
        .unwrap();
    assert_eq!(state(&done), JobState::Succeeded, "{done:?}");
    assert!(done.done && done.attempts == 1 && done.finished_unix_ms >= done.created_unix_ms);
    // Progress never goes back.
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "{seen:?}");
    let result = done.result.clone().unwrap();
    assert_eq!(
        (result.format.as_str(), result.width, result.height),
        ("png", 30, 23)
    );
    // The stored result is exactly what ImageStore.Get gives for the same request.
    let direct = client
        .get(
            &id,
            &GetOptions {
                format: Some("png".into()),
                ops,
                ..GetOptions::default()
            },
        )
        .await
        .unwrap();
    let stored = client
        .get(&result.id, &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(stored.bytes, direct.bytes);
    // Get, List with a label, and a label that matches nothing.
    assert_eq!(client.job(&job.id).await.unwrap(), done);
    let (listed, next) = client
        .jobs(JobState::Succeeded, &req.labels, 10, "")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, job.id);
    assert!(next.is_empty());
    let other = HashMap::from([("batch".to_owned(), "b2".to_owned())]);
    assert!(
        client
            .jobs(JobState::Unspecified, &other, 10, "")
            .await
            .unwrap()
            .0
            .is_empty()
    );
}

#[tokio::test]
async fn idempotency_keys_paging_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(with_jobs(dir.path())).await;
    let client = common::client(&server).await;
    let id = put_picture(&client, 9, 7).await;
    let mut req = JobRequest::new(Source::Stored(id.clone()), "jpg");
    req.idempotency_key = Some("k-1".into());
    let a = client.submit(&req).await.unwrap();
    let b = client.submit(&req).await.unwrap();
    assert_eq!(a.id, b.id, "the same key names the same job");
    req.format = "webp".into();
    assert_eq!(
        code(client.submit(&req).await.unwrap_err()),
        Code::AlreadyExists
    );
    // Five more jobs, listed two per page, newest first, each once.
    for _ in 0..5 {
        let mut r = JobRequest::new(Source::Stored(id.clone()), "png");
        r.ops = vec![Operation::Gray];
        client.submit(&r).await.unwrap();
    }
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = client
            .jobs(JobState::Unspecified, &HashMap::new(), 2, &token)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        all.extend(page);
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(all.len(), 6);
    assert!(
        all.windows(2)
            .all(|w| w[0].created_unix_ms >= w[1].created_unix_ms)
    );
    let ids: std::collections::HashSet<_> = all.iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids.len(), 6);
    // Refused at submission, with the reason.
    let bad = [
        JobRequest::new(Source::Stored("nope".into()), "png"),
        JobRequest::new(Source::Stored(id.clone()), "tga"),
        JobRequest::new(Source::Stored(id.clone()), ""),
        JobRequest::new(Source::Url("file:///etc/passwd".into()), "png"),
        JobRequest::new(Source::Url("not a url".into()), "png"),
    ];
    for r in bad {
        let e = client.submit(&r).await.unwrap_err();
        assert_eq!(code(e), Code::InvalidArgument, "{r:?}");
    }
    assert_eq!(
        code(client.job("no-such-job").await.unwrap_err()),
        Code::NotFound
    );
    // A stored id that does not exist fails the job, not the submission.
    let missing = JobRequest::new(Source::Stored("0".repeat(64)), "png");
    let job = client.submit(&missing).await.unwrap();
    let done = client.wait(&job.id, |_| {}).await.unwrap();
    assert_eq!(state(&done), JobState::Failed);
    assert_eq!(done.error.unwrap().code, Code::NotFound as i32);
}

#[tokio::test]
async fn a_queued_job_cancelled_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_jobs(dir.path());
    config.jobs.concurrency = 1;
    let server = common::server(config).await;
    let client = common::client(&server).await;
    let id = put_picture(&client, 1500, 1100).await;
    // A slow job holds the only slot; the next waits in the queue.
    let mut slow = JobRequest::new(Source::Stored(id.clone()), "png");
    slow.ops = vec![
        Operation::Blur { sigma: 12.0 },
        Operation::Blur { sigma: 12.0 },
    ];
    let first = client.submit(&slow).await.unwrap();
    let mut quick = JobRequest::new(Source::Stored(id.clone()), "jpg");
    quick.ops = vec![Operation::Gray];
    let second = client.submit(&quick).await.unwrap();
    let cancelled = client.cancel(&second.id).await.unwrap();
    assert_eq!(state(&cancelled), JobState::Cancelled);
    assert!(cancelled.done);
    assert_eq!(
        cancelled.error.as_ref().unwrap().code,
        Code::Cancelled as i32
    );
    // The running one is stopped too.
    let stopped = client.cancel(&first.id).await.unwrap();
    assert_eq!(state(&stopped), JobState::Cancelled);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = client.job(&second.id).await.unwrap();
    assert_eq!(state(&second), JobState::Cancelled);
    assert_eq!(second.started_unix_ms, 0, "it never started");
    assert_eq!(second.attempts, 0);
    // Cancelling an ended job changes nothing.
    let again = client.cancel(&second.id).await.unwrap();
    assert_eq!(again, second);
    let first = client.job(&first.id).await.unwrap();
    assert_eq!(state(&first), JobState::Cancelled);
    assert!(first.result.is_none());
}

/// A plain HTTP/1.1 server on 127.0.0.1 answering each request with what
/// `answer` gives for its path.
async fn http_source(
    answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&got);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let _ = s.write_all(&answer(&path)).await;
            });
        }
    });
    addr
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn redirect(to: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn url_sources_are_fetched_only_from_allowed_networks() {
    let png = encoded(&picture(40, 30, PixelFormat::Rgb8), OutputFormat::Png);
    let body = png.clone();
    let addr = http_source(move |path| match path {
        "/a.png" => ok(&body),
        "/text" => ok(b"<html>not an image</html>"),
        "/hop" => redirect("/a.png"),
        p if p.starts_with("/loop") => {
            let n: u32 = p[5..].parse().unwrap_or(0);
            redirect(&format!("/loop{}", n + 1))
        }
        "/meta" => redirect("http://169.254.169.254/latest/meta-data/"),
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    })
    .await;
    let url = |p: &str| format!("http://{addr}{p}");
    let finish = |client: Client, u: String| async move {
        let job = client
            .submit(&JobRequest::new(Source::Url(u), "png"))
            .await
            .unwrap();
        client.wait(&job.id, |_| {}).await.unwrap()
    };

    // By default loopback is refused.
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(with_jobs(dir.path())).await;
    let client = common::client(&server).await;
    let done = finish(client.clone(), url("/a.png")).await;
    assert_eq!(state(&done), JobState::Failed);
    let e = done.error.unwrap();
    assert_eq!(e.code, Code::PermissionDenied as i32, "{e:?}");
    assert!(
        e.message.contains("loopback") && e.message.contains("--allow-source-net"),
        "{e:?}"
    );
    // A name that resolves only to loopback is refused by the resolver,
    // with the same category.
    let by_name = format!("http://localhost:{}/a.png", addr.port());
    let done = finish(client.clone(), by_name).await;
    assert_eq!(state(&done), JobState::Failed);
    let e = done.error.unwrap();
    assert_eq!(e.code, Code::PermissionDenied as i32, "{e:?}");
    drop(server);

    // Allowed explicitly, it is fetched, stored under its content's id, and converted.
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_jobs(dir.path());
    config.sources = SourcePolicy {
        allow: vec!["127.0.0.0/8".parse().unwrap()],
        ..SourcePolicy::default()
    };
    let server = common::server(config).await;
    let client = common::client(&server).await;
    let done = finish(client.clone(), url("/a.png")).await;
    assert_eq!(state(&done), JobState::Succeeded, "{done:?}");
    assert!(
        client
            .stat(&nlimage_server::store::id::of(&png))
            .await
            .is_ok()
    );
    let result = client
        .get(&done.result.unwrap().id, &GetOptions::default())
        .await
        .unwrap();
    let img = nlimage_core::decode(Cursor::new(&result.bytes[..]), &Limits::DEFAULT).unwrap();
    assert_eq!(img, picture(40, 30, PixelFormat::Rgb8));
    // ImageStore.Put takes a URL too, under the same policy.
    let stored = client.put_url(&url("/hop"), HashMap::new()).await.unwrap();
    assert_eq!(stored.id, nlimage_server::store::id::of(&png));
    let e = client
        .put_url(&url("/text"), HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(code(e), Code::InvalidArgument);
    // One redirect is followed.
    let done = finish(client.clone(), url("/hop")).await;
    assert_eq!(state(&done), JobState::Succeeded, "{done:?}");
    // What fails, and how.
    for (path, want) in [
        ("/text", Code::InvalidArgument),
        ("/missing", Code::FailedPrecondition),
        ("/loop0", Code::PermissionDenied),
        ("/meta", Code::PermissionDenied),
    ] {
        let done = finish(client.clone(), url(path)).await;
        assert_eq!(state(&done), JobState::Failed, "{path}");
        let e = done.error.unwrap();
        assert_eq!(e.code, want as i32, "{path}: {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_shuts_down_hands_its_running_job_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = with_jobs(dir.path());
    a.jobs.concurrency = 1;
    a.shutdown_grace = Duration::from_millis(400);
    let first = common::server(a).await;
    let client = common::client(&first).await;
    let id = put_picture(&client, 1500, 1100).await;
    let mut slow = JobRequest::new(Source::Stored(id), "png");
    slow.ops = vec![
        Operation::Blur { sigma: 12.0 },
        Operation::Blur { sigma: 12.0 },
    ];
    let job = client.submit(&slow).await.unwrap();
    let t0 = std::time::Instant::now();
    while state(&client.job(&job.id).await.unwrap()) != JobState::Running {
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A second replica on the same queue and store; the first stops while
    // the job runs (its lease would last 30 s more).
    let second = common::server(with_jobs(dir.path())).await;
    let other = common::client(&second).await;
    first.shutdown().await.unwrap();
    let stopped = std::time::Instant::now();
    let done = other.wait(&job.id, |_| {}).await.unwrap();
    assert_eq!(state(&done), JobState::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2);
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "taken over after {:?}: it waited for the lease",
        stopped.elapsed()
    );
}
