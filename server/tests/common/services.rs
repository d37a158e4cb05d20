//! Real infrastructure for tests, started on 127.0.0.1 from packages:
//! PostgreSQL from the distribution (as the unprivileged `postgres` user when
//! the tests run as root) in a temporary directory, and moto's S3-compatible
//! server from PyPI; and `nl-server` replicas as processes.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, secs: u64) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let t0 = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a test of `what` is skipped by `var`.
pub fn skipped(var: &str, what: &str) -> bool {
    if std::env::var_os(var).is_some() {
        eprintln!("{var} set: the {what} test is skipped");
        return true;
    }
    false
}

/// A PostgreSQL server in a temporary directory, stopped on drop.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_root: bool,
    pub port: u16,
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

impl Postgres {
    /// Starts one; panics saying what to install if PostgreSQL is missing.
    pub fn start() -> Postgres {
        let bin = pg_bin().expect(
            "no PostgreSQL: install the distribution's `postgresql` package (.ci/run does; \
             NL_SKIP_PG=1 skips this test)",
        );
        // SAFETY: geteuid has no preconditions.
        let as_root = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new().prefix("nl-pg").tempdir().unwrap();
        let run = |args: &[&str]| {
            let mut c = if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]);
                c.arg(bin.join(args[0]));
                c
            } else {
                Command::new(bin.join(args[0]))
            };
            let out = c.args(&args[1..]).output().expect("runs PostgreSQL tools");
            assert!(
                out.status.success(),
                "{}: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr)
            );
        };
        if as_root {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot give the PostgreSQL directory to the postgres user"
            );
        }
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap();
        run(&[
            "initdb",
            "-D",
            data_s,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]);
        let port = free_port();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=200",
            dir.path().display()
        );
        let log = dir.path().join("log");
        run(&[
            "pg_ctl",
            "-D",
            data_s,
            "-o",
            &opts,
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ]);
        wait_for_port(port, "PostgreSQL", 30);
        Postgres {
            bin,
            dir,
            as_root,
            port,
        }
    }

    /// Its connection URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut c = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = c
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Python with moto, if there is one.
pub fn moto_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = std::env::var_os("NL_MOTO_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join(".ci/.venv/bin/python"),
            root.join("bench/.venv/bin/python"),
        ]);
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import moto.server"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// moto's S3-compatible server, stopped on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts one with a bucket named `bucket`.
    pub fn start(bucket: &str) -> Moto {
        let python = moto_python().expect(
            "no Python with moto: run .ci/run once, or `pip install 'moto[server]'` and set \
             NL_MOTO_PYTHON (NL_SKIP_S3=1 skips this test)",
        );
        let port = free_port();
        let child = Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        wait_for_port(port, "moto", 30);
        // A bucket is made with a plain PUT (moto does not check signatures).
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::{Read, Write};
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        Moto { child, port }
    }

    /// The environment a server needs to use it.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `nl-server` process, SIGKILLed on drop.
pub struct Replica {
    child: Option<Child>,
    pub port: u16,
}

impl Replica {
    /// Starts the built `nl-server` with `args` (and `--port`) and `env`;
    /// returns once it accepts connections.
    pub fn start(args: &[String], env: &[(String, String)], log: Option<&Path>) -> Replica {
        let port = free_port();
        let mut c = Command::new(env!("CARGO_BIN_EXE_nl-server"));
        c.args(["--port", &port.to_string()])
            .args(args)
            .envs(env.iter().cloned());
        match log {
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap();
                c.stderr(f);
            }
            None => {
                c.stderr(Stdio::null());
            }
        }
        let child = c.stdout(Stdio::null()).spawn().expect("nl-server starts");
        wait_for_port(port, "nl-server", 60);
        Replica {
            child: Some(child),
            port,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for it to exit by itself (after a SIGTERM), at most `limit`.
    pub fn wait(&mut self, limit: Duration) {
        let t0 = Instant::now();
        if let Some(c) = self.child.as_mut() {
            while c.try_wait().unwrap().is_none() {
                assert!(
                    t0.elapsed() < limit,
                    "nl-server did not stop within {limit:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.child = None;
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}
