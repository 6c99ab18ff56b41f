//! The cache of things built once per machine (the systemd hosts' root filesystem, their test
//! packages) and the debootstrap build of that root filesystem.
//!
//! The cache lives outside the repository, in `$PLAY_TESTBED_CACHE` or
//! `/var/cache/play-testbed/`. Each artifact is a directory whose name carries a hash of its
//! recipe, so a changed recipe builds a new one. It is built into `<name>.tmp` and renamed
//! into place under an exclusive flock on `<name>.lock`: of several test processes asking at
//! once one builds, the others wait and then use its result.

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use rustix::fs::{flock, FlockOperation};
use rustix::mount::{unmount, UnmountFlags};

pub(crate) const CACHE_ENV: &str = "PLAY_TESTBED_CACHE";
const DEFAULT_CACHE: &str = "/var/cache/play-testbed";
/// Overrides the Debian mirror debootstrap downloads from.
const MIRROR_ENV: &str = "PLAY_TESTBED_MIRROR";
const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";
pub(crate) const DEBOOTSTRAP: &str = "/usr/sbin/debootstrap";

pub(crate) const SUITE: &str = "bookworm";
/// What the hosts run: systemd, sshd, both package managers the tests drive, and the tools
/// modules expect on a Debian server (iproute2: `setup`'s default route facts). No Python.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "pacman-package-manager",
    "cron",
    "sudo",
    "procps",
    "tzdata",
    "curl",
    "git",
    "tar",
    "gzip",
    "xz-utils",
    "unzip",
];
/// Bump when the steps after debootstrap change, so that caches are rebuilt.
const ROOTFS_RECIPE: u32 = 2;

/// FNV-1a: a hash that stays the same across Rust versions (unlike `DefaultHasher`).
pub(crate) fn stable_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn cache_root() -> io::Result<PathBuf> {
    let root = env::var_os(CACHE_ENV)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CACHE), PathBuf::from);
    let root = if root.is_absolute() {
        root
    } else {
        env::current_dir()?.join(root)
    };
    // overlayfs option strings separate directories with ':' and options with ','.
    let text = root.to_string_lossy();
    if text.contains([':', ',', '\\']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{CACHE_ENV} ({text}) must not contain ':', ',' or '\\' (overlayfs options)"),
        ));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&root)
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot create the testbed cache {} (set {CACHE_ENV} elsewhere): {error}",
                    root.display()
                ),
            )
        })?;
    Ok(root)
}

/// An exclusive flock held until dropped.
pub(crate) struct FileLock {
    _file: File,
}

pub(crate) fn lock_file(path: &Path) -> io::Result<FileLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    flock(&file, FlockOperation::LockExclusive)?;
    Ok(FileLock { _file: file })
}

/// Returns `<cache>/<name>`, building it first with `build` (which fills the empty directory
/// it is given) unless it exists; see the module comment.
pub(crate) fn build_once(
    name: &str,
    build: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let root = cache_root()?;
    let done = root.join(name);
    // A rename put it there, so it is complete.
    if done.is_dir() {
        return Ok(done);
    }
    let _lock = lock_file(&root.join(format!("{name}.lock")))?;
    if done.is_dir() {
        return Ok(done);
    }
    let work = root.join(format!("{name}.tmp"));
    remove_tree(&work)?;
    fs::DirBuilder::new().mode(0o755).create(&work)?;
    match build(&work) {
        Ok(()) => {
            fs::rename(&work, &done)?;
            Ok(done)
        }
        Err(error) => {
            let _ = remove_tree(&work);
            Err(error)
        }
    }
}

/// Mount points at or below `dir`, deepest first (from /proc/self/mountinfo).
pub(crate) fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(table) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_path(field)))
        .filter(|point| point.starts_with(dir))
        .collect();
    found.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    found.dedup();
    found
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' && index + 3 < bytes.len() {
            let digits = std::str::from_utf8(&bytes[index + 1..index + 4]).unwrap_or("");
            if let Ok(value) = u8::from_str_radix(digits, 8) {
                out.push(value);
                index += 4;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything at or below `dir` (a crashed debootstrap leaves /proc and /sys
/// mounted in its target); an error when something stays mounted.
pub(crate) fn unmount_below(dir: &Path) -> io::Result<()> {
    for point in mounts_below(dir) {
        if unmount(&point, UnmountFlags::empty()).is_err() {
            let _ = unmount(&point, UnmountFlags::DETACH);
        }
    }
    let left = mounts_below(dir);
    if left.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cannot unmount {}",
            left.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// Removes a directory tree, never descending into a mount.
pub(crate) fn remove_tree(dir: &Path) -> io::Result<()> {
    if fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    unmount_below(dir)?;
    fs::remove_dir_all(dir)
}

/// The last `lines` lines of a file (for error messages).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("({} is missing)", path.display());
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The first `URIs:` of a deb822 sources file whose suites include `suite`.
fn mirror_from_deb822(text: &str, suite: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
            })
        };
        let types = field("Types").unwrap_or("deb");
        let suites = field("Suites")?;
        (types.split_whitespace().any(|t| t == "deb")
            && suites.split_whitespace().any(|s| s == suite))
        .then(|| field("URIs"))
        .flatten()
        .and_then(|uris| uris.split_whitespace().next())
        .map(str::to_string)
    })
}

/// The URI of a one-line `deb [options] URI suite ...` entry for `suite`.
fn mirror_from_list(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "deb" {
            return None;
        }
        let mut uri = words.next()?;
        if uri.starts_with('[') {
            // Options: skip to the word closing them.
            while !uri.ends_with(']') {
                uri = words.next()?;
            }
            uri = words.next()?;
        }
        (words.next()? == suite).then(|| uri.to_string())
    })
}

/// The machine's own Debian mirror (apt's sources), else deb.debian.org.
fn mirror() -> String {
    if let Some(mirror) = env::var(MIRROR_ENV).ok().filter(|m| !m.is_empty()) {
        return mirror;
    }
    fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .ok()
        .and_then(|text| mirror_from_deb822(&text, SUITE))
        .or_else(|| {
            fs::read_to_string("/etc/apt/sources.list")
                .ok()
                .and_then(|text| mirror_from_list(&text, SUITE))
        })
        .unwrap_or_else(|| FALLBACK_MIRROR.to_string())
}

fn rootfs_name() -> String {
    let recipe = format!("{ROOTFS_RECIPE} minbase {SUITE} {}", PACKAGES.join(","));
    format!("rootfs-{SUITE}-{:012x}", stable_hash(&recipe) >> 16)
}

/// The cached root filesystem, built with debootstrap when missing (about a minute).
pub(crate) fn rootfs() -> io::Result<PathBuf> {
    let name = rootfs_name();
    build_once(&name, |dir| {
        let started = Instant::now();
        let log_path = dir.with_file_name(format!("{name}.log"));
        let log = File::create(&log_path)?;
        let mirror = mirror();
        let status = Command::new(DEBOOTSTRAP)
            .arg("--variant=minbase")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg(SUITE)
            .arg(dir)
            .arg(&mirror)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .status()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot run {DEBOOTSTRAP} (package debootstrap): {error}"),
                )
            })?;
        if !status.success() {
            let mut message = format!(
                "debootstrap {SUITE} from {mirror} failed ({status}); the end of its log {}:\n{}",
                log_path.display(),
                tail(&log_path, 25)
            );
            let inner = dir.join("debootstrap/debootstrap.log");
            if inner.is_file() {
                message.push_str(&format!("\nand of debootstrap.log:\n{}", tail(&inner, 25)));
            }
            return Err(io::Error::other(message));
        }
        clean_rootfs(dir)?;
        eprintln!(
            "testbed: built the systemd hosts' root filesystem {} in {:.0} s",
            dir.with_file_name(&name).display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    })
}

/// What every host must get its own of (host keys, machine id) goes; so do apt's caches and
/// the package timers.
fn clean_rootfs(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir.join("etc/ssh"))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            fs::remove_file(entry.path())?;
        }
    }
    for cache in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "var/cache/apt",
    ] {
        let Ok(entries) = fs::read_dir(dir.join(cache)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) && entry.file_name() != "lock" {
                fs::remove_file(entry.path())?;
            }
        }
    }
    // Timers that take apt's or dpkg's locks at random times would fail a test's apt now
    // and then: disabled, as an administrator would.
    for timer in [
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "dpkg-db-backup.timer",
    ] {
        let link = dir
            .join("etc/systemd/system/timers.target.wants")
            .join(timer);
        if fs::symlink_metadata(&link).is_ok() {
            fs::remove_file(link)?;
        }
    }
    fs::write(dir.join("etc/machine-id"), "")?;
    let _ = fs::remove_file(dir.join("var/lib/dbus/machine-id"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_fnv1a() {
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn rootfs_name_changes_with_the_recipe() {
        let name = rootfs_name();
        assert!(name.starts_with("rootfs-bookworm-"), "{name}");
        assert_eq!(name.len(), "rootfs-bookworm-".len() + 12);
    }

    #[test]
    fn mirror_comes_from_the_matching_deb822_stanza() {
        let text = "Types: deb\n# snapshot\nURIs: http://deb.example/debian\n\
                    Suites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb\nURIs: http://deb.example/debian-security\n\
                    Suites: bookworm-security\n";
        assert_eq!(
            mirror_from_deb822(text, "bookworm").as_deref(),
            Some("http://deb.example/debian")
        );
        assert_eq!(mirror_from_deb822(text, "trixie"), None);
        let src = "Types: deb-src\nURIs: http://src.example/\nSuites: bookworm\n";
        assert_eq!(mirror_from_deb822(src, "bookworm"), None);
    }

    #[test]
    fn mirror_comes_from_a_one_line_entry() {
        let text =
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_from_list(text, "bookworm").as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            mirror_from_list("deb http://m/ bookworm main", "bookworm").as_deref(),
            Some("http://m/")
        );
        assert_eq!(
            mirror_from_list("deb http://m/ trixie main", "bookworm"),
            None
        );
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_path(r"/plain"), "/plain");
        assert_eq!(unescape_mount_path(r"/end\04"), r"/end\04");
    }
}
