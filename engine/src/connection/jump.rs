//! ProxyJump: a session to the jump host, a `direct-tcpip` channel from it to the target, and
//! a thread that copies bytes between that channel and a local socket pair, because libssh2
//! runs a session only on a socket. The target's session gets the other end of the pair.
//!
//! The thread owns the jump host's session. It stops when the target's session closes its end
//! (the target's `SshHost` was dropped) or when the jump connection breaks, which the target's
//! session then sees as a closed socket.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use ssh2::ErrorCode;

use super::ssh::{wait_socket, Link};
use super::ConnectOptions;

/// libssh2's "try again".
const EAGAIN: i32 = -37;
const CHUNK: usize = 64 * 1024;
/// Longest single wait; the loop wakes on readiness, this is for keepalives.
const MAX_POLL: Duration = Duration::from_secs(1);
/// How long closing the channel may take once the tunnel is done.
const CLOSE_TIMEOUT_MS: u32 = 2000;

/// The forwarding thread of one tunnel. It ends by itself once either side closes; dropping
/// this does not wait for it, so a jump host that no longer answers cannot hold up play.
pub(super) struct Tunnel {
    _thread: std::thread::JoinHandle<()>,
}

/// Connects to the jump host `via` (itself possibly through its own jump host) and opens a
/// channel to `host:port` from there. Returns the socket the target's session runs on.
pub(super) fn open_tunnel(
    via: &ConnectOptions,
    host: &str,
    port: u16,
) -> Result<(UnixStream, Tunnel), String> {
    let jump = Link::open(via).map_err(|e| format!("jump host {}: {e}", via.target()))?;
    jump.session.set_blocking(true);
    jump.session
        .set_timeout(u32::try_from(via.connect_timeout.as_millis()).unwrap_or(u32::MAX));
    let channel = jump
        .session
        .channel_direct_tcpip(host, port, None)
        .map_err(|e| {
            format!(
                "jump host {} could not open a connection to {host}:{port}: {}",
                via.target(),
                e.message()
            )
        })?;
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| format!("cannot create a socket pair: {e}"))?;
    theirs
        .set_nonblocking(true)
        .map_err(|e| format!("cannot set up the tunnel socket: {e}"))?;
    let keepalive = via.keepalive;
    let thread = std::thread::Builder::new()
        .name(format!("ssh-jump-{}", via.host))
        .spawn(move || forward(jump, channel, theirs, keepalive))
        .map_err(|e| format!("cannot start the tunnel thread: {e}"))?;
    Ok((ours, Tunnel { _thread: thread }))
}

/// Copies between the channel and the local socket until one side ends.
fn forward(
    jump: Link,
    mut channel: ssh2::Channel,
    mut local: UnixStream,
    keepalive: Option<super::Keepalive>,
) {
    jump.session.set_blocking(false);
    let mut to_remote: Vec<u8> = Vec::new();
    let mut to_local: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut last_heard = Instant::now();
    let mut queued_before = false;
    loop {
        let mut progress = false;
        // Target session → jump host.
        if to_remote.is_empty() {
            match local.read(&mut buf) {
                // The target's session is gone: so is the tunnel.
                Ok(0) => break,
                Ok(n) => {
                    to_remote.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if !to_remote.is_empty() {
            match channel.write(&to_remote) {
                Ok(n) => {
                    to_remote.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        // Jump host → target session.
        if to_local.is_empty() {
            match channel.read(&mut buf) {
                Ok(0) if channel.eof() => break,
                Ok(0) => {}
                Ok(n) => {
                    to_local.extend_from_slice(&buf[..n]);
                    progress = true;
                    last_heard = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if !to_local.is_empty() {
            match local.write(&to_local) {
                Ok(n) => {
                    to_local.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if progress {
            queued_before = false;
            continue;
        }
        let queued = channel.read_window().available > 0 && to_local.is_empty();
        if queued && !queued_before {
            queued_before = true;
            continue;
        }
        queued_before = queued;
        let mut timeout = MAX_POLL;
        if let Some(keepalive) = keepalive {
            if last_heard.elapsed() > keepalive.dead_after() {
                break;
            }
            match jump.session.keepalive_send() {
                Ok(next) => timeout = timeout.min(Duration::from_secs(u64::from(next.max(1)))),
                Err(e) if e.code() == ErrorCode::Session(EAGAIN) => {}
                Err(_) => break,
            }
        }
        let mut local_flags = PollFlags::empty();
        if to_remote.is_empty() {
            local_flags |= PollFlags::IN;
        }
        if !to_local.is_empty() {
            local_flags |= PollFlags::OUT;
        }
        match wait_socket(
            &jump.session,
            jump.socket.as_fd(),
            Some((local.as_fd(), local_flags)),
            timeout,
        ) {
            Ok(true) => last_heard = Instant::now(),
            Ok(false) => {}
            Err(_) => break,
        }
    }
    // Closing our end tells the target's session the connection is gone; the jump session
    // says goodbye when `jump` drops.
    drop(local);
    jump.session.set_blocking(true);
    jump.session.set_timeout(CLOSE_TIMEOUT_MS);
    let _ = channel.close();
    drop(channel);
    drop(jump);
}
