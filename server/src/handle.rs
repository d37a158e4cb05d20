//! Running the server in the background of another program (an embedding
//! application, the integration tests): [`spawn`] binds, starts [`crate::run`] on a
//! task, and returns a handle that stops it.

use std::net::SocketAddr;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Config, ServerError, serve};

/// A server running on a background task; dropping the handle starts a
/// graceful shutdown.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

/// Binds `addr` (port 0 picks a free port) and serves on a background task.
pub async fn spawn(addr: impl ToSocketAddrs, config: Config) -> Result<ServerHandle, ServerError> {
    crate::check_config(&config)?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let http = match config.http_addr {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, http, config, async {
        let _ = stopped.await;
    }));
    Ok(ServerHandle {
        addr,
        http_addr,
        stop: Some(stop),
        task: Some(task),
    })
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the HTTP gateway, if it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Starts a graceful shutdown and waits until the server has stopped.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
