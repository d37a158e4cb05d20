//! Jobs survive what kills servers, on the real infrastructure: the built
//! `nl-server` SIGKILLed with jobs queued and running on the embedded SQLite
//! queue, and three replicas sharing PostgreSQL and an S3-compatible store
//! with one SIGKILLed mid-way. Every job ends SUCCEEDED once, and the stored
//! results are bit-identical to a single replica's.

mod common;
#[path = "common/services.rs"]
mod services;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use nlimage::v1::image_store_client::ImageStoreClient;
use nlimage::v1::jobs_client::JobsClient;
use nlimage::v1::{
    GetJobRequest, Job, JobSpec, JobState, ListJobsRequest, Operation, PutHeader, PutRequest,
    SubmitRequest, job_spec, operation, put_request,
};
use prost::bytes::Bytes;
use services::{Moto, Postgres, Replica, skipped};
use tonic::transport::Channel;

async fn channel(port: u16) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connects")
}

/// A BMP of noise: stored once, the source of every job.
fn source_bmp(w: u32, h: u32) -> Vec<u8> {
    let info = nlimage_core::ImageInfo::new(w, h, nlimage_core::PixelFormat::Rgb8).unwrap();
    let img = nlimage_core::ImageBuf::new(info, common::noise(info.byte_len(), 7)).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    nlimage_core::encode(&img, nlimage_core::OutputFormat::Bmp, &mut out).unwrap();
    out.into_inner()
}

async fn put(ch: Channel, file: Vec<u8>) -> String {
    let mut msgs = vec![PutRequest {
        message: Some(put_request::Message::Header(PutHeader::default())),
    }];
    for c in file.chunks(1 << 20) {
        msgs.push(PutRequest {
            message: Some(put_request::Message::Chunk(Bytes::copy_from_slice(c))),
        });
    }
    ImageStoreClient::new(ch)
        .put(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner()
        .id
}

fn spec(source: &str, i: usize, heavy: &[&str]) -> JobSpec {
    let mut ops: Vec<Operation> = heavy
        .iter()
        .map(|s| Operation {
            op: Some(operation::Op::Spec((*s).to_string())),
        })
        .collect();
    // A different result per job.
    ops.push(Operation {
        op: Some(operation::Op::Spec(format!(
            "brightness={}",
            i as i64 - 150
        ))),
    });
    JobSpec {
        source: Some(job_spec::Source::SourceId(source.to_string())),
        operations: ops,
        format: "png".into(),
        encode: None,
        draft: false,
        exact: false,
    }
}

async fn submit(ch: Channel, spec: JobSpec, key: String) -> Job {
    JobsClient::new(ch)
        .submit(SubmitRequest {
            spec: Some(spec),
            labels: HashMap::new(),
            idempotency_key: key,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Every job, by id.
async fn all_jobs(ch: Channel) -> BTreeMap<String, Job> {
    let mut c = JobsClient::new(ch);
    let mut out = BTreeMap::new();
    let mut token = String::new();
    loop {
        let r = c
            .list(ListJobsRequest {
                page_size: 1000,
                page_token: token.clone(),
                ..ListJobsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        for j in r.jobs {
            out.insert(j.id.clone(), j);
        }
        if r.next_page_token.is_empty() {
            return out;
        }
        token = r.next_page_token;
    }
}

fn count(jobs: &BTreeMap<String, Job>, s: JobState) -> usize {
    jobs.values().filter(|j| j.state == s as i32).count()
}

/// Waits until every job has ended, asking `port`.
async fn until_all_done(port: u16, n: usize, limit: Duration) -> BTreeMap<String, Job> {
    let t0 = Instant::now();
    loop {
        let jobs = all_jobs(channel(port).await).await;
        if jobs.len() == n && jobs.values().all(|j| j.done) {
            return jobs;
        }
        assert!(
            t0.elapsed() < limit,
            "jobs not done after {limit:?}: {} queued, {} running, {} succeeded",
            count(&jobs, JobState::Queued),
            count(&jobs, JobState::Running),
            count(&jobs, JobState::Succeeded)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// An HTTP server on 127.0.0.1 answering every GET with one body, but only
/// once the test opens it: until then each request waits (and is counted).
struct GatedSource {
    port: u16,
    open: tokio::sync::watch::Sender<bool>,
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl GatedSource {
    async fn start(body: Vec<u8>) -> GatedSource {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, gate) = tokio::sync::watch::channel(false);
        let waiting = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (body, count) = (std::sync::Arc::new(body), waiting.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (mut gate, body, count) = (gate.clone(), body.clone(), count.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    count.fetch_sub(1, Ordering::SeqCst);
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: image/bmp\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                });
            }
        });
        GatedSource {
            port,
            open,
            waiting,
        }
    }

    /// A URL of its, distinct per `i`.
    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}/source-{i}.bmp", self.port)
    }

    /// Requests held at the gate now.
    fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn open(&self) {
        self.open.send_replace(true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_jobs_survive_a_sigkill_with_jobs_queued_and_running() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap().to_string();
    // Every job fetches its source from a local server that holds each
    // answer until the test opens it: the jobs seen running cannot finish
    // before the kill, however busy the machine (a race with the clock made
    // this test fail when a running job ended just before the kill).
    let gate = GatedSource::start(source_bmp(500, 400)).await;
    let common_args = args(&[
        "--data-dir",
        &d,
        "--workers",
        "1",
        "--job-concurrency",
        "2",
        "--job-lease-secs",
        "2",
        "--allow-source-net",
        "127.0.0.0/8",
    ]);
    let mut server = Replica::start(&common_args, &[], None);
    let heavy = ["blur=4"];
    let mut ids = Vec::new();
    for i in 0..102 {
        let mut job = spec("", i, &heavy);
        job.source = Some(job_spec::Source::SourceUrl(gate.url(i)));
        let j = submit(channel(server.port).await, job, format!("k{i}")).await;
        ids.push(j.id);
    }
    // Kill it while two run (held at their fetch) and the rest wait.
    let t0 = Instant::now();
    let before = loop {
        let jobs = all_jobs(channel(server.port).await).await;
        if count(&jobs, JobState::Running) == 2 && gate.waiting() == 2 {
            break jobs;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "two jobs never ran at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.kill();
    let (queued, succeeded) = (
        count(&before, JobState::Queued),
        count(&before, JobState::Succeeded),
    );
    eprintln!("killed with 2 running, {queued} queued, {succeeded} succeeded");
    assert_eq!((queued, succeeded), (100, 0));
    gate.open();
    let was_running: Vec<String> = before
        .values()
        .filter(|j| j.state == JobState::Running as i32)
        .map(|j| j.id.clone())
        .collect();

    // Started again on the same data directory, it finishes every job.
    let server = Replica::start(&common_args, &[], None);
    let jobs = until_all_done(server.port, 102, Duration::from_secs(300)).await;
    let bad: Vec<_> = jobs
        .values()
        .filter(|j| j.state != JobState::Succeeded as i32)
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    for id in &ids {
        let j = &jobs[id];
        assert!(j.result.is_some() && j.finished_unix_ms > 0, "{j:?}");
    }
    // The two cut short ran again; no job ran more than twice.
    for id in &was_running {
        assert_eq!(jobs[id].attempts, 2, "{:?}", jobs[id]);
    }
    assert!(jobs.values().all(|j| j.attempts <= 2));
    // Ended once: nothing changes any more (no second run finishes later).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = all_jobs(channel(server.port).await).await;
    assert_eq!(again, jobs);
    // Results are distinct and each is stored.
    let results: std::collections::HashSet<_> = jobs
        .values()
        .map(|j| j.result.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(results.len(), 102);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_share_postgres_and_s3_and_lose_nothing_when_one_is_killed() {
    if skipped("NL_SKIP_PG", "PostgreSQL") || skipped("NL_SKIP_S3", "S3") {
        return;
    }
    let pg = Postgres::start();
    let moto = Moto::start("nl-jobs");
    let logs = tempfile::tempdir().unwrap();
    let replica_args = args(&[
        "--database",
        &pg.url(),
        "--store",
        "s3://nl-jobs/t",
        "--workers",
        "1",
        "--job-lease-secs",
        "3",
    ]);
    let env = moto.env();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| {
            Replica::start(
                &replica_args,
                &env,
                Some(&logs.path().join(format!("replica{i}.log"))),
            )
        })
        .collect();
    let source = put(channel(replicas[0].port).await, source_bmp(400, 300)).await;
    let heavy = ["blur=2", "thumbnail=200"];
    let n = 300;
    let chans = [
        channel(replicas[0].port).await,
        channel(replicas[1].port).await,
        channel(replicas[2].port).await,
    ];
    let mut specs = HashMap::new();
    for i in 0..n {
        let s = spec(&source, i, &heavy);
        let j = submit(chans[i % 3].clone(), s.clone(), format!("k{i}")).await;
        specs.insert(j.id, s);
    }
    // Kill replica 1 once a third has finished.
    let t0 = Instant::now();
    loop {
        let jobs = all_jobs(chans[0].clone()).await;
        if count(&jobs, JobState::Succeeded) >= n / 3 {
            eprintln!(
                "killing replica 1: {} succeeded, {} running",
                count(&jobs, JobState::Succeeded),
                count(&jobs, JobState::Running)
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "jobs do not progress"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replicas[1].kill();
    let jobs = until_all_done(replicas[0].port, n, Duration::from_secs(300)).await;
    let by_replica2 = all_jobs(chans[2].clone()).await;
    assert_eq!(by_replica2, jobs, "every replica answers for every job");
    assert_eq!(count(&jobs, JobState::Succeeded), n, "none lost or failed");
    let results: HashMap<String, String> = jobs
        .values()
        .map(|j| (j.id.clone(), j.result.as_ref().unwrap().id.clone()))
        .collect();
    drop(replicas);

    // The same jobs on one replica with the embedded queue and a local store
    // make the same results (ids are the SHA-256 of the stored bytes).
    let data = tempfile::tempdir().unwrap();
    let single = Replica::start(
        &args(&["--data-dir", data.path().to_str().unwrap()]),
        &[],
        None,
    );
    let src2 = put(channel(single.port).await, source_bmp(400, 300)).await;
    assert_eq!(src2, source);
    let mut keys = Vec::new();
    for (id, s) in &specs {
        let j = submit(channel(single.port).await, s.clone(), String::new()).await;
        keys.push((id.clone(), j.id));
    }
    let solo = until_all_done(single.port, n, Duration::from_secs(300)).await;
    for (replicated, single_id) in keys {
        let r = solo[&single_id].result.as_ref().unwrap();
        assert_eq!(r.id, results[&replicated], "job {replicated}");
    }
    // And Get finds any job by id.
    let one = JobsClient::new(channel(single.port).await)
        .get(GetJobRequest {
            id: solo.keys().next().unwrap().clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(one.done);
}
