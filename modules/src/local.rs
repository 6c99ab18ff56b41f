//! `LocalHost`: the `local` connection. Runs every command through `/bin/sh -c` on the
//! controller, exactly as the SSH connection runs it on a target, so modules behave the same.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::cmd::atomic_write_script;
use crate::{Cmd, FileAttrs, Host, HostError, Output};

/// A host reached without SSH (`connection: local`).
#[derive(Debug, Clone)]
pub struct LocalHost {
    name: String,
}

impl LocalHost {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl Host for LocalHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd.to_shell())
            .stdin(if cmd.stdin_data().is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HostError::Unreachable(format!("cannot start /bin/sh: {e}")))?;
        // Feed stdin from another thread so a command that prints a lot cannot deadlock us.
        let writer = match (cmd.stdin_data(), child.stdin.take()) {
            (Some(data), Some(mut pipe)) => {
                let data = data.to_vec();
                Some(std::thread::spawn(move || {
                    // A command may exit without reading its stdin; that is not our error.
                    let _ = pipe.write_all(&data);
                }))
            }
            _ => None,
        };
        let out = child
            .wait_with_output()
            .map_err(|e| HostError::Unreachable(format!("waiting for /bin/sh: {e}")))?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ok(Output {
            status: exit_status(&out.status),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn put(&mut self, data: &[u8], dest: &str, attrs: &FileAttrs) -> Result<(), HostError> {
        let out = self.exec(&Cmd::script(atomic_write_script(dest, attrs)).stdin(data))?;
        if out.success() {
            Ok(())
        } else {
            Err(HostError::Transfer(format!(
                "writing {dest} failed: {}",
                out.stderr_str().trim()
            )))
        }
    }

    fn get(&mut self, path: &str) -> Result<Vec<u8>, HostError> {
        let out = self.exec(&Cmd::argv(&["cat", "--", path]))?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(HostError::Transfer(format!(
                "reading {path} failed: {}",
                out.stderr_str().trim()
            )))
        }
    }
}

/// Exit status as a shell reports it: 128 + signal for a killed process.
fn exit_status(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_get_round_trip_hostile_names_and_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("a 'b' $(x) `y`\nz.txt");
        let dest = dest.to_str().expect("utf-8 path");
        let mut host = LocalHost::new("localhost");
        let data = b"line 1\n'quoted' \"double\" $(not run)\n";
        host.put(
            data,
            dest,
            &FileAttrs {
                mode: Some(0o640),
                ..Default::default()
            },
        )
        .expect("put");
        assert_eq!(host.get(dest).expect("get"), data);
        let mode = host
            .exec(&Cmd::argv(&["stat", "-c", "%a", dest]))
            .expect("stat")
            .stdout_str();
        assert_eq!(mode.trim(), "640");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temp file is left behind");
    }

    #[test]
    fn exec_keeps_stdout_stderr_and_status_apart() {
        let mut host = LocalHost::new("localhost");
        let out = host
            .exec(&Cmd::script(
                crate::Script::new().raw("echo out; echo err >&2; exit 3"),
            ))
            .expect("exec");
        assert_eq!(
            (out.status, out.stdout_str(), out.stderr_str()),
            (3, "out\n".into(), "err\n".into())
        );
    }
}
