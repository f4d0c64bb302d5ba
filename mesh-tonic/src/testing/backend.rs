//! [`GreeterBackend`]: one greeter replica serving on a socket until it is shut down.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use super::greeter::GreeterServer;

/// How long [`GreeterBackend::shutdown`] lets calls in flight finish before dropping the connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A greeter replica serving on a socket (a tonic server with [`GreeterServer`]). Dropping it stops the server
/// without waiting; [`shutdown`](Self::shutdown) stops it gracefully.
#[derive(Debug)]
pub struct GreeterBackend {
    address: SocketAddr,
    replica: String,
    server: GreeterServer,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl GreeterBackend {
    /// Binds `address` (port 0 picks a free port; the address is reused right after a previous replica there
    /// stopped) and serves replica `replica` on it.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start(address: SocketAddr, replica: &str) -> io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let server = GreeterServer::new(replica);
        let (stop, stopped) = oneshot::channel::<()>();
        let serve = tonic::transport::Server::builder()
            .add_service(server.clone())
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                },
            );
        Ok(Self {
            address,
            replica: replica.to_owned(),
            server,
            stop: Some(stop),
            task: Some(tokio::spawn(serve)),
        })
    }

    /// The bound address.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The replica's name.
    #[must_use]
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Calls answered so far.
    #[must_use]
    pub fn served(&self) -> u64 {
        self.server.served()
    }

    /// Stops accepting connections, tells clients to go away (HTTP/2 GOAWAY), lets calls in flight finish (up to
    /// 5 s) and closes the listening socket.
    ///
    /// # Errors
    /// The server had failed.
    pub async fn shutdown(mut self) -> Result<(), tonic::transport::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result,
            // The task panicked or was cancelled: nothing left to stop.
            Ok(Err(_)) => Ok(()),
            Err(_elapsed) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for GreeterBackend {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
