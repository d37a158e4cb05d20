//! The `nl-client` command line: read an image file, send it through the
//! server, write the result atomically in the format the output's extension
//! names.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use nlimage_client::{ClientError, Operation, Rotation};

use crate::connect::ConnectArgs;
use nlimage_core::{Limits, OutputFormat, PngCompression, rows};

/// Send an image through nl-server and write the result.
#[derive(Parser, Debug)]
#[command(name = "nl-client", version, after_help = EXIT_CODES)]
pub struct Args {
    /// Image to read (png, jpeg, gif, bmp, tiff, webp).
    #[arg(long, short)]
    pub input: PathBuf,
    /// Where to write the result; its extension picks the format
    /// (png, jpg, jpeg, bmp, tif, tiff, webp, gif).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Rotate counter-clockwise: NONE, NINETY_DEG, ONE_EIGHTY_DEG,
    /// TWO_SEVENTY_DEG (or 0, 90, 180, 270).
    #[arg(long, value_parser = parse_rotation, default_value = "NONE")]
    pub rotate: Rotation,
    /// Apply the 3x3 mean filter.
    #[arg(long)]
    pub mean: bool,
    /// Where the server is and how to talk to it.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// PNG output compression: none, fast, balanced or best.
    #[arg(long, value_parser = parse_png, default_value = "fast")]
    pub png_compression: PngCompression,
}

fn parse_png(s: &str) -> Result<PngCompression, String> {
    PngCompression::from_name(s).ok_or_else(|| "use none, fast, balanced or best".into())
}

const EXIT_CODES: &str = "Exit codes: 0 success, 1 the operation failed, 2 usage error.";

/// Accepts the contract's names and plain degrees, in any case.
fn parse_rotation(s: &str) -> Result<Rotation, String> {
    match s.to_ascii_uppercase().as_str() {
        "NONE" | "0" => Ok(Rotation::None),
        "NINETY_DEG" | "90" => Ok(Rotation::Ccw90),
        "ONE_EIGHTY_DEG" | "180" => Ok(Rotation::Ccw180),
        "TWO_SEVENTY_DEG" | "270" => Ok(Rotation::Ccw270),
        _ => Err("use NONE, NINETY_DEG, ONE_EIGHTY_DEG, TWO_SEVENTY_DEG, 0, 90, 180 or 270".into()),
    }
}

/// A failure, with the exit code it maps to.
pub struct Failure {
    /// 1 for a failed operation, 2 for a usage error.
    pub code: u8,
    /// What went wrong, with its causes.
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            error: e.into(),
        }
    }
}

/// Does the whole job.
pub async fn run(args: Args) -> Result<(), Failure> {
    let format = OutputFormat::from_path(&args.output).map_err(|e| Failure {
        code: 2,
        error: e.into(),
    })?;
    let source = open_image(&args.input)?;
    let mut ops = Vec::new();
    if args.rotate != Rotation::None {
        ops.push(Operation::Rotate(args.rotate));
    }
    if args.mean {
        ops.push(Operation::Mean3x3);
    }
    let mut client = args.connect.connect().await?;
    // The output goes to a temporary file beside the target, renamed into
    // place only once complete: a failure leaves no partial file behind.
    let out = &args.output;
    let context = || format!("cannot write '{}'", out.display());
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".nl-client-").suffix(".part");
    // Temporary files are private (0600); the output is an ordinary file:
    // 0666 less the umask, as `File::create` would make it.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let tmp = builder.tempfile_in(dir).with_context(context)?;
    let file = tmp.as_file().try_clone().with_context(context)?;
    let png = args.png_compression;
    client
        .process_rows(source, &ops, move |info| {
            rows::open_writer(file, info, format, png)
        })
        .await
        .map_err(|e| match e {
            // Encoding failures are about the output file; say which.
            ClientError::Core(c) => anyhow::Error::new(c).context(context()),
            other => other.into(),
        })?;
    tmp.persist(out)
        .map_err(|e| e.error)
        .with_context(context)?;
    Ok(())
}

/// Opens the input for row-by-row decoding (whole-image for formats that
/// cannot stream), checking its size before decoding pixels.
fn open_image(path: &Path) -> Result<Box<dyn rows::RowReader>> {
    let file = File::open(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    rows::open_reader(BufReader::new(file), &Limits::DEFAULT)
        .with_context(|| format!("cannot use '{}'", path.display()))
}
