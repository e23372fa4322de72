//! Delivering standalone results to a Trawl cluster — what NeuVector's
//! `CLUSTER_JOIN_ADDR` / `CLUSTER_JOIN_PORT` do for its standalone scanner.
//!
//! NeuVector's scanner joins the controller over gRPC; Trawl's services
//! meet on NATS instead, so "joining" means connecting to the cluster's NATS
//! server at that address and publishing the result on the results subject
//! (`trawl.results.…`), where the controller's results stream keeps it until
//! the admission-control store has it. The publish waits for JetStream's
//! acknowledgement: once it returns, the result is stored, and a missing
//! stream (no controller ever set the cluster up) is an error, not a silent
//! drop. `CLUSTER_ADVERTISED_ADDR` is carried in the result as the scanner's
//! address; NATS connections are outbound, so nothing needs to reach back.

use std::time::Duration;
use trawl_protocol::{ProtocolError, ScanResult};

/// How long to wait for the server, and then for the acknowledgement.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a result could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The NATS server could not be reached.
    #[error(
        "cannot connect to the cluster's NATS server at {server}: {reason} (check CLUSTER_JOIN_ADDR/CLUSTER_JOIN_PORT)"
    )]
    Connect {
        /// host:port, without credentials.
        server: String,
        /// What failed.
        reason: String,
    },
    /// No JetStream stream captures the results subject.
    #[error("no results stream on {server} captures {subject}: the Trawl controller has not set up this cluster (or JetStream is off)")]
    NoStream {
        /// host:port.
        server: String,
        /// The subject published to.
        subject: String,
    },
    /// The publish or its acknowledgement failed.
    #[error("publishing the result to {server} failed: {reason}")]
    Publish {
        /// host:port.
        server: String,
        /// What failed.
        reason: String,
    },
    /// The result could not be encoded.
    #[error(transparent)]
    Encode(#[from] ProtocolError),
}

/// Where results go: the cluster's NATS server.
#[derive(Clone)]
pub struct ClusterTarget {
    url: String,
    display: String,
}

impl std::fmt::Debug for ClusterTarget {
    // The URL may carry credentials (`nats://user:pass@host`): show only the server.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTarget").field("server", &self.display).finish()
    }
}

impl ClusterTarget {
    /// From NeuVector's join address and port; the address may also be a
    /// full `nats://` URL, which then wins over the port.
    pub fn from_join(addr: &str, port: u16) -> ClusterTarget {
        let addr = addr.trim();
        let url = if addr.contains("://") { addr.to_string() } else { format!("nats://{addr}:{port}") };
        let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let display = authority.rsplit_once('@').map_or(authority, |(_, host)| host).trim_end_matches('/').to_string();
        ClusterTarget { url, display }
    }

    /// The server, as shown in messages (`host:port`).
    pub fn server(&self) -> &str {
        &self.display
    }

    /// Publishes `result` and waits until JetStream has stored it.
    pub async fn publish(&self, result: &ScanResult) -> Result<u64, ClusterError> {
        let payload = result.encode()?;
        let server = self.display.clone();
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(TIMEOUT)
            .name(format!("trawl-scanner {}", result.scanner.name))
            .connect(&self.url)
            .await
            .map_err(|e| ClusterError::Connect { server: server.clone(), reason: e.to_string() })?;
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(TIMEOUT);
        let subject = result.subject();
        let publish_error = |e: async_nats::jetstream::context::PublishError| match e.kind() {
            async_nats::jetstream::context::PublishErrorKind::StreamNotFound => {
                ClusterError::NoStream { server: server.clone(), subject: subject.clone() }
            }
            _ => ClusterError::Publish { server: server.clone(), reason: e.to_string() },
        };
        let ack =
            js.publish(subject.clone(), payload.into()).await.map_err(publish_error)?.await.map_err(publish_error)?;
        // Flush and close cleanly so the server sees an orderly disconnect.
        let _ = client.drain().await;
        Ok(ack.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_address_and_port_make_a_nats_url() {
        let t = ClusterTarget::from_join("trawl-nats.trawl", 4222);
        assert_eq!((t.url.as_str(), t.server()), ("nats://trawl-nats.trawl:4222", "trawl-nats.trawl:4222"));
        let t = ClusterTarget::from_join("nats://scanner:s3cret@10.0.0.5:4333", 4222);
        assert_eq!(t.server(), "10.0.0.5:4333");
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
