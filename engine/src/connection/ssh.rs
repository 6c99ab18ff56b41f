//! `SshHost`: the `ssh` connection on libssh2. One session per host, opened once and used by
//! every task.
//!
//! Commands run as `/bin/sh -c '<Cmd::to_shell()>'`, so a command means on a target exactly
//! what it means to [`modules::local::LocalHost`] and to Ansible, which wraps its commands the
//! same way, whatever the login shell is. That line goes to a `/bin/sh` the session keeps
//! running on a channel of its own (see [`Shell`]), which starts it as a child with its
//! stdin from `/dev/null` (or exactly the command's stdin bytes, through `head -c`) and
//! then prints the exit status after a random marker on stdout and stderr. A new exec
//! channel per command (sshd runs `$SHELL -c <string>`) costs the target a session setup in
//! sshd and a login shell start every time: 4.3 ms of target CPU per command against 0.9 ms
//! through the kept shell (OpenSSH 9.2, bash login shell, 2-core VM), and the target's CPU is
//! what a run over many hosts waits for. A server that will not start the shell, or has no
//! `head -c` for stdin, gets an exec channel per command as before.
//!
//! One difference to a channel per command, on purpose: a command is done when it exits,
//! not when every process it left in the background has closed its stdout/stderr (that is
//! when ssh would return). Such a process's later output is dropped before the next command.
//!
//! While a command runs the session is non-blocking and one loop feeds stdin and drains
//! stdout and stderr, so a command that fills one stream while we wait on the other cannot
//! deadlock. Handshake, authentication and SFTP run blocking, bounded by timeouts.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use modules::{Cmd, FileAttrs, Host, HostError, Output};
use rand::Rng as _;
use ssh2::{Channel, ErrorCode, MethodType, OpenFlags, OpenType, Session, Sftp};

use super::{host_keys, jump, AddressFamily, ConnectOptions, Keepalive};

/// libssh2's "try again" (`LIBSSH2_ERROR_EAGAIN`) in non-blocking mode.
const EAGAIN: i32 = -37;
/// libssh2 errors after which the session is unusable: socket, protocol, crypto, timeouts.
/// (SOCKET_NONE, BANNER_RECV, BANNER_SEND, INVALID_MAC, KEX_FAILURE, SOCKET_SEND,
/// KEY_EXCHANGE_FAILURE, TIMEOUT, DECRYPT, SOCKET_DISCONNECT, PROTO, CHANNEL_OUTOFORDER,
/// ZLIB, SOCKET_TIMEOUT, COMPRESS, SOCKET_RECV, ENCRYPT, BAD_SOCKET.)
const TRANSPORT_ERRORS: &[i32] = &[
    -1, -2, -3, -4, -5, -7, -8, -9, -12, -13, -14, -20, -29, -30, -40, -43, -44, -45,
];
/// SFTP status codes that mean the connection is gone (NO_CONNECTION, CONNECTION_LOST).
const SFTP_CONNECTION_ERRORS: &[i32] = &[6, 7];
/// Longest single wait for the socket; a safety net only, the loops wake on readiness.
const MAX_POLL: Duration = Duration::from_secs(1);
/// How long a goodbye may take when a connection is dropped.
const DISCONNECT_TIMEOUT_MS: u32 = 2000;
const IO_CHUNK: usize = 64 * 1024;
/// Bytes read from a channel at a time. SSH packets carry at most 32 KiB, and 50 hosts'
/// commands run at once: a small buffer on the stack, not 64 KiB allocated per command.
const READ_CHUNK: usize = 16 * 1024;
/// Bound for removing a temp file after a broken transfer.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The `ssh` connection to one host.
pub struct SshHost {
    options: ConnectOptions,
    link: Option<Link>,
}

impl SshHost {
    /// Connects, checks the host key and authenticates; the errors say why a host cannot be
    /// reached (name, address, reason) and are meant for an UNREACHABLE result.
    pub fn connect(options: ConnectOptions) -> Result<SshHost, String> {
        let link = Link::open(&options).map_err(|e| connect_failed(&options, &e))?;
        Ok(SshHost {
            options,
            link: Some(link),
        })
    }

    /// The open link, reconnecting if an earlier failure dropped it.
    fn link(&mut self) -> Result<&mut Link, HostError> {
        if self.link.is_none() {
            let link = Link::open(&self.options)
                .map_err(|e| HostError::Unreachable(connect_failed(&self.options, &e)))?;
            self.link = Some(link);
        }
        match self.link.as_mut() {
            Some(link) => Ok(link),
            None => Err(HostError::Unreachable("no ssh connection".into())),
        }
    }

    /// Runs `op` on the link. A link that turns out dead before anything was sent (the host
    /// rebooted, the network dropped an idle connection) is opened again, once.
    fn with_link<T>(
        &mut self,
        op: impl Fn(&mut Link, &ConnectOptions) -> Result<T, Failure>,
    ) -> Result<T, HostError> {
        let was_open = self.link.is_some();
        let options = self.options.clone();
        let first = op(self.link()?, &options);
        let result = match first {
            Err(Failure::Stale(_)) if was_open => {
                self.link = None;
                op(self.link()?, &options)
            }
            other => other,
        };
        result.map_err(|failure| {
            if failure.is_lost() {
                // Whatever broke, the next use starts over with a new connection.
                self.link = None;
            }
            failure.into_host_error(&options)
        })
    }
}

impl SshHost {
    /// The connection broke mid-transfer: the destination is intact, and a fresh connection
    /// removes the partial temp file if the host still answers (best effort).
    fn remove_left_behind(&mut self, temp: &str) {
        if let Ok(mut link) = Link::open(&self.options) {
            let rm = Cmd::argv(&["rm", "-f", "--", temp]);
            let _ = link.run(&rm, None, Some(CLEANUP_TIMEOUT));
        }
    }
}

fn connect_failed(options: &ConnectOptions, reason: &str) -> String {
    format!(
        "Failed to connect to the host via ssh: {}: {reason}",
        options.target()
    )
}

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.options.name
    }

    fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError> {
        self.with_link(|link, options| link.run(cmd, cmd.stdin_data(), options.command_timeout))
    }

    fn put(&mut self, data: &[u8], dest: &str, attrs: &FileAttrs) -> Result<(), HostError> {
        let left_behind = RefCell::new(None);
        let result =
            self.with_link(|link, options| link.upload(data, dest, attrs, options, &left_behind));
        if let (Err(HostError::Unreachable(_)), Some(temp)) = (&result, left_behind.take()) {
            self.remove_left_behind(&temp);
        }
        result
    }

    fn put_new(&mut self, data: &[u8], path: &str, mode: u32) -> Result<(), HostError> {
        let left_behind = RefCell::new(None);
        let result = self
            .with_link(|link, options| link.upload_new(data, path, mode, options, &left_behind));
        if let (Err(HostError::Unreachable(_)), Some(temp)) = (&result, left_behind.take()) {
            self.remove_left_behind(&temp);
        }
        result
    }

    fn get(&mut self, path: &str) -> Result<Vec<u8>, HostError> {
        self.with_link(|link, options| link.download(path, options))
    }
}

/// What sshd gets: `/bin/sh -c <the command>`, quoted by `Cmd` like every command.
fn login_shell_command(cmd: &Cmd) -> String {
    Cmd::argv(&["/bin/sh", "-c", &cmd.to_shell()]).to_shell()
}

/// What the kept shell (itself `/bin/sh`) runs for `cmd`. A module's own script runs in a
/// subshell of it (`( eval '<script>' )`): the same shell and a fresh process, without
/// starting `/bin/sh` again (0.35 ms of target CPU per command against 0.9 ms); nothing in
/// those scripts asks for what differs (`$$` and `$0` are the kept shell's). Anything else
/// (a program and its arguments, a user's shell text, a become wrapper) is
/// `/bin/sh -c '<command>'`, exactly what it is elsewhere.
fn shell_command(cmd: &Cmd) -> String {
    if cmd.is_module_script() {
        format!("( eval {} )", modules::quote(&cmd.to_shell()))
    } else {
        login_shell_command(cmd)
    }
}

/// Why [`Link::retry`] stopped: libssh2 failed, or waiting did (timeout, dead server).
enum Retry {
    Failed(ssh2::Error),
    Gave(Failure),
}

impl Retry {
    /// A libssh2 failure described by `describe`; a failed wait as it is.
    fn into_failure(self, describe: impl FnOnce(ssh2::Error) -> Failure) -> Failure {
        match self {
            Retry::Failed(e) => describe(e),
            Retry::Gave(failure) => failure,
        }
    }
}

/// Why an operation on an open link failed.
#[derive(Debug)]
enum Failure {
    /// The link failed before the operation started: worth one reconnect.
    Stale(String),
    /// The connection broke (or timed out) during the operation.
    Lost(String),
    /// The host answered with an error (no such file, permission denied).
    Remote(String),
}

impl Failure {
    /// A stale link found after something was already done is simply lost: retrying the
    /// whole operation on a new connection would not be the same operation.
    fn after_side_effects(self) -> Failure {
        match self {
            Failure::Stale(reason) => Failure::Lost(reason),
            other => other,
        }
    }

    fn is_lost(&self) -> bool {
        matches!(self, Failure::Stale(_) | Failure::Lost(_))
    }

    fn into_host_error(self, options: &ConnectOptions) -> HostError {
        match self {
            Failure::Stale(reason) | Failure::Lost(reason) => HostError::Unreachable(format!(
                "Failed to talk to the host via ssh: the connection to {} broke: {reason}",
                options.target()
            )),
            Failure::Remote(message) => HostError::Transfer(message),
        }
    }
}

fn is_eagain(error: &ssh2::Error) -> bool {
    error.code() == ErrorCode::Session(EAGAIN)
}

fn is_transport_error(error: &ssh2::Error) -> bool {
    match error.code() {
        ErrorCode::Session(code) => TRANSPORT_ERRORS.contains(&code),
        ErrorCode::SFTP(code) => SFTP_CONNECTION_ERRORS.contains(&code),
    }
}

/// The socket a session runs on: TCP, or one end of the socket pair bridged to a jump host.
pub(super) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn try_clone(&self) -> io::Result<Socket> {
        Ok(match self {
            Socket::Tcp(s) => Socket::Tcp(s.try_clone()?),
            Socket::Unix(s) => Socket::Unix(s.try_clone()?),
        })
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
        }
    }
}

/// Waits until `fd` is ready for what libssh2 waits on (`session.block_directions()`), or
/// `timeout`. Returns whether data came in.
pub(super) fn wait_socket(
    session: &Session,
    fd: BorrowedFd<'_>,
    extra: Option<(BorrowedFd<'_>, rustix::event::PollFlags)>,
    timeout: Duration,
) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut flags = PollFlags::IN;
    if matches!(
        session.block_directions(),
        ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
    ) {
        flags |= PollFlags::OUT;
    }
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    let mut fds = vec![PollFd::from_borrowed_fd(fd, flags)];
    if let Some((other, other_flags)) = extra {
        fds.push(PollFd::from_borrowed_fd(other, other_flags));
    }
    match poll(&mut fds, Some(&timeout)) {
        Ok(_) => Ok(fds[0]
            .revents()
            .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What the kept shell is started with (through the login shell, as sshd starts everything).
const SHELL_COMMAND: &str = "exec /bin/sh";

/// The `/bin/sh` a session keeps running for its commands: each command is one line written
/// to its stdin (module docs). Its stdout and stderr are the commands' own, up to the marker
/// lines the shell prints after each command.
struct Shell {
    channel: Channel,
    /// Whether `head -c` works on the target, which commands with stdin need; unknown
    /// until the first such command, which checks.
    head: Option<bool>,
}

/// Where the kept shell is with a command that has stdin.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// The shell says when it has parsed the line: bytes sent earlier could be read ahead
    /// into its parser instead of reaching `head`.
    AwaitReady,
    Feeding,
    /// No stdin, or all of it sent (or the shell has no `head -c`).
    Done,
}

/// An open, authenticated session and what hangs on it.
pub(super) struct Link {
    /// The kept shell, started on first use and again after it ended.
    shell: Option<Shell>,
    /// The server would not start the shell: every command gets an exec channel.
    shell_refused: bool,
    /// The SFTP subsystem, opened on first use and kept (one channel).
    sftp: Option<Arc<Sftp>>,
    /// The server refused the SFTP subsystem: transfers go through `cat` instead.
    sftp_missing: bool,
    pub(super) session: Session,
    /// A second handle on the session's socket, to wait on.
    pub(super) socket: Socket,
    keepalive: Option<Keepalive>,
    /// When the server was last heard from (ServerAliveCountMax).
    last_heard: Instant,
    /// The forwarding thread when this session runs through a jump host.
    _tunnel: Option<jump::Tunnel>,
}

impl Link {
    /// TCP (or a jump host's tunnel), handshake, host key check, authentication.
    pub(super) fn open(options: &ConnectOptions) -> Result<Link, String> {
        let (socket, tunnel) = match &options.via {
            Some(via) => {
                let (stream, tunnel) = jump::open_tunnel(via, &options.host, options.port)?;
                (Socket::Unix(stream), Some(tunnel))
            }
            None => (Socket::Tcp(tcp_connect(options)?), None),
        };
        let poll_socket = socket
            .try_clone()
            .map_err(|e| format!("cannot duplicate the socket: {e}"))?;
        let mut session = Session::new().map_err(|e| format!("cannot start libssh2: {e}"))?;
        session.set_tcp_stream(socket);
        session.set_blocking(true);
        session.set_timeout(millis(options.connect_timeout));
        session.set_compress(options.compression);
        prefer_known_host_key_types(&session, options);
        session.handshake().map_err(|e| {
            if e.code() == ErrorCode::Session(-9) {
                format!(
                    "timed out after {} s during the SSH handshake",
                    options.connect_timeout.as_secs()
                )
            } else {
                format!("SSH handshake failed: {}", e.message())
            }
        })?;
        let (key, _) = session
            .host_key()
            .ok_or_else(|| "the server sent no host key".to_string())?;
        host_keys::verify(options, key)?;
        authenticate(&session, options)?;
        if let Some(keepalive) = options.keepalive {
            let seconds =
                u32::try_from(keepalive.effective_interval().as_secs()).unwrap_or(u32::MAX);
            session.set_keepalive(true, seconds);
        }
        Ok(Link {
            shell: None,
            shell_refused: false,
            sftp: None,
            sftp_missing: false,
            session,
            socket: poll_socket,
            keepalive: options.keepalive,
            last_heard: Instant::now(),
            _tunnel: tunnel,
        })
    }

    /// How long one blocking libssh2 call may wait: the command timeout, else the time after
    /// which keepalives would declare the server dead, else forever (as OpenSSH waits).
    fn blocking_timeout(&self, options: &ConnectOptions) -> u32 {
        let dead_after = self.keepalive.map(|k| k.dead_after());
        match (options.command_timeout, dead_after) {
            (Some(a), Some(b)) => millis(a.min(b)),
            (Some(t), None) | (None, Some(t)) => millis(t),
            (None, None) => 0,
        }
    }

    /// Waits for the socket (non-blocking mode), sending keepalives when due. Fails when the
    /// deadline passed or the server stopped answering keepalives.
    fn wait(&mut self, deadline: Option<Instant>, extra_wake: bool) -> Result<(), Failure> {
        let now = Instant::now();
        let mut timeout = MAX_POLL;
        if let Some(deadline) = deadline {
            if now >= deadline {
                return Err(Failure::Lost(
                    "the command did not finish within ansible_command_timeout".into(),
                ));
            }
            timeout = timeout.min(deadline - now);
        }
        if let Some(keepalive) = self.keepalive {
            let silent = now.saturating_duration_since(self.last_heard);
            if silent > keepalive.dead_after() {
                return Err(Failure::Lost(format!(
                    "no answer from the server for {} s (ServerAliveInterval {} s, ServerAliveCountMax {})",
                    silent.as_secs(),
                    keepalive.interval.as_secs(),
                    keepalive.count_max
                )));
            }
            match self.session.keepalive_send() {
                Ok(next) => timeout = timeout.min(Duration::from_secs(u64::from(next.max(1)))),
                Err(e) if is_eagain(&e) => {}
                Err(e) => return Err(Failure::Lost(e.message().to_string())),
            }
        }
        if extra_wake {
            return Ok(());
        }
        match wait_socket(&self.session, self.socket.as_fd(), None, timeout) {
            Ok(true) => {
                self.last_heard = Instant::now();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(Failure::Lost(format!("waiting for the socket: {e}"))),
        }
    }

    /// Repeats a non-blocking libssh2 call until it stops saying "try again".
    fn retry<T>(
        &mut self,
        deadline: Option<Instant>,
        mut call: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<T, Retry> {
        loop {
            match call() {
                Ok(value) => return Ok(value),
                Err(e) if is_eagain(&e) => self.wait(deadline, false).map_err(Retry::Gave)?,
                Err(e) => return Err(Retry::Failed(e)),
            }
        }
    }

    /// Runs one command through the kept shell, or on an exec channel of its own when the
    /// shell cannot take it. `stdin`: the bytes the command reads (not `cmd`'s own).
    fn run(
        &mut self,
        cmd: &Cmd,
        stdin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Output, Failure> {
        if !self.shell_refused {
            if let Some(out) = self.run_in_shell(&shell_command(cmd), stdin, timeout)? {
                return Ok(out);
            }
        }
        self.run_channel(&login_shell_command(cmd), stdin, timeout)
    }

    /// A new session channel running `command` (non-blocking mode).
    fn open_channel(
        &mut self,
        deadline: Option<Instant>,
        command: &str,
    ) -> Result<Channel, Failure> {
        let session = self.session.clone();
        let mut channel = self
            .retry(deadline, || session.channel_session())
            .map_err(|r| {
                r.into_failure(|e| {
                    if is_transport_error(&e) {
                        Failure::Stale(e.message().to_string())
                    } else {
                        Failure::Lost(format!("cannot open a channel: {}", e.message()))
                    }
                })
            })?;
        self.retry(deadline, || channel.exec(command))
            .map_err(|r| {
                r.into_failure(|e| {
                    if is_transport_error(&e) {
                        Failure::Lost(format!("cannot start the command: {}", e.message()))
                    } else {
                        Failure::Remote(format!("cannot start the command: {}", e.message()))
                    }
                })
            })?;
        Ok(channel)
    }

    /// Runs one command through the kept shell, starting the shell if needed. `None`: this
    /// command needs an exec channel (no shell on this server, or stdin without `head -c`).
    fn run_in_shell(
        &mut self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Option<Output>, Failure> {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.session.set_blocking(false);
        self.last_heard = Instant::now();
        let mut buf = [0u8; READ_CHUNK];
        // A shell that ended since the last command (killed from outside) is replaced; what
        // background processes printed since then is nobody's output.
        if let Some(shell) = self.shell.as_mut() {
            let mut stale = Vec::new();
            let gone = drain(&mut shell.channel.stream(0), &mut stale, &mut buf)
                .and_then(|_| drain(&mut shell.channel.stderr(), &mut stale, &mut buf))
                .is_err()
                || shell.channel.eof();
            if gone {
                self.shell = None;
            }
        }
        let mut shell = match self.shell.take() {
            Some(shell) => shell,
            None => match self.open_channel(deadline, SHELL_COMMAND) {
                Ok(channel) => Shell {
                    channel,
                    head: None,
                },
                Err(Failure::Remote(_)) => {
                    // The server runs no commands this way (a subsystem-only account, say):
                    // say so through the command's own exec channel.
                    self.shell_refused = true;
                    return Ok(None);
                }
                Err(other) => return Err(other),
            },
        };
        let input = stdin.filter(|data| !data.is_empty());
        if input.is_some() && shell.head == Some(false) {
            self.shell = Some(shell);
            return Ok(None);
        }
        let nonce = random_suffix();
        let line = shell_line(command, input.map(<[u8]>::len), shell.head, &nonce);
        let marker = format!("\0P{nonce}:").into_bytes();
        let err_marker = format!("\0P{nonce}\n").into_bytes();

        let mut sent = 0;
        while sent < line.len() {
            match shell.channel.write(&line.as_bytes()[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(deadline, false)?,
                // Nothing reached the shell yet: the connection was found dead, worth one
                // reconnect; a line cut midway may have run.
                Err(e) if sent == 0 => return Err(Failure::Stale(e.to_string())),
                Err(e) => return Err(Failure::Lost(format!("sending the command: {e}"))),
            }
        }

        let input = input.unwrap_or(&[]);
        let mut feed = if input.is_empty() {
            Feed::Done
        } else {
            Feed::AwaitReady
        };
        let mut fed = 0;
        let mut no_head = false;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        // Where the markers are searched from next (everything before was searched).
        let (mut out_from, mut err_from) = (0, 0);
        let mut status: Option<(usize, i32)> = None;
        let mut err_end: Option<usize> = None;
        let mut queued_before = false;
        loop {
            let mut progress = false;
            if feed == Feed::Feeding {
                let end = input.len().min(fed + IO_CHUNK);
                match shell.channel.write(&input[fed..end]) {
                    Ok(n) => {
                        fed += n;
                        progress |= n > 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(Failure::Lost(format!("sending stdin: {e}"))),
                }
                if fed == input.len() {
                    feed = Feed::Done;
                }
            }
            progress |= drain(&mut shell.channel.stream(0), &mut stdout, &mut buf)?;
            progress |= drain(&mut shell.channel.stderr(), &mut stderr, &mut buf)?;
            if progress {
                self.last_heard = Instant::now();
            }
            if feed == Feed::AwaitReady {
                if let Some((_, end, word)) = find_marker(&stdout, 0, &marker).ok().flatten() {
                    // Whatever came before the shell's answer is not this command's.
                    stdout.drain(..end);
                    match word.as_str() {
                        "R" => {
                            shell.head = Some(true);
                            feed = Feed::Feeding;
                        }
                        _ => {
                            shell.head = Some(false);
                            no_head = true;
                            feed = Feed::Done;
                        }
                    }
                    progress = true;
                }
            }
            if feed == Feed::Done && status.is_none() {
                match find_marker(&stdout, out_from, &marker) {
                    Ok(Some((at, _, word))) => {
                        let code = word.parse::<i32>().map_err(|_| {
                            Failure::Lost(format!("the shell reported a status of {word:?}"))
                        })?;
                        status = Some((at, code));
                    }
                    Ok(None) => out_from = stdout.len().saturating_sub(marker.len()),
                    Err(incomplete) => out_from = incomplete,
                }
            }
            if err_end.is_none() {
                match find_bytes(&stderr, err_from, &err_marker) {
                    Some(at) => err_end = Some(at),
                    None => err_from = stderr.len().saturating_sub(err_marker.len()),
                }
            }
            if let (Some((at, code)), Some(err_at)) = (status, err_end) {
                stdout.truncate(at);
                stderr.truncate(err_at);
                self.shell = Some(shell);
                if no_head {
                    return Ok(None);
                }
                return Ok(Some(Output {
                    status: code,
                    stdout,
                    stderr,
                }));
            }
            if shell.channel.eof() {
                // The shell itself ended (the command killed its process group, say): its
                // own exit is the command's, as with a channel of its own.
                let mut channel = shell.channel;
                return self
                    .finish(&mut channel, deadline, stdout, stderr)
                    .map(Some);
            }
            if progress {
                queued_before = false;
            } else {
                let queued = shell.channel.read_window().available > 0;
                self.wait(deadline, queued && !queued_before)?;
                queued_before = queued;
            }
        }
    }

    /// Runs one command on a new channel: stdin written then EOF, stdout and stderr read
    /// together, the channel closed, the exit status (128 + n for signal n) returned.
    fn run_channel(
        &mut self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Output, Failure> {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.session.set_blocking(false);
        self.last_heard = Instant::now();
        let mut channel = self.open_channel(deadline, command)?;

        let input = stdin.unwrap_or(&[]);
        let mut written = 0;
        let mut input_done = false;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut buf = [0u8; READ_CHUNK];
        // Whether the last round found data queued in libssh2 yet read none: then the socket
        // is waited on after all, so that a miscount cannot spin.
        let mut queued_before = false;
        loop {
            let mut progress = false;
            if !input_done {
                if written < input.len() {
                    let end = input.len().min(written + IO_CHUNK);
                    match channel.write(&input[written..end]) {
                        Ok(n) => {
                            written += n;
                            progress |= n > 0;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        // The command closed its stdin or ended: the rest is not wanted. A
                        // broken connection shows up on the reads below.
                        Err(_) => input_done = true,
                    }
                } else {
                    match channel.send_eof() {
                        Ok(()) => {
                            input_done = true;
                            progress = true;
                        }
                        Err(e) if is_eagain(&e) => {}
                        Err(_) => input_done = true,
                    }
                }
            }
            progress |= drain(&mut channel.stream(0), &mut stdout, &mut buf)?;
            progress |= drain(&mut channel.stderr(), &mut stderr, &mut buf)?;
            if progress {
                self.last_heard = Instant::now();
            }
            if channel.eof() {
                break;
            }
            if progress {
                queued_before = false;
            } else {
                // Data libssh2 already took off the socket does not make it readable again.
                let queued = channel.read_window().available > 0;
                self.wait(deadline, queued && !queued_before)?;
                queued_before = queued;
            }
        }
        self.finish(&mut channel, deadline, stdout, stderr)
    }

    /// Closes the channel and collects the exit status.
    fn finish(
        &mut self,
        channel: &mut Channel,
        deadline: Option<Instant>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) -> Result<Output, Failure> {
        let lost = |r: Retry| {
            r.into_failure(|e| Failure::Lost(format!("closing the channel: {}", e.message())))
        };
        self.retry(deadline, || channel.close()).map_err(lost)?;
        self.retry(deadline, || channel.wait_close())
            .map_err(lost)?;
        let status = match channel.exit_signal() {
            Ok(ssh2::ExitSignal {
                exit_signal: Some(name),
                ..
            }) => 128 + signal_number(&name),
            _ => channel.exit_status().unwrap_or(-1),
        };
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// The SFTP subsystem, opened once; `None` when the server has none.
    fn sftp(&mut self, options: &ConnectOptions) -> Result<Option<Arc<Sftp>>, Failure> {
        if self.sftp_missing {
            return Ok(None);
        }
        if self.sftp.is_none() {
            self.session.set_blocking(true);
            self.session.set_timeout(self.blocking_timeout(options));
            match self.session.sftp() {
                Ok(sftp) => self.sftp = Some(Arc::new(sftp)),
                Err(e) if is_transport_error(&e) => {
                    return Err(Failure::Stale(e.message().to_string()))
                }
                Err(_) => {
                    self.sftp_missing = true;
                    return Ok(None);
                }
            }
        }
        Ok(self.sftp.clone())
    }

    /// SFTP into a 0600 temp file beside `dest`, then one command sets the attributes and
    /// renames it over `dest`: a connection lost midway leaves `dest` as it was.
    fn upload(
        &mut self,
        data: &[u8],
        dest: &str,
        attrs: &FileAttrs,
        options: &ConnectOptions,
        left_behind: &RefCell<Option<String>>,
    ) -> Result<(), Failure> {
        let Some(sftp) = self.sftp(options)? else {
            return self.upload_through_shell(data, dest, attrs, options);
        };
        self.session.set_blocking(true);
        self.session.set_timeout(self.blocking_timeout(options));
        let dir = modules::cmd::parent_dir(dest);
        let temp = format!(
            "{}/.play-tmp-{}",
            dir.trim_end_matches('/'),
            random_suffix()
        );
        write_new_file(&sftp, data, &temp, dest, attrs.mode, left_behind)?;
        let script = modules::cmd::finish_upload_script(&temp, dest, attrs, true);
        let out = self
            .run(&Cmd::script(script), None, options.command_timeout)
            // The data is already uploaded: no silent retry from the start.
            .map_err(Failure::after_side_effects)?;
        // The script removes the temp file itself when it fails.
        left_behind.replace(None);
        if out.success() {
            Ok(())
        } else {
            Err(Failure::Remote(format!(
                "writing {dest} failed: {}",
                out.stderr_str().trim()
            )))
        }
    }

    /// [`Host::put_new`] over SFTP: the data into a new file at `path`, given `mode`, and no
    /// command.
    fn upload_new(
        &mut self,
        data: &[u8],
        path: &str,
        mode: u32,
        options: &ConnectOptions,
        left_behind: &RefCell<Option<String>>,
    ) -> Result<(), Failure> {
        let Some(sftp) = self.sftp(options)? else {
            let attrs = FileAttrs {
                mode: Some(mode),
                ..FileAttrs::default()
            };
            return self.upload_through_shell(data, path, &attrs, options);
        };
        self.session.set_blocking(true);
        self.session.set_timeout(self.blocking_timeout(options));
        write_new_file(&sftp, data, path, path, Some(mode), left_behind)
    }

    /// Without SFTP: the data goes to `atomic_write_script` on stdin, as the local connection does.
    fn upload_through_shell(
        &mut self,
        data: &[u8],
        dest: &str,
        attrs: &FileAttrs,
        options: &ConnectOptions,
    ) -> Result<(), Failure> {
        let script = modules::cmd::atomic_write_script(dest, attrs);
        let out = self.run(&Cmd::script(script), Some(data), options.command_timeout)?;
        if out.success() {
            Ok(())
        } else {
            Err(Failure::Remote(format!(
                "writing {dest} failed: {}",
                out.stderr_str().trim()
            )))
        }
    }

    /// Reads a whole file over SFTP (`cat` when the server has no SFTP).
    fn download(&mut self, path: &str, options: &ConnectOptions) -> Result<Vec<u8>, Failure> {
        let Some(sftp) = self.sftp(options)? else {
            let out = self.run(
                &Cmd::argv(&["cat", "--", path]),
                None,
                options.command_timeout,
            )?;
            return if out.success() {
                Ok(out.stdout)
            } else {
                Err(Failure::Remote(format!(
                    "reading {path} failed: {}",
                    out.stderr_str().trim()
                )))
            };
        };
        self.session.set_blocking(true);
        self.session.set_timeout(self.blocking_timeout(options));
        let mut file = sftp
            .open(Path::new(path))
            .map_err(|e| transfer_error(e, &format!("reading {path} failed")))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| io_failure(e, &format!("reading {path} failed")))?;
        Ok(data)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Say goodbye without waiting long for a host that may be gone.
        self.session.set_blocking(true);
        self.session.set_timeout(DISCONNECT_TIMEOUT_MS);
        self.shell = None;
        self.sftp = None;
        let _ = self
            .session
            .disconnect(Some(ssh2::ByApplication), "play is done", None);
    }
}

/// The line that runs `command` in the kept shell, then prints `\0P<nonce>:<status>\n` on
/// stdout and `\0P<nonce>\n` on stderr. Without stdin the command reads `/dev/null`. With
/// `stdin_len` bytes the shell first prints `\0P<nonce>:R\n` (ready: the line is parsed,
/// so the bytes sent next reach `head` and not the shell's parser), and `head -c` hands
/// exactly those bytes to the command; `cat` reads what the command left, so nothing is
/// left for the shell to take for a command. Where `head -c` may be missing (not checked
/// yet) the shell checks first and prints `\0P<nonce>:N\n` if it is.
fn shell_line(command: &str, stdin_len: Option<usize>, head: Option<bool>, nonce: &str) -> String {
    let mark = format!("'\\000P{nonce}:");
    let body = match stdin_len {
        None => format!("{command} </dev/null"),
        Some(len) => {
            let run = format!(
                "printf {mark}R\\n'; head -c {len} | ( {command}; __s=$?; cat >/dev/null; exit $__s )"
            );
            match head {
                Some(true) => run,
                _ => format!(
                    "if head -c 0 </dev/null >/dev/null 2>&1; then {run}; else printf {mark}N\\n'; fi"
                ),
            }
        }
    };
    format!("{body}; printf {mark}%d\\n' \"$?\"; printf '\\000P{nonce}\\n' >&2\n")
}

/// The first `marker` in `haystack` at or after `from` with the word after it and a newline:
/// (where the marker starts, where its line ends, the word). `Err(at)`: a marker at `at`
/// whose line has not all arrived yet.
type MarkerLine = (usize, usize, String);
fn find_marker(haystack: &[u8], from: usize, marker: &[u8]) -> Result<Option<MarkerLine>, usize> {
    let Some(at) = find_bytes(haystack, from, marker) else {
        return Ok(None);
    };
    let rest = &haystack[at + marker.len()..];
    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
        return Err(at);
    };
    let word = String::from_utf8_lossy(&rest[..newline]).into_owned();
    Ok(Some((at, at + marker.len() + newline + 1, word)))
}

/// `needle` (which starts with a NUL byte, rare in output) in `haystack` from `from` on.
fn find_bytes(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= haystack.len() {
        let offset = haystack[i..].iter().position(|&b| b == first)?;
        i += offset;
        if haystack.get(i..i + needle.len()) == Some(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Creates `path` (it must not exist) as a 0600 file holding `data` over SFTP (blocking),
/// then gives it `mode` if asked (an SFTP request: exactly these bits, no umask, and no
/// process on the target). `left_behind` names it from its creation on, so a broken
/// connection can clean it up; a write the host refused removes it at once. Messages name
/// `dest`, the file being written.
fn write_new_file(
    sftp: &Sftp,
    data: &[u8],
    path: &str,
    dest: &str,
    mode: Option<u32>,
    left_behind: &RefCell<Option<String>>,
) -> Result<(), Failure> {
    let file_path = Path::new(path);
    let mut file = sftp
        .open_mode(
            file_path,
            OpenFlags::WRITE | OpenFlags::EXCLUSIVE,
            0o600,
            OpenType::File,
        )
        .map_err(|e| transfer_error(e, &format!("writing {dest} failed: cannot create {path}")))?;
    left_behind.replace(Some(path.to_string()));
    let written = data
        .chunks(IO_CHUNK * 4)
        .try_for_each(|chunk| file.write_all(chunk))
        .and_then(|()| match mode {
            Some(perm) => file
                .setstat(ssh2::FileStat {
                    size: None,
                    uid: None,
                    gid: None,
                    perm: Some(perm),
                    atime: None,
                    mtime: None,
                })
                .map_err(io::Error::from),
            None => Ok(()),
        })
        .and_then(|()| file.close().map_err(io::Error::from));
    drop(file);
    if let Err(e) = written {
        let failure = io_failure(e, &format!("writing {dest} failed"));
        if !failure.is_lost() {
            let _ = sftp.unlink(file_path);
        }
        return Err(failure);
    }
    Ok(())
}

/// Reads whatever one stream has now. Returns whether anything came.
fn drain(stream: &mut ssh2::Stream, into: &mut Vec<u8>, buf: &mut [u8]) -> Result<bool, Failure> {
    let mut got = false;
    loop {
        match stream.read(buf) {
            Ok(0) => return Ok(got),
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                got = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
            Err(e) => return Err(Failure::Lost(format!("reading the command's output: {e}"))),
        }
    }
}

/// An SFTP error: the host's answer (`Remote`), or a broken connection (`Lost`).
fn transfer_error(e: ssh2::Error, what: &str) -> Failure {
    if is_transport_error(&e) {
        Failure::Lost(format!("{what}: {}", e.message()))
    } else {
        Failure::Remote(format!("{what}: {}", sftp_message(&e)))
    }
}

fn io_failure(e: io::Error, what: &str) -> Failure {
    match e.kind() {
        io::ErrorKind::NotFound
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::AlreadyExists => Failure::Remote(format!("{what}: {e}")),
        _ => Failure::Lost(format!("{what}: {e}")),
    }
}

/// SFTP status codes in the words `cat` and `mv` would use.
fn sftp_message(e: &ssh2::Error) -> String {
    match e.code() {
        ErrorCode::SFTP(2) | ErrorCode::SFTP(10) => "No such file or directory".into(),
        ErrorCode::SFTP(3) => "Permission denied".into(),
        ErrorCode::SFTP(4) => "failure (a directory, or no space left?)".into(),
        _ => e.message().to_string(),
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Signal numbers as Linux numbers them, from the names SSH reports (`KILL`, `TERM`, ...).
fn signal_number(name: &str) -> i32 {
    match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 0,
    }
}

/// TCP to the first address that answers within the connect timeout.
fn tcp_connect(options: &ConnectOptions) -> Result<TcpStream, String> {
    let addresses: Vec<SocketAddr> = (options.host.as_str(), options.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", options.host))?
        .filter(|a| match options.address_family {
            AddressFamily::Any => true,
            AddressFamily::Inet => a.is_ipv4(),
            AddressFamily::Inet6 => a.is_ipv6(),
        })
        .collect();
    if addresses.is_empty() {
        return Err(format!("{} has no usable address", options.host));
    }
    let mut last_error = String::new();
    for address in addresses {
        match TcpStream::connect_timeout(&address, options.connect_timeout) {
            Ok(stream) => {
                // Commands are small request/answer exchanges: don't let Nagle hold them back.
                let _ = stream.set_nodelay(true);
                // OpenSSH's TCPKeepAlive yes: a vanished peer is eventually noticed.
                let _ = rustix::net::sockopt::set_socket_keepalive(&stream, true);
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last_error = format!(
                    "connection to {address} timed out after {} s",
                    options.connect_timeout.as_secs()
                );
            }
            Err(e) => last_error = format!("cannot connect to {address}: {e}"),
        }
    }
    Err(last_error)
}

/// Asks for a host key type known_hosts already has for this host first, as OpenSSH does,
/// so that a host known by its RSA key is not reported as unknown because it prefers ed25519.
fn prefer_known_host_key_types(session: &Session, options: &ConnectOptions) {
    let known = host_keys::known_key_types(options);
    if known.is_empty() {
        return;
    }
    let Ok(supported) = session.supported_algs(MethodType::HostKey) else {
        return;
    };
    let mut preferred: Vec<&'static str> = Vec::new();
    for key_type in &known {
        // One RSA key serves three signature algorithms.
        let algorithms = match key_type.as_str() {
            "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            other => vec![other],
        };
        for algorithm in algorithms {
            if let Some(&name) = supported.iter().find(|&&s| s == algorithm) {
                if !preferred.contains(&name) {
                    preferred.push(name);
                }
            }
        }
    }
    for algorithm in supported {
        if !preferred.contains(&algorithm) {
            preferred.push(algorithm);
        }
    }
    let _ = session.method_pref(MethodType::HostKey, &preferred.join(","));
}

/// Answers every keyboard-interactive prompt with the password.
struct PasswordPrompt<'a>(&'a str);

impl ssh2::KeyboardInteractivePrompt for PasswordPrompt<'_> {
    fn prompt<'b>(
        &mut self,
        _username: &str,
        _instructions: &str,
        prompts: &[ssh2::Prompt<'b>],
    ) -> Vec<String> {
        prompts.iter().map(|_| self.0.to_string()).collect()
    }
}

/// Key files, then the agent's keys, then the password; the error lists what was tried.
fn authenticate(session: &Session, options: &ConnectOptions) -> Result<(), String> {
    let user = options.user.as_str();
    let methods = match session.auth_methods(user) {
        Ok(methods) => methods.to_string(),
        Err(_) if session.authenticated() => return Ok(()),
        Err(e) => return Err(format!("authentication failed: {}", e.message())),
    };
    let offered: Vec<&str> = methods.split(',').map(str::trim).collect();
    let mut tried: Vec<String> = Vec::new();
    let fatal = |e: &ssh2::Error| -> Option<String> {
        is_transport_error(e).then(|| {
            format!(
                "the connection broke during authentication: {}",
                e.message()
            )
        })
    };

    if offered.contains(&"publickey") {
        for key in &options.identity_files {
            if !key.is_file() {
                tried.push(format!("key {} (no such file)", key.display()));
                continue;
            }
            match session.userauth_pubkey_file(user, None, key, None) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push(format!("key {} (refused)", key.display())),
                Err(e) => {
                    if let Some(message) = fatal(&e) {
                        return Err(message);
                    }
                    let why = match e.code() {
                        // LIBSSH2_ERROR_FILE: libssh2 could not read the private key.
                        ErrorCode::Session(-16) => {
                            "unreadable: protected by a passphrase (use ssh-agent) or not a private key"
                        }
                        _ => "refused",
                    };
                    tried.push(format!("key {} ({why})", key.display()));
                }
            }
        }
        if options.identity_files.is_empty() {
            tried.push("key files (none given and no ~/.ssh/id_* found)".into());
        }
        if options.identities_only {
            tried.push("ssh-agent (not used: IdentitiesOnly yes)".into());
        } else {
            match agent_auth(session, user) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(AgentOutcome::Fatal(message)) => return Err(message),
                Err(AgentOutcome::Tried(what)) => tried.push(what),
            }
        }
    } else {
        tried.push("public keys (the server does not accept them)".into());
    }

    match &options.password {
        Some(password) => {
            let result =
                if offered.contains(&"password") {
                    Some(session.userauth_password(user, password.expose()))
                } else if offered.contains(&"keyboard-interactive") {
                    Some(session.userauth_keyboard_interactive(
                        user,
                        &mut PasswordPrompt(password.expose()),
                    ))
                } else {
                    None
                };
            match result {
                _ if session.authenticated() => return Ok(()),
                Some(Err(e)) if fatal(&e).is_some() => {
                    return Err(fatal(&e).unwrap_or_default());
                }
                Some(_) => tried.push("password (refused)".into()),
                None => tried.push("password (the server does not accept passwords)".into()),
            }
        }
        None => tried.push("password (none given: ansible_password)".into()),
    }
    Err(format!(
        "Permission denied (the server accepts: {methods}); tried {}",
        tried.join(", ")
    ))
}

enum AgentOutcome {
    /// What the agent attempt amounted to, for the error message.
    Tried(String),
    Fatal(String),
}

/// Offers each key of the agent at `SSH_AUTH_SOCK`. `Ok(true)`: authenticated.
fn agent_auth(session: &Session, user: &str) -> Result<bool, AgentOutcome> {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return Err(AgentOutcome::Tried(
            "ssh-agent (SSH_AUTH_SOCK is not set)".into(),
        ));
    }
    let unusable = |e: ssh2::Error| AgentOutcome::Tried(format!("ssh-agent ({})", e.message()));
    let mut agent = session.agent().map_err(unusable)?;
    agent.connect().map_err(unusable)?;
    agent.list_identities().map_err(unusable)?;
    let identities = agent.identities().map_err(unusable)?;
    if identities.is_empty() {
        let _ = agent.disconnect();
        return Err(AgentOutcome::Tried("ssh-agent (it holds no keys)".into()));
    }
    for identity in &identities {
        match agent.userauth(user, identity) {
            Ok(()) if session.authenticated() => {
                let _ = agent.disconnect();
                return Ok(true);
            }
            Err(e) if is_transport_error(&e) => {
                return Err(AgentOutcome::Fatal(format!(
                    "the connection broke during authentication: {}",
                    e.message()
                )))
            }
            _ => {}
        }
    }
    let _ = agent.disconnect();
    Err(AgentOutcome::Tried(format!(
        "ssh-agent ({} key{} refused)",
        identities.len(),
        if identities.len() == 1 { "" } else { "s" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_reach_the_login_shell_wrapped_in_sh() {
        let cmd = Cmd::argv(&["echo", "it's $(id) `id`"]);
        let parsed = shlex::split(&login_shell_command(&cmd)).expect("shell words");
        assert_eq!(parsed, ["/bin/sh", "-c", &cmd.to_shell()]);
    }

    #[test]
    fn the_kept_shell_runs_module_scripts_in_a_subshell_and_the_rest_through_sh() {
        let script = Cmd::script(modules::Script::new().raw("echo").arg("it's $(id)"));
        let parsed = shlex::split(&shell_command(&script)).expect("shell words");
        assert_eq!(parsed, ["(", "eval", &script.to_shell(), ")"]);
        for other in [
            Cmd::argv(&["echo", "it's"]),
            Cmd::user_shell("echo $$", None),
        ] {
            assert_eq!(shell_command(&other), login_shell_command(&other));
        }
    }

    #[test]
    fn signals_map_to_shell_statuses() {
        assert_eq!(128 + signal_number("KILL"), 137);
        assert_eq!(128 + signal_number("TERM"), 143);
    }
}
