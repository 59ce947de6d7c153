//! Tiny traffic probes for tests and the dev cluster: run inside an endpoint's
//! namespace from a thread that has entered it; no external tools needed.

use crate::error::FabricError;
use crate::netns::in_netns;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// TCP and UDP echo servers on one port inside a namespace; stopped on drop.
#[derive(Debug)]
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start(netns: &str, port: u16) -> Result<Self, FabricError> {
        // `[::]` serves both families (v4 arrives v4-mapped); `0.0.0.0` where the
        // namespace has IPv6 turned off.
        let (tcp, udp) = in_netns(netns, move || {
            let bind = |addr: SocketAddr| -> std::io::Result<(TcpListener, UdpSocket)> {
                Ok((TcpListener::bind(addr)?, UdpSocket::bind(addr)?))
            };
            bind(SocketAddr::from(([0u16; 8], port)))
                .or_else(|_| bind(SocketAddr::from(([0, 0, 0, 0], port))))
        })?
        .map_err(|e| FabricError::netns(netns, "bind echo server", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        tcp.set_nonblocking(true)
            .map_err(|e| FabricError::netns(netns, "nonblocking", e))?;
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| FabricError::netns(netns, "timeout", e))?;
        let s1 = stop.clone();
        let tcp_thread = std::thread::spawn(move || {
            while !s1.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((mut conn, _)) => {
                        std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            let mut buf = [0u8; 65536];
                            while let Ok(n) = conn.read(&mut buf) {
                                if n == 0 || conn.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let s2 = stop.clone();
        let udp_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(&buf[..n], from);
                }
            }
        });
        Ok(Self {
            stop,
            threads: vec![tcp_thread, udp_thread],
        })
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A TCP connection opened from inside `netns` (usable from any thread).
pub fn tcp_connect(netns: &str, to: IpAddr, port: u16) -> Result<TcpStream, FabricError> {
    let addr = SocketAddr::new(to, port);
    in_netns(netns, move || {
        TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
    })?
    .map_err(|e| FabricError::netns(netns, "tcp connect", e))
}

/// Whether a TCP connection to the echo server works and echoes.
pub fn tcp_ok(netns: &str, to: IpAddr, port: u16) -> bool {
    let Ok(mut s) = tcp_connect(netns, to, port) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    let mut buf = [0u8; 4];
    s.write_all(b"ping").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"ping"
}

/// Whether a UDP datagram to the echo server comes back.
pub fn udp_ok(netns: &str, to: IpAddr, port: u16) -> bool {
    let addr = SocketAddr::new(to, port);
    let r = in_netns(netns, move || -> std::io::Result<bool> {
        let any: IpAddr = match to {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let s = UdpSocket::bind(SocketAddr::new(any, 0))?;
        s.set_read_timeout(Some(PROBE_TIMEOUT))?;
        s.send_to(b"ping", addr)?;
        let mut buf = [0u8; 16];
        let (n, from) = s.recv_from(&mut buf)?;
        Ok(from == addr && &buf[..n] == b"ping")
    });
    matches!(r, Ok(Ok(true)))
}

/// Whether an ICMP echo to `to` (IPv4) is answered.
pub fn ping_ok(netns: &str, to: std::net::Ipv4Addr) -> bool {
    let r = in_netns(netns, move || ping_once(to));
    matches!(r, Ok(Ok(true)))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ping_once(to: std::net::Ipv4Addr) -> std::io::Result<bool> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recvfrom, sendto,
        setsockopt, socket, sockopt,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Icmp,
    )?;
    let tv = nix::sys::time::TimeVal::new(0, 200_000);
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv)?;
    let ident = (std::process::id() as u16) ^ 0x5757;
    let mut pkt = [8u8, 0, 0, 0, 0, 0, 0, 1, b'w', b'e', b'f', b't'];
    pkt[4..6].copy_from_slice(&ident.to_be_bytes());
    let c = checksum(&pkt);
    pkt[2..4].copy_from_slice(&c.to_be_bytes());
    let dest = SockaddrIn::from(std::net::SocketAddrV4::new(to, 0));
    sendto(fd.as_raw_fd(), &pkt, &dest, MsgFlags::empty())?;
    let deadline = std::time::Instant::now() + PROBE_TIMEOUT;
    let mut buf = [0u8; 1500];
    while std::time::Instant::now() < deadline {
        let Ok((n, _)) = recvfrom::<SockaddrIn>(fd.as_raw_fd(), &mut buf) else {
            continue;
        };
        // A raw socket sees the IP header; echo reply = type 0 with our identifier from `to`.
        if n < 28 {
            continue;
        }
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let src = std::net::Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
        if src == to
            && n >= ihl + 8
            && buf[ihl] == 0
            && buf[ihl + 4..ihl + 6] == ident.to_be_bytes()
        {
            return Ok(true);
        }
    }
    Ok(false)
}
