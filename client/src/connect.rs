//! The connection flags `nl-client` and `nl-load` share: where the server is,
//! TLS, the bearer token, compression and the deadline.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use nlimage_client::{Client, CompressionEncoding, Options};

/// Where the server is and how to talk to it.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Server host.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(long, global = true, default_value_t = 50051)]
    pub port: u16,
    /// Connect with TLS, trusting the public web roots (see --ca).
    #[arg(long, global = true)]
    pub tls: bool,
    /// Connect with TLS, trusting this CA certificate (PEM).
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    /// Check the server certificate against this name [default: --host].
    #[arg(long, global = true)]
    pub tls_domain: Option<String>,
    /// File holding the bearer token to send [default: $NL_TOKEN, if set].
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Compress what is sent (and accept compressed answers): gzip or zstd.
    #[arg(long, global = true, value_parser = parse_compression)]
    pub compress: Option<CompressionEncoding>,
    /// Give up on a call after this many seconds (the server stops its work too).
    #[arg(long, global = true, value_parser = parse_seconds, allow_negative_numbers = true)]
    pub timeout: Option<f64>,
}

/// A positive, finite number of seconds (a usage error otherwise: exit 2).
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t > 0.0 && t.is_finite() && t < 1e9 => Ok(t),
        _ => Err("use a positive number of seconds, e.g. 30 or 0.5".into()),
    }
}

fn parse_compression(s: &str) -> Result<CompressionEncoding, String> {
    match s {
        "gzip" => Ok(CompressionEncoding::Gzip),
        "zstd" => Ok(CompressionEncoding::Zstd),
        _ => Err("use gzip or zstd".into()),
    }
}

impl ConnectArgs {
    /// `HOST:PORT`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connection options from the flags (reading the CA and token files).
    pub fn options(&self) -> Result<Options> {
        let tls = match &self.ca {
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("cannot read the CA file '{}'", ca.display()))?;
                Some(Some(pem))
            }
            None if self.tls => Some(None),
            None => None,
        };
        let token = match &self.token_file {
            Some(p) => {
                let token = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the token file '{}'", p.display()))?
                    .trim()
                    .to_owned();
                if token.is_empty() {
                    anyhow::bail!("the token file '{}' is empty", p.display());
                }
                Some(token)
            }
            None => std::env::var("NL_TOKEN").ok().filter(|t| !t.is_empty()),
        };
        let timeout = match self.timeout {
            Some(t) if t > 0.0 && t.is_finite() => Some(Duration::from_secs_f64(t)),
            Some(t) => anyhow::bail!("--timeout must be a positive number of seconds, got {t}"),
            None => None,
        };
        Ok(Options {
            tls,
            tls_domain: self.tls_domain.clone(),
            token,
            compression: self.compress,
            timeout,
        })
    }

    /// Connects as the flags say.
    pub async fn connect(&self) -> Result<Client> {
        match Client::connect_with(self.addr(), self.options()?).await {
            Ok(c) => Ok(c),
            // The library checks the CA; the flags know its file.
            Err(e @ nlimage_client::ClientError::Ca(_)) => {
                let file = self.ca.as_deref().unwrap_or(std::path::Path::new("?"));
                Err(anyhow::Error::new(e).context(format!("--ca '{}'", file.display())))
            }
            Err(e) => Err(e.into()),
        }
    }
}
