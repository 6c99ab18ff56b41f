//! Local unix users with sudo rights, for `become` tests.
//!
//! Users are machine-wide while host sets are per test, and tests (and test processes) run
//! concurrently. So a user is shared: every host set that asks for it leaves a marker file
//! (named after its process, so markers of dead processes are recognised) under
//! /run/play-testbed/users/<name>/; the first creates and configures the user, the last one
//! to finish deletes it again. All of this happens under an exclusive flock. Users the
//! testbed did not create (recognised by their GECOS field) are never touched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};

use crate::procs::{self, Proc};

const STATE_DIR: &str = "/run/play-testbed";
const SUDOERS_DIR: &str = "/etc/sudoers.d";
/// GECOS field of the users the testbed creates: the mark that it may reconfigure and
/// delete them.
const GECOS: &str = "play testbed user";

static LEASES: AtomicU64 = AtomicU64::new(0);

/// A local user created for the tests; it logs in with the client key like root does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    pub name: String,
    /// None: `sudo` without a password (NOPASSWD). Some: the login password, which sudo asks for.
    pub password: Option<String>,
    pub home: PathBuf,
}

impl TestUser {
    pub(crate) fn new(name: &str, password: Option<&str>) -> TestUser {
        TestUser {
            name: name.to_string(),
            password: password.map(str::to_string),
            home: PathBuf::new(),
        }
    }

    /// What a marker file records, so that two host sets never disagree about a user.
    fn setup(&self) -> String {
        match &self.password {
            None => "sudo without password\n".to_string(),
            Some(password) => format!("sudo with password {password}\n"),
        }
    }

    pub(crate) fn validate(&self) -> io::Result<()> {
        let name_ok = (1..=32).contains(&self.name.len())
            && self
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !name_ok {
            return Err(invalid(format!(
                "test user name {:?}: use 1-32 of [a-z0-9_-], starting with a letter or _",
                self.name
            )));
        }
        if let Some(password) = &self.password {
            if password.is_empty() || password.contains(['\n', '\r']) {
                return Err(invalid(format!(
                    "password of test user {} must be one non-empty line",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// This host set's use of a test user; dropping it releases the user.
#[derive(Debug)]
pub(crate) struct UserLease {
    user: TestUser,
    marker: PathBuf,
}

/// Holds /run/play-testbed/users.lock until dropped.
struct StateLock {
    _file: File,
}

fn lock_state() -> io::Result<StateLock> {
    fs::create_dir_all(Path::new(STATE_DIR).join("users"))?;
    // Markers record test passwords.
    fs::set_permissions(STATE_DIR, fs::Permissions::from_mode(0o700))?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(STATE_DIR).join("users.lock"))?;
    flock(&file, FlockOperation::LockExclusive)?;
    Ok(StateLock { _file: file })
}

fn user_dir(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join("users").join(name)
}

/// Markers of processes that still run, with what they record; stale markers are removed.
fn live_markers(dir: &Path) -> io::Result<Vec<(PathBuf, String)>> {
    let mut live = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(live),
        Err(error) => return Err(error),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // <pid>-<start time>-<lease number>
        let mut parts = name.split('-');
        let owner = match (
            parts.next().and_then(|p| p.parse().ok()),
            parts.next().and_then(|p| p.parse().ok()),
        ) {
            (Some(pid), Some(start)) => Proc::from_parts(pid, start),
            _ => continue,
        };
        if owner.is_running() {
            live.push((path.clone(), fs::read_to_string(&path).unwrap_or_default()));
        } else {
            let _ = fs::remove_file(&path);
        }
    }
    Ok(live)
}

/// The /etc/passwd entry of `name`: (GECOS, home).
fn passwd_entry(name: &str) -> io::Result<Option<(String, PathBuf)>> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    Ok(passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[0] == name)
            .then(|| (fields[4].to_string(), PathBuf::from(fields[5])))
    }))
}

/// Runs a passwd-suite tool, retrying while another program holds /etc/passwd's lock.
pub(crate) fn run_admin(program: &str, args: &[&str], stdin: Option<&str>) -> io::Result<()> {
    let mut last_error = String::new();
    for attempt in 0..10 {
        if attempt > 0 {
            thread::sleep(Duration::from_millis(100 * attempt));
        }
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot run {program} (package passwd): {error}"),
                )
            })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if output.status.success() {
            return Ok(());
        }
        last_error = format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        if !last_error.contains("lock") {
            break;
        }
    }
    Err(io::Error::other(last_error))
}

fn sudoers_file(name: &str) -> PathBuf {
    // sudo skips files in sudoers.d whose name contains a dot, so the name has none.
    Path::new(SUDOERS_DIR).join(format!("play-testbed-{name}"))
}

/// Creates the user if needed and sets its password and sudo rule.
fn configure(user: &TestUser) -> io::Result<()> {
    match passwd_entry(&user.name)? {
        Some((gecos, _)) if gecos != GECOS => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                "user {} exists and was not created by the testbed; pick another test user name",
                user.name
            ),
            ))
        }
        Some(_) => {}
        None => run_admin(
            "useradd",
            &[
                "--create-home",
                "--user-group",
                "--shell",
                "/bin/bash",
                "--comment",
                GECOS,
                &user.name,
            ],
            None,
        )?,
    }
    match &user.password {
        Some(password) => run_admin(
            "chpasswd",
            &[],
            Some(&format!("{}:{password}\n", user.name)),
        )?,
        // "*": no password can match, yet the account is not locked ("!"), which sshd
        // without PAM would refuse even for key logins.
        None => run_admin("usermod", &["--password", "*", &user.name], None)?,
    }
    if !Path::new(SUDOERS_DIR).is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{SUDOERS_DIR} is missing: install the sudo package"),
        ));
    }
    let rule = match user.password {
        None => format!("{} ALL=(ALL:ALL) NOPASSWD: ALL\n", user.name),
        Some(_) => format!("{} ALL=(ALL:ALL) ALL\n", user.name),
    };
    let target = sudoers_file(&user.name);
    let temporary = Path::new(SUDOERS_DIR).join(format!(".play-testbed-{}.new", user.name));
    fs::write(&temporary, format!("# play testbed test user\n{rule}"))?;
    fs::set_permissions(&temporary, fs::Permissions::from_mode(0o440))?;
    fs::rename(&temporary, &target)
}

/// Deletes a user the testbed created, with its sudo rule.
fn remove(name: &str) {
    let _ = fs::remove_file(sudoers_file(name));
    if !matches!(passwd_entry(name), Ok(Some((gecos, _))) if gecos == GECOS) {
        return;
    }
    if let Err(error) = run_admin("userdel", &["--force", "--remove", name], None) {
        // userdel reports a missing mail spool as an error although the user is gone.
        if matches!(passwd_entry(name), Ok(Some(_))) {
            eprintln!("testbed: could not delete test user {name}: {error}");
        }
    }
}

impl UserLease {
    pub(crate) fn acquire(wanted: &TestUser) -> io::Result<UserLease> {
        wanted.validate()?;
        let me = procs::current()
            .ok_or_else(|| io::Error::other("cannot read this process's /proc/self/stat"))?;
        let _lock = lock_state()?;
        let dir = user_dir(&wanted.name);
        let live = live_markers(&dir)?;
        if let Some((_, other)) = live.iter().find(|(_, setup)| *setup != wanted.setup()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "test user {} is in use with another setup ({}); use a different name",
                    wanted.name,
                    other.trim()
                ),
            ));
        }
        if live.is_empty() {
            if let Err(error) = configure(wanted) {
                // Half-configured (say, sudo missing): nobody else uses it, so undo.
                remove(&wanted.name);
                return Err(error);
            }
        }
        fs::create_dir_all(&dir)?;
        let lease = LEASES.fetch_add(1, Ordering::Relaxed);
        let marker = dir.join(format!("{}-{}-{lease}", me.pid, me.start_time()));
        fs::write(&marker, wanted.setup())?;
        let home = passwd_entry(&wanted.name)?
            .map(|(_, home)| home)
            .unwrap_or_default();
        Ok(UserLease {
            user: TestUser {
                home,
                ..wanted.clone()
            },
            marker,
        })
    }

    pub(crate) fn user(&self) -> &TestUser {
        &self.user
    }
}

impl Drop for UserLease {
    fn drop(&mut self) {
        let Ok(_lock) = lock_state() else {
            eprintln!(
                "testbed: cannot lock {STATE_DIR}; test user {} stays",
                self.user.name
            );
            return;
        };
        let _ = fs::remove_file(&self.marker);
        match live_markers(&user_dir(&self.user.name)) {
            Ok(live) if live.is_empty() => {
                let _ = fs::remove_dir(user_dir(&self.user.name));
                remove(&self.user.name);
            }
            _ => {}
        }
    }
}
