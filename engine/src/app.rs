//! One `play` invocation: settings, inventory, loading every playbook before anything runs, then
//! listing or running; and `play graph`, which loads the playbooks and prints their roles.

use std::path::Path;

use crate::cli::{self, Cli, GraphCli, ModulesCli};
use crate::connection::HostKeyChecking;
use crate::error::{exit, Diagnostic};
use crate::executor::{Options, Runner};
use crate::inventory::Inventory;
use crate::playbook::{self, Loader, Playbook};
use crate::report::{Format, Reporter};
use crate::roles::{self, RoleSearch};

pub fn run(cli: Cli) -> Result<i32, Diagnostic> {
    let settings = cli::settings(&cli)?;
    let format = match cli.output.as_str() {
        "text" => Format::Text,
        "json" => Format::Json,
        other => {
            return Err(Diagnostic::new(format!(
                "unknown --output format '{other}' (use text or json)"
            ))
            .exit_code(exit::BAD_OPTIONS))
        }
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    // The vault's keys are installed before anything is read: any vars file may be encrypted.
    let project = settings.project_dir.clone().unwrap_or_else(|| cwd.clone());
    crate::vault::install(
        cli.vault
            .vault(settings.vault_identity.clone(), &project, &[])?,
    );
    let extra_vars = cli::extra_vars(&cli.extra_vars, &cwd)?;

    // The whole playbook, with its imports and roles, loads before anything runs anywhere.
    let role_search = RoleSearch::new(settings.roles_path.clone(), settings.project_dir.as_deref());
    let playbooks = load_playbooks(&cli.playbooks, &role_search, &extra_vars)?;

    let mut inventory = if settings.inventory.is_empty() {
        Inventory::empty()
    } else {
        Inventory::load(&settings.inventory)?
    };
    if let Some(dir) = cli.playbooks.first().and_then(|p| p.parent()) {
        inventory.set_playbook_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })?;
    }
    if let Some(limit) = &cli.limit {
        // An unknown name in -l is an error before anything runs.
        inventory.limit(limit)?;
    }

    let host_key_checking = match &settings.host_key_checking {
        Some(value) => Some(HostKeyChecking::parse(value).ok_or_else(|| {
            Diagnostic::new(format!(
                "host_key_checking = '{value}': use true, false or accept-new"
            ))
            .exit_code(exit::BAD_OPTIONS)
        })?),
        None => None,
    };
    let reporter = Reporter::new(format, cli.verbose);
    for w in inventory.warnings() {
        reporter.warning(w);
    }
    let opts = Options {
        check: cli.check,
        diff: cli.diff,
        verbosity: cli.verbose,
        forks: settings.forks,
        tags: cli::split_tags(&cli.tags),
        skip_tags: cli::split_tags(&cli.skip_tags),
        limit: cli.limit.clone(),
        extra_vars,
        start_at_task: cli.start_at_task.clone(),
        connection: cli.connection.clone(),
        become_: cli.become_,
        become_user: cli.become_user.clone(),
        become_method: cli.become_method.clone(),
        become_password: if cli.ask_become_pass {
            let pw = rpassword::prompt_password("BECOME password: ").map_err(|e| {
                Diagnostic::new(format!(
                    "--ask-become-pass: cannot read a password from the terminal: {e}"
                ))
                .exit_code(exit::BAD_OPTIONS)
            })?;
            Some(crate::executor::hostwrap::Secret(pw))
        } else {
            None
        },
        remote_user: cli.user.clone(),
        private_key: settings.private_key.clone(),
        timeout: settings.timeout,
        host_key_checking,
        role_search,
    };

    if cli.syntax_check || cli.list_hosts || cli.list_tasks || cli.list_tags {
        let runner = Runner::new(opts, inventory, reporter)?;
        print!("{}", listing(&cli, &playbooks, &runner)?);
        return Ok(exit::OK);
    }

    let runner = Runner::new(opts, inventory, reporter)?;
    let end = runner.run(&playbooks)?;
    Ok(end.exit_code())
}

fn load_playbooks(
    paths: &[std::path::PathBuf],
    role_search: &RoleSearch,
    extra_vars: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<Playbook>, Diagnostic> {
    paths
        .iter()
        .map(|path| Loader::new(role_search.clone(), extra_vars.clone()).load_playbook(path))
        .collect()
}

/// `play modules`: print the catalog of modules and actions (or one of them).
pub fn modules(cli: ModulesCli) -> Result<i32, Diagnostic> {
    let out = if cli.format == "markdown" {
        crate::catalog::markdown()
    } else {
        crate::catalog::text(cli.name.as_deref()).map_err(|msg| {
            let mut d = Diagnostic::new(msg);
            d.code = exit::BAD_OPTIONS;
            d
        })?
    };
    print!("{out}");
    Ok(exit::OK)
}

/// `play graph`: load the playbooks (roles and all) and print each play's role graph.
pub fn graph(cli: GraphCli) -> Result<i32, Diagnostic> {
    let first = cli.playbooks.first().cloned().unwrap_or_default();
    let settings = cli::settings_for(&first, &[], None, None, None)?;
    let cwd = std::env::current_dir().unwrap_or_default();
    let extra_vars = cli::extra_vars(&cli.extra_vars, &cwd)?;
    let role_search = RoleSearch::new(settings.roles_path, settings.project_dir.as_deref());
    let playbooks = load_playbooks(&cli.playbooks, &role_search, &extra_vars)?;
    let text = match cli.format.as_str() {
        "dot" => roles::graph::render_dot(&playbooks),
        "json" => roles::graph::render_json(&playbooks),
        _ => roles::graph::render_tree(&playbooks),
    };
    print!("{text}");
    Ok(exit::OK)
}

/// `--syntax-check`, `--list-hosts`, `--list-tasks`, `--list-tags`, in ansible-playbook's format.
fn listing(cli: &Cli, playbooks: &[Playbook], runner: &Runner) -> Result<String, Diagnostic> {
    let mut out = String::new();
    for pb in playbooks {
        out.push_str(&format!("\nplaybook: {}\n", pb.path.display()));
        if cli.syntax_check {
            continue;
        }
        for (n, play) in pb.plays.iter().enumerate() {
            let play_tags = tag_list(play.keywords.get("tags"));
            out.push_str(&format!(
                "\n  play #{} ({}): {}\tTAGS: [{}]\n",
                n + 1,
                play.hosts,
                play.name,
                play_tags.join(", ")
            ));
            if cli.list_hosts {
                let hosts = runner.play_hosts(play)?;
                let patterns: Vec<String> = play
                    .hosts
                    .split(',')
                    .map(|p| format!("'{}'", p.trim()))
                    .collect();
                out.push_str(&format!(
                    "    pattern: [{}]\n    hosts ({}):\n",
                    patterns.join(", "),
                    hosts.len()
                ));
                for h in hosts {
                    out.push_str(&format!("      {h}\n"));
                }
            }
            let mut tasks = Vec::new();
            for section in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
                playbook::walk(section, &mut tasks);
            }
            let shown: Vec<_> = tasks
                .into_iter()
                .filter(|t| runner.selected_by_tags(t))
                .collect();
            if cli.list_tasks {
                out.push_str("    tasks:\n");
                for t in &shown {
                    // The play's tags and the task's own, as ansible-playbook lists them.
                    let mut tags: Vec<String> = t.tags.iter().chain(&play_tags).cloned().collect();
                    tags.sort();
                    tags.dedup();
                    out.push_str(&format!(
                        "      {}\tTAGS: [{}]\n",
                        t.list_name(),
                        tags.join(", ")
                    ));
                }
            }
            if cli.list_tags {
                let mut all: Vec<String> =
                    shown.iter().flat_map(|t| t.tags.iter().cloned()).collect();
                all.extend(play_tags.iter().cloned());
                all.sort();
                all.dedup();
                out.push_str(&format!("      TASK TAGS: [{}]\n", all.join(", ")));
            }
        }
    }
    Ok(out)
}

fn tag_list(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => s.split(',').map(|t| t.trim().to_string()).collect(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}
