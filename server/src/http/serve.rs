//! The gateway's accept loop (hyper, HTTP/1.1 and HTTP/2): TLS with the
//! server's certificate when it has one, a header timeout per connection, a
//! whole-request timeout per request, the peer's and the local address for
//! every handler, and a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpTimeouts;

/// Who is on each end of a request's connection.
#[derive(Clone, Copy, Debug)]
pub struct Peers {
    /// The client's address.
    pub remote: SocketAddr,
    /// This server's address the client connected to.
    pub local: SocketAddr,
}

/// A TLS configuration from a PEM certificate chain and key (the gRPC
/// server's), offering HTTP/2 and HTTP/1.1.
pub fn tls_config(pem: &crate::TlsPem) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&pem.key).map_err(|e| format!("the TLS key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` (over TLS with `tls`) until `stop` is
/// cancelled; then stops accepting and lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    timeouts: HttpTimeouts,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let router = router.layer(axum::middleware::from_fn_with_state(
        timeouts.request,
        request_timeout,
    ));
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A failed accept (out of descriptors, a reset) is that
                // connection's problem, not the server's.
                Err(e) => {
                    tracing::debug!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let peers = Peers {
            remote,
            local: tcp.local_addr()?,
        };
        let service = router
            .clone()
            .map_request(move |mut req: axum::extract::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peers));
                req.extensions_mut().insert(ConnectInfo(peers.remote));
                req
            });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header);
        builder.http2().timer(TokioTimer::new());
        let watch = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = TowerToHyperService::new(service);
            let served = match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                    watch.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    // The handshake is bounded by the header timeout too.
                    let stream =
                        match tokio::time::timeout(timeouts.header, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            _ => return,
                        };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watch.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = served {
                tracing::debug!("HTTP connection from {remote}: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers 408 when a request (its body included, as the handler reads it)
/// takes longer than `limit`.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => super::from_error(&crate::error::Error::Stalled(format!(
            "the request took longer than {limit:?} (nl-server --http-request-timeout)"
        ))),
    }
}
