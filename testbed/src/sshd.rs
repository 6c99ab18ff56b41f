//! OpenSSH pieces: key generation with ssh-keygen, sshd_config, the client's ssh_config.

use std::fs;
use std::io;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub(crate) const SSHD: &str = "/usr/sbin/sshd";

/// Where OpenSSH 9.8 and later keep the per-connection program that the listener executes
/// (older versions re-execute the listener's own argv[0] with `-R` instead).
const SSHD_SESSION_CANDIDATES: &[&str] = &[
    "/usr/lib/openssh/sshd-session",
    "/usr/libexec/openssh/sshd-session",
    "/usr/libexec/sshd-session",
];

pub(crate) fn sshd_session_program() -> Option<&'static Path> {
    SSHD_SESSION_CANDIDATES
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
}

/// One running `ssh-keygen`; several run in parallel and are waited for together.
pub(crate) struct KeyGen {
    child: Child,
    path: PathBuf,
}

impl KeyGen {
    /// Starts generating an ed25519 key pair without passphrase at `path` and `path.pub`.
    pub(crate) fn spawn(path: &Path, comment: &str) -> io::Result<KeyGen> {
        let child = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot run ssh-keygen (package openssh-client): {error}"),
                )
            })?;
        Ok(KeyGen {
            child,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn wait(self) -> io::Result<()> {
        let output = self.child.wait_with_output()?;
        if output.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "ssh-keygen for {} failed ({}): {}",
                self.path.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }
}

/// "ssh-ed25519 AAAA..." from a .pub file, without the comment.
pub(crate) fn read_public_key(path: &Path) -> io::Result<String> {
    let text = fs::read_to_string(path)?;
    let fields: Vec<&str> = text.split_whitespace().take(2).collect();
    if fields.len() == 2 {
        Ok(fields.join(" "))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds no public key", path.display()),
        ))
    }
}

/// Quotes a path for ssh_config/sshd_config, whose values may be double-quoted.
fn config_path(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

pub(crate) struct SshdConfig<'a> {
    pub name: &'a str,
    pub listen: SocketAddrV4,
    pub host_key: &'a Path,
    pub authorized_keys: &'a Path,
    /// For a jump host on OpenSSH 9.8+: the wrapper that puts sessions in the jump namespace.
    pub session_program: Option<&'a Path>,
    pub password_logins: bool,
}

impl SshdConfig<'_> {
    pub(crate) fn render(&self) -> String {
        let mut text = format!(
            "# play testbed host {name}\n\
             ListenAddress {listen}\n\
             HostKey {host_key}\n\
             # sshd -D still writes a pid file, by default the system's /run/sshd.pid.\n\
             PidFile none\n\
             AuthorizedKeysFile {authorized_keys}\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication {password}\n\
             KbdInteractiveAuthentication no\n\
             HostbasedAuthentication no\n\
             UsePAM no\n\
             # The key files live in a temp dir that test users must be able to read.\n\
             StrictModes no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             X11Forwarding no\n\
             MaxSessions 64\n\
             MaxStartups 256:30:512\n\
             LogLevel INFO\n\
             Subsystem sftp internal-sftp\n\
             # bash skips ~/.bashrc for ssh commands when SHLVL is set: this machine's root\n\
             # .bashrc runs `pyenv init` (~90 ms), which every command would pay otherwise.\n\
             SetEnv SHLVL=1 TESTBED_HOST={name}\n",
            name = self.name,
            listen = self.listen,
            host_key = config_path(self.host_key),
            authorized_keys = config_path(self.authorized_keys),
            password = if self.password_logins { "yes" } else { "no" },
        );
        if let Some(program) = self.session_program {
            text.push_str(&format!("SshdSessionPath {}\n", config_path(program)));
        }
        text
    }
}

/// The client settings every ssh run by the tests uses (`ssh -F`). Unlike `-i`/`-o` options,
/// `-F` is passed on to the ssh that `-J`/ProxyJump starts for the jump host.
pub(crate) fn client_config(client_key: &Path, known_hosts: &Path) -> String {
    format!(
        "# play testbed client settings\n\
         Host *\n\
         \x20 User root\n\
         \x20 IdentityFile {key}\n\
         \x20 IdentitiesOnly yes\n\
         \x20 UserKnownHostsFile {known_hosts}\n\
         \x20 GlobalKnownHostsFile /dev/null\n\
         \x20 StrictHostKeyChecking yes\n\
         \x20 BatchMode yes\n\
         \x20 LogLevel ERROR\n\
         # The default sntrup761 exchange costs ~75 ms of client CPU per connection here.\n\
         \x20 KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org\n",
        key = config_path(client_key),
        known_hosts = config_path(known_hosts),
    )
}
