//! The `ping` module: proves the target answers a command over the connection (one exec of
//! `true`: the target's shell and the session, no Python) and returns `ping: <data>`.
//!
//! As in Ansible, `data: crash` makes the module fail on purpose (Ansible raises an
//! exception; play fails with its message, `boom`).

use serde::Deserialize;

use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Value};

/// `ping`.
pub struct Ping;

#[derive(Debug, Deserialize)]
struct PingArgs {
    #[serde(default = "pong")]
    data: String,
}

fn pong() -> String {
    "pong".into()
}

impl Module for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<PingArgs>()
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: PingArgs = args::parse("ping", args)?;
        if a.data == "crash" {
            return Ok(Outcome::failed("boom"));
        }
        let out = ctx.host.exec(&Cmd::argv(&["true"]))?;
        if out.status != 0 {
            return Ok(Outcome::failed(format!(
                "the target's shell did not run `true` (rc {}): {}",
                out.status,
                out.stderr_str().trim()
            )));
        }
        Ok(Outcome::ok().with("ping", Value::String(a.data)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::run_module;
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_pong_or_the_data_given_and_crashes_on_request() {
        let r = run_module(&Ping, false, json!({}))
            .expect("runs")
            .to_result();
        assert_eq!(r["ping"], "pong");
        assert_eq!(r["changed"], false);
        let r = run_module(&Ping, true, json!({"data": "hello"}))
            .expect("runs")
            .to_result();
        assert_eq!(r["ping"], "hello");
        let r = run_module(&Ping, false, json!({"data": "crash"}))
            .expect("runs")
            .to_result();
        assert_eq!(
            (r["failed"].clone(), r["msg"].clone()),
            (json!(true), json!("boom"))
        );
    }
}
