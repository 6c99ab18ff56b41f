//! Starts real targets for play's tests and tears them down: OpenSSH `sshd` hosts on loopback,
//! and [`SystemdHost`]s (Debian with systemd as PID 1, in a container of their own).
//!
//! ```no_run
//! let hosts = testbed::SshHosts::start(3)?;
//! let output = hosts.ssh(0, "echo $TESTBED_HOST");
//! assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "h1");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Each host is an `sshd -D -e` child of the test process with its own ed25519 host key,
//! listening on its own 127.A.B.C address (port 22), or on 127.0.0.1 with distinct ports when
//! port 22 cannot be bound. Root logs in with a generated client key only. The hosts share this
//! machine's filesystem, users and hostname: `base_dir` gives each host a directory of its own,
//! and the environment variable `TESTBED_HOST` (h1, h2, ...) tells them apart.
//!
//! Needs root and the Debian packages openssh-server and openssh-client; test users need
//! sudo (and passwd), jump-only hosts util-linux and iproute2.
//!
//! Hosts are addressed by their index in [`SshHosts::hosts`] (0 for h1).
//!
//! ```no_run
//! let host = testbed::SystemdHost::boot()?;
//! let output = host.ssh("systemctl is-system-running");
//! assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "running");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A [`SystemdHost`] is Debian bookworm booted with `systemd-nspawn -b` on a fresh overlay
//! over a root filesystem that debootstrap builds once per machine and caches in
//! `$PLAY_TESTBED_CACHE` or `/var/cache/play-testbed/`, in its own network namespace, with
//! local pacman and apt repositories of test packages. It needs root and the packages
//! debootstrap, systemd-container, pacman-package-manager, makepkg, libarchive-tools,
//! fakeroot, dpkg-dev and iproute2.

mod address;
mod hostnet;
mod http;
mod inventory;
mod netns;
mod pkgrepo;
mod procs;
mod rootfs;
mod spawn;
mod sshd;
mod systemd;
mod users;

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use address::AddressPool;
use netns::JumpNamespace;
use spawn::{spawn_tied, tied_command};
use sshd::{KeyGen, SshdConfig, SSHD};
use users::UserLease;

pub use http::{HttpRequest, HttpServer, HTTP_JSON_BODY};
pub use systemd::{systemd_available, SystemdHost};
pub use users::TestUser;

/// Bound for every sshd of a host set to listen: generous, because the machines running the
/// tests are small and shared, and a slow start is no failure.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const READY_POLL: Duration = Duration::from_millis(10);
/// How often one host is started again after another process took its address.
const MAX_ADDRESS_RETRIES: u32 = 5;
const HOST_KEY: &str = "ssh_host_ed25519_key";
const PRIVSEP_DIR: &str = "/run/sshd";

/// Whether OpenSSH's server is installed (`/usr/sbin/sshd`).
pub fn sshd_available() -> bool {
    Path::new(SSHD).is_file()
}

/// Whether `pid` is a process that still runs (zombies, which wait only to be reaped, don't):
/// for tests that check that sessions or listeners are gone.
pub fn process_running(pid: u32) -> bool {
    procs::is_running(pid)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held leaves nothing half-done here.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One sshd.
#[derive(Debug)]
pub struct SshHost {
    /// h1, h2, ...
    pub name: String,
    /// IPv4 address it listens on, e.g. 127.83.14.1.
    pub addr: String,
    pub port: u16,
    /// A directory for this host only, under the host set's temp dir; tests may write in it.
    pub base_dir: PathBuf,
    /// "ssh-ed25519 AAAA..." (no comment).
    pub host_key_pub: String,
    /// For a jump-only host: the index of the host it is reachable through.
    pub jump_via: Option<usize>,
    listen: SocketAddrV4,
    /// sshd_config, host key and sshd.log.
    config_dir: PathBuf,
    listener: Mutex<Option<Child>>,
    pid: u32,
    /// Length of sshd.log when the current sshd started.
    log_offset: u64,
}

impl SshHost {
    /// Pid of the listening sshd (it stays recorded after the host was stopped).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How known_hosts names this host: "127.83.14.1", or "[127.0.0.1]:40022" off port 22.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.addr.clone()
        } else {
            format!("[{}]:{}", self.addr, self.port)
        }
    }

    /// sshd's log (`-e`: everything it reports, at LogLevel INFO).
    pub fn log_file(&self) -> PathBuf {
        self.config_dir.join("sshd.log")
    }

    /// What sshd logged since its current start.
    fn recent_log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(self.log_file()) {
            if file.seek(SeekFrom::Start(self.log_offset)).is_ok() {
                let _ = file.read_to_string(&mut text);
            }
        }
        text
    }
}

/// Where a host's sshd runs relative to the jump namespaces.
enum Placement<'a> {
    Main,
    /// Listens inside the namespace.
    JumpOnly(&'a JumpNamespace),
    /// Listens in the main namespace; its sessions join the namespace.
    Jump(&'a JumpNamespace),
}

fn placement<'a>(
    namespaces: &'a [JumpNamespace],
    index: usize,
    jump_via: Option<usize>,
) -> Placement<'a> {
    if let Some(namespace) =
        jump_via.and_then(|jump| namespaces.iter().find(|n| n.jump_host == jump))
    {
        return Placement::JumpOnly(namespace);
    }
    match namespaces.iter().find(|n| n.jump_host == index) {
        Some(namespace) => Placement::Jump(namespace),
        None => Placement::Main,
    }
}

enum Startup {
    Listening,
    Starting,
    /// sshd could not bind: another process took the address after it was checked.
    LostAddress,
}

/// A running set of sshd hosts. Dropping it (also while a test panics) stops every sshd and
/// its sessions, deletes the test users nobody else uses, and removes the temp dir.
#[derive(Debug)]
pub struct SshHosts {
    hosts: Vec<SshHost>,
    jump_namespaces: Vec<JumpNamespace>,
    user_leases: Vec<UserLease>,
    test_users: Vec<TestUser>,
    client_key: PathBuf,
    known_hosts: PathBuf,
    ssh_config: PathBuf,
    authorized_keys: PathBuf,
    /// sshd accepts password logins (test users' passwords) besides keys.
    password_logins: bool,
    /// Declared last: removed after everything using it is gone.
    run_dir: tempfile::TempDir,
}

/// Options for [`SshHosts`]; see [`SshHosts::builder`].
#[derive(Debug, Clone)]
pub struct SshHostsBuilder {
    hosts: usize,
    users: Vec<TestUser>,
    /// (jump-only host, jump host)
    jump_only: Vec<(usize, usize)>,
    one_address: bool,
    password_logins: bool,
}

impl SshHostsBuilder {
    /// Number of hosts (default 1).
    pub fn hosts(mut self, count: usize) -> Self {
        self.hosts = count;
        self
    }

    /// A local user who logs in with the client key and may `sudo` anything without a
    /// password. Users are machine-wide: concurrent host sets share a user of the same name
    /// (and must agree on its setup); the last one to finish deletes it.
    pub fn test_user(mut self, name: &str) -> Self {
        self.users.push(TestUser::new(name, None));
        self
    }

    /// Like [`test_user`](Self::test_user), but the user has `password` and sudo asks for it.
    pub fn test_user_with_password(mut self, name: &str, password: &str) -> Self {
        self.users.push(TestUser::new(name, Some(password)));
        self
    }

    /// sshd also accepts password logins, for tests of `ansible_password` (test users made
    /// with [`test_user_with_password`](Self::test_user_with_password) can log in with it).
    pub fn password_logins(mut self) -> Self {
        self.password_logins = true;
        self
    }

    /// Every host on 127.0.0.1 with a port of its own (instead of an address of its own and
    /// port 22), as happens anyway when port 22 cannot be bound: for tests of `ansible_port`.
    pub fn on_one_address(mut self) -> Self {
        self.one_address = true;
        self
    }

    /// Host `host` is reachable only through the first host (`ssh -J`); see
    /// [`jump_only_via`](Self::jump_only_via).
    pub fn jump_only(self, host: usize) -> Self {
        self.jump_only_via(host, 0)
    }

    /// Host `host` accepts connections only through host `jump` (`ssh -J`, ProxyJump):
    /// it listens in a network namespace that only `jump`'s sessions join. Commands run on
    /// `jump` see that namespace's network too (just the jump-only hosts on loopback).
    pub fn jump_only_via(mut self, host: usize, jump: usize) -> Self {
        self.jump_only.push((host, jump));
        self
    }

    fn check(&self) -> io::Result<()> {
        let invalid = |message: String| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        if self.hosts == 0 {
            return invalid("a host set needs at least one host".into());
        }
        for (position, &(host, jump)) in self.jump_only.iter().enumerate() {
            if host >= self.hosts || jump >= self.hosts {
                return invalid(format!(
                    "jump_only_via({host}, {jump}): there are {} hosts (indices from 0)",
                    self.hosts
                ));
            }
            if host == jump {
                return invalid(format!("host {host} cannot be its own jump host"));
            }
            if self.jump_only.iter().any(|&(other, _)| other == jump) {
                return invalid(format!(
                    "jump host {jump} is itself jump-only; chains are not supported"
                ));
            }
            if self.jump_only[..position]
                .iter()
                .any(|&(other, _)| other == host)
            {
                return invalid(format!("host {host} is made jump-only twice"));
            }
        }
        for (position, user) in self.users.iter().enumerate() {
            user.validate()?;
            if self.users[..position].iter().any(|u| u.name == user.name) {
                return invalid(format!("test user {} is listed twice", user.name));
            }
        }
        Ok(())
    }

    fn jump_via(&self, host: usize) -> Option<usize> {
        self.jump_only
            .iter()
            .find(|&&(target, _)| target == host)
            .map(|&(_, jump)| jump)
    }

    /// Starts every host (in parallel) and returns once each sshd listens.
    pub fn start(self) -> io::Result<SshHosts> {
        self.check()?;
        preflight()?;
        let run_dir = tempfile::Builder::new().prefix("play-testbed-").tempdir()?;
        // Test users' logins read authorized_keys in here.
        fs::set_permissions(run_dir.path(), fs::Permissions::from_mode(0o755))?;
        let root = run_dir.path().to_path_buf();
        let client_dir = root.join("client");
        fs::DirBuilder::new().mode(0o700).create(&client_dir)?;
        let mut fleet = SshHosts {
            hosts: Vec::with_capacity(self.hosts),
            jump_namespaces: Vec::new(),
            user_leases: Vec::new(),
            test_users: Vec::new(),
            client_key: client_dir.join("id_ed25519"),
            known_hosts: root.join("known_hosts"),
            ssh_config: root.join("ssh_config"),
            authorized_keys: root.join("authorized_keys"),
            password_logins: self.password_logins,
            run_dir,
        };

        // One ssh-keygen per key, all at once.
        let mut keygens = vec![KeyGen::spawn(&fleet.client_key, "play-testbed-client")?];
        for index in 0..self.hosts {
            let name = format!("h{}", index + 1);
            let config_dir = root.join("sshd").join(&name);
            fs::create_dir_all(&config_dir)?;
            let base_dir = root.join(&name);
            fs::DirBuilder::new().mode(0o755).create(&base_dir)?;
            keygens.push(KeyGen::spawn(&config_dir.join(HOST_KEY), &name)?);
            fleet.hosts.push(SshHost {
                name,
                addr: String::new(),
                port: 0,
                base_dir,
                host_key_pub: String::new(),
                jump_via: self.jump_via(index),
                listen: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                config_dir,
                listener: Mutex::new(None),
                pid: 0,
                log_offset: 0,
            });
        }
        for keygen in keygens {
            keygen.wait()?;
        }
        let client_public_key = sshd::read_public_key(&fleet.client_key.with_extension("pub"))?;
        fs::write(&fleet.authorized_keys, format!("{client_public_key}\n"))?;
        fs::set_permissions(&fleet.authorized_keys, fs::Permissions::from_mode(0o644))?;
        for host in &mut fleet.hosts {
            host.host_key_pub =
                sshd::read_public_key(&host.config_dir.join(format!("{HOST_KEY}.pub")))?;
        }

        for user in &self.users {
            let lease = UserLease::acquire(user)?;
            fleet.test_users.push(lease.user().clone());
            fleet.user_leases.push(lease);
        }

        let mut jump_hosts: Vec<usize> = self.jump_only.iter().map(|&(_, jump)| jump).collect();
        jump_hosts.sort_unstable();
        jump_hosts.dedup();
        let session_program = sshd::sshd_session_program();
        for jump in jump_hosts {
            let dir = root.join("jump").join(&fleet.hosts[jump].name);
            fleet
                .jump_namespaces
                .push(JumpNamespace::create(&dir, jump, session_program)?);
        }

        let mut pool = AddressPool::new(self.one_address);
        for index in 0..fleet.hosts.len() {
            fleet.launch(index, &mut pool)?;
        }
        fleet.wait_until_listening(&mut pool)?;
        fleet.write_client_files()?;
        Ok(fleet)
    }
}

fn preflight() -> io::Result<()> {
    if !sshd_available() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{SSHD} is missing: apt-get install openssh-server"),
        ));
    }
    if !rustix::process::geteuid().is_root() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the testbed must run as root: sshd logs users in and binds port 22",
        ));
    }
    // sshd's privilege separation directory; Debian creates it only when the service starts.
    if !Path::new(PRIVSEP_DIR).is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(PRIVSEP_DIR)?;
    }
    Ok(())
}

impl SshHosts {
    /// `n` hosts with default options.
    pub fn start(n: usize) -> io::Result<SshHosts> {
        SshHosts::builder().hosts(n).start()
    }

    pub fn builder() -> SshHostsBuilder {
        SshHostsBuilder {
            hosts: 1,
            users: Vec::new(),
            jump_only: Vec::new(),
            one_address: false,
            password_logins: false,
        }
    }

    pub fn hosts(&self) -> &[SshHost] {
        &self.hosts
    }

    /// The temp dir holding keys, configs and every host's `base_dir`.
    pub fn dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// Private ed25519 client key without passphrase (`.pub` beside it).
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// Plain known_hosts lines for every host.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// An ssh_config (`ssh -F`) with the client key, known_hosts, strict host key checking and
    /// batch mode. `-F` reaches the ssh that `-J` starts; `-i` and `-o` do not.
    pub fn ssh_config(&self) -> &Path {
        &self.ssh_config
    }

    pub fn test_users(&self) -> &[TestUser] {
        &self.test_users
    }

    pub fn test_user(&self, name: &str) -> Option<&TestUser> {
        self.test_users.iter().find(|user| user.name == name)
    }

    /// An Ansible YAML inventory: `all.vars` with root, the client key and the known_hosts
    /// options; every host in `children.<group>.hosts` with `ansible_host`, `ansible_port`
    /// (when not 22) and `base_dir`. A jump-only host also gets `ansible_ssh_common_args`
    /// with `-F <ssh_config> -o ProxyJump=root@<jump host>`.
    pub fn inventory_yaml(&self, group: &str) -> String {
        inventory::render(self, group)
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

    /// Pids of every process below host `host`'s listener: the per-connection sshd and what
    /// they run.
    pub fn session_pids(&self, host: usize) -> Vec<u32> {
        let Some(pid) = self.running_listener(host) else {
            return Vec::new();
        };
        procs::ProcessTable::snapshot()
            .descendants(pid)
            .iter()
            .map(|proc| proc.pid)
            .collect()
    }

    /// Kills (SIGKILL) every process below host `host`'s listener, which keeps listening:
    /// open connections drop mid-transfer as if the network failed. Returns once they are gone.
    pub fn kill_sessions(&self, host: usize) {
        if let Some(pid) = self.running_listener(host) {
            procs::kill_descendants(pid);
        }
    }

    /// Stops host `host` for good: its listener and its sessions, so open connections drop
    /// and new ones are refused.
    pub fn stop(&self, host: usize) {
        let listener = lock(&self.hosts[host].listener).take();
        procs::terminate_listeners(listener.into_iter().collect());
    }

    /// Starts host `host` again after `stop`, on the same address with the same keys (a
    /// rebooted host), and returns once it listens. Hosts reached through a jump host are not
    /// supported.
    pub fn restart(&self, host: usize) -> io::Result<()> {
        let target = &self.hosts[host];
        if target.jump_via.is_some() {
            return Err(io::Error::other(
                "restart: jump-only hosts are not supported",
            ));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(target.log_file())?;
        let mut command = tied_command(SSHD);
        command
            .args(["-D", "-e", "-f"])
            .arg(target.config_dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = spawn_tied(command)?;
        let pid = child.id();
        *lock(&target.listener) = Some(child);
        while !procs::listens_on(pid, target.listen) {
            if let Some(status) = lock(&target.listener).as_mut().map(Child::try_wait) {
                if let Some(status) = status? {
                    return Err(io::Error::other(format!(
                        "sshd for {} exited while restarting ({status})",
                        target.name
                    )));
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// The OpenSSH client command for `user` on host `host`, with the client key, known_hosts,
    /// strict host key checking and batch mode (and `-J` through the jump host for a
    /// jump-only host). Add the remote command and run it.
    pub fn ssh_command(&self, host: usize, user: &str) -> Command {
        let target = &self.hosts[host];
        let mut command = Command::new("ssh");
        command
            .arg("-F")
            .arg(&self.ssh_config)
            .arg("-i")
            .arg(&self.client_key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .stdin(Stdio::null());
        if let Some(jump) = target.jump_via.map(|index| &self.hosts[index]) {
            command
                .arg("-J")
                .arg(format!("root@{}:{}", jump.addr, jump.port));
        }
        command
            .arg("-p")
            .arg(target.port.to_string())
            .arg(format!("{user}@{}", target.addr));
        command
    }

    /// Runs `command` as root on host `host` with the OpenSSH client.
    ///
    /// # Panics
    /// When `ssh` cannot be started (openssh-client missing).
    pub fn ssh(&self, host: usize, command: &str) -> Output {
        self.ssh_as(host, "root", command)
    }

    /// Runs `command` as `user` on host `host`; see [`ssh`](Self::ssh).
    pub fn ssh_as(&self, host: usize, user: &str, command: &str) -> Output {
        match self.ssh_command(host, user).arg("--").arg(command).output() {
            Ok(output) => output,
            Err(error) => panic!("testbed: cannot run ssh (package openssh-client): {error}"),
        }
    }

    fn running_listener(&self, host: usize) -> Option<u32> {
        lock(&self.hosts[host].listener).as_ref().map(Child::id)
    }

    /// Picks an address for host `index`, writes its sshd_config and starts its sshd.
    fn launch(&mut self, index: usize, pool: &mut AddressPool) -> io::Result<()> {
        let listen = pool.allocate()?;
        let placement = placement(&self.jump_namespaces, index, self.hosts[index].jump_via);
        let host = &mut self.hosts[index];
        host.listen = listen;
        host.addr = listen.ip().to_string();
        host.port = listen.port();
        let host_key = host.config_dir.join(HOST_KEY);
        let session_program = match placement {
            Placement::Jump(namespace) if namespace.session_program.is_some() => {
                Some(namespace.wrapper.as_path())
            }
            _ => None,
        };
        let config = SshdConfig {
            name: &host.name,
            listen,
            host_key: &host_key,
            authorized_keys: &self.authorized_keys,
            session_program,
            password_logins: self.password_logins,
        };
        let config_path = host.config_dir.join("sshd_config");
        fs::write(&config_path, config.render())?;

        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(host.log_file())?;
        host.log_offset = log.metadata()?.len();
        let mut command = match placement {
            Placement::Main => tied_command(SSHD),
            Placement::JumpOnly(namespace) => {
                let mut command = tied_command(netns::NSENTER);
                command
                    .arg(format!("--net={}", namespace.net_path))
                    .arg("--")
                    .arg(SSHD);
                command
            }
            Placement::Jump(namespace) if namespace.session_program.is_some() => tied_command(SSHD),
            Placement::Jump(namespace) => tied_command(&namespace.wrapper),
        };
        command
            .args(["-D", "-e", "-f"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = spawn_tied(command)?;
        host.pid = child.id();
        *lock(&host.listener) = Some(child);
        Ok(())
    }

    fn startup(&self, index: usize) -> io::Result<Startup> {
        let host = &self.hosts[index];
        let mut listener = lock(&host.listener);
        let Some(child) = listener.as_mut() else {
            return Err(io::Error::other(format!(
                "sshd for {} is not running",
                host.name
            )));
        };
        if let Some(status) = child.try_wait()? {
            *listener = None;
            let log = host.recent_log();
            if log.contains("Cannot bind any address") || log.contains("Address already in use") {
                return Ok(Startup::LostAddress);
            }
            return Err(io::Error::other(format!(
                "sshd for {} ({}) exited while starting ({status}); its log says:\n{}",
                host.name,
                host.listen,
                log.trim()
            )));
        }
        Ok(if procs::listens_on(child.id(), host.listen) {
            Startup::Listening
        } else {
            Startup::Starting
        })
    }

    fn wait_until_listening(&mut self, pool: &mut AddressPool) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pending: Vec<usize> = (0..self.hosts.len()).collect();
        let mut restarts = vec![0u32; self.hosts.len()];
        loop {
            let mut still_pending = Vec::with_capacity(pending.len());
            for index in pending {
                match self.startup(index)? {
                    Startup::Listening => {}
                    Startup::Starting => still_pending.push(index),
                    Startup::LostAddress => {
                        restarts[index] += 1;
                        if restarts[index] > MAX_ADDRESS_RETRIES {
                            return Err(io::Error::new(
                                io::ErrorKind::AddrInUse,
                                format!(
                                    "sshd for {} lost its address to another process {} times",
                                    self.hosts[index].name, MAX_ADDRESS_RETRIES
                                ),
                            ));
                        }
                        self.launch(index, pool)?;
                        still_pending.push(index);
                    }
                }
            }
            pending = still_pending;
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let waiting: Vec<String> = pending
                    .iter()
                    .map(|&index| {
                        let host = &self.hosts[index];
                        format!(
                            "{} ({}, log {})",
                            host.name,
                            host.listen,
                            host.log_file().display()
                        )
                    })
                    .collect();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "sshd did not listen within {} s: {}",
                        READY_TIMEOUT.as_secs(),
                        waiting.join(", ")
                    ),
                ));
            }
            thread::sleep(READY_POLL);
        }
    }

    fn write_client_files(&self) -> io::Result<()> {
        let known_hosts: String = self
            .hosts
            .iter()
            .map(|host| format!("{} {}\n", host.known_hosts_name(), host.host_key_pub))
            .collect();
        fs::write(&self.known_hosts, known_hosts)?;
        fs::write(
            &self.ssh_config,
            sshd::client_config(&self.client_key, &self.known_hosts),
        )
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        // All at once: 50 hosts stop in about the time of one.
        let listeners: Vec<Child> = self
            .hosts
            .iter()
            .filter_map(|host| lock(&host.listener).take())
            .collect();
        procs::terminate_listeners(listeners);
        // Then the fields: jump namespaces, test users, the temp dir.
    }
}

impl fmt::Display for SshHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}:{})", self.name, self.addr, self.port)
    }
}
