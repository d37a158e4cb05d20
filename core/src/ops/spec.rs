//! The text form of operations (`rotate=90`, `crop=0,0,640,480`, `blur=2`)
//! and their canonical byte encoding.
//!
//! A spec is `NAME` or `NAME=ARGS` (`NAME:ARGS` is accepted too, for URL
//! queries); [`Operation::parse`] and `Display` are inverses on valid specs
//! (property-tested), and `Display` prints the canonical spelling.

use std::fmt;

use super::overlay::Overlay;
use super::resize::{Filter, Fit, Resize};
use super::{CropBox, Flip, Kernel, Operation};
use crate::error::{CoreError, Result};
use crate::pixel::ImageBuf;
use crate::rotate::Rotation;

/// Version byte that starts every canonical encoding; bump it when an
/// operation's meaning or encoding changes, so old cache keys stop matching.
pub const ENCODING_VERSION: u8 = 1;

/// The canonical bytes of an ordered list of operations: a version byte,
/// then for each operation a tag byte and its parameters, fixed-width and
/// little-endian (floats as IEEE-754 bits, -0 written as +0). Equal lists
/// give equal bytes on every machine; a cache keys results on them.
pub fn canonical_bytes(ops: &[Operation]) -> Vec<u8> {
    let mut out = vec![ENCODING_VERSION];
    let f32_bits = |f: f32| (if f == 0.0 { 0.0f32 } else { f }).to_bits().to_le_bytes();
    for op in ops {
        match op {
            Operation::Rotate(r) => out.extend([1, r.quarter_turns() as u8]),
            Operation::Flip(f) => out.extend([2, (*f == Flip::Vertical) as u8]),
            Operation::Crop(b) => {
                out.push(3);
                for v in [b.x, b.y, b.width, b.height] {
                    out.extend(v.to_le_bytes());
                }
            }
            Operation::Mean3x3 => out.push(4),
            Operation::Blur { sigma } => {
                out.push(5);
                out.extend(f32_bits(*sigma));
            }
            Operation::Sharpen { sigma, amount } => {
                out.push(6);
                out.extend(f32_bits(*sigma));
                out.extend(f32_bits(*amount));
            }
            Operation::Convolve(k) => {
                out.extend([7, k.size as u8]);
                for w in k.weights.iter().chain([&k.divisor]) {
                    out.extend(w.to_le_bytes());
                }
            }
            Operation::Gray => out.push(8),
            Operation::Brightness(n) => {
                out.push(9);
                out.extend(n.to_le_bytes());
            }
            Operation::Contrast(f) => {
                out.push(10);
                out.extend(f32_bits(*f));
            }
            Operation::Gamma(g) => {
                out.push(11);
                out.extend(f32_bits(*g));
            }
            Operation::Overlay(o) => {
                let info = o.image.info();
                out.push(13);
                out.extend(o.x.to_le_bytes());
                out.extend(o.y.to_le_bytes());
                out.extend(f32_bits(o.opacity));
                out.extend(info.width().to_le_bytes());
                out.extend(info.height().to_le_bytes());
                out.push(info.channels() as u8);
                out.extend(o.image.data());
            }
            Operation::Resize(r) => {
                out.push(12);
                out.extend(r.width.unwrap_or(0).to_le_bytes());
                out.extend(r.height.unwrap_or(0).to_le_bytes());
                out.push(r.fit as u8);
                out.push(r.filter as u8);
            }
        }
    }
    out
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Rotate(r) => write!(f, "rotate={}", r.degrees()),
            Operation::Flip(Flip::Horizontal) => f.write_str("flip=h"),
            Operation::Flip(Flip::Vertical) => f.write_str("flip=v"),
            Operation::Crop(b) => write!(f, "crop={},{},{},{}", b.x, b.y, b.width, b.height),
            Operation::Mean3x3 => f.write_str("mean"),
            Operation::Blur { sigma } => write!(f, "blur={sigma}"),
            Operation::Sharpen { sigma, amount } => write!(f, "sharpen={sigma},{amount}"),
            Operation::Convolve(k) => {
                let w: Vec<String> = k.weights.iter().map(ToString::to_string).collect();
                write!(f, "convolve={}/{}", w.join(","), k.divisor)
            }
            Operation::Gray => f.write_str("gray"),
            Operation::Brightness(n) => write!(f, "brightness={n}"),
            Operation::Contrast(c) => write!(f, "contrast={c}"),
            Operation::Gamma(g) => write!(f, "gamma={g}"),
            Operation::Resize(r) => write!(f, "{r}"),
            // The file is not kept: the text names the overlay's geometry.
            Operation::Overlay(o) => write!(
                f,
                "overlay=[{}],{},{},{}",
                o.image.info(),
                o.x,
                o.y,
                o.opacity
            ),
        }
    }
}

impl std::str::FromStr for Operation {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        Operation::parse(s)
    }
}

/// The spec syntax, for error messages.
pub const SPECS: &str = "rotate=90|180|270, flip=h|v, crop=X,Y,W,H, \
     resize=WxH[:fit|inside|fill|exact][:lanczos3|cubic|linear|box|nearest], thumbnail=N, mean, blur=SIGMA, \
     sharpen=SIGMA[,AMOUNT], convolve=K1,...,K9[/DIV] (or 25 weights), gray, brightness=N, \
     contrast=F, gamma=G, overlay=FILE[,X,Y][,OPACITY]";

impl Operation {
    /// Parses one spec (`rotate=90`, `crop=10,10,640,480`, `blur=2`, `gray`,
    /// ...; see [`SPECS`]) and checks its ranges. An overlay names a file,
    /// which this crate does not read: use [`Operation::parse_with`].
    pub fn parse(spec: &str) -> Result<Operation> {
        Self::parse_with(spec, |file| {
            Err(CoreError::Unsupported(format!(
                "an overlay's pixels must come with the request (cannot load '{file}' here)"
            )))
        })
    }

    /// Like [`Operation::parse`], with `load` turning an overlay's FILE into
    /// its pixels.
    pub fn parse_with(
        spec: &str,
        load: impl FnOnce(&str) -> Result<ImageBuf>,
    ) -> Result<Operation> {
        let bad = |why: &str| {
            CoreError::InvalidInput(format!("operation '{spec}': {why} (specs: {SPECS})"))
        };
        let (name, args) = match spec.find(['=', ':']) {
            Some(i) => (&spec[..i], Some(&spec[i + 1..])),
            None => (spec, None),
        };
        let nums = |n: usize| -> Result<Vec<&str>> {
            let parts: Vec<&str> = args.unwrap_or("").split(',').map(str::trim).collect();
            if args.is_none() || parts.len() != n {
                return Err(bad(&format!("expects {n} comma-separated value(s)")));
            }
            Ok(parts)
        };
        let float = |s: &str| -> Result<f32> {
            s.parse::<f32>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| bad(&format!("'{s}' is not a number")))
        };
        let int = |s: &str| -> Result<i64> {
            s.parse::<i64>()
                .map_err(|_| bad(&format!("'{s}' is not an integer")))
        };
        let no_args = |op: Operation| match args {
            None => Ok(op),
            Some(_) => Err(bad("takes no value")),
        };
        let op = match name.trim().to_ascii_lowercase().as_str() {
            "rotate" => match nums(1)?[0] {
                "0" => Operation::Rotate(Rotation::None),
                "90" => Operation::Rotate(Rotation::Ccw90),
                "180" => Operation::Rotate(Rotation::Ccw180),
                "270" => Operation::Rotate(Rotation::Ccw270),
                _ => return Err(bad("the angle must be 0, 90, 180 or 270")),
            },
            "flip" => match nums(1)?[0].to_ascii_lowercase().as_str() {
                "h" | "horizontal" => Operation::Flip(Flip::Horizontal),
                "v" | "vertical" => Operation::Flip(Flip::Vertical),
                _ => return Err(bad("the axis must be h or v")),
            },
            "crop" => {
                let v = nums(4)?
                    .into_iter()
                    .map(|s| {
                        s.parse::<u32>()
                            .map_err(|_| bad(&format!("'{s}' is not a pixel count")))
                    })
                    .collect::<Result<Vec<u32>>>()?;
                Operation::Crop(CropBox {
                    x: v[0],
                    y: v[1],
                    width: v[2],
                    height: v[3],
                })
            }
            "mean" => no_args(Operation::Mean3x3)?,
            "gray" | "grey" | "grayscale" => no_args(Operation::Gray)?,
            "blur" => Operation::Blur {
                sigma: float(nums(1)?[0])?,
            },
            "sharpen" => {
                let parts: Vec<&str> = args.unwrap_or("").split(',').collect();
                match (args, parts.as_slice()) {
                    (Some(_), [s]) => Operation::Sharpen {
                        sigma: float(s)?,
                        amount: 1.0,
                    },
                    (Some(_), [s, a]) => Operation::Sharpen {
                        sigma: float(s)?,
                        amount: float(a)?,
                    },
                    _ => return Err(bad("expects SIGMA or SIGMA,AMOUNT")),
                }
            }
            "convolve" => {
                let args = args.ok_or_else(|| bad("expects 9 or 25 weights"))?;
                let (weights, divisor) = match args.split_once('/') {
                    Some((w, d)) => (w, Some(int(d.trim())?)),
                    None => (args, None),
                };
                let weights = weights
                    .split(',')
                    .map(|s| int(s.trim()))
                    .collect::<Result<Vec<i64>>>()?;
                let size = match weights.len() {
                    9 => 3,
                    25 => 5,
                    n => return Err(bad(&format!("expects 9 or 25 weights, got {n}"))),
                };
                let narrow = |v: i64| {
                    i32::try_from(v)
                        .ok()
                        .filter(|v| v.abs() <= super::convolve::MAX_WEIGHT)
                        .ok_or_else(|| {
                            bad(&format!(
                                "{v} is out of range (|w| <= {})",
                                super::convolve::MAX_WEIGHT
                            ))
                        })
                };
                let weights = weights
                    .into_iter()
                    .map(narrow)
                    .collect::<Result<Vec<i32>>>()?;
                let divisor = match divisor {
                    Some(0) => return Err(bad("the divisor must not be 0")),
                    Some(d) => narrow(d)?,
                    None => match weights.iter().sum::<i32>() {
                        0 => 1,
                        s => s,
                    },
                };
                Operation::Convolve(Kernel {
                    size,
                    weights,
                    divisor,
                })
            }
            "brightness" => {
                let n = int(nums(1)?[0])?;
                Operation::Brightness(n.clamp(-1000, 1000) as i32)
            }
            "resize" => {
                let args = args.ok_or_else(|| bad("expects WxH[:fit|fill|exact][:FILTER]"))?;
                let mut parts = args.split(':');
                let size = parts.next().unwrap_or("");
                let (w, h) = size
                    .split_once(['x', 'X'])
                    .ok_or_else(|| bad(&format!("'{size}' is not WxH, Wx or xH")))?;
                let side = |v: &str| -> Result<Option<u32>> {
                    match v.trim() {
                        "" => Ok(None),
                        v => v
                            .parse::<u32>()
                            .map(Some)
                            .map_err(|_| bad(&format!("'{v}' is not a pixel count"))),
                    }
                };
                let mut r = Resize {
                    width: side(w)?,
                    height: side(h)?,
                    fit: Fit::Fit,
                    filter: Filter::Lanczos3,
                };
                for p in parts {
                    match p.trim().to_ascii_lowercase().as_str() {
                        "fit" => r.fit = Fit::Fit,
                        "fill" => r.fit = Fit::Fill,
                        "exact" => r.fit = Fit::Exact,
                        "inside" => r.fit = Fit::Inside,
                        f => {
                            r.filter = Filter::from_name(f).ok_or_else(|| {
                                bad(&format!(
                                    "'{f}' is neither fit, inside, fill, exact nor a filter \
                                     (lanczos3, cubic, linear, box, nearest)"
                                ))
                            })?
                        }
                    }
                }
                if (r.width.is_none() || r.height.is_none()) && r.fit != Fit::Inside {
                    r.fit = Fit::Fit; // moot with one side: one spelling
                }
                Operation::Resize(r)
            }
            "thumbnail" => {
                let n = nums(1)?[0]
                    .parse::<u32>()
                    .map_err(|_| bad("expects a pixel count"))?;
                Operation::Resize(Resize {
                    width: Some(n),
                    height: Some(n),
                    fit: Fit::Inside,
                    filter: Filter::Lanczos3,
                })
            }
            "overlay" => {
                // FILE[,X,Y][,OPACITY]; FILE may itself hold commas only if
                // it is the whole value.
                let args = args.ok_or_else(|| bad("expects FILE[,X,Y][,OPACITY]"))?;
                let parts: Vec<&str> = args.split(',').collect();
                let (file, x, y, opacity) = match parts.as_slice() {
                    [f] => (*f, "0", "0", "1"),
                    [f, o] => (*f, "0", "0", *o),
                    [f, x, y] => (*f, *x, *y, "1"),
                    [f, x, y, o] => (*f, *x, *y, *o),
                    _ => return Err(bad("expects FILE[,X,Y][,OPACITY]")),
                };
                let pos = |v: &str| -> Result<i32> {
                    v.trim()
                        .parse::<i32>()
                        .map_err(|_| bad(&format!("'{v}' is not a pixel position")))
                };
                let (x, y, opacity) = (pos(x)?, pos(y)?, float(opacity)?);
                let image = load(file).map_err(|e| bad(&e.to_string()))?;
                Operation::Overlay(Overlay {
                    image: std::sync::Arc::new(image),
                    x,
                    y,
                    opacity,
                })
            }
            "contrast" => Operation::Contrast(float(nums(1)?[0])?),
            "gamma" => Operation::Gamma(float(nums(1)?[0])?),
            other => return Err(bad(&format!("unknown operation '{other}'"))),
        };
        op.validate().map_err(|e| {
            // validate names the operation; the spec is named already.
            let e = e.to_string();
            let prefix = format!("{op}: ");
            bad(e.strip_prefix(&prefix).unwrap_or(&e))
        })?;
        Ok(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_canonically() {
        for (spec, canonical) in [
            ("rotate=90", "rotate=90"),
            ("rotate:270", "rotate=270"),
            ("flip=H", "flip=h"),
            ("flip=vertical", "flip=v"),
            ("crop=1,2,30,40", "crop=1,2,30,40"),
            ("mean", "mean"),
            ("grey", "gray"),
            ("blur=2.0", "blur=2"),
            ("blur=0.5", "blur=0.5"),
            ("sharpen=1.5", "sharpen=1.5,1"),
            ("sharpen=1,0.5", "sharpen=1,0.5"),
            (
                "convolve=0,-1,0,-1,5,-1,0,-1,0",
                "convolve=0,-1,0,-1,5,-1,0,-1,0/1",
            ),
            ("convolve=1,1,1,1,1,1,1,1,1", "convolve=1,1,1,1,1,1,1,1,1/9"),
            (
                "convolve=1,0,-1,2,0,-2,1,0,-1",
                "convolve=1,0,-1,2,0,-2,1,0,-1/1",
            ),
            ("brightness=-20", "brightness=-20"),
            ("contrast=1.25", "contrast=1.25"),
            ("gamma=2.2", "gamma=2.2"),
            ("resize=800x600", "resize=800x600:fit:lanczos3"),
            ("resize=800x600:fill", "resize=800x600:fill:lanczos3"),
            ("resize=800x600:exact:box", "resize=800x600:exact:box"),
            ("resize=800x:cubic", "resize=800x:fit:cubic"),
            ("resize:x600:fill:nearest", "resize=x600:fit:nearest"),
            ("thumbnail=256", "resize=256x256:inside:lanczos3"),
        ] {
            let op = Operation::parse(spec).unwrap();
            assert_eq!(op.to_string(), canonical, "{spec}");
            assert_eq!(Operation::parse(canonical).unwrap(), op, "{canonical}");
        }
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("rotate=45", "0, 90, 180 or 270"),
            ("rotate", "expects 1"),
            ("flip=x", "axis must be h or v"),
            ("crop=1,2,3", "expects 4"),
            ("crop=1,2,0,4", "is empty"),
            ("crop=-1,2,3,4", "'-1' is not a pixel count"),
            ("blur=0", "sigma must be > 0"),
            ("blur=nan", "'nan' is not a number"),
            ("blur=1000", "sigma must be > 0 and <= 100"),
            ("mean=5", "takes no value"),
            ("convolve=1,2,3", "9 or 25 weights, got 3"),
            ("convolve=1,1,1,1,1,1,1,1,1/0", "divisor must not be 0"),
            ("brightness=300", "-255..255"),
            ("gamma=0", "gamma must be > 0"),
            ("resizee=3", "unknown operation 'resizee'"),
            ("resize=800", "'800' is not WxH"),
            ("resize=x", "give a width, a height or both"),
            ("resize=0x10", "each 1..1048576"),
            ("resize=10x10:bicubicc", "'bicubicc' is neither"),
            ("overlay=logo.png", "cannot load 'logo.png' here"),
            ("overlay=logo.png,1,x", "'x' is not a pixel position"),
        ] {
            let e = Operation::parse(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
            assert!(e.contains(&format!("'{spec}'")), "{spec}: {e}");
        }
    }

    #[test]
    fn canonical_bytes_are_versioned_and_tell_lists_apart() {
        let a = [Operation::Blur { sigma: 2.0 }, Operation::Gray];
        let b = [Operation::Gray, Operation::Blur { sigma: 2.0 }];
        assert_eq!(canonical_bytes(&a)[0], ENCODING_VERSION);
        assert_ne!(canonical_bytes(&a), canonical_bytes(&b));
        assert_eq!(canonical_bytes(&a), canonical_bytes(&a.clone()));
        assert_eq!(canonical_bytes(&[]), vec![ENCODING_VERSION]);
        // 2 and 2.0 are one value; -0 and 0 one amount.
        let parsed: Vec<Operation> = ["blur=2.0", "gray"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(canonical_bytes(&parsed), canonical_bytes(&a));
        assert_eq!(
            canonical_bytes(&[Operation::parse("sharpen=1,-0").unwrap()]),
            canonical_bytes(&[Operation::parse("sharpen=1,0").unwrap()])
        );
        // A fixed list has fixed bytes (a change here invalidates every cache key).
        assert_eq!(
            canonical_bytes(&[
                Operation::Rotate(Rotation::Ccw90),
                Operation::Blur { sigma: 2.0 }
            ]),
            [1, 1, 1, 5, 0, 0, 0, 64]
        );
    }
}
