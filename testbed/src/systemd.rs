//! `SystemdHost`: a Debian host with systemd as PID 1 (`systemd-nspawn -b`), reachable over
//! SSH as root, for tests of modules that drive systemd, apt or pacman.
//!
//! Each host boots on a fresh overlayfs: its own upper directory (in a temp dir) over the
//! package layer and the cached debootstrap root filesystem (`rootfs.rs`, `pkgrepo.rs`),
//! which stay untouched. Before booting, the testbed writes the host's identity into it: an
//! ed25519 host key, root's authorized_keys with a client key made for this host, a fresh
//! machine id, hostname and an sshd_config.d snippet. The host runs in its own network
//! namespace on a /30 link to the controller (`hostnet.rs`).
//!
//! The machines this runs on have no systemd as PID 1, so nspawn gets `--register=no
//! --keep-unit` (without them it wants machined on the system bus). `--keep-unit` puts the
//! container into `<nspawn's cgroup>/payload`, so nspawn is first moved into a cgroup of its
//! own; otherwise every container would share `/payload`.
//!
//! Dropping a host (also while a test panics) stops it: SIGTERM to nspawn, which shuts the
//! container down in order (SIGRTMIN+4 would kill nspawn and orphan the container), SIGKILL
//! after a grace period (the container's init first, then nspawn); then the overlay, cgroups,
//! network and nspawn's propagation directory go. nspawn also gets SIGTERM from the kernel
//! when the test process dies; what such a process leaves behind is removed by the next one
//! to use its slot, or by the sweep every test process makes when it boots its first host.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};
use rustix::process::Signal;

use crate::hostnet::{self, Slot, SlotState};
use crate::inventory::{path_word, yaml_string};
use crate::lock;
use crate::pkgrepo::{self, Packages};
use crate::procs::{self, ProcessTable};
use crate::rootfs::{self, tail, DEBOOTSTRAP};
use crate::spawn::{spawn_tied, tied_command};
use crate::sshd::{self, KeyGen};

const NSPAWN: &str = "/usr/bin/systemd-nspawn";
/// Bound for a boot, only so that a broken host cannot hang a test forever: generous, the
/// machines running the tests are small and shared.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an orderly shutdown may take before the container is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);
const KILL_GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
const HOST_KEY: &str = "ssh_host_ed25519_key";
const RUN_DIR_PREFIX: &str = "play-systemd-";
const CONSOLE_TAIL: usize = 40;

/// Whether systemd hosts can boot here: root, systemd-nspawn (package systemd-container) and
/// debootstrap.
pub fn systemd_available() -> bool {
    rustix::process::geteuid().is_root()
        && Path::new(NSPAWN).is_file()
        && Path::new(DEBOOTSTRAP).is_file()
}

/// Programs the controller needs to build and serve the hosts, with their Debian packages.
const CONTROLLER_TOOLS: &[(&str, &str)] = &[
    (NSPAWN, "systemd-container"),
    (DEBOOTSTRAP, "debootstrap"),
    ("/usr/bin/makepkg", "makepkg"),
    (pkgrepo::REPO_ADD, "pacman-package-manager"),
    ("/usr/bin/bsdtar", "libarchive-tools"),
    ("/usr/bin/fakeroot", "fakeroot"),
    ("/usr/bin/dpkg-deb", "dpkg"),
    (pkgrepo::DPKG_SCANPACKAGES, "dpkg-dev"),
    ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/sbin/runuser", "util-linux"),
];

fn preflight() -> io::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "testbed::SystemdHost must run as root (it mounts, boots containers and creates \
             network namespaces)",
        ));
    }
    let mut missing: Vec<String> = CONTROLLER_TOOLS
        .iter()
        .filter(|(path, _)| !Path::new(path).is_file())
        .map(|(path, package)| format!("{path} (package {package})"))
        .collect();
    if !["/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip"]
        .iter()
        .any(|path| Path::new(path).is_file())
    {
        missing.push("ip (package iproute2)".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "testbed::SystemdHost needs {} (scripts/test-all installs them)",
                missing.join(", ")
            ),
        ))
    }
}

/// The root filesystem and packages, built (or found in the cache) once per process.
struct Prepared {
    rootfs: PathBuf,
    packages: Packages,
}

static PREPARED: OnceLock<Result<Prepared, String>> = OnceLock::new();

fn prepared() -> io::Result<&'static Prepared> {
    let prepared = PREPARED.get_or_init(|| {
        sweep();
        // Independent, so side by side: debootstrap waits for the network, makepkg computes.
        let (rootfs, packages) = thread::scope(|scope| {
            let packages = scope.spawn(pkgrepo::packages);
            let rootfs = rootfs::rootfs();
            let packages = packages
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("building the packages panicked")));
            (rootfs, packages)
        });
        match (rootfs, packages) {
            (Ok(rootfs), Ok(packages)) => Ok(Prepared { rootfs, packages }),
            (Err(error), _) => Err(format!("cannot build the systemd hosts' rootfs: {error}")),
            (_, Err(error)) => Err(format!("cannot build the test packages: {error}")),
        }
    });
    prepared
        .as_ref()
        .map_err(|message| io::Error::other(message.clone()))
}

/// Cleans every slot that something was left in by a process that no longer holds it.
fn sweep() {
    for index in hostnet::used_slots() {
        if let Ok(Some(slot)) = hostnet::try_slot(index) {
            reap_slot(&slot);
        }
    }
}

/// Removes whatever a dead process left in `slot` (which this process now holds).
fn reap_slot(slot: &Slot) {
    let state = slot.read_state();
    if let Some(nspawn) = state.as_ref().and_then(|s| s.nspawn) {
        if nspawn.is_running() {
            nspawn.signal(Signal::TERM);
            if !procs::wait_until_gone(&[nspawn], STOP_GRACE).is_empty() {
                kill_container(nspawn.pid);
                nspawn.signal(Signal::KILL);
                procs::wait_until_gone(&[nspawn], KILL_GRACE);
            }
        }
    }
    if let Some(run_dir) = state.map(|s| s.run_dir) {
        let ours = run_dir
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with(RUN_DIR_PREFIX));
        if ours && unmount_overlay(&run_dir.join("merged")).is_ok() {
            let _ = rootfs::remove_tree(&run_dir);
        }
    }
    let _ = slot.network_down();
    let _ = slot.remove_cgroups();
    let _ = rootfs::remove_tree(&propagate_dir(&slot.host_name()));
    slot.clear_state();
}

/// SIGKILL to what nspawn `pid` started (the container's init, so the kernel kills the
/// whole container), then a moment for it to go.
fn kill_container(pid: u32) {
    let children = ProcessTable::snapshot().descendants(pid);
    for child in &children {
        child.signal(Signal::KILL);
    }
    procs::wait_until_gone(&children, KILL_GRACE);
}

/// nspawn's directory for mounts propagated into the container; nspawn cannot remove it
/// itself where /run is no tmpfs.
fn propagate_dir(machine: &str) -> PathBuf {
    Path::new("/run/systemd/nspawn/propagate").join(machine)
}

fn unmount_overlay(merged: &Path) -> io::Result<()> {
    if rootfs::mounts_below(merged).is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + KILL_GRACE;
    loop {
        match unmount(merged, UnmountFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::BUSY) if Instant::now() < deadline => thread::sleep(POLL),
            // Still busy: detach it, so it goes once the last user lets go.
            Err(_) => {
                return unmount(merged, UnmountFlags::DETACH).map_err(|error| {
                    io::Error::other(format!("cannot unmount {}: {error}", merged.display()))
                })
            }
        }
    }
}

/// A systemd host. Dropping it stops the container and removes everything it used.
#[derive(Debug)]
pub struct SystemdHost {
    /// `sdN`: the machine's hostname and its name in inventories.
    pub name: String,
    /// The container's IPv4 address; sshd listens on port 22.
    pub addr: String,
    /// The controller's address on the container's link: a server a test starts there is
    /// reachable from the container.
    pub gateway: String,
    client_key: PathBuf,
    known_hosts: PathBuf,
    ssh_config: PathBuf,
    console_log: PathBuf,
    merged: PathBuf,
    packages: Packages,
    nspawn: Mutex<Option<Child>>,
    mounted: bool,
    network: bool,
    cgroups: bool,
    publishing: Mutex<()>,
    /// Removed after the teardown in `drop` unmounted the overlay.
    run_dir: tempfile::TempDir,
    /// Declared last: the slot is free again only when everything else is gone.
    slot: Slot,
}

impl SystemdHost {
    /// Boots a fresh host and returns once systemd finished booting (`systemctl
    /// is-system-running` says running or degraded) and root can log in over SSH.
    ///
    /// The first boot on a machine builds the root filesystem and the test packages (about
    /// a minute; see the crate's README section). Needs root and the packages
    /// `scripts/test-all` installs.
    pub fn boot() -> io::Result<SystemdHost> {
        preflight()?;
        let prepared = prepared()?;
        let slot = hostnet::acquire(reap_slot)?;
        let run_dir = tempfile::Builder::new().prefix(RUN_DIR_PREFIX).tempdir()?;
        let dir = run_dir.path().to_path_buf();
        slot.write_state(&SlotState {
            run_dir: dir.clone(),
            nspawn: None,
        })?;
        let mut host = SystemdHost {
            name: slot.host_name(),
            addr: slot.addr().to_string(),
            gateway: slot.gateway().to_string(),
            client_key: dir.join("client/id_ed25519"),
            known_hosts: dir.join("known_hosts"),
            ssh_config: dir.join("ssh_config"),
            console_log: dir.join("console.log"),
            merged: dir.join("merged"),
            packages: prepared.packages.clone(),
            nspawn: Mutex::new(None),
            mounted: false,
            network: false,
            cgroups: false,
            publishing: Mutex::new(()),
            run_dir,
            slot,
        };
        // On an error `host` is dropped, which takes down whatever was set up.
        host.start(prepared)?;
        Ok(host)
    }

    /// Boots `count` hosts side by side; see [`boot`](Self::boot).
    pub fn boot_many(count: usize) -> io::Result<Vec<SystemdHost>> {
        let results: Vec<io::Result<SystemdHost>> = thread::scope(|scope| {
            let boots: Vec<_> = (0..count).map(|_| scope.spawn(SystemdHost::boot)).collect();
            boots
                .into_iter()
                .map(|boot| {
                    boot.join()
                        .unwrap_or_else(|_| Err(io::Error::other("booting a host panicked")))
                })
                .collect()
        });
        results.into_iter().collect()
    }

    /// Root's private key (ed25519, no passphrase; `.pub` beside it).
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// A known_hosts file with this host's key.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// An ssh_config (`ssh -F`) with the client key, known_hosts and batch mode.
    pub fn ssh_config(&self) -> &Path {
        &self.ssh_config
    }

    /// The container's console output (systemd's boot messages).
    pub fn console_log(&self) -> &Path {
        &self.console_log
    }

    /// The host's network namespace, as `ip netns exec` names it (`/run/netns/<name>`).
    pub fn network_namespace(&self) -> String {
        self.slot.resource_name()
    }

    /// The controller's end of the host's veth link (it has [`gateway`](Self::gateway)).
    pub fn controller_link(&self) -> String {
        self.slot.resource_name()
    }

    /// The pid of `systemd-nspawn` while it runs (the container's init is its child).
    pub fn nspawn_pid(&self) -> Option<u32> {
        lock(&self.nspawn).as_ref().map(Child::id)
    }

    /// The container's `/` as the controller sees it (the overlay's merged directory):
    /// files written here appear in the running host at once.
    pub fn root_dir(&self) -> &Path {
        &self.merged
    }

    /// An Ansible YAML inventory with this host, named [`name`](Self::name), in `group`;
    /// every connection setting is a host variable, so inventories of several hosts can be
    /// passed together (`-i a.yml -i b.yml`). See also [`inventory_yaml_for`](Self::inventory_yaml_for).
    pub fn inventory_yaml(&self, group: &str) -> String {
        SystemdHost::inventory_yaml_for(std::slice::from_ref(self), group)
    }

    /// One inventory with all of `hosts` in `group`.
    pub fn inventory_yaml_for(hosts: &[SystemdHost], group: &str) -> String {
        let mut yaml = format!(
            "# play testbed inventory (systemd hosts)\nall:\n  children:\n    {}:\n      hosts:\n",
            yaml_string(group)
        );
        for host in hosts {
            yaml.push_str(&inventory_host(
                &host.name,
                &host.addr,
                &host.client_key,
                &host.known_hosts,
            ));
        }
        yaml
    }

    /// Writes [`inventory_yaml`](Self::inventory_yaml) to `dir/inventory.yml`.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write_inventory(&self, dir: &Path, group: &str) -> PathBuf {
        let path = dir.join("inventory.yml");
        if let Err(error) = fs::write(&path, self.inventory_yaml(group)) {
            panic!("testbed: cannot write {}: {error}", path.display());
        }
        path
    }

    /// The OpenSSH client command for root on this host (key, known_hosts, strict host key
    /// checking, batch mode); add the remote command and run it.
    pub fn ssh_command(&self) -> Command {
        let mut command = Command::new("ssh");
        command
            .arg("-F")
            .arg(&self.ssh_config)
            // Fails instead of hanging when the host is gone.
            .args(["-o", "ConnectTimeout=30"])
            .arg(format!("root@{}", self.addr))
            .stdin(Stdio::null());
        command
    }

    /// Runs the shell command `command` as root on the host (OpenSSH client).
    ///
    /// # Panics
    /// When `ssh` cannot be started (openssh-client missing).
    pub fn ssh(&self, command: &str) -> Output {
        match self.ssh_command().arg("--").arg(command).output() {
            Ok(output) => output,
            Err(error) => panic!("testbed: cannot run ssh (package openssh-client): {error}"),
        }
    }

    /// Adds the prebuilt pacman package `name` `version` (hello-a 1.1) to the host's
    /// repository `[playtest]`, replacing the version it had; `pacman -Sy` then sees it.
    pub fn publish_pacman(&self, name: &str, version: &str) -> io::Result<()> {
        let _one_at_a_time = lock(&self.publishing);
        self.packages.publish_pacman(&self.merged, name, version)
    }

    /// Adds the prebuilt Debian package `name` `version` (play-hello 1.1) to the host's apt
    /// repository, next to the versions it has; `apt-get update` then sees it.
    pub fn publish_apt(&self, name: &str, version: &str) -> io::Result<()> {
        let _one_at_a_time = lock(&self.publishing);
        self.packages.publish_apt(&self.merged, name, version)
    }

    fn start(&mut self, prepared: &Prepared) -> io::Result<()> {
        let dir = self.run_dir.path().to_path_buf();
        let upper = dir.join("upper");
        for (sub, mode) in [
            ("upper", 0o755),
            ("work", 0o700),
            ("merged", 0o755),
            ("keys", 0o700),
            ("client", 0o700),
        ] {
            fs::DirBuilder::new().mode(mode).create(dir.join(sub))?;
        }
        // The upper directory's own mode is that of the container's /.
        fs::set_permissions(&upper, fs::Permissions::from_mode(0o755))?;
        let host_key = dir.join("keys").join(HOST_KEY);
        let keygens = [
            KeyGen::spawn(&self.client_key, &format!("play-testbed-{}", self.name))?,
            KeyGen::spawn(&host_key, &self.name)?,
        ];
        for keygen in keygens {
            keygen.wait()?;
        }

        let options = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            prepared.packages.layer().display(),
            prepared.rootfs.display(),
            upper.display(),
            dir.join("work").display()
        );
        let options = std::ffi::CString::new(options)
            .map_err(|_| io::Error::other("overlay options contain a NUL byte"))?;
        mount(
            "overlay",
            &self.merged,
            "overlay",
            MountFlags::empty(),
            options.as_c_str(),
        )
        .map_err(|error| {
            io::Error::other(format!(
                "cannot mount the overlay on {}: {error}",
                self.merged.display()
            ))
        })?;
        self.mounted = true;
        self.write_identity(&host_key)?;

        self.slot.network_up()?;
        self.network = true;
        self.cgroups = true;
        for cgroup in self.slot.cgroups() {
            fs::create_dir_all(&cgroup)?;
        }
        self.spawn_nspawn()?;

        let host_key_pub = sshd::read_public_key(&host_key.with_extension("pub"))?;
        fs::write(&self.known_hosts, format!("{} {host_key_pub}\n", self.addr))?;
        fs::write(
            &self.ssh_config,
            sshd::client_config(&self.client_key, &self.known_hosts),
        )?;
        self.wait_until_ready()
    }

    /// What makes this host itself: host key, root's key, machine id, hostname, sshd
    /// settings.
    fn write_identity(&self, host_key: &Path) -> io::Result<()> {
        let root = &self.merged;
        let ssh_dir = root.join("etc/ssh");
        let key_dest = ssh_dir.join(HOST_KEY);
        fs::copy(host_key, &key_dest)?;
        fs::set_permissions(&key_dest, fs::Permissions::from_mode(0o600))?;
        let pub_dest = key_dest.with_extension("pub");
        fs::copy(host_key.with_extension("pub"), &pub_dest)?;
        fs::set_permissions(&pub_dest, fs::Permissions::from_mode(0o644))?;
        write_mode(
            &ssh_dir.join("sshd_config.d/play-testbed.conf"),
            &format!(
                "# play testbed host {name}\n\
                 ListenAddress {addr}:22\n\
                 ListenAddress 127.0.0.1:22\n\
                 HostKey /etc/ssh/{HOST_KEY}\n\
                 PermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UseDNS no\n\
                 MaxStartups 64:30:256\n",
                name = self.name,
                addr = self.addr
            ),
            0o644,
        )?;
        let ssh_home = root.join("root/.ssh");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&ssh_home)?;
        fs::set_permissions(&ssh_home, fs::Permissions::from_mode(0o700))?;
        let client_pub = sshd::read_public_key(&self.client_key.with_extension("pub"))?;
        write_mode(
            &ssh_home.join("authorized_keys"),
            &format!("{client_pub}\n"),
            0o600,
        )?;
        write_mode(
            &root.join("etc/hostname"),
            &format!("{}\n", self.name),
            0o644,
        )?;
        write_mode(
            &root.join("etc/hosts"),
            &format!(
                "127.0.0.1\tlocalhost\n{addr}\t{name}\n\
                 ::1\tlocalhost ip6-localhost ip6-loopback\n",
                addr = self.addr,
                name = self.name
            ),
            0o644,
        )?;
        write_mode(&root.join("etc/machine-id"), &machine_id()?, 0o444)
    }

    fn spawn_nspawn(&mut self) -> io::Result<()> {
        let console = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.console_log)?;
        let cgroups = self.slot.cgroups();
        // The shell moves itself (so nspawn) into the host's cgroups, then becomes nspawn.
        let mut command = tied_command("/bin/sh");
        command
            .arg("-c")
            .arg(
                "n=$1; shift; while [ \"$n\" -gt 0 ]; do \
                   echo $$ > \"$1/cgroup.procs\" || exit 125; shift; n=$((n - 1)); \
                 done; exec \"$@\"",
            )
            .arg("sh")
            .arg(cgroups.len().to_string())
            .args(&cgroups)
            .arg(NSPAWN)
            .arg("-q")
            .arg("-D")
            .arg(&self.merged)
            .args(["-M", &self.name, "-b", "--register=no", "--keep-unit"])
            .arg("--console=read-only")
            .arg(format!(
                "--network-namespace-path={}",
                self.slot.netns_path().display()
            ))
            // With the namespace given, nspawn 252 keeps it but still treats the network as
            // the host's: no CAP_NET_ADMIN and /proc/sys/net read-only. `--private-network`
            // gives both, so the container's own network keys (`net.ipv4.ip_forward`, ...)
            // can be set, as on a real host; the rest of /proc/sys stays read-only.
            .arg("--private-network")
            .stdin(Stdio::null())
            .stdout(Stdio::from(console.try_clone()?))
            .stderr(Stdio::from(console));
        let child = spawn_tied(command).map_err(|error| {
            io::Error::new(error.kind(), format!("cannot start {NSPAWN}: {error}"))
        })?;
        let pid = child.id();
        *lock(&self.nspawn) = Some(child);
        self.slot.write_state(&SlotState {
            run_dir: self.run_dir.path().to_path_buf(),
            nspawn: procs::Proc::of_pid(pid),
        })
    }

    fn boot_error(&self, what: String) -> io::Error {
        io::Error::other(format!(
            "systemd host {} ({}) {what}; the end of its console log {}:\n{}",
            self.name,
            self.addr,
            self.console_log.display(),
            tail(&self.console_log, CONSOLE_TAIL)
        ))
    }

    /// An error when nspawn is gone.
    fn check_running(&self) -> io::Result<()> {
        let mut nspawn = lock(&self.nspawn);
        let status = match nspawn.as_mut() {
            Some(child) => child.try_wait()?,
            None => return Err(self.boot_error("has no nspawn process".into())),
        };
        match status {
            None => Ok(()),
            Some(status) => {
                *nspawn = None;
                drop(nspawn);
                Err(self.boot_error(format!("stopped while booting (nspawn: {status})")))
            }
        }
    }

    fn wait_until_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let sshd = SocketAddr::V4(SocketAddrV4::new(self.slot.addr(), 22));
        let mut last_answer = String::from("sshd never accepted a connection");
        while Instant::now() < deadline {
            self.check_running()?;
            if TcpStream::connect_timeout(&sshd, Duration::from_secs(1)).is_err() {
                thread::sleep(POLL);
                continue;
            }
            // --wait: returns once the boot is over.
            let mut command = self.ssh_command();
            command
                .args(["--", "systemctl is-system-running --wait"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let output = output_until(command, deadline)?;
            let state = String::from_utf8_lossy(&output.stdout).trim().to_string();
            match state.as_str() {
                "running" | "degraded" => return Ok(()),
                "" => {
                    last_answer = format!(
                        "ssh failed ({}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                    thread::sleep(Duration::from_millis(100));
                }
                other => {
                    return Err(self.boot_error(format!(
                        "did not boot: systemctl is-system-running says {other}"
                    )))
                }
            }
        }
        Err(self.boot_error(format!(
            "was not ready within {} s (last: {last_answer})",
            BOOT_TIMEOUT.as_secs()
        )))
    }

    /// Stops the container and removes the overlay, network, cgroups and nspawn leftovers;
    /// problems are reported on stderr (a drop cannot fail).
    fn teardown(&mut self) {
        let mut problems = Vec::new();
        if let Some(child) = lock(&self.nspawn).take() {
            stop_nspawn(child);
        }
        if self.mounted {
            match unmount_overlay(&self.merged) {
                Ok(()) => self.mounted = false,
                Err(error) => problems.push(error.to_string()),
            }
        }
        if self.network {
            if let Err(error) = self.slot.network_down() {
                problems.push(error.to_string());
            }
        }
        if self.cgroups {
            if let Err(error) = self.slot.remove_cgroups() {
                problems.push(error.to_string());
            }
        }
        if let Err(error) = rootfs::remove_tree(&propagate_dir(&self.name)) {
            problems.push(error.to_string());
        }
        if problems.is_empty() {
            self.slot.clear_state();
        } else {
            // The state stays, so the next process to take the slot tries again.
            eprintln!(
                "testbed: systemd host {} was not cleaned up completely: {}",
                self.name,
                problems.join("; ")
            );
        }
    }
}

impl Drop for SystemdHost {
    fn drop(&mut self) {
        self.teardown();
        if self.mounted {
            // Never delete through a mounted overlay; the slot's state names the directory.
            self.run_dir.disable_cleanup(true);
        }
    }
}

/// A host's entry below `hosts:`: what `SshHosts` sets for all hosts (root, the key, the
/// known_hosts options), as host variables.
fn inventory_host(name: &str, addr: &str, client_key: &Path, known_hosts: &Path) -> String {
    let common_args = format!(
        "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
        path_word(known_hosts)
    );
    format!(
        "        {name}:\n\
         \x20         ansible_host: {addr}\n\
         \x20         ansible_user: root\n\
         \x20         ansible_ssh_private_key_file: {key}\n\
         \x20         ansible_ssh_common_args: {args}\n",
        name = yaml_string(name),
        addr = yaml_string(addr),
        key = yaml_string(&client_key.to_string_lossy()),
        args = yaml_string(&common_args),
    )
}

/// SIGTERM (an orderly shutdown), then SIGKILL to the container and to nspawn.
fn stop_nspawn(mut child: Child) {
    let pid = child.id();
    if matches!(child.try_wait(), Ok(None)) {
        // Our own unreaped child: its pid cannot have been reused.
        if let Some(proc) = procs::Proc::of_pid(pid) {
            proc.signal(Signal::TERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        if matches!(child.try_wait(), Ok(None)) {
            kill_container(pid);
            let _ = child.kill();
        }
    }
    let _ = child.wait();
}

/// Runs `command` and collects its output, killing it at `deadline`.
fn output_until(mut command: Command, deadline: Instant) -> io::Result<Output> {
    let mut child = command.spawn().map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot run ssh (package openssh-client): {error}"),
        )
    })?;
    let out_reader = read_in_thread(child.stdout.take());
    let err_reader = read_in_thread(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        thread::sleep(POLL);
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Reads a pipe to its end on a thread of its own.
fn read_in_thread(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn write_mode(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// A random machine id: 32 lowercase hex digits and a newline.
fn machine_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let mut id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    id.push('\n');
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_entries_carry_every_connection_setting() {
        assert_eq!(
            inventory_host(
                "sd3",
                "10.213.0.14",
                Path::new("/tmp/play-systemd-x/client/id_ed25519"),
                Path::new("/tmp/a b/known_hosts"),
            ),
            "        \"sd3\":\n\
             \x20         ansible_host: \"10.213.0.14\"\n\
             \x20         ansible_user: root\n\
             \x20         ansible_ssh_private_key_file: \"/tmp/play-systemd-x/client/id_ed25519\"\n\
             \x20         ansible_ssh_common_args: \"-o UserKnownHostsFile='/tmp/a b/known_hosts' \
             -o StrictHostKeyChecking=yes\"\n"
        );
    }

    #[test]
    fn machine_ids_are_32_hex_digits() {
        let id = machine_id().expect("urandom");
        assert_eq!(id.len(), 33);
        assert!(id.trim_end().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, machine_id().expect("urandom"));
    }
}
