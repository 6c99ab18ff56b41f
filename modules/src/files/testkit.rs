//! Test helpers shared by the file modules' tests: running a module on the local host, and
//! a host that counts round trips (the modules promise how many they make).

use crate::local::LocalHost;
use crate::Value;
use crate::{Cmd, Ctx, FileAttrs, Host, HostError, Map, Module, ModuleError, Outcome, Output};

/// A local host that counts round trips; a `get` is one exec.
pub struct CountingHost {
    inner: LocalHost,
    pub execs: usize,
    pub puts: usize,
}

impl CountingHost {
    pub fn new() -> Self {
        CountingHost {
            inner: LocalHost::new("localhost"),
            execs: 0,
            puts: 0,
        }
    }
}

impl Host for CountingHost {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn exec(&mut self, cmd: &Cmd) -> Result<Output, HostError> {
        self.execs += 1;
        self.inner.exec(cmd)
    }
    fn put(&mut self, data: &[u8], dest: &str, attrs: &FileAttrs) -> Result<(), HostError> {
        self.puts += 1;
        self.inner.put(data, dest, attrs)
    }
    fn get(&mut self, path: &str) -> Result<Vec<u8>, HostError> {
        self.execs += 1;
        self.inner.get(path)
    }
}

/// Run `module` with `args` on `host`.
pub fn run_on(
    host: &mut dyn Host,
    module: &dyn Module,
    args: &Map,
    check: bool,
    diff: bool,
) -> Result<Outcome, ModuleError> {
    let facts = Map::new();
    let mut ctx = Ctx {
        host,
        check,
        diff,
        facts: &facts,
    };
    module.run(&mut ctx, args)
}

/// Run `module` on the local host with `args`, a JSON object.
pub fn run(
    module: &dyn Module,
    args: Value,
    check: bool,
    diff: bool,
) -> Result<Outcome, ModuleError> {
    let Value::Object(map) = args else {
        panic!("args must be an object")
    };
    run_on(&mut LocalHost::new("localhost"), module, &map, check, diff)
}
