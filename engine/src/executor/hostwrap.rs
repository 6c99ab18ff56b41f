//! `TaskHost`: a host as one task sees it, adding the task's `environment` and `become` to every command.

use modules::cmd::atomic_write_script;
use modules::{Cmd, FileAttrs, Host, HostError, Output, Script};

/// A secret given on the command line: usable, never shown by `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("********")
    }
}

/// How to run commands as another user.
#[derive(Clone, PartialEq, Eq)]
pub struct Become {
    pub method: String,
    pub user: String,
    /// The become password (`ansible_become_password`, `-K`): only ever sent on stdin.
    pub password: Option<String>,
}

impl std::fmt::Debug for Become {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Become")
            .field("method", &self.method)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .finish()
    }
}

/// What sudo prints when it would have to ask for a password (`-n`), and what our wrapper
/// prints when the password given is refused.
const SUDO_NEEDS_PASSWORD: &str = "sudo: a password is required";
const SUDO_BAD_PASSWORD: &str = "play-become: incorrect sudo password";

pub struct TaskHost<'a> {
    pub inner: &'a mut dyn Host,
    pub env: Vec<(String, String)>,
    pub become_: Option<Become>,
}

impl TaskHost<'_> {
    fn wrap(&self, cmd: &Cmd) -> Result<Cmd, HostError> {
        let cmd = cmd.clone().with_env_defaults(&self.env);
        let Some(b) = &self.become_ else {
            return Ok(cmd);
        };
        let inner = cmd.to_shell();
        let stdin = cmd.stdin_data().map(<[u8]>::to_vec);
        let wrapped = match (b.method.as_str(), &b.password) {
            ("su", None) => Cmd::argv(&["su", "-s", "/bin/sh", "-c", &inner, &b.user]),
            ("doas", None) => Cmd::argv(&["doas", "-n", "-u", &b.user, "/bin/sh", "-c", &inner]),
            ("su" | "doas", Some(_)) => {
                return Err(HostError::Transfer(format!(
                    "become_method {} reads its password from a terminal, which play does not open; use sudo for become with a password",
                    b.method
                )))
            }
            // sudo without a password: -n fails at once instead of waiting for one nobody will type.
            (_, None) => Cmd::argv(&["sudo", "-H", "-n", "-u", &b.user, "/bin/sh", "-c", &inner]),
            // sudo with a password: the first stdin line is the password; it validates sudo's
            // credentials once (-S -v, which also works for NOPASSWD rules), then the command
            // runs with -n and gets the rest of stdin. The password is never in argv or env.
            (_, Some(pw)) => {
                let script = Script::new()
                    .raw("IFS= read -r play_pw || exit 1;")
                    .raw("printf '%s\\n' \"$play_pw\" | sudo -S -p '' -v 2>/dev/null")
                    .raw("|| { echo 'play-become: incorrect sudo password' >&2; exit 1; };")
                    // Not `exec`: sudo keys its cached credentials on the parent process
                    // when there is no terminal, so both sudos must have this shell as parent.
                    .raw("unset play_pw; sudo -H -n -u")
                    .arg(&b.user)
                    .raw("/bin/sh -c")
                    .arg(&inner);
                let mut data = format!("{pw}\n").into_bytes();
                data.extend(stdin.unwrap_or_default());
                return Ok(Cmd::script(script).secret_stdin(data));
            }
        };
        Ok(match stdin {
            Some(data) => wrapped.stdin(data),
            None => wrapped,
        })
    }

    /// sudo's refusals become one clear task failure instead of a module's puzzled message.
    fn check_become(&self, out: Output) -> Result<Output, HostError> {
        let Some(b) = &self.become_ else {
            return Ok(out);
        };
        if out.status == 0 || !matches!(b.method.as_str(), "sudo" | "") {
            return Ok(out);
        }
        let err = out.stderr_str();
        if err.contains(SUDO_NEEDS_PASSWORD) {
            return Err(HostError::Transfer(format!(
                "{SUDO_NEEDS_PASSWORD} to become {} on {}: set ansible_become_password (kept in the vault) or run with -K/--ask-become-pass",
                b.user,
                self.inner.name()
            )));
        }
        if err.contains(SUDO_BAD_PASSWORD) {
            return Err(HostError::Transfer(format!(
                "sudo refused the become password for {} on {} (incorrect password?)",
                b.user,
                self.inner.name()
            )));
        }
        Ok(out)
    }
}

impl Host for TaskHost<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError> {
        if self.env.is_empty() && self.become_.is_none() {
            return self.inner.exec(cmd);
        }
        let wrapped = self.wrap(cmd)?;
        let out = self.inner.exec(&wrapped)?;
        self.check_become(out)
    }

    fn put(&mut self, data: &[u8], dest: &str, attrs: &FileAttrs) -> Result<(), HostError> {
        if self.become_.is_none() {
            return self.inner.put(data, dest, attrs);
        }
        // As another user: the write itself must run as that user.
        let out = self.exec(&Cmd::script(atomic_write_script(dest, attrs)).stdin(data.to_vec()))?;
        if out.success() {
            Ok(())
        } else {
            Err(HostError::Transfer(format!(
                "writing {dest} failed: {}",
                out.stderr_str().trim()
            )))
        }
    }

    fn put_new(&mut self, data: &[u8], path: &str, mode: u32) -> Result<(), HostError> {
        if self.become_.is_none() {
            return self.inner.put_new(data, path, mode);
        }
        // As another user: written by that user, through `put`.
        let attrs = FileAttrs {
            mode: Some(mode),
            ..FileAttrs::default()
        };
        self.put(data, path, &attrs)
    }

    fn get(&mut self, path: &str) -> Result<Vec<u8>, HostError> {
        if self.become_.is_none() {
            return self.inner.get(path);
        }
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
