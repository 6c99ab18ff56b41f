//! Host key checking against known_hosts files, as OpenSSH's `StrictHostKeyChecking` does it.
//!
//! The files are read here rather than with libssh2's `KnownHosts`: ssh2's `check_port`
//! passes no key type, so a host known only by its RSA key that presents its ed25519 key
//! would be reported as *changed*; it also falls back to a plain `host` entry for a
//! non-standard port, where OpenSSH only looks at `[host]:port`; and libssh2 stops reading a
//! file at the first line it does not understand (an `sk-` key, a `@cert-authority` line).
//! Plain, hashed (`|1|salt|hash`) and wildcard (`*`, `?`, `!`) host names are understood.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha1::Digest as _;

use super::ssh_config::host_matches;
use super::{ConnectOptions, HostKeyChecking};

/// How known_hosts names a host: `host`, or `[host]:port` off port 22.
pub(super) fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// One usable known_hosts line.
#[derive(Debug, Clone)]
struct Entry {
    /// `@revoked`: this key must never be accepted.
    revoked: bool,
    names: Names,
    key_type: String,
    /// The decoded key blob.
    key: Vec<u8>,
    origin: String,
}

#[derive(Debug, Clone)]
enum Names {
    /// Comma-separated patterns (`web1,10.0.0.1`, `*.corp`, `!bad.corp`).
    Patterns(Vec<String>),
    /// `|1|base64 salt|base64 HMAC-SHA1(salt, name)`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

impl Names {
    fn matches(&self, name: &str) -> bool {
        match self {
            Names::Patterns(patterns) => host_matches(name, patterns),
            Names::Hashed { salt, hash } => hmac_sha1(salt, name.as_bytes()) == hash.as_slice(),
        }
    }
}

/// HMAC-SHA1 (RFC 2104), what OpenSSH hashes known_hosts names with.
fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut padded = [0u8; BLOCK];
    if key.len() > BLOCK {
        padded[..20].copy_from_slice(&sha1::Sha1::digest(key));
    } else {
        padded[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = padded.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = padded.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha1::Sha1::new()
        .chain_update(&inner_pad)
        .chain_update(message)
        .finalize();
    sha1::Sha1::new()
        .chain_update(&outer_pad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Parses one known_hosts line; `None` for comments, blank lines, `@cert-authority` lines
/// (play does not use host certificates) and lines it cannot read.
fn parse_line(line: &str, origin: String) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let mut revoked = false;
    if let Some(marker) = first.strip_prefix('@') {
        match marker {
            "revoked" => revoked = true,
            _ => return None,
        }
        first = fields.next()?;
    }
    let key_type = fields.next()?.to_string();
    let key = base64::engine::general_purpose::STANDARD
        .decode(fields.next()?)
        .ok()?;
    let names = match first.strip_prefix("|1|") {
        Some(hashed) => {
            let (salt, hash) = hashed.split_once('|')?;
            let b64 = base64::engine::general_purpose::STANDARD;
            Names::Hashed {
                salt: b64.decode(salt).ok()?,
                hash: b64.decode(hash).ok()?,
            }
        }
        None => Names::Patterns(first.split(',').map(str::to_string).collect()),
    };
    Some(Entry {
        revoked,
        names,
        key_type,
        key,
        origin,
    })
}

fn read_entries(files: &[PathBuf]) -> Vec<Entry> {
    let mut entries = Vec::new();
    for file in files {
        // A missing or unreadable file knows no hosts, as with OpenSSH.
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            if let Some(entry) = parse_line(line, format!("{}:{}", file.display(), number + 1)) {
                entries.push(entry);
            }
        }
    }
    entries
}

/// The key type named inside an SSH public key blob (its first length-prefixed string).
pub(super) fn blob_key_type(blob: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let name = blob.get(4..4usize.checked_add(len)?)?;
    String::from_utf8(name.to_vec()).ok()
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub(super) fn fingerprint(blob: &[u8]) -> String {
    let digest = sha2::Sha256::digest(blob);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// Key types known_hosts already holds for `name`, so that the handshake can ask for one of
/// them first (as OpenSSH orders its host key algorithms).
pub(super) fn known_key_types(options: &ConnectOptions) -> Vec<String> {
    let name = known_hosts_name(&options.host, options.port);
    let mut types: Vec<String> = Vec::new();
    for entry in read_entries(&all_files(options)) {
        if !entry.revoked && entry.names.matches(&name) && !types.contains(&entry.key_type) {
            types.push(entry.key_type);
        }
    }
    types
}

fn all_files(options: &ConnectOptions) -> Vec<PathBuf> {
    options
        .known_hosts_files
        .iter()
        .chain(&options.global_known_hosts_files)
        .cloned()
        .collect()
}

/// Checks the key the server presented. `Ok` means the key is known (or may be trusted
/// under the checking mode, and was recorded for `accept-new`).
pub(super) fn verify(options: &ConnectOptions, key: &[u8]) -> Result<(), String> {
    let name = known_hosts_name(&options.host, options.port);
    let key_type = blob_key_type(key).unwrap_or_else(|| "unknown".into());
    let entries = read_entries(&all_files(options));
    let for_host: Vec<&Entry> = entries.iter().filter(|e| e.names.matches(&name)).collect();
    if let Some(revoked) = entries.iter().find(|e| e.revoked && e.key == key) {
        return Err(format!(
            "the host key of {name} ({key_type} {}) is marked @revoked in {}; refusing to connect",
            fingerprint(key),
            revoked.origin
        ));
    }
    let same_type: Vec<&&Entry> = for_host
        .iter()
        .filter(|e| !e.revoked && e.key_type == key_type)
        .collect();
    if same_type.iter().any(|e| e.key == key) {
        return Ok(());
    }
    if let Some(old) = same_type.first() {
        // A changed key is refused whatever StrictHostKeyChecking says: it is what a
        // man-in-the-middle looks like, and only a person can tell it from a reinstall.
        let file = old.origin.rsplit_once(':').map_or(&*old.origin, |(f, _)| f);
        return Err(format!(
            "REMOTE HOST IDENTIFICATION HAS CHANGED for {name}: it now presents {key_type} {}, \
             which does not match the key in {}. Someone could be eavesdropping (a \
             man-in-the-middle attack), or the host was reinstalled. If you know the new key \
             is right, remove the old one with `ssh-keygen -R '{name}' -f {file}` and connect \
             again. play refuses changed host keys whatever host_key_checking says.",
            fingerprint(key),
            old.origin,
        ));
    }
    match options.host_key_checking {
        HostKeyChecking::Off => Ok(()),
        HostKeyChecking::AcceptNew => record(options, &name, &key_type, key),
        HostKeyChecking::Strict => {
            let files: Vec<String> = options
                .known_hosts_files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            let other_types: Vec<&str> = for_host.iter().map(|e| e.key_type.as_str()).collect();
            let also = if other_types.is_empty() {
                String::new()
            } else {
                format!(" (known_hosts has only its {} key)", other_types.join(", "))
            };
            let first_file = files
                .first()
                .cloned()
                .unwrap_or_else(|| "~/.ssh/known_hosts".into());
            let keyscan_port = if options.port == 22 {
                String::new()
            } else {
                format!("-p {} ", options.port)
            };
            Err(format!(
                "host key verification failed: {name} is not a known host{also}; it presents \
                 {key_type} {}. Looked in: {}. To trust it, check the fingerprint and add the \
                 key with `ssh-keyscan {keyscan_port}{} >> {first_file}`, or let play record \
                 new hosts with host_key_checking = \"accept-new\" (play.toml, \
                 ANSIBLE_HOST_KEY_CHECKING, or -o StrictHostKeyChecking=accept-new)",
                fingerprint(key),
                if files.is_empty() {
                    "(no known_hosts file)".to_string()
                } else {
                    files.join(", ")
                },
                options.host,
            ))
        }
    }
}

/// Appends `name key_type key` to the first user known_hosts file (`accept-new`).
fn record(options: &ConnectOptions, name: &str, key_type: &str, key: &[u8]) -> Result<(), String> {
    let Some(file) = options.known_hosts_files.first() else {
        return Err(format!(
            "cannot record the host key of {name}: UserKnownHostsFile is none"
        ));
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let line = format!(
        "{name} {key_type} {}\n",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    append_line(file, &line).map_err(|e| {
        format!(
            "cannot record the host key of {name} in {}: {e}",
            file.display()
        )
    })
}

/// One `write` in append mode, so that hosts recorded in parallel don't interleave lines.
fn append_line(file: &Path, line: &str) -> std::io::Result<()> {
    let mut handle = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    // A file not ending in a newline would glue our line to its last one.
    let needs_newline = std::fs::read(file)
        .map(|text| !text.is_empty() && !text.ends_with(b"\n"))
        .unwrap_or(false);
    let text = if needs_newline {
        format!("\n{line}")
    } else {
        line.to_string()
    };
    handle.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn blob(key_type: &str, body: &[u8]) -> Vec<u8> {
        let mut out = (key_type.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(key_type.as_bytes());
        out.extend_from_slice(body);
        out
    }

    fn line(name: &str, key: &[u8]) -> String {
        format!(
            "{name} {} {}\n",
            blob_key_type(key).expect("type"),
            base64::engine::general_purpose::STANDARD.encode(key)
        )
    }

    fn options(dir: &Path, port: u16, checking: HostKeyChecking) -> ConnectOptions {
        ConnectOptions {
            name: "h".into(),
            host: "10.1.2.3".into(),
            port,
            user: "root".into(),
            identity_files: Vec::new(),
            identities_only: false,
            password: None,
            known_hosts_files: vec![dir.join("sub/known_hosts")],
            global_known_hosts_files: vec![dir.join("global")],
            host_key_checking: checking,
            connect_timeout: Duration::from_secs(1),
            command_timeout: None,
            keepalive: None,
            compression: false,
            address_family: Default::default(),
            via: None,
        }
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        let digest = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn known_changed_unknown_and_accept_new() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ed = blob("ssh-ed25519", b"key-one");
        let ed_other = blob("ssh-ed25519", b"key-two");
        let rsa = blob("ssh-rsa", b"rsa-key");
        std::fs::write(
            dir.path().join("global"),
            format!(
                "# comment\n@cert-authority *.corp ssh-ed25519 AAAA\n{}{}",
                line("[10.1.2.3]:2222", &ed),
                line("10.1.2.3", &rsa)
            ),
        )
        .expect("write");
        let strict = options(dir.path(), 2222, HostKeyChecking::Strict);
        verify(&strict, &ed).expect("known key");
        let err = verify(&strict, &ed_other).expect_err("changed");
        assert!(
            err.contains("HAS CHANGED") && err.contains("[10.1.2.3]:2222"),
            "{err}"
        );
        let accept = options(dir.path(), 2222, HostKeyChecking::AcceptNew);
        assert!(
            verify(&accept, &ed_other).is_err(),
            "changed is refused under accept-new"
        );
        let off = options(dir.path(), 2222, HostKeyChecking::Off);
        assert!(
            verify(&off, &ed_other).is_err(),
            "changed is refused with checking off"
        );

        // Port 22 knows only the RSA key: an ed25519 key is new there, not changed.
        let strict22 = options(dir.path(), 22, HostKeyChecking::Strict);
        let err = verify(&strict22, &ed).expect_err("unknown");
        assert!(
            err.contains("not a known host") && err.contains("ssh-keyscan 10.1.2.3 >>"),
            "{err}"
        );
        assert_eq!(known_key_types(&strict22), ["ssh-rsa"]);

        let accept22 = options(dir.path(), 22, HostKeyChecking::AcceptNew);
        verify(&accept22, &ed).expect("recorded");
        let recorded =
            std::fs::read_to_string(dir.path().join("sub/known_hosts")).expect("recorded file");
        assert_eq!(recorded, line("10.1.2.3", &ed));
        verify(&strict22, &ed).expect("known now");
    }

    #[test]
    fn hashed_names_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = blob("ssh-ed25519", b"hashed");
        let salt = b"0123456789abcdefghij";
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = format!(
            "|1|{}|{}",
            b64.encode(salt),
            b64.encode(hmac_sha1(salt, b"10.1.2.3"))
        );
        std::fs::write(dir.path().join("global"), line(&hashed, &key)).expect("write");
        verify(&options(dir.path(), 22, HostKeyChecking::Strict), &key).expect("hashed match");
    }
}
