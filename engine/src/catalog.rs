//! What a task can call: every module of the registry and every action the engine carries
//! out itself, with the names each answers to and its arguments. `play modules` prints it and
//! README's module table is generated from it (a test keeps the two equal).

use std::fmt::Write as _;

/// One module or engine action as a user sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The short name (`copy`).
    pub name: String,
    /// Other names it answers to: aliases and fully qualified names.
    pub also: Vec<String>,
    /// Where it does its work: on the target (a module), on the controller, or both.
    pub runs: &'static str,
    /// Whether `--check` asks it what would change (else the task is skipped in check mode).
    pub check_mode: bool,
    /// Argument names, aliases included, sorted; empty for free-form-only actions.
    pub args: Vec<String>,
    /// Whether it takes free-form text (`command: ls -l`).
    pub free_form: bool,
}

/// Arguments of the template action beyond those it hands to `copy`.
const TEMPLATE_ONLY_ARGS: &[&str] = &[
    "src",
    "trim_blocks",
    "lstrip_blocks",
    "newline_sequence",
    "variable_start_string",
    "variable_end_string",
    "block_start_string",
    "block_end_string",
    "output_encoding",
];

/// Actions the engine carries out itself, with their arguments and whether they honour
/// check mode. `copy` and `setup` are modules as well and are listed there.
const ENGINE_ACTION_ARGS: &[(&str, &[&str], bool)] = &[
    ("debug", &["msg", "var", "verbosity"], true),
    ("set_fact", &["cacheable", "KEY=VALUE ..."], true),
    (
        "assert",
        &["that", "fail_msg", "msg", "success_msg", "quiet"],
        true,
    ),
    ("fail", &["msg"], true),
    ("group_by", &["key", "parents"], true),
    (
        "wait_for_connection",
        &["connect_timeout", "delay", "sleep", "timeout"],
        true,
    ),
    (
        "add_host",
        &[
            "name",
            "host",
            "hostname",
            "groups",
            "group",
            "groupname",
            "KEY=VALUE ...",
        ],
        true,
    ),
    ("pause", &["minutes", "seconds", "prompt", "echo"], true),
    (
        "meta",
        &[
            "flush_handlers",
            "end_play",
            "end_host",
            "end_batch",
            "end_role",
            "noop",
            "clear_facts",
            "clear_host_errors",
            "refresh_inventory",
            "reset_connection",
        ],
        true,
    ),
    (
        "include_vars",
        &[
            "file",
            "dir",
            "name",
            "depth",
            "files_matching",
            "ignore_files",
            "extensions",
            "ignore_unknown_extensions",
            "hash_behaviour",
        ],
        true,
    ),
    (
        "fetch",
        &[
            "src",
            "dest",
            "flat",
            "fail_on_missing",
            "validate_checksum",
        ],
        true,
    ),
    ("include_tasks", &["file", "apply"], true),
    ("import_tasks", &["file"], true),
    (
        "include_role",
        &[
            "name",
            "tasks_from",
            "vars_from",
            "defaults_from",
            "handlers_from",
            "public",
            "apply",
            "allow_duplicates",
        ],
        true,
    ),
    (
        "import_role",
        &[
            "name",
            "tasks_from",
            "vars_from",
            "defaults_from",
            "handlers_from",
            "allow_duplicates",
        ],
        true,
    ),
    ("import_playbook", &["PLAYBOOK"], true),
];

fn sorted(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().filter(|n| !n.starts_with('_')).collect();
    names.sort();
    names.dedup();
    names
}

fn module_entry(module: &dyn modules::Module) -> Entry {
    let name = module.name().to_string();
    let mut also: Vec<String> = module.aliases().iter().map(|a| a.to_string()).collect();
    let prefixes = std::iter::once("ansible.builtin").chain(module.collections().iter().copied());
    for prefix in prefixes {
        also.push(format!("{prefix}.{name}"));
    }
    Entry {
        name,
        also,
        // These read a file on the controller (a `src`, a script) and send it along.
        runs: match module.name() {
            "copy" | "script" | "unarchive" => "controller + target",
            _ => "target",
        },
        check_mode: module.supports_check(),
        args: sorted(module.arg_names().iter().map(|a| a.to_string())),
        free_form: module.free_form(),
    }
}

/// Every module and engine action, sorted by name.
pub fn entries() -> Vec<Entry> {
    let mut entries: Vec<Entry> = modules::REGISTRY.iter().map(|m| module_entry(*m)).collect();
    if let Some(copy) = modules::lookup("copy") {
        let mut args: Vec<String> = copy.arg_names().iter().map(|a| a.to_string()).collect();
        args.extend(TEMPLATE_ONLY_ARGS.iter().map(|a| a.to_string()));
        args.retain(|a| a != "content");
        entries.push(Entry {
            name: "template".into(),
            also: vec!["ansible.builtin.template".into()],
            runs: "controller + target",
            check_mode: true,
            args: sorted(args),
            free_form: false,
        });
    }
    for (name, args, check_mode) in ENGINE_ACTION_ARGS {
        entries.push(Entry {
            name: name.to_string(),
            also: vec![format!("ansible.builtin.{name}")],
            runs: match *name {
                "fetch" => "controller + target",
                _ => "controller",
            },
            check_mode: *check_mode,
            args: args.iter().map(|a| a.to_string()).collect(),
            free_form: matches!(
                *name,
                "meta" | "include_tasks" | "import_tasks" | "include_vars" | "import_playbook"
            ),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

fn code_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown table README.md carries between its `modules` markers.
pub fn markdown() -> String {
    let mut out = String::from(
        "| module | also answers to | runs on | check mode | arguments |\n|---|---|---|---|---|\n",
    );
    for e in entries() {
        let mut args = code_list(&e.args);
        if e.free_form {
            args = if args.is_empty() {
                "free-form".into()
            } else {
                format!("free-form; {args}")
            };
        }
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            e.name,
            code_list(&e.also),
            e.runs,
            if e.check_mode { "yes" } else { "skipped" },
            args
        );
    }
    out
}

/// Plain text for a terminal: every entry with its arguments, or just the one named.
pub fn text(only: Option<&str>) -> Result<String, String> {
    let all = entries();
    let chosen: Vec<&Entry> = match only {
        None => all.iter().collect(),
        Some(want) => {
            let short = want.rsplit('.').next().unwrap_or(want);
            let found: Vec<&Entry> = all
                .iter()
                .filter(|e| e.name == short || e.also.iter().any(|a| a == want || a == short))
                .collect();
            if found.is_empty() {
                let mut msg = format!("no module or action named '{want}'");
                let names = all.iter().map(|e| e.name.as_str());
                if let Some(near) = modules::did_you_mean(short, names) {
                    let _ = write!(msg, " (did you mean '{near}'?)");
                }
                return Err(msg);
            }
            found
        }
    };
    let mut out = String::new();
    for e in chosen {
        let _ = writeln!(out, "{}", e.name);
        if !e.also.is_empty() {
            let _ = writeln!(out, "  also:       {}", e.also.join(", "));
        }
        let _ = writeln!(out, "  runs on:    {}", e.runs);
        let _ = writeln!(
            out,
            "  check mode: {}",
            if e.check_mode { "yes" } else { "skipped" }
        );
        let mut args = e.args.join(", ");
        if e.free_form {
            args = if args.is_empty() {
                "free-form".into()
            } else {
                format!("free-form; {args}")
            };
        }
        let _ = writeln!(out, "  arguments:  {args}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_module_and_engine_action_is_listed_once() {
        let all = entries();
        for module in modules::REGISTRY {
            assert_eq!(
                all.iter().filter(|e| e.name == module.name()).count(),
                1,
                "{}",
                module.name()
            );
        }
        for name in ["template", "debug", "set_fact", "fetch", "include_role"] {
            assert!(all.iter().any(|e| e.name == name), "{name}");
        }
    }

    #[test]
    fn one_entry_is_found_by_any_of_its_names_and_typos_get_a_suggestion() {
        let text_of = |n| text(Some(n)).expect("found");
        assert!(text_of("ansible.builtin.lineinfile").starts_with("lineinfile\n"));
        assert!(text_of("copy").contains("  arguments:  "));
        let err = text(Some("lineinfil")).expect_err("no such module");
        assert_eq!(
            err,
            "no module or action named 'lineinfil' (did you mean 'lineinfile'?)"
        );
    }
}
