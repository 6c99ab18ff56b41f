//! `TaskHost`: a host as one task sees it, adding the task's `environment` and `become` to every command.

use modules::cmd::atomic_write_script;
use modules::{Cmd, FileAttrs, Host, HostError, Output};

/// How to run commands as another user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Become {
    pub method: String,
    pub user: String,
}

pub struct TaskHost<'a> {
    pub inner: &'a mut dyn Host,
    pub env: Vec<(String, String)>,
    pub become_: Option<Become>,
}

impl TaskHost<'_> {
    fn wrap(&self, cmd: &Cmd) -> Cmd {
        let cmd = cmd.clone().with_env_defaults(&self.env);
        let Some(b) = &self.become_ else { return cmd };
        let inner = cmd.to_shell();
        let wrapped = match b.method.as_str() {
            "su" => Cmd::argv(&["su", "-s", "/bin/sh", "-c", &inner, &b.user]),
            "doas" => Cmd::argv(&["doas", "-n", "-u", &b.user, "/bin/sh", "-c", &inner]),
            // sudo: -n fails at once instead of waiting for a password nobody will type.
            _ => Cmd::argv(&["sudo", "-H", "-n", "-u", &b.user, "/bin/sh", "-c", &inner]),
        };
        match cmd.stdin_data() {
            Some(data) => wrapped.stdin(data.to_vec()),
            None => wrapped,
        }
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
        let wrapped = self.wrap(cmd);
        self.inner.exec(&wrapped)
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
