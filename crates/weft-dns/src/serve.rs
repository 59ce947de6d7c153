//! Serving a zone over UDP and TCP, and forwarding names outside weft's domains.
//!
//! UDP is the hot path: a few blocking threads share one socket and answer each
//! datagram from the current zone without touching the async runtime (a hash lookup
//! and a copy per query). TCP (RFC 7766: length-prefixed, several queries per
//! connection) runs on tokio with a bound on connections and an idle timeout.

use crate::answer::{Reply, Transport, answer};
use crate::zone::Zone;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The zone a server answers from; replaced whole when a new view arrives.
#[derive(Debug, Clone)]
pub struct SharedZone(Arc<RwLock<Arc<Zone>>>);

impl SharedZone {
    pub fn new(zone: Zone) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(zone))))
    }

    pub fn get(&self) -> Arc<Zone> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, zone: Zone) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(zone);
    }
}

/// Bounds on what clients can make a server do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open TCP connections; more are closed at once.
    pub tcp_connections: usize,
    /// A TCP connection with no query for this long is closed.
    pub tcp_idle: Duration,
    /// Forwarded queries in flight; more get SERVFAIL.
    pub forwards_in_flight: usize,
    /// How long one recursor has to answer.
    pub forward_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tcp_connections: 256,
            tcp_idle: Duration::from_secs(10),
            forwards_in_flight: 64,
            forward_timeout: Duration::from_secs(2),
        }
    }
}

/// What a server needs besides its sockets.
#[derive(Debug, Clone)]
pub struct Service {
    pub zone: SharedZone,
    /// Where names outside weft's domains go, in order; empty: they are refused.
    pub recursors: Arc<[SocketAddr]>,
    pub limits: Limits,
    forwards: Arc<AtomicUsize>,
}

impl Service {
    pub fn new(zone: SharedZone, recursors: Vec<SocketAddr>, limits: Limits) -> Self {
        Self {
            zone,
            recursors: recursors.into(),
            limits,
            forwards: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A zone built for this service: forwarding on when it has recursors.
    pub fn prepare(&self, zone: Zone) -> Zone {
        zone.with_recursion(!self.recursors.is_empty())
    }
}

/// Answers datagrams on `socket` with `threads` blocking threads until `stop`.
pub fn spawn_udp(
    socket: UdpSocket,
    service: Service,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    // A read timeout lets the threads notice `stop`.
    socket.set_read_timeout(Some(Duration::from_millis(250)))?;
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let socket = socket.try_clone()?;
        let service = service.clone();
        let stop = stop.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("weft-dns-udp-{i}"))
                .spawn(move || udp_loop(&socket, &service, &stop))?,
        );
    }
    Ok(handles)
}

fn udp_loop(socket: &UdpSocket, service: &Service, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "dns: udp receive failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let msg = &buf[..n];
        let zone = service.zone.get();
        match answer(&zone, msg, peer.ip(), Transport::Udp, &mut out) {
            Reply::Send => {
                let _ = socket.send_to(&out, peer);
            }
            Reply::Drop => {}
            Reply::Forward => forward_udp(service, msg.to_vec(), socket, peer),
        }
    }
}

/// Forwards on a thread of its own (rare: only names outside weft's domains), within
/// the in-flight bound; over it, SERVFAIL.
fn forward_udp(service: &Service, msg: Vec<u8>, socket: &UdpSocket, peer: SocketAddr) {
    let Ok(reply_socket) = socket.try_clone() else {
        return;
    };
    if service.forwards.fetch_add(1, Ordering::AcqRel) >= service.limits.forwards_in_flight {
        service.forwards.fetch_sub(1, Ordering::AcqRel);
        let mut out = Vec::new();
        if crate::wire::bare_response(&msg, crate::wire::RCODE_SERVFAIL, &mut out) {
            let _ = reply_socket.send_to(&out, peer);
        }
        return;
    }
    let service = service.clone();
    let spawned = std::thread::Builder::new()
        .name("weft-dns-forward".into())
        .spawn(move || {
            let reply = forward(&service, &msg);
            service.forwards.fetch_sub(1, Ordering::AcqRel);
            let _ = reply_socket.send_to(&reply, peer);
        });
    if spawned.is_err() {
        tracing::warn!("dns: could not start a forwarding thread");
    }
}

/// Asks the recursors in order; the first answer with our ID wins. SERVFAIL if none.
fn forward(service: &Service, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let servfail = |out: &mut Vec<u8>| {
        crate::wire::bare_response(msg, crate::wire::RCODE_SERVFAIL, out);
    };
    if msg.len() < crate::wire::HEADER_LEN {
        return out;
    }
    // A fresh ID towards the recursor, restored in the answer: a spoofed reply would
    // have to guess it.
    let mut id = [0u8; 2];
    let _ = getrandom::fill(&mut id);
    let mut query = msg.to_vec();
    query[0..2].copy_from_slice(&id);
    for recursor in service.recursors.iter() {
        let bind: SocketAddr = match recursor.ip() {
            IpAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
            IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        if s.set_read_timeout(Some(service.limits.forward_timeout))
            .is_err()
            || s.send_to(&query, recursor).is_err()
        {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            if from == *recursor && n >= crate::wire::HEADER_LEN && buf[0..2] == id {
                buf.truncate(n);
                buf[0..2].copy_from_slice(&msg[0..2]);
                return buf;
            }
        }
        tracing::debug!(%recursor, "dns: recursor did not answer");
    }
    servfail(&mut out);
    out
}

/// Serves DNS over TCP on `listener` until `stop` turns true.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    service: Service,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "dns: tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.fetch_add(1, Ordering::AcqRel) >= service.limits.tcp_connections {
            open.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let service = service.clone();
        let open = open.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tcp_connection(stream, peer, &service, stop).await;
            open.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn tcp_connection(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    service: &Service,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut out = Vec::with_capacity(4096);
    loop {
        let mut len = [0u8; 2];
        let read = tokio::select! {
            r = tokio::time::timeout(service.limits.tcp_idle, stream.read_exact(&mut len)) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        let read = tokio::time::timeout(service.limits.tcp_idle, stream.read_exact(&mut msg)).await;
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let zone = service.zone.get();
        match answer(&zone, &msg, peer.ip(), Transport::Tcp, &mut out) {
            Reply::Send => {}
            Reply::Drop => return,
            Reply::Forward => {
                let svc = service.clone();
                match tokio::task::spawn_blocking(move || forward(&svc, &msg)).await {
                    Ok(reply) => out = reply,
                    Err(_) => return,
                }
            }
        }
        let Ok(n) = u16::try_from(out.len()) else {
            return;
        };
        if stream.write_all(&n.to_be_bytes()).await.is_err()
            || stream.write_all(&out).await.is_err()
        {
            return;
        }
    }
}
