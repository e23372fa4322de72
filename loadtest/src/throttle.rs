//! A throttling TCP proxy in front of the registry: latency and bandwidth caps on loopback.
//!
//! On one machine every connection to `docker-registry` runs at memory speed,
//! so scanning is CPU-bound and adding scanners past the core count shows
//! nothing. Real registries are far away and rate their clients: the NeuVector
//! guide notes that pulling dominates a scan and that the registry's bandwidth
//! bounds throughput. This proxy puts that network back:
//!
//! - **latency**: each chunk a client sends (an HTTP request) waits this long
//!   before it is forwarded, so every request costs a round trip;
//! - **per-connection bandwidth**: registry → client bytes on one connection
//!   are paced to a rate, as a distant server's TCP window would;
//! - **total bandwidth**: all connections together share one more pacer, the
//!   registry's own limit, where adding scanners stops helping.
//!
//! It forwards bytes unchanged (TCP level, so HTTP keep-alive and chunked
//! bodies pass through as they are) and counts them: the bytes it delivered
//! are the bytes the scanners really pulled.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// How far a pacer may fall behind real time and catch up in one burst.
const BURST: Duration = Duration::from_millis(50);
/// Bytes forwarded per read.
const CHUNK: usize = 16 << 10;

/// The network the proxy imitates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throttle {
    /// Delay before each client chunk is forwarded.
    pub latency: Duration,
    /// Bytes per second, upstream → client, per connection.
    pub per_connection: Option<u64>,
    /// Bytes per second, upstream → client, over all connections.
    pub total: Option<u64>,
}

/// Byte and connection counters of a running proxy.
#[derive(Debug, Default)]
pub struct ProxyStats {
    down: AtomicU64,
    up: AtomicU64,
    connections: AtomicU64,
}

impl ProxyStats {
    /// Bytes delivered to clients (what they pulled).
    pub fn bytes_down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
    /// Bytes clients sent.
    pub fn bytes_up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }
    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// A running proxy; it stops when dropped.
pub struct ThrottleProxy {
    addr: SocketAddr,
    stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl ThrottleProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr, throttle: Throttle) -> std::io::Result<ThrottleProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ProxyStats::default());
        let total = throttle.total.map(|rate| Arc::new(Pacer::new(rate)));
        let counters = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                counters.connections.fetch_add(1, Ordering::Relaxed);
                let (counters, total) = (Arc::clone(&counters), total.clone());
                tokio::spawn(async move {
                    // A failed connection is the client's to see (its socket closes), not ours to report.
                    let _ = forward(client, upstream, throttle, total, counters).await;
                });
            }
        });
        Ok(ThrottleProxy { addr, stats, task })
    }

    /// `127.0.0.1:PORT`, for registry URLs.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }
}

impl Drop for ThrottleProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    throttle: Throttle,
    total: Option<Arc<Pacer>>,
    stats: Arc<ProxyStats>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up_stats = Arc::clone(&stats);
    let requests = async move {
        let mut buf = vec![0; CHUNK];
        loop {
            let n = client_rx.read(&mut buf).await?;
            if n == 0 {
                return server_tx.shutdown().await;
            }
            if !throttle.latency.is_zero() {
                tokio::time::sleep(throttle.latency).await;
            }
            server_tx.write_all(&buf[..n]).await?;
            up_stats.up.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    let own = throttle.per_connection.map(Pacer::new);
    let responses = async move {
        let mut buf = vec![0; CHUNK];
        loop {
            let n = server_rx.read(&mut buf).await?;
            if n == 0 {
                return client_tx.shutdown().await;
            }
            // Both pacers must allow the chunk: wait for the later of the two.
            let mut due = Instant::now();
            if let Some(p) = &own {
                due = due.max(p.reserve(n as u64));
            }
            if let Some(p) = &total {
                due = due.max(p.reserve(n as u64));
            }
            tokio::time::sleep_until(due).await;
            client_tx.write_all(&buf[..n]).await?;
            stats.down.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    // One direction ending (or failing) ends the connection.
    tokio::select! {
        r = requests => r,
        r = responses => r,
    }
}

/// Paces bytes to a rate: each reservation is given the time at which its
/// bytes may go, one after another on a virtual clock.
struct Pacer {
    rate: f64,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer { rate: rate.max(1) as f64, next: Mutex::new(Instant::now()) }
    }

    /// When `n` bytes may be sent.
    fn reserve(&self, n: u64) -> Instant {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // An idle pacer does not bank more than a short burst.
        if *next + BURST < now {
            *next = now - BURST;
        }
        let start = *next;
        *next = start + Duration::from_secs_f64(n as f64 / self.rate);
        start.max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that sends `len` bytes to every connection, then closes it.
    async fn source(len: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut one = [0u8; 1];
                    // Wait for the request (one byte), then answer.
                    s.read_exact(&mut one).await.unwrap();
                    s.write_all(&vec![7u8; len]).await.unwrap();
                });
            }
        });
        addr
    }

    async fn fetch(proxy: &ThrottleProxy) -> usize {
        let mut c = TcpStream::connect(proxy.host()).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        got.len()
    }

    // Paused time: the pacing is checked on tokio's virtual clock, exactly,
    // not against the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn per_connection_cap_paces_the_download() {
        let upstream = source(1 << 20).await;
        let throttle = Throttle { per_connection: Some(256 << 10), ..Throttle::default() };
        let proxy = ThrottleProxy::start(upstream, throttle).await.unwrap();
        let started = Instant::now();
        assert_eq!(fetch(&proxy).await, 1 << 20);
        let took = started.elapsed();
        // 1 MiB at 256 KiB/s: 4 s, less the last chunk's pacing and the burst allowance.
        assert!(took >= Duration::from_millis(3800) && took <= Duration::from_millis(4100), "{took:?}");
        assert_eq!(proxy.stats().bytes_down(), 1 << 20);
        assert_eq!(proxy.stats().bytes_up(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_cap_is_shared_and_connections_are_independent() {
        let upstream = source(512 << 10).await;
        // Per connection 512 KiB/s: alone, each download takes 1 s.
        let own_only =
            ThrottleProxy::start(upstream, Throttle { per_connection: Some(512 << 10), ..Throttle::default() })
                .await
                .unwrap();
        let started = Instant::now();
        let (a, b) = tokio::join!(fetch(&own_only), fetch(&own_only));
        assert_eq!(a + b, 1 << 20);
        let parallel = started.elapsed();
        assert!(parallel <= Duration::from_millis(1100), "two connections should not slow each other: {parallel:?}");

        // With a 512 KiB/s total, two at once take 2 s.
        let shared = ThrottleProxy::start(
            upstream,
            Throttle { per_connection: Some(512 << 10), total: Some(512 << 10), ..Throttle::default() },
        )
        .await
        .unwrap();
        let started = Instant::now();
        let (a, b) = tokio::join!(fetch(&shared), fetch(&shared));
        assert_eq!(a + b, 1 << 20);
        let capped = started.elapsed();
        assert!(capped >= Duration::from_millis(1850), "the total cap was not applied: {capped:?}");
        assert_eq!(shared.stats().connections(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_each_request() {
        let upstream = source(10).await;
        let proxy =
            ThrottleProxy::start(upstream, Throttle { latency: Duration::from_millis(300), ..Throttle::default() })
                .await
                .unwrap();
        let started = Instant::now();
        assert_eq!(fetch(&proxy).await, 10);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
