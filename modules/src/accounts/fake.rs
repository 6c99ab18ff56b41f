//! For the account modules' tests: a local host whose PATH starts with a directory of fake
//! tools (`getent`, `useradd`, `crontab`, ...), so the modules' real scripts run without
//! touching this machine's users or crontabs, and every tool call is logged with its
//! arguments and stdin.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::local::LocalHost;
use crate::{Cmd, Ctx, FileAttrs, Host, HostError, Map, Module, ModuleError, Outcome, Output};

pub struct FakeTools {
    pub dir: tempfile::TempDir,
    inner: LocalHost,
    pub execs: usize,
}

impl Default for FakeTools {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeTools {
    pub fn new() -> FakeTools {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("bin")).expect("bin");
        FakeTools {
            dir,
            inner: LocalHost::new("fake"),
            execs: 0,
        }
    }

    /// A path inside the test's own directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A fake `name` that logs its call (`name [arg] [arg]`, then `< stdin line` for each line
    /// of its stdin when `reads_stdin`) and then runs `body` (shell, `$@` are its arguments).
    pub fn tool(&self, name: &str, reads_stdin: bool, body: &str) {
        let log = self.path("log");
        let stdin_part = if reads_stdin {
            "__in=$(cat; echo .); __in=${__in%.}\nprintf '%s' \"$__in\" | sed 's/^/< /' >> \"$LOG\"\n"
        } else {
            ""
        };
        let script = format!(
            "#!/bin/sh\nLOG='{}'\n{{ printf '%s' '{name}'; for a; do printf ' [%s]' \"$a\"; done; printf '\\n'; }} >> \"$LOG\"\n{stdin_part}{body}\n",
            log.display()
        );
        let path = self.path("bin").join(name);
        std::fs::write(&path, script).expect("write tool");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Every logged call so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    pub fn clear_log(&self) {
        let _ = std::fs::remove_file(self.path("log"));
    }

    /// Run `module` with `args` (a JSON object).
    pub fn run(
        &mut self,
        module: &dyn Module,
        args: serde_json::Value,
        check: bool,
        diff: bool,
    ) -> Result<Outcome, ModuleError> {
        let serde_json::Value::Object(map) = args else {
            panic!("args must be an object")
        };
        let facts = Map::new();
        let mut ctx = Ctx {
            host: self,
            check,
            diff,
            facts: &facts,
        };
        module.run(&mut ctx, &map)
    }
}

impl Host for FakeTools {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError> {
        self.execs += 1;
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        self.inner.exec(&cmd.clone().env("PATH", path))
    }
    fn put(&mut self, data: &[u8], dest: &str, attrs: &FileAttrs) -> Result<(), HostError> {
        self.execs += 1;
        self.inner.put(data, dest, attrs)
    }
    fn get(&mut self, path: &str) -> Result<Vec<u8>, HostError> {
        self.execs += 1;
        self.inner.get(path)
    }
}
