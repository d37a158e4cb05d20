//! The plain-HTTP gateway (`--http-addr`): the image store for browsers,
//! CDNs and `curl`, on the same store, admission, limits, auth, rate limits
//! and shutdown as the gRPC services (one process, one budget).
//!
//! - `GET|HEAD /v1/images/{id}[.{ext}]?op=SPEC&op=...&q=QUALITY&png=LEVEL`:
//!   the image in the format the extension names (none: as uploaded), with
//!   the operations applied; `ETag`, `Cache-Control: public,
//!   max-age=31536000, immutable`, `304` on `If-None-Match`, one byte range
//!   (`206`, [`range`]). With a signing
//!   key, `sig=` is required ([`sign`]); a valid signature stands in for the
//!   bearer token.
//! - `POST /v1/images[?filename=NAME]`: uploads the body; JSON answer.
//! - `DELETE /v1/images/{id}`: removes it and its cached results.
//! - `GET /healthz`: JSON for load balancers and people.

// Handlers return their error answer as `Err(Response)`: one per request,
// built once, so its size does not matter.
#![allow(clippy::result_large_err)]

mod health;
pub mod range;
pub mod serve;
pub mod sign;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nlimage_core::{EncodeOptions, Operation, PngCompression};
use serde_json::json;
use tokio_stream::StreamExt;

use crate::error::Error;
use crate::exec::Executor;
use crate::exec::render::RenderRequest;
use crate::gate::Gate;
use crate::jobs::Jobs;
use crate::store::{PutInfo, Store};

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct App {
    /// Pool, limits, admission, store.
    pub exec: Executor,
    /// The job queue, if the server runs jobs (for `/healthz`).
    pub jobs: Option<Jobs>,
    /// Draining, the bearer token, rate limits.
    pub gate: Gate,
    /// The URL-signing key, if GETs must be signed.
    pub signing_key: Option<Arc<[u8]>>,
    /// When the server started.
    pub started: Instant,
    /// Threads in the compute pool.
    pub workers: usize,
    /// The base of the URLs the gateway hands out (`--public-url`); without
    /// one, the address each client connected to.
    pub public_url: Option<String>,
    /// Whether the gateway serves TLS (for the URLs it hands out).
    pub https: bool,
    /// Header, body, request and render timeouts.
    pub timeouts: crate::config::HttpTimeouts,
}

/// The gateway's routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/v1/images", post(upload))
        .route("/v1/images/{file}", get(fetch).delete(remove))
        .layer(axum::middleware::from_fn(traced))
        // Shared, not cloned per request (the state is a few dozen fields).
        .with_state(Arc::new(app))
}

/// A span per HTTP request (a trace with `--otlp-endpoint`), continuing the
/// caller's `traceparent`.
async fn traced(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "http",
        otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
        http.method = %req.method(),
        trace_id = tracing::field::Empty,
    );
    crate::otel::continue_trace(&span, req.headers());
    crate::otel::record_trace_id(&span);
    next.run(req).instrument(span).await
}

/// Serves the gateway on `listener` (over TLS with `tls`) until `stop` is
/// cancelled ([`serve::serve`]: the timeouts, the graceful stop).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let timeouts = app.timeouts;
    serve::serve(listener, router(app), tls, timeouts, stop).await
}

/// The JSON answer for an error: `{"error": message, "code": category}`
/// with the category's HTTP status, a `Retry-After` where waiting helps, and
/// the flag that raises a limit (`"limit_flag"`) where there is one.
fn from_error(e: &Error) -> Response {
    let mut body = json!({ "error": e.to_string(), "code": e.code_name() });
    if let Error::TooLarge {
        flag: Some(flag), ..
    } = e
    {
        body["limit_flag"] = json!(flag);
    }
    let mut r = (e.http_status(), axum::Json(body)).into_response();
    if let Error::Stalled(_) = e {
        // The rest of a stalled body is not waited for: the connection goes.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(wait) = e.retry_after() {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

fn record(route: &'static str, status: StatusCode, started: Instant) {
    metrics::counter!("nlimage_http_requests_total", "route" => route, "status" => status.as_u16().to_string())
        .increment(1);
    metrics::histogram!("nlimage_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
}

impl App {
    fn store(&self) -> Result<&Store, Response> {
        self.exec.store().map_err(|e| from_error(&e))
    }

    /// The gate: draining, the token (unless `signed`), the verified
    /// caller's rate ([`Gate::check`]).
    fn admit(&self, headers: &HeaderMap, remote: IpAddr, signed: bool) -> Result<(), Response> {
        let auth = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        self.gate
            .check(auth, Some(remote), signed)
            .map_err(|e| from_error(&e))
    }
}

/// An operation as a URL writes it: the CLI's spec, with `:` allowed in
/// place of the first `=` (`resize:800x600:fit`, `blur:2`).
fn url_operation(spec: &str) -> Result<Operation, String> {
    let spec = if spec.contains('=') {
        spec.to_owned()
    } else {
        spec.replacen(':', "=", 1)
    };
    Operation::parse(&spec).map_err(|e| e.to_string())
}

/// What a GET's query asks for besides the image: operations (at most
/// `max_ops`), encoder options, whether to decode whole (`exact`, no
/// shrink-on-load) and whether the format is `auto`.
#[allow(clippy::type_complexity)]
fn parse_query(
    query: &str,
    max_ops: usize,
) -> Result<(Vec<Operation>, EncodeOptions, bool, bool), Error> {
    let mut ops = Vec::new();
    let mut options = EncodeOptions::default();
    // `exact`, and what the older `draft` said (draft=1 is the default now,
    // draft=0 the same as exact=1): both given must agree.
    let (mut exact, mut draft) = (None, None);
    let mut auto = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "op" if ops.len() == max_ops => {
                return Err(Error::too_large(
                    format!(
                        "more than {max_ops} operations in one request (nl-server --max-operations)"
                    ),
                    "--max-operations",
                ));
            }
            "op" => {
                ops.push(url_operation(&v).map_err(|e| Error::invalid(format!("op={v}: {e}")))?)
            }
            "q" => {
                let q = v
                    .parse::<u8>()
                    .map_err(|_| Error::invalid(format!("q={v}: use 1 to 100")))?;
                options = EncodeOptions {
                    quality: EncodeOptions::new(Some(q), options.png, options.lossless)?.quality,
                    ..options
                };
            }
            "png" => {
                options.png = PngCompression::from_name(&v).ok_or_else(|| {
                    Error::invalid(format!("png={v}: use none, fast, balanced or best"))
                })?;
            }
            "format" if v == "auto" => auto = true,
            "format" => {
                return Err(Error::invalid(format!(
                    "format={v}: name the format by the extension, or use format=auto"
                )));
            }
            "lossless" => {
                options.lossless = match &*v {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(Error::invalid(format!("lossless={v}: use 1 or 0"))),
                }
            }
            "meta" => {
                options.meta =
                    nlimage_core::codec::meta::MetaKeep::from_name(&v).ok_or_else(|| {
                        Error::invalid(format!("meta={v}: use strip, copyright or keep"))
                    })?;
            }
            "icc" => {
                options.keep_icc = match &*v {
                    "keep" => true,
                    "srgb" => false,
                    _ => return Err(Error::invalid(format!("icc={v}: use srgb or keep"))),
                }
            }
            "effort" => {
                let e = v
                    .parse::<u8>()
                    .map_err(|_| Error::invalid(format!("effort={v}: use 0 to 9")))?;
                options = options.with_effort(Some(e))?;
            }
            "progressive" => {
                options.progressive = match &*v {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(Error::invalid(format!("progressive={v}: use 1 or 0"))),
                }
            }
            "exact" => {
                exact = Some(match &*v {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(Error::invalid(format!("exact={v}: use 1 or 0"))),
                })
            }
            "draft" => {
                draft = Some(match &*v {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(Error::invalid(format!("draft={v}: use 1 or 0"))),
                })
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown query parameter '{other}': use op, q, png, lossless, progressive, effort, meta, icc, format, exact (and sig)"
                )));
            }
        }
    }
    let exact = match (exact, draft) {
        (Some(e), Some(d)) if e == d => {
            return Err(Error::invalid(format!(
                "exact={} contradicts draft={}: give exact alone",
                u8::from(e),
                u8::from(d)
            )));
        }
        (Some(e), _) => e,
        (None, Some(d)) => !d,
        (None, None) => false,
    };
    Ok((ops, options, exact, auto))
}

async fn fetch(
    State(app): State<Arc<App>>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let r = fetch_inner(&app, &file, query.as_deref().unwrap_or(""), peer, &headers).await;
    let r = r.unwrap_or_else(|e| e);
    record(
        if method == Method::HEAD {
            "HEAD /v1/images"
        } else {
            "GET /v1/images"
        },
        r.status(),
        started,
    );
    r
}

async fn fetch_inner(
    app: &App,
    file: &str,
    query: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Response, Response> {
    let (unsigned_query, sig) = sign::split_signature(query);
    let signed = match (&app.signing_key, sig) {
        (None, _) => false,
        (Some(_), None) => {
            return Err(from_error(&Error::permission_denied(
                "this server serves signed URLs only: add sig=HMAC-SHA256(key, path?query) in hex",
            )));
        }
        (Some(key), Some(sig)) => {
            let path = format!("/v1/images/{file}");
            if !sign::verify(key, &sign::message(&path, &unsigned_query), sig) {
                return Err(from_error(&Error::permission_denied(
                    "the URL's signature does not match its path and query",
                )));
            }
            true
        }
    };
    app.admit(headers, peer.ip(), signed)?;
    app.store()?;
    let (id, ext) = match file.split_once('.') {
        Some((id, ext)) => (id, ext),
        None => (file, ""),
    };
    let bad = |e: Error| from_error(&e);
    let (ops, options, exact, auto_query) =
        parse_query(&unsigned_query, app.exec.max_operations).map_err(bad)?;
    // `.auto` or `format=auto`: the format from the client's Accept header.
    let auto = (ext == "auto" || auto_query).then(|| {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        crate::exec::negotiate::accepted(accept)
    });
    let format = match (&auto, ext) {
        (Some(_), "" | "auto") => None,
        (Some(_), _) => {
            return Err(bad(Error::invalid(
                "format=auto and an extension: use one of them",
            )));
        }
        (None, ext) => nlimage::convert::output_format(ext).map_err(|e| bad(e.into()))?,
    };
    let negotiated = auto.is_some();
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let deadline = Some(tokio::time::Instant::now() + app.timeouts.render);
    let req = RenderRequest {
        id: id.to_owned(),
        format,
        auto,
        ops,
        options,
        if_none_match,
        exact,
        no_cache: false,
    };
    // Dropped with this request if the client goes away: the render then
    // stops at its next band (keeping its memory until it has).
    let rendered = app
        .exec
        .render(req, deadline)
        .await
        .map_err(|e| from_error(&e))?;
    let mut h = HeaderMap::new();
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    h.insert(header::ETAG, value(&rendered.tag));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if negotiated {
        // One URL, one variant per Accept: caches must key on it.
        h.insert(header::VARY, HeaderValue::from_static("accept"));
    }
    let Some(body) = rendered.body else {
        return Ok((StatusCode::NOT_MODIFIED, h).into_response());
    };
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(rendered.content_type),
    );
    h.insert(
        "x-nlimage-cache",
        HeaderValue::from_static(if rendered.cached { "hit" } else { "miss" }),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let len = body.len();
    match range::parse(
        text(header::RANGE),
        text(header::IF_RANGE),
        &rendered.tag,
        len,
    ) {
        range::Ranged::Full => Ok((StatusCode::OK, h, body).into_response()),
        range::Ranged::Part(r) => {
            let content_range = format!("bytes {}-{}/{len}", r.start, r.end - 1);
            h.insert(header::CONTENT_RANGE, value(&content_range));
            Ok((StatusCode::PARTIAL_CONTENT, h, body.slice(r)).into_response())
        }
        range::Ranged::Unsatisfiable => {
            h.insert(header::CONTENT_RANGE, value(&format!("bytes */{len}")));
            Ok((StatusCode::RANGE_NOT_SATISFIABLE, h).into_response())
        }
    }
}

async fn upload(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    ConnectInfo(peers): ConnectInfo<serve::Peers>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let r = async {
        app.admit(&headers, peers.remote.ip(), false)?;
        app.store()?;
        // hyper itself fails a body shorter than its Content-Length.
        let mut info = PutInfo {
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            ..PutInfo::default()
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*k {
                "filename" => info.filename = v.into_owned(),
                other => {
                    return Err(from_error(&Error::invalid(format!(
                        "unknown query parameter '{other}': use filename"
                    ))));
                }
            }
        }
        let chunks = body
            .into_data_stream()
            .map(|c| c.map_err(|e| Error::cancelled(format!("the upload broke off: {e}"))));
        let meta = app
            .exec
            .upload(info, Box::pin(chunks), None)
            .await
            .map_err(|e| from_error(&e))?;
        // Never the client's Host header: the operator's public URL, else
        // the address this connection came in on.
        let base = match &app.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!(
                "{}://{}",
                if app.https { "https" } else { "http" },
                peers.local
            ),
        };
        let url = format!("{base}/v1/images/{}.{}", meta.id, meta.format);
        Ok::<_, Response>(
            (
                StatusCode::CREATED,
                [(header::LOCATION, url.clone())],
                axum::Json(json!({
                    "id": meta.id,
                    "url": url,
                    "format": meta.format,
                    "width": meta.width,
                    "height": meta.height,
                    "bytes": meta.bytes,
                    "filename": meta.filename,
                })),
            )
                .into_response(),
        )
    }
    .await
    .unwrap_or_else(|e| e);
    record("POST /v1/images", r.status(), started);
    r
}

async fn remove(
    State(app): State<Arc<App>>,
    Path(file): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let r = async {
        app.admit(&headers, peer.ip(), false)?;
        let n = app
            .store()?
            .delete(&file)
            .await
            .map_err(|e| from_error(&e))?;
        Ok::<_, Response>(
            axum::Json(json!({ "deleted": file, "results_removed": n })).into_response(),
        )
    }
    .await
    .unwrap_or_else(|e| e);
    record("DELETE /v1/images", r.status(), started);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_operations_like_the_cli() {
        let (ops, o, exact, auto) =
            parse_query("op=resize:800x600:fit&op=blur:2&op=gray&q=70", 32).unwrap();
        assert!(!auto);
        assert!(parse_query("format=auto", 32).unwrap().3);
        assert!(parse_query("format=png", 32).is_err());
        // Shrink-on-load unless exact; the older draft says the same in
        // reverse, and contradicting it is refused rather than guessed.
        assert!(!exact);
        assert!(parse_query("op=thumbnail:9&exact=1", 32).unwrap().2);
        assert!(!parse_query("op=thumbnail:9&draft=1", 32).unwrap().2);
        assert!(parse_query("op=thumbnail:9&draft=0", 32).unwrap().2);
        assert!(parse_query("exact=1&draft=0", 32).unwrap().2);
        assert!(parse_query("exact=1&draft=1", 32).is_err());
        assert!(parse_query("draft=0&exact=0", 32).is_err());
        assert!(parse_query("draft=yes", 32).is_err());
        assert!(parse_query("exact=2", 32).is_err());
        assert_eq!(
            ops,
            [
                Operation::parse("resize=800x600:fit").unwrap(),
                Operation::parse("blur=2").unwrap(),
                Operation::Gray
            ]
        );
        assert_eq!(o.quality, Some(70));
        assert!(parse_query("lossless=1", 32).unwrap().1.lossless);
        let (ops, ..) = parse_query("op=rotate%3D90", 32).unwrap();
        assert_eq!(ops, [Operation::parse("rotate=90").unwrap()]);
        assert!(
            parse_query("op=wobble:3", 32)
                .unwrap_err()
                .to_string()
                .contains("op=wobble:3")
        );
        assert!(parse_query("q=0", 32).is_err());
        assert!(
            parse_query("size=3", 32)
                .unwrap_err()
                .to_string()
                .contains("'size'")
        );
        // Operations past the cap are refused while the query is read.
        let many = vec!["op=gray"; 33].join("&");
        assert!(matches!(
            parse_query(&many, 32),
            Err(Error::TooLarge { .. })
        ));
        assert_eq!(
            parse_query(&many[..many.len() - 8], 32).unwrap().0.len(),
            32
        );
    }

    #[test]
    fn errors_answer_with_their_category_and_a_retry_where_waiting_helps() {
        let busy = from_error(&Error::Busy("server busy: x".into()));
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        let limited = from_error(&crate::ratelimit::RateLimit::error(
            std::time::Duration::from_millis(2500),
        ));
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "3");
        let big = from_error(&Error::too_large("image is 9x9", "--max-pixels"));
        assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!big.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(
            from_error(&Error::invalid("x")).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
