//! Processes seen through /proc: trees below an sshd listener, signals, waiting, listening sockets.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::SocketAddrV4;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// How long a process gets to exit after SIGTERM before it gets SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(5);

/// A process identified by pid and start time, so that a pid reused after the process
/// died is never signalled by mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proc {
    pub pid: u32,
    start_time: u64,
}

struct StatLine {
    state: char,
    parent: u32,
    start_time: u64,
}

/// Parses /proc/<pid>/stat. The command name (field 2) may contain spaces and parentheses,
/// so fields are counted from the last ')'.
fn read_stat(pid: u32) -> Option<StatLine> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): ppid is field 4, starttime field 22.
    Some(StatLine {
        state: fields.first()?.chars().next()?,
        parent: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether `pid` is a process that still runs (a zombie has finished running).
pub(crate) fn is_running(pid: u32) -> bool {
    matches!(read_stat(pid), Some(stat) if stat.state != 'Z' && stat.state != 'X')
}

/// This process's identity (pid and start time), for markers that must go stale when it ends.
pub(crate) fn current() -> Option<Proc> {
    let pid = std::process::id();
    read_stat(pid).map(|stat| Proc {
        pid,
        start_time: stat.start_time,
    })
}

impl Proc {
    pub(crate) fn from_parts(pid: u32, start_time: u64) -> Proc {
        Proc { pid, start_time }
    }

    /// The process now running as `pid`, if any.
    pub(crate) fn of_pid(pid: u32) -> Option<Proc> {
        read_stat(pid).map(|stat| Proc {
            pid,
            start_time: stat.start_time,
        })
    }

    pub(crate) fn start_time(&self) -> u64 {
        self.start_time
    }

    /// Still running, and still the same process (its pid was not reused).
    pub(crate) fn is_running(&self) -> bool {
        matches!(read_stat(self.pid),
            Some(stat) if stat.start_time == self.start_time && stat.state != 'Z' && stat.state != 'X')
    }

    /// Sends `signal` unless the process is gone or its pid now belongs to another process.
    pub(crate) fn signal(&self, signal: Signal) {
        if self.is_running() {
            send_signal(self.pid, signal);
        }
    }
}

fn send_signal(pid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    // ESRCH (already gone) is the expected race; nothing else can be done about failures.
    let _ = kill_process(pid, signal);
}

/// Who is whose parent, from one pass over /proc.
pub(crate) struct ProcessTable {
    children: HashMap<u32, Vec<Proc>>,
}

impl ProcessTable {
    pub(crate) fn snapshot() -> ProcessTable {
        let mut children: HashMap<u32, Vec<Proc>> = HashMap::new();
        let Ok(entries) = fs::read_dir("/proc") else {
            return ProcessTable { children };
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(stat) = read_stat(pid) {
                if stat.state != 'Z' && stat.state != 'X' {
                    children.entry(stat.parent).or_default().push(Proc {
                        pid,
                        start_time: stat.start_time,
                    });
                }
            }
        }
        ProcessTable { children }
    }

    /// Every running process below `pid` (children, grandchildren, ...).
    pub(crate) fn descendants(&self, pid: u32) -> Vec<Proc> {
        let mut found = Vec::new();
        let mut queue = vec![pid];
        while let Some(parent) = queue.pop() {
            for child in self.children.get(&parent).into_iter().flatten() {
                found.push(*child);
                queue.push(child.pid);
            }
        }
        found
    }
}

/// Waits until none of `procs` runs any more (zombies count as gone); returns those still
/// running after `within`.
pub(crate) fn wait_until_gone(procs: &[Proc], within: Duration) -> Vec<Proc> {
    let deadline = Instant::now() + within;
    loop {
        let running: Vec<Proc> = procs.iter().copied().filter(Proc::is_running).collect();
        if running.is_empty() || Instant::now() >= deadline {
            return running;
        }
        thread::sleep(POLL);
    }
}

/// Kills every process below `listener_pid` with SIGKILL, repeatedly, until none is left
/// (a session may fork while it is being killed). Returns what was killed.
pub(crate) fn kill_descendants(listener_pid: u32) -> Vec<Proc> {
    let mut killed = Vec::new();
    // A handful of rounds: each catches processes forked by ones killed in the round before.
    for _ in 0..20 {
        let found = ProcessTable::snapshot().descendants(listener_pid);
        if found.is_empty() {
            break;
        }
        for proc in &found {
            proc.signal(Signal::KILL);
        }
        killed.extend(found);
        thread::sleep(POLL);
    }
    wait_until_gone(&killed, TERM_GRACE);
    killed
}

/// Stops listeners (our children) and everything below them: SIGTERM to all, wait and reap,
/// SIGKILL whatever outlives the grace period.
pub(crate) fn terminate_listeners(mut listeners: Vec<Child>) {
    if listeners.is_empty() {
        return;
    }
    let table = ProcessTable::snapshot();
    let sessions: Vec<Proc> = listeners
        .iter()
        .flat_map(|listener| table.descendants(listener.id()))
        .collect();
    for listener in &listeners {
        // Our own unreaped child: its pid cannot have been reused.
        send_signal(listener.id(), Signal::TERM);
    }
    for session in &sessions {
        session.signal(Signal::TERM);
    }
    reap(&mut listeners, TERM_GRACE);
    let stubborn = wait_until_gone(&sessions, TERM_GRACE);
    for proc in &stubborn {
        proc.signal(Signal::KILL);
    }
    wait_until_gone(&stubborn, TERM_GRACE);
}

/// Waits for children to exit, SIGKILLs those still alive after `within`, and reaps all of
/// them so that none is left a zombie.
fn reap(children: &mut [Child], within: Duration) {
    let deadline = Instant::now() + within;
    let mut exited: HashSet<usize> = HashSet::new();
    while exited.len() < children.len() && Instant::now() < deadline {
        for (index, child) in children.iter_mut().enumerate() {
            if !exited.contains(&index) && !matches!(child.try_wait(), Ok(None)) {
                exited.insert(index);
            }
        }
        if exited.len() < children.len() {
            thread::sleep(POLL);
        }
    }
    for (index, child) in children.iter_mut().enumerate() {
        if !exited.contains(&index) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether process `pid` has a TCP socket listening on `addr`, as seen in its own network
/// namespace (/proc/<pid>/net/tcp) and owned by one of its file descriptors, so another
/// process listening on the same address does not count.
pub(crate) fn listens_on(pid: u32, addr: SocketAddrV4) -> bool {
    let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    // The kernel prints the address as the raw network-order u32 in hex, then the port.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(addr.ip().octets()),
        addr.port()
    );
    const TCP_LISTEN: &str = "0A";
    let inodes: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&TCP_LISTEN))
                .then(|| fields.get(9).copied())
                .flatten()
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]").as_str())
        })
    })
}
