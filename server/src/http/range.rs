//! HTTP byte ranges for image GETs: one range (`bytes=A-B`, `bytes=A-`,
//! `bytes=-N`) is answered with 206 and `Content-Range`; a range past the end
//! with 416; several ranges, a malformed header, or an `If-Range` that does
//! not name the current tag get the whole body (RFC 9110 lets a server
//! ignore `Range`).

use std::ops::Range;

/// What to send of a body of `len` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ranged {
    /// The whole body, 200.
    Full,
    /// These bytes, 206.
    Part(Range<usize>),
    /// Nothing the range names exists, 416.
    Unsatisfiable,
}

/// Reads a `Range` header against a body of `len` bytes whose tag is `tag`
/// (`if_range`: the request's `If-Range`, if any).
pub fn parse(range: Option<&str>, if_range: Option<&str>, tag: &str, len: usize) -> Ranged {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Ranged::Full;
    };
    if if_range.is_some_and(|t| t.trim() != tag) || spec.contains(',') {
        return Ranged::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Full;
    };
    let num = |s: &str| s.trim().parse::<usize>().ok();
    let range = match (a.trim().is_empty(), num(a), num(b)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) if n > 0 => len.saturating_sub(n)..len,
        (true, _, _) => return Ranged::Full,
        (false, Some(start), None) if b.trim().is_empty() => start..len,
        (false, Some(start), Some(end)) if end >= start => start..end.saturating_add(1).min(len),
        _ => return Ranged::Full,
    };
    if range.start >= len {
        Ranged::Unsatisfiable
    } else {
        Ranged::Part(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        let p = |r: &str| parse(Some(r), None, "\"t\"", 100);
        assert_eq!(p("bytes=0-9"), Ranged::Part(0..10));
        assert_eq!(p("bytes=90-"), Ranged::Part(90..100));
        assert_eq!(p("bytes=-5"), Ranged::Part(95..100));
        assert_eq!(p("bytes=-500"), Ranged::Part(0..100));
        assert_eq!(p("bytes=95-1000"), Ranged::Part(95..100));
        assert_eq!(p("bytes=100-"), Ranged::Unsatisfiable);
        assert_eq!(p("bytes=0-1,5-6"), Ranged::Full, "several: the whole body");
        assert_eq!(p("bytes=9-3"), Ranged::Full);
        assert_eq!(p("items=0-1"), Ranged::Full);
        assert_eq!(p("bytes=-0"), Ranged::Full);
        assert_eq!(parse(None, None, "\"t\"", 100), Ranged::Full);
        assert_eq!(
            parse(Some("bytes=0-1"), Some("\"old\""), "\"t\"", 100),
            Ranged::Full,
            "If-Range names another version"
        );
        assert_eq!(
            parse(Some("bytes=0-1"), Some("\"t\""), "\"t\"", 100),
            Ranged::Part(0..2)
        );
    }
}
