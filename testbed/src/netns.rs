//! Jump-only hosts: a network namespace that only a jump host's sessions can reach.
//!
//! On loopback every connection comes from 127.0.0.1 whatever address it goes to (the local
//! route carries `src 127.0.0.1`), so `from=` or `Match Address` cannot tell a connection
//! forwarded by the jump host from a direct one. Instead the jump-only hosts' sshd runs in
//! a network namespace of its own (only `lo`), which the test process cannot reach. The jump
//! host's listener stays in the main namespace, but each connection handler it starts joins
//! that namespace: sshd up to 9.7 re-executes its own argv[0] with `-R` for every connection
//! and 9.8+ executes `SshdSessionPath`; either is pointed at a wrapper script that enters the
//! namespace with `nsenter`. So a `direct-tcpip` channel (`ssh -J`) opened on the jump host
//! reaches the jump-only hosts, and a direct connection finds nothing listening.
//!
//! Side effect: commands run on the jump host also see only that namespace's network.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::procs;
use crate::spawn::{spawn_tied, tied_command};
use crate::sshd::SSHD;

pub(crate) const NSENTER: &str = "/usr/bin/nsenter";
const UNSHARE: &str = "/usr/bin/unshare";

#[derive(Debug)]
pub(crate) struct JumpNamespace {
    /// Index of the jump host in the host list.
    pub jump_host: usize,
    /// A `sleep` that keeps the namespace alive while hosts come and go.
    holder: Option<Child>,
    /// `/proc/<holder>/ns/net`.
    pub net_path: String,
    /// What the jump host's sshd runs (see the module comment).
    pub wrapper: PathBuf,
    /// Some on OpenSSH 9.8+: the wrapper goes into `SshdSessionPath`, the listener is sshd.
    pub session_program: Option<PathBuf>,
}

impl JumpNamespace {
    /// Creates the namespace and the wrapper script in `dir`.
    pub(crate) fn create(
        dir: &Path,
        jump_host: usize,
        session_program: Option<&Path>,
    ) -> io::Result<JumpNamespace> {
        fs::create_dir_all(dir)?;
        let mut command = tied_command(UNSHARE);
        command
            .args(["--net", "--", "sh", "-c"])
            .arg("ip link set lo up && echo ready && exec sleep infinity")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut holder = spawn_tied(command).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot run {UNSHARE} (package util-linux): {error}"),
            )
        })?;
        let mut first_line = String::new();
        if let Some(stdout) = holder.stdout.take() {
            BufReader::new(stdout).read_line(&mut first_line)?;
        }
        if first_line.trim() != "ready" {
            let mut stderr = String::new();
            if let Some(mut pipe) = holder.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            let _ = holder.kill();
            let _ = holder.wait();
            return Err(io::Error::other(format!(
                "cannot create a network namespace for a jump host (needs root, util-linux \
                 and iproute2): {}",
                stderr.trim()
            )));
        }
        let net_path = format!("/proc/{}/ns/net", holder.id());
        let wrapper = dir.join("sshd-in-jump-namespace");
        let script = match session_program {
            Some(program) => format!(
                "#!/bin/sh\n\
                 # sshd (9.8+) runs this for every connection: join the jump namespace.\n\
                 exec {NSENTER} --net={net_path} -- '{program}' \"$@\"\n",
                program = program.display()
            ),
            None => format!(
                "#!/bin/bash\n\
                 # The jump host's listener runs this script, so sshd re-executes it with -R for\n\
                 # every connection: those handlers join the jump namespace, the listener does not.\n\
                 case \" $* \" in\n\
                 *\" -R \"*) exec {NSENTER} --net={net_path} -- {SSHD} \"$@\" ;;\n\
                 esac\n\
                 # sshd re-executes its argv[0], so keep this script's path there.\n\
                 exec -a \"$0\" {SSHD} \"$@\"\n"
            ),
        };
        fs::write(&wrapper, script)?;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
        Ok(JumpNamespace {
            jump_host,
            holder: Some(holder),
            net_path,
            wrapper,
            session_program: session_program.map(Path::to_path_buf),
        })
    }
}

impl Drop for JumpNamespace {
    fn drop(&mut self) {
        if let Some(holder) = self.holder.take() {
            procs::terminate_listeners(vec![holder]);
        }
    }
}
