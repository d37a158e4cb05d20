//! `nl-client job submit|watch|ls|cancel` against a real server with a store
//! and the embedded queue: ids on stdout, results identical to the store's,
//! bulk submission from a file, one-line errors and exit codes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use nlimage_core::{OutputFormat, PixelFormat};
use nlimage_server::Config;
use nlimage_server::jobs::JobsConfig;
use nlimage_server::store::{StoreConfig, StoreLocation};

/// Runs `nl-client ARGS... --port PORT` (the command comes first).
fn nl_client(args: &[&str]) -> Output {
    let (port, rest) = (args[1], &args[2..]);
    Command::new(env!("CARGO_BIN_EXE_nl-client"))
        .args(rest)
        .args(["--port", port])
        .output()
        .expect("runs")
}

fn with_jobs(dir: &Path) -> Config {
    Config {
        store: StoreConfig {
            location: StoreLocation::Dir(dir.join("store")),
            ..StoreConfig::default()
        },
        jobs: JobsConfig {
            database: Some(format!("sqlite://{}", dir.join("jobs.sqlite").display())),
            ..JobsConfig::default()
        },
        ..Config::default()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_wait_ls_watch_and_cancel_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server(with_jobs(dir.path())).await;
    let port = server.addr().port().to_string();
    let work = tempfile::tempdir().unwrap();
    // Three files; one submitted by path, two by id through --from.
    let mut files = Vec::new();
    for i in 0..3u32 {
        let img = common::picture(50 + i, 40, PixelFormat::Rgb8);
        let p = work.path().join(format!("in{i}.png"));
        std::fs::write(&p, common::encoded(&img, OutputFormat::Png)).unwrap();
        files.push(p);
    }
    let put = nl_client(&[
        "--port",
        &port,
        "put",
        files[1].to_str().unwrap(),
        files[2].to_str().unwrap(),
    ]);
    assert!(put.status.success(), "{}", text(&put.stderr));
    let ids: Vec<String> = text(&put.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    let list = work.path().join("sources.txt");
    std::fs::write(
        &list,
        format!("# two stored images\n{}\n\n{}\n", ids[0], ids[1]),
    )
    .unwrap();
    let out = nl_client(&[
        "--port",
        &port,
        "job",
        "submit",
        files[0].to_str().unwrap(),
        "--from",
        list.to_str().unwrap(),
        "--op",
        "thumbnail=16",
        "--op",
        "gray",
        "--format",
        "png",
        "--label",
        "run=cli",
        "--wait",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let mut job_ids = Vec::new();
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[1], "succeeded", "{l}");
        // The result is what `get` makes of the same source and operations.
        let source_id = if f[3].ends_with(".png") {
            let own = nl_client(&["--port", &port, "put", f[3]]);
            text(&own.stdout)
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned()
        } else {
            f[3].to_owned()
        };
        let a = work.path().join(format!("{}-job.png", f[0]));
        let b = work.path().join(format!("{}-get.png", f[0]));
        assert!(
            nl_client(&["--port", &port, "get", f[2], a.to_str().unwrap()])
                .status
                .success()
        );
        let g = nl_client(&[
            "--port",
            &port,
            "get",
            &source_id,
            b.to_str().unwrap(),
            "--op",
            "thumbnail=16",
            "--op",
            "gray",
        ]);
        assert!(g.status.success(), "{}", text(&g.stderr));
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        job_ids.push(f[0].to_owned());
    }
    // ls by label and state.
    let ls = nl_client(&[
        "--port",
        &port,
        "job",
        "ls",
        "--label",
        "run=cli",
        "--state",
        "succeeded",
    ]);
    assert!(ls.status.success());
    assert_eq!(text(&ls.stdout).lines().count(), 3);
    for id in &job_ids {
        assert!(text(&ls.stdout).contains(id.as_str()));
    }
    let none = nl_client(&["--port", &port, "job", "ls", "--label", "run=other"]);
    assert_eq!(text(&none.stdout), "");
    // watch an ended job: prints its result, exits 0.
    let w = nl_client(&["--port", &port, "job", "watch", &job_ids[0]]);
    assert!(w.status.success(), "{}", text(&w.stderr));
    assert!(text(&w.stdout).starts_with(&job_ids[0]));
    // cancel an ended job: it stays succeeded.
    let c = nl_client(&["--port", &port, "job", "cancel", &job_ids[0]]);
    assert!(c.status.success());
    assert!(text(&c.stdout).contains("succeeded"));
    // Errors: one line, non-zero.
    let bad = nl_client(&["--port", &port, "job", "watch", "nope"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        text(&bad.stderr).lines().count(),
        1,
        "{}",
        text(&bad.stderr)
    );
    assert!(
        text(&bad.stderr).contains("NOT_FOUND"),
        "{}",
        text(&bad.stderr)
    );
    let bad = nl_client(&[
        "--port",
        &port,
        "job",
        "submit",
        "no/such/file.png",
        "--format",
        "png",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("neither a stored id"),
        "{}",
        text(&bad.stderr)
    );
    let bad = nl_client(&[
        "--port", &port, "job", "submit", &ids[0], "--format", "png", "--op", "blur=x",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    // A job that fails makes --wait exit 1 naming it.
    let missing = "0".repeat(64);
    let f = nl_client(&[
        "--port", &port, "job", "submit", &missing, "--format", "png", "--wait",
    ]);
    assert_eq!(f.status.code(), Some(1));
    assert!(text(&f.stderr).contains("failed"), "{}", text(&f.stderr));
}
