//! The `nl-client` command line: read an image file, send it through the
//! server, write the result atomically in the format the output's extension
//! names.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::ArgAction;
use nlimage_client::{ClientError, Operation, Rotation};

use crate::connect::ConnectArgs;
use nlimage_core::{Limits, OutputFormat, PngCompression, rows};

/// Send an image through nl-server and write the result.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Image to read (png, jpeg, gif, bmp, tiff, webp); several (each after
    /// its own -i, or after one) with --output-dir.
    #[arg(long, short, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Where to write the result; its extension picks the format
    /// (png, jpg, jpeg, bmp, tif, tiff, webp, gif).
    #[arg(
        long,
        short,
        required_unless_present = "output_dir",
        conflicts_with = "output_dir"
    )]
    pub output: Option<PathBuf>,
    /// Write each input's result into this directory, named after the input
    /// with the extension of --format (or the input's own).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// With --output-dir: the output format, as an extension (png, jpg, ...).
    #[arg(long, requires = "output_dir")]
    pub format: Option<String>,
    /// With several inputs: images processed at once.
    #[arg(long, short, default_value_t = 4)]
    pub jobs: usize,
    /// Attempts per image (with several inputs) or per transfer (store
    /// commands) after the first, on UNAVAILABLE, RESOURCE_EXHAUSTED or
    /// DEADLINE_EXCEEDED (exponential backoff with jitter, 100 ms to 5 s).
    #[arg(long, global = true, default_value_t = 8)]
    pub retries: usize,
    /// An operation (repeatable; all operations apply in command-line order):
    /// rotate=90|180|270, flip=h|v, crop=X,Y,W,H, mean, blur=SIGMA,
    /// sharpen=SIGMA[,AMOUNT], convolve=K1,...,K9[/DIV] (or 25 weights), gray,
    /// brightness=N, contrast=F, gamma=G, resize=WxH[:fit|fill|exact][:FILTER],
    /// thumbnail=N, overlay=FILE[,X,Y][,OPACITY].
    #[arg(long = "op", value_name = "SPEC", value_parser = parse_op)]
    pub ops: Vec<Operation>,
    /// Rotate counter-clockwise: NONE, NINETY_DEG, ONE_EIGHTY_DEG,
    /// TWO_SEVENTY_DEG (or 0, 90, 180, 270); shorthand for --op rotate=...
    #[arg(long, value_parser = parse_rotation)]
    pub rotate: Vec<Rotation>,
    /// Apply the 3x3 mean filter; shorthand for --op mean.
    // Appended once per use (not counted), so each use has its position.
    #[arg(long, action = ArgAction::Append, num_args = 0, default_missing_value = "true")]
    pub mean: Vec<bool>,
    /// The operations of --op, --rotate and --mean in command-line order
    /// (filled from the parsed matches by [`crate::command::Invocation::try_from_iter`]).
    #[arg(skip)]
    pub ordered: Vec<Operation>,
    /// Where the server is and how to talk to it.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Process the pixels as stored, ignoring the file's EXIF orientation
    /// (by default the image is first turned upright, as browsers show it).
    #[arg(long)]
    pub no_auto_orient: bool,
    /// Colour images whose pixels are all gray (R = G = B, opaque) travel as
    /// one channel and the result is turned back into the colour format:
    /// identical output, a third (a quarter) of the bytes each way. `auto`
    /// checks inputs that are decoded whole anyway (JPEG, BMP, TIFF, WebP,
    /// GIF, interlaced PNG): a scan of memory; `always` also checks streamed
    /// PNGs, with a second decode that stops at the first colour pixel;
    /// `never` sends every image as stored.
    #[arg(long, value_enum, default_value_t = GrayDetect::Auto)]
    pub gray_detect: GrayDetect,
    /// PNG output compression: none, fast, balanced or best.
    #[arg(long, value_parser = parse_png, default_value = "fast")]
    pub png_compression: PngCompression,
}

/// When to look for gray images stored as colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GrayDetect {
    /// When the pixels are in memory anyway.
    Auto,
    /// Always (a streamed PNG is decoded a second time).
    Always,
    /// Never.
    Never,
}

/// One --op spec; an overlay's FILE is decoded here and sent with the
/// request. (The message quotes the spec; clap names the flag.)
fn parse_op(s: &str) -> Result<Operation, String> {
    Operation::parse_with(s, |file| {
        let f = File::open(file).map_err(|e| {
            nlimage_core::CoreError::InvalidInput(format!("cannot read '{file}': {e}"))
        })?;
        nlimage_core::decode(BufReader::new(f), &Limits::DEFAULT)
    })
    .map_err(|e| e.to_string())
}

fn parse_png(s: &str) -> Result<PngCompression, String> {
    PngCompression::from_name(s).ok_or_else(|| "use none, fast, balanced or best".into())
}

pub(crate) const EXIT_CODES: &str =
    "The image store: nl-client put FILE|DIR..., nl-client get ID OUT.ext [--op SPEC]..., \
nl-client rm ID..., nl-client ls (each with --help).

Exit codes: 0 success, 1 the operation failed, 2 usage error.";

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

/// Does the whole job: one image, or each of several into --output-dir.
pub async fn run(args: Args) -> Result<(), Failure> {
    let usage = |e: anyhow::Error| Failure { code: 2, error: e };
    let jobs: Vec<(PathBuf, PathBuf)> = match (&args.output, &args.output_dir) {
        (Some(out), _) => {
            if args.input.len() > 1 {
                return Err(usage(anyhow::anyhow!(
                    "{} inputs and one --output: use --output-dir for several",
                    args.input.len()
                )));
            }
            vec![(args.input[0].clone(), out.clone())]
        }
        (None, Some(dir)) => args
            .input
            .iter()
            .map(|i| {
                let ext = match &args.format {
                    Some(f) => f.trim_start_matches('.').to_owned(),
                    None => i
                        .extension()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                };
                let stem = i.file_stem().unwrap_or(i.as_os_str());
                (i.clone(), dir.join(stem).with_extension(ext))
            })
            .collect(),
        (None, None) => {
            return Err(usage(anyhow::anyhow!(
                "name an --output or an --output-dir"
            )));
        }
    };
    for (_, out) in &jobs {
        OutputFormat::from_path(out).map_err(|e| usage(e.into()))?;
    }
    let mut seen = std::collections::HashSet::new();
    if let Some((_, dup)) = jobs.iter().find(|(_, o)| !seen.insert(o.clone())) {
        return Err(usage(anyhow::anyhow!(
            "two inputs would both be written to '{}'",
            dup.display()
        )));
    }
    let client = args.connect.connect().await?;
    if jobs.len() == 1 {
        let (input, output) = &jobs[0];
        return run_one(&args, client, input, output).await;
    }
    crate::bulk::process_all(Arc::new(args), client, jobs).await
}

/// Sends one file through the server and writes its result.
pub async fn run_one(
    args: &Args,
    mut client: nlimage_client::Client,
    input: &Path,
    output: &Path,
) -> Result<(), Failure> {
    let format = OutputFormat::from_path(output).map_err(|e| Failure {
        code: 2,
        error: e.into(),
    })?;
    let mut source = open_image(input)?;
    let mut ops = args.ordered.clone();
    if !args.no_auto_orient {
        // The EXIF orientation becomes the first operations: the server
        // composes it with any turns and flips that follow.
        let o = exif_orientation(input)?;
        let mut upright = Vec::new();
        if o.rotation != Rotation::None {
            upright.push(Operation::Rotate(o.rotation));
        }
        if o.mirror {
            upright.push(Operation::Flip(nlimage_client::Flip::Horizontal));
        }
        ops.splice(0..0, upright);
    }
    // Gray stored as colour travels as one channel (not with an overlay,
    // whose colours would differ from the gray result).
    let mut expand_to = None;
    let original = source.info();
    if args.gray_detect != GrayDetect::Never
        && original.format() != nlimage_core::PixelFormat::Gray8
        && !ops.iter().any(|o| matches!(o, Operation::Overlay(_)))
    {
        let gray = match (source.decoded(), args.gray_detect) {
            (Some(_), _) => nlimage_core::gray::is_gray(source.as_mut())?,
            // Rows stream from the file: scan a second decoder, which stops
            // at the first colour pixel (only when asked: a gray file is
            // decoded twice).
            (None, GrayDetect::Always) => nlimage_core::gray::is_gray(open_image(input)?.as_mut())?,
            (None, _) => false,
        };
        // A plan that fails is sent as it is, for the server to explain.
        if let (true, Ok(plan)) = (gray, nlimage_core::Plan::new(original, &ops)) {
            source = Box::new(nlimage_core::gray::GrayRows::new(source)?);
            expand_to = Some(plan.output_info().format());
        }
    }
    // The output goes to a temporary file beside the target, renamed into
    // place only once complete: a failure leaves no partial file behind.
    let out = output;
    let context = || format!("cannot write '{}'", out.display());
    let tmp = temp_beside(out).with_context(context)?;
    let file = tmp.as_file().try_clone().with_context(context)?;
    let png = args.png_compression;
    client
        .process_rows(source, &ops, move |info| match expand_to {
            Some(to) => {
                let colour = nlimage_core::ImageInfo::new(info.width(), info.height(), to)?;
                let inner = rows::open_writer(file, colour, format, png)?;
                Ok(Box::new(nlimage_core::gray::ExpandRows::new(inner, to))
                    as Box<dyn rows::RowWriter>)
            }
            None => rows::open_writer(file, info, format, png),
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

/// A temporary file beside `out`, to be renamed onto it once complete, so a
/// failure never leaves a partial output.
pub fn temp_beside(out: &Path) -> std::io::Result<tempfile::NamedTempFile> {
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
    builder.tempfile_in(dir)
}

/// The orientation the file's EXIF data asks for (identity without any).
fn exif_orientation(path: &Path) -> Result<nlimage_core::ops::orient::Orientation> {
    let file = File::open(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    nlimage_core::codec::orientation(BufReader::new(file))
        .with_context(|| format!("cannot use '{}'", path.display()))
}

/// Opens the input for row-by-row decoding (whole-image for formats that
/// cannot stream), checking its size before decoding pixels.
fn open_image(path: &Path) -> Result<Box<dyn rows::RowReader>> {
    let file = File::open(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    rows::open_reader(BufReader::new(file), &Limits::DEFAULT)
        .with_context(|| format!("cannot use '{}'", path.display()))
}
