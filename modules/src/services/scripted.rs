//! A test host that answers each exec with a prepared output and remembers the commands it
//! was given: for fixture tests of service modules ("probe output in, commands out").

use std::collections::VecDeque;

use crate::{Cmd, Ctx, FileAttrs, Host, HostError, Map, Module, ModuleError, Outcome, Output};

/// Replies to execs in order; every command and every `put` is recorded.
#[derive(Default)]
pub struct ScriptedHost {
    replies: VecDeque<Output>,
    /// The shell text of every exec, in order.
    pub commands: Vec<String>,
    /// `(path, data)` of every `put`/`put_new`.
    pub puts: Vec<(String, Vec<u8>)>,
}

impl ScriptedHost {
    pub fn new() -> Self {
        Self::default()
    }
    /// Queue a reply: stdout, stderr and status of the next exec.
    pub fn reply(mut self, stdout: &[u8], stderr: &str, status: i32) -> Self {
        self.replies.push_back(Output {
            status,
            stdout: stdout.to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        });
        self
    }
    /// Run `module` with `args` (a JSON object) on this host, with `facts`.
    pub fn run(
        &mut self,
        module: &dyn Module,
        args: serde_json::Value,
        check: bool,
        facts: &Map,
    ) -> Result<Outcome, ModuleError> {
        let serde_json::Value::Object(args) = args else {
            panic!("args must be an object")
        };
        let mut ctx = Ctx {
            host: self,
            check,
            diff: true,
            facts,
        };
        module.run(&mut ctx, &args)
    }
}

/// NUL-separated `key=value` records, as the probe scripts print them.
pub fn records(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

impl Host for ScriptedHost {
    fn name(&self) -> &str {
        "scripted"
    }
    fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError> {
        self.commands.push(cmd.to_shell());
        self.replies
            .pop_front()
            .ok_or_else(|| HostError::Unreachable(format!("no reply for {}", cmd.to_shell())))
    }
    fn put(&mut self, data: &[u8], dest: &str, _attrs: &FileAttrs) -> Result<(), HostError> {
        self.puts.push((dest.to_string(), data.to_vec()));
        Ok(())
    }
    fn get(&mut self, path: &str) -> Result<Vec<u8>, HostError> {
        Err(HostError::Transfer(format!("no get in fixtures: {path}")))
    }
}
