//! The `raw` module: the user's text handed to the target's shell exactly as written,
//! with nothing around it (no preamble, no expansion, no stripping): one exec.
//!
//! Like Ansible's raw action, it always reports `changed`, fails with `non-zero return
//! code` when rc != 0, and does not run in check mode (`supports_check` is false, so the
//! engine skips it).

use serde::Deserialize;

use super::support::put_output;
use crate::{args, Cmd, Ctx, Map, Module, ModuleError, Outcome, Value};

/// `raw`.
pub struct Raw;

#[derive(Debug, Deserialize)]
struct RawArgs {
    _raw_params: Option<String>,
    executable: Option<String>,
}

impl Module for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        crate::args::field_names::<RawArgs>()
    }
    fn free_form(&self) -> bool {
        true
    }
    fn supports_check(&self) -> bool {
        false
    }
    fn run(&self, ctx: &mut Ctx<'_>, args: &Map) -> Result<Outcome, ModuleError> {
        let a: RawArgs = args::parse("raw", args)?;
        let Some(text) = a._raw_params else {
            return Err(ModuleError::Args(
                "missing required arguments: _raw_params".into(),
            ));
        };
        let out = ctx.host.exec(&Cmd::user_shell(
            text,
            a.executable.filter(|e| !e.is_empty()),
        ))?;
        let mut outcome = if out.status == 0 {
            Outcome::changed(true)
        } else {
            let mut o = Outcome::failed("non-zero return code");
            o.changed = true;
            o
        };
        outcome.result.insert("rc".into(), Value::from(out.status));
        put_output(&mut outcome.result, &out.stdout, &out.stderr, false);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::run_module;
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_text_as_written() {
        let r = run_module(
            &Raw,
            false,
            json!({"_raw_params": "echo \"$((2*3))\"; echo e >&2"}),
        )
        .expect("runs")
        .to_result();
        assert_eq!(r["stdout"], "6\n");
        assert_eq!(r["stdout_lines"], json!(["6"]));
        assert_eq!(r["stderr"], "e\n");
        assert_eq!(r["rc"], 0);
        assert_eq!(r["changed"], true);
        assert!(r.get("msg").is_none());
    }

    #[test]
    fn failure_and_executable() {
        let r = run_module(&Raw, false, json!({"_raw_params": "exit 3"}))
            .expect("runs")
            .to_result();
        assert_eq!(r["rc"], 3);
        assert_eq!(r["failed"], true);
        assert_eq!(r["msg"], "non-zero return code");
        let r = run_module(
            &Raw,
            false,
            json!({"_raw_params": "[[ a == a ]] && echo \"it's\" $0", "executable": "/bin/bash"}),
        )
        .expect("runs")
        .to_result();
        assert_eq!(r["stdout"], "it's /bin/bash\n");
        assert!(!Raw.supports_check());
    }
}
