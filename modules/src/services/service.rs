//! The `service` module on systemd hosts: what Ansible's `service` action does there, which
//! is to run the `systemd` module with the task's arguments, warning about those systemd does
//! not use (`arguments`, `pattern`, `runlevel`, `sleep`).
//!
//! Which service manager runs the host comes from the `service_mgr` fact when facts were
//! gathered (or from `use`), else from systemd's own marker directories, read by the same
//! probe exec. A host that systemd does not run fails with a message saying so: the SysV,
//! OpenRC and BSD backends of Ansible's `service` module are not implemented.

use serde::Deserialize;

use super::systemd::{manage, Options, Request, Scope, UnitState};
use crate::{args, Ctx, Map, Module, ModuleError, Outcome, Value};

/// `service`.
pub struct Service;

#[derive(Debug, Deserialize)]
struct ServiceArgs {
    #[serde(alias = "service", alias = "unit")]
    name: String,
    state: Option<UnitState>,
    enabled: Option<bool>,
    /// Ansible's `service` action hands every argument to the `systemd` module, so these
    /// work through `service` on a systemd host too.
    masked: Option<bool>,
    #[serde(default, alias = "daemon-reload")]
    daemon_reload: bool,
    #[serde(default, alias = "daemon-reexec")]
    daemon_reexec: bool,
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    no_block: bool,
    force: Option<bool>,
    /// Not used by systemd: accepted with Ansible's warning.
    #[allow(dead_code)]
    sleep: Option<Value>,
    #[allow(dead_code)]
    pattern: Option<Value>,
    #[allow(dead_code)]
    runlevel: Option<Value>,
    #[allow(dead_code)]
    #[serde(alias = "args")]
    arguments: Option<Value>,
    #[serde(rename = "use")]
    use_: Option<String>,
}

impl Module for Service {
    fn name(&self) -> &'static str {
        "service"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        args::field_names::<ServiceArgs>()
    }
    fn run(&self, ctx: &mut Ctx<'_>, raw: &Map) -> Result<Outcome, ModuleError> {
        let a: ServiceArgs = args::parse("service", raw)?;
        let manager = match a.use_.as_deref().map(str::to_ascii_lowercase) {
            Some(m) if m != "auto" => Some(m),
            _ => ctx
                .facts
                .get("service_mgr")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        if let Some(m) = manager.as_deref().filter(|m| *m != "systemd") {
            return Ok(Outcome::failed(format!(
                "The service module here manages systemd units only; this host's service manager is {m}"
            )));
        }
        // Ansible warns about each ignored argument the task gave, under the name it used.
        let mut warnings = Vec::new();
        for key in ["pattern", "runlevel", "sleep", "arguments", "args"] {
            if raw.contains_key(key) {
                warnings.push(format!(
                    "Ignoring \"{key}\" as it is not used in \"systemd\""
                ));
            }
        }
        let req = Request {
            name: Some(a.name),
            state: a.state,
            enabled: a.enabled,
            masked: a.masked,
            daemon_reload: a.daemon_reload,
            daemon_reexec: a.daemon_reexec,
            scope: a.scope,
            no_block: a.no_block,
            force: a.force.unwrap_or(false),
        };
        req.validate()?;
        let opts = Options {
            warnings,
            // Without a fact or `use` saying so, the probe checks that systemd runs the host.
            require_systemd: manager.is_none().then_some("service"),
        };
        manage(ctx, &req, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::scripted::{records, ScriptedHost};

    fn probe(managed: &str) -> Vec<u8> {
        records(&[
            ("managed", managed),
            ("show.rc", "0"),
            (
                "show",
                "Id=cron.service\nLoadState=loaded\nActiveState=active\n",
            ),
            ("en.rc", "0"),
            ("en", "enabled"),
        ])
    }

    #[test]
    fn on_systemd_it_is_the_systemd_module_with_ansibles_warnings() {
        let mut host = ScriptedHost::new().reply(&probe("1"), "", 0);
        let out = host
            .run(
                &Service,
                serde_json::json!({"name": "cron", "state": "started", "enabled": true, "sleep": 3, "args": "-x"}),
                false,
                &Map::new(),
            )
            .expect("runs");
        assert!(!out.changed && !out.failed, "{out:?}");
        assert_eq!(out.result["state"], "started");
        assert_eq!(out.result["enabled"], true);
        assert_eq!(out.result["status"]["ActiveState"], "active");
        assert_eq!(
            out.result["warnings"],
            serde_json::json!([
                "Ignoring \"sleep\" as it is not used in \"systemd\"",
                "Ignoring \"args\" as it is not used in \"systemd\""
            ])
        );
    }

    #[test]
    fn other_service_managers_are_refused() {
        let facts: Map =
            serde_json::from_value(serde_json::json!({"service_mgr": "openrc"})).expect("map");
        let mut host = ScriptedHost::new();
        let out = host
            .run(
                &Service,
                serde_json::json!({"name": "cron", "state": "started"}),
                false,
                &facts,
            )
            .expect("runs");
        assert_eq!(
            out.msg.as_deref(),
            Some("The service module here manages systemd units only; this host's service manager is openrc")
        );
        assert!(host.commands.is_empty());
        // Without facts the probe decides.
        let mut host = ScriptedHost::new().reply(&probe(""), "", 0);
        let out = host
            .run(
                &Service,
                serde_json::json!({"name": "cron", "state": "started"}),
                false,
                &Map::new(),
            )
            .expect("runs");
        assert!(out.failed);
        assert!(out
            .msg
            .as_deref()
            .unwrap_or("")
            .contains("systemd does not run this host"));
    }
}
