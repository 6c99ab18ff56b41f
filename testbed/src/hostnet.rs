//! Slots for systemd hosts: a name, a private network and cgroups that no concurrent test
//! process uses at the same time.
//!
//! Slot N is held by an exclusive flock on `/run/play-testbed/systemd/slot-N.lock` for the
//! host's whole life (a process that dies loses its locks, so a free lock means nobody uses
//! the slot). It gives the host the name `sdN`, the network namespace, controller-side veth
//! and cgroups `play-sdN`, and the /30 network `10.213.0.0 + 4N`: the controller's end of
//! the link (the gateway) is `.1` of it, the container's `eth0` `.2`. Slots are taken from 0
//! up, so few lock files ever exist. A slot's state file records the host's run directory and
//! nspawn process, so that what a crashed run left behind can be cleaned up by the next
//! process that takes the slot (or by the sweep every process makes once).
//!
//! Routes on both sides of the link carry `quickack 1`: without it every SSH handshake stalls
//! three times for 40 ms (Nagle's algorithm against delayed ACKs). The controller never
//! forwards (`ip_forward` stays as it is): the container reaches the controller and nothing
//! beyond it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use crate::procs::Proc;

const STATE_DIR: &str = "/run/play-testbed/systemd";
/// 4096 /30 networks: 10.213.0.0/18.
const SLOTS: u32 = 4096;
const NETWORK: [u8; 2] = [10, 213];
/// Prefix of the netns, veth and cgroup names (slot number appended).
pub(crate) const RESOURCE_PREFIX: &str = "play-sd";
/// The container's side of the veth pair.
pub(crate) const CONTAINER_IF: &str = "eth0";
const IP: &str = "ip";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How long removing a cgroup may wait for its last processes to be gone.
const CGROUP_GRACE: Duration = Duration::from_secs(10);

/// One slot, held until dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    pub index: u32,
    _lock: File,
}

fn state_dir() -> io::Result<PathBuf> {
    let dir = PathBuf::from(STATE_DIR);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn lock_path(index: u32) -> PathBuf {
    Path::new(STATE_DIR).join(format!("slot-{index}.lock"))
}

fn state_path(index: u32) -> PathBuf {
    Path::new(STATE_DIR).join(format!("slot-{index}.state"))
}

/// Takes slot `index` if no process holds it.
pub(crate) fn try_slot(index: u32) -> io::Result<Option<Slot>> {
    state_dir()?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(index))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(Slot { index, _lock: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The lowest free slot; `clean` gets each slot before it is handed out, to remove what a
/// crashed run left in it.
pub(crate) fn acquire(clean: impl Fn(&Slot)) -> io::Result<Slot> {
    for index in 0..SLOTS {
        if let Some(slot) = try_slot(index)? {
            clean(&slot);
            if foreign_route(&slot) {
                continue;
            }
            return Ok(slot);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("all {SLOTS} systemd host slots are in use ({STATE_DIR})"),
    ))
}

/// Slot numbers that something may be left over in: state files, network namespaces, links
/// and cgroups named after slots.
pub(crate) fn used_slots() -> Vec<u32> {
    let mut found = Vec::new();
    let mut scan = |dir: &Path, prefix: &str| {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let number = name
                    .strip_prefix(prefix)
                    .map(|rest| rest.strip_suffix(".state").unwrap_or(rest));
                if let Some(index) = number.and_then(|n| n.parse::<u32>().ok()) {
                    if index < SLOTS {
                        found.push(index);
                    }
                }
            }
        }
    };
    scan(Path::new(STATE_DIR), "slot-");
    scan(Path::new("/run/netns"), RESOURCE_PREFIX);
    scan(Path::new("/sys/class/net"), RESOURCE_PREFIX);
    for dir in cgroup_parents() {
        scan(&dir, RESOURCE_PREFIX);
    }
    found.sort_unstable();
    found.dedup();
    found
}

impl Slot {
    /// The host's name: `sdN`.
    pub(crate) fn host_name(&self) -> String {
        format!("sd{}", self.index)
    }

    /// Name of the network namespace, the controller's veth and the cgroups.
    pub(crate) fn resource_name(&self) -> String {
        format!("{RESOURCE_PREFIX}{}", self.index)
    }

    fn network(&self) -> Ipv4Addr {
        let offset = self.index * 4;
        Ipv4Addr::new(
            NETWORK[0],
            NETWORK[1],
            (offset >> 8) as u8,
            (offset & 0xff) as u8,
        )
    }

    /// The controller's address on the link.
    pub(crate) fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }

    /// The container's address.
    pub(crate) fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 2)
    }

    pub(crate) fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(self.resource_name())
    }

    /// Records what the host in this slot consists of (see [`SlotState`]).
    pub(crate) fn write_state(&self, state: &SlotState) -> io::Result<()> {
        let mut text = format!("run_dir {}\n", state.run_dir.display());
        if let Some(nspawn) = state.nspawn {
            text.push_str(&format!("nspawn {} {}\n", nspawn.pid, nspawn.start_time()));
        }
        let path = state_path(self.index);
        let temp = path.with_extension("new");
        let mut file = File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        fs::rename(temp, path)
    }

    pub(crate) fn read_state(&self) -> Option<SlotState> {
        let text = fs::read_to_string(state_path(self.index)).ok()?;
        let mut state = SlotState {
            run_dir: PathBuf::new(),
            nspawn: None,
        };
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("run_dir", path)) => state.run_dir = PathBuf::from(path),
                Some(("nspawn", rest)) => {
                    let mut words = rest.split_whitespace().map(str::parse::<u64>);
                    if let (Some(Ok(pid)), Some(Ok(start))) = (words.next(), words.next()) {
                        state.nspawn = u32::try_from(pid)
                            .ok()
                            .map(|pid| Proc::from_parts(pid, start));
                    }
                }
                _ => {}
            }
        }
        Some(state)
    }

    pub(crate) fn clear_state(&self) {
        let _ = fs::remove_file(state_path(self.index));
    }

    /// Creates the network namespace and the veth pair with both addresses and routes.
    pub(crate) fn network_up(&self) -> io::Result<()> {
        let name = self.resource_name();
        let (gateway, addr, network) = (self.gateway(), self.addr(), self.network());
        ip_batch(
            None,
            &format!(
                "netns add {name}\n\
                 link add {name} type veth peer name {CONTAINER_IF} netns {name}\n\
                 addr add {gateway}/30 dev {name}\n\
                 link set {name} up\n\
                 route replace {network}/30 dev {name} proto kernel scope link src {gateway} quickack 1\n"
            ),
        )?;
        ip_batch(
            Some(&name),
            &format!(
                "link set lo up\n\
                 addr add {addr}/30 dev {CONTAINER_IF}\n\
                 link set {CONTAINER_IF} up\n\
                 route replace {network}/30 dev {CONTAINER_IF} proto kernel scope link src {addr} quickack 1\n\
                 route add default via {gateway} dev {CONTAINER_IF} quickack 1\n"
            ),
        )
    }

    /// Removes the veth pair and the network namespace (whichever exist).
    pub(crate) fn network_down(&self) -> io::Result<()> {
        let name = self.resource_name();
        let mut errors = Vec::new();
        if Path::new("/sys/class/net").join(&name).exists() {
            if let Err(error) = ip_batch(None, &format!("link del {name}\n")) {
                errors.push(error.to_string());
            }
        }
        if self.netns_path().exists() {
            if let Err(error) = ip_batch(None, &format!("netns del {name}\n")) {
                errors.push(error.to_string());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(io::Error::other(errors.join("; ")))
        }
    }

    /// The cgroups nspawn runs in (see `cgroup_parents`).
    pub(crate) fn cgroups(&self) -> Vec<PathBuf> {
        cgroup_parents()
            .into_iter()
            .map(|parent| parent.join(self.resource_name()))
            .collect()
    }

    /// Removes the cgroups and everything below them, waiting a little for processes that
    /// are still on their way out.
    pub(crate) fn remove_cgroups(&self) -> io::Result<()> {
        let deadline = Instant::now() + CGROUP_GRACE;
        for cgroup in self.cgroups() {
            loop {
                match remove_cgroup_tree(&cgroup) {
                    Ok(()) => break,
                    Err(error) if Instant::now() >= deadline => {
                        return Err(io::Error::new(
                            error.kind(),
                            format!("cannot remove cgroup {}: {error}", cgroup.display()),
                        ))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        Ok(())
    }
}

/// What a slot's state file records.
#[derive(Debug, Clone)]
pub(crate) struct SlotState {
    pub run_dir: PathBuf,
    pub nspawn: Option<Proc>,
}

/// Where the hosts' cgroups go: the cgroup2 root on a unified-only machine; on a hybrid one
/// (cgroup2 at `unified/`, systemd's named v1 hierarchy at `systemd/`) both.
fn cgroup_parents() -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    ["unified", "systemd"]
        .iter()
        .map(|hierarchy| root.join(hierarchy))
        .filter(|dir| dir.join("cgroup.procs").exists())
        .collect()
}

fn remove_cgroup_tree(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Whether the controller routes (part of) this slot's network through a link that is not
/// the slot's: another program uses these addresses, so the slot is skipped.
fn foreign_route(slot: &Slot) -> bool {
    let Ok(output) = Command::new(IP)
        .args(["-4", "-o", "route", "show", "root"])
        .arg(format!("{}/30", slot.network()))
        .stdin(Stdio::null())
        .output()
    else {
        return false;
    };
    let own = format!(" dev {} ", slot.resource_name());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| !format!("{line} ").contains(&own))
}

/// Runs iproute2 commands (`ip -batch -`), in network namespace `netns` if given.
fn ip_batch(netns: Option<&str>, commands: &str) -> io::Result<()> {
    let mut command = Command::new(IP);
    if let Some(netns) = netns {
        command.args(["-n", netns]);
    }
    let mut child = command
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot run {IP} (package iproute2): {error}"),
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(commands.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip{} failed ({}) on\n{}{}",
            netns.map(|n| format!(" -n {n}")).unwrap_or_default(),
            output.status,
            commands,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(index: u32) -> Slot {
        Slot {
            index,
            _lock: File::open("/dev/null").expect("/dev/null"),
        }
    }

    #[test]
    fn slots_get_disjoint_private_networks() {
        assert_eq!(slot(0).gateway(), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(slot(0).addr(), Ipv4Addr::new(10, 213, 0, 2));
        assert_eq!(slot(1).gateway(), Ipv4Addr::new(10, 213, 0, 5));
        assert_eq!(slot(64).addr(), Ipv4Addr::new(10, 213, 1, 2));
        let last = slot(SLOTS - 1);
        assert_eq!(last.addr(), Ipv4Addr::new(10, 213, 63, 254));
        assert!(last.addr().is_private());
    }

    #[test]
    fn resource_names_fit_interface_names() {
        let name = slot(SLOTS - 1).resource_name();
        // IFNAMSIZ - 1
        assert!(name.len() <= 15, "{name}");
        assert_eq!(slot(7).host_name(), "sd7");
    }
}
