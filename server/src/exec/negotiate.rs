//! The format a client wants, from its `Accept` header (`format=auto`): the
//! most compact format it says it takes -- AVIF where accepted (Chromium,
//! Firefox and Safari send `image/avif` with their image requests), else
//! WebP, else JPEG, or PNG for an image with alpha. A bare `*/*` or
//! `image/*` is not taken as a promise to decode AVIF or WebP: such clients
//! get JPEG or PNG, which everything reads.

use nlimage_core::OutputFormat;

/// The media types `accept` lists with a non-zero quality, lowercase.
pub fn accepted(accept: &str) -> Vec<String> {
    accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (!media.is_empty() && !refused).then_some(media)
        })
        .collect()
}

/// The format for a client that accepts `accepted` (media types, as
/// [`accepted`] gives them), for an image with or without alpha.
pub fn choose(accepted: &[String], alpha: bool) -> OutputFormat {
    let takes = |m: &str| accepted.iter().any(|a| a == m);
    if takes("image/avif") {
        OutputFormat::Avif
    } else if takes("image/webp") {
        OutputFormat::WebP
    } else if alpha {
        OutputFormat::Png
    } else {
        OutputFormat::Jpeg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_avif_or_webp_and_others_what_everything_reads() {
        let chromium = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(choose(&accepted(chromium), false), OutputFormat::Avif);
        assert_eq!(choose(&accepted(chromium), true), OutputFormat::Avif);
        let old = "image/webp,*/*";
        assert_eq!(choose(&accepted(old), false), OutputFormat::WebP);
        let no_avif = "image/avif;q=0,image/webp";
        assert_eq!(choose(&accepted(no_avif), true), OutputFormat::WebP);
        assert_eq!(choose(&accepted("*/*"), false), OutputFormat::Jpeg);
        assert_eq!(choose(&accepted("*/*"), true), OutputFormat::Png);
        assert_eq!(choose(&accepted(""), false), OutputFormat::Jpeg);
        // Refused with q=0.
        let no_webp = "image/webp;q=0, image/jpeg";
        assert_eq!(choose(&accepted(no_webp), false), OutputFormat::Jpeg);
        assert_eq!(accepted(" IMAGE/WebP ; q=0.5"), ["image/webp"]);
    }
}
