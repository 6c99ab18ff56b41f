//! Unit tests of role loading: entries, role files, variables along the chain, cycles.

use super::files::load_role_vars;
use super::*;
use crate::error::exit;
use crate::playbook::Loader;
use crate::yaml;
use serde_json::json;

/// Write files (path, text) under a fresh directory.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    dir
}

fn load(dir: &Path) -> Result<crate::playbook::Playbook, Diagnostic> {
    Loader::new(
        RoleSearch::new(vec![dir.join("elsewhere")], None),
        Map::new(),
    )
    .load_playbook(&dir.join("site.yml"))
}

fn names(tasks: &[Task]) -> Vec<String> {
    let mut all = Vec::new();
    crate::playbook::walk(tasks, &mut all);
    all.iter().map(|t| t.display_name()).collect()
}

#[test]
fn role_entries_split_keywords_vars_and_params() {
    let docs = yaml::load_str(
        "- web\n- role: db\n  db_port: 5432\n  when: x\n  become: true\n  vars: {a: 1}\n- {name: cache}\n- src: git+https://example.com/x/ansible-role-ntp.git,v1\n",
        Path::new("site.yml"),
    )
    .expect("yaml");
    let items = docs[0].as_seq().expect("list");
    let specs: Vec<RoleSpec> = items
        .iter()
        .map(|n| RoleSpec::from_node(n).expect("spec"))
        .collect();
    assert_eq!(specs[0].name, "web");
    assert_eq!(specs[1].name, "db");
    assert_eq!(
        Value::Object(specs[1].params.clone()),
        json!({"db_port": 5432})
    );
    assert_eq!(
        Value::Object(specs[1].keywords.clone()),
        json!({"when": "x", "become": true})
    );
    assert_eq!(Value::Object(specs[1].vars.clone()), json!({"a": 1}));
    assert_eq!(specs[1].span.line, 2);
    assert_eq!(specs[2].name, "cache");
    assert_eq!(specs[3].name, "ansible-role-ntp");

    let bad = yaml::load_str("- {port: 1}\n- a,b\n", Path::new("site.yml")).expect("yaml");
    let items = bad[0].as_seq().expect("list");
    assert_eq!(
        RoleSpec::from_node(&items[0]).expect_err("no name").message,
        "role definitions must contain a role name"
    );
    assert_eq!(
        RoleSpec::from_node(&items[1])
            .expect_err("old style")
            .message,
        "Invalid old style role requirement: a,b"
    );
}

#[test]
fn role_files_follow_ansibles_names() {
    let dir = tree(&[
        ("r/tasks/main.yaml", "- debug: msg=a\n"),
        ("r/tasks/extra.yml", "- debug: msg=b\n"),
        ("r/defaults/main/10-a.yml", "a: 1\nb: 1\n"),
        ("r/defaults/main/20-b.yml", "b: 2\n"),
        ("r/defaults/main/notes.txt", "ignored\n"),
    ]);
    let r = dir.path().join("r");
    assert_eq!(
        role_files(&r, "tasks", None, false).expect("main"),
        vec![r.join("tasks/main.yaml")]
    );
    assert_eq!(
        role_files(&r, "tasks", Some("extra"), false).expect("from"),
        vec![r.join("tasks/extra.yml")]
    );
    assert_eq!(
        role_files(&r, "tasks", Some("missing"), false)
            .expect_err("missing")
            .message,
        "Could not find specified file in role: tasks/missing"
    );
    assert!(role_files(&r, "tasks", Some("../../etc/passwd"), false).is_err());
    assert!(role_files(&r, "handlers", None, false)
        .expect("no handlers")
        .is_empty());
    let defaults = load_role_vars(&r, "r", "defaults", None).expect("defaults");
    assert_eq!(Value::Object(defaults), json!({"a": 1, "b": 2}));
}

#[test]
fn dependencies_come_first_and_see_the_chain() {
    let dir = tree(&[
        (
            "site.yml",
            "- hosts: all\n  roles:\n    - role: app\n      app_port: 80\n  tasks:\n    - debug: msg=play\n",
        ),
        (
            "roles/app/meta/main.yml",
            "dependencies:\n  - role: base\n    level: 1\n",
        ),
        ("roles/app/tasks/main.yml", "- name: app task\n  debug: msg=a\n"),
        ("roles/app/defaults/main.yml", "shared: app\napp_default: 1\n"),
        ("roles/app/vars/main.yml", "app_var: 1\n"),
        ("roles/base/tasks/main.yml", "- name: base task\n  debug: msg=b\n"),
        ("roles/base/defaults/main.yml", "shared: base\n"),
    ]);
    let pb = load(dir.path()).expect("loads");
    let play = &pb.plays[0];
    assert_eq!(
        names(&play.tasks),
        ["base : base task", "app : app task", "debug"]
    );
    // Two completion markers: one after each role.
    assert_eq!(play.tasks.iter().filter(|t| t.is_implicit()).count(), 2);
    let base = play.tasks[0]
        .role
        .as_ref()
        .expect("base's task has its role");
    // The dependency sees its parent's defaults and params, its own defaults winning.
    assert_eq!(
        Value::Object(base.vars.defaults.clone()),
        json!({"shared": "base", "app_default": 1})
    );
    assert_eq!(
        Value::Object(base.vars.params.clone()),
        json!({"app_port": 80, "level": 1})
    );
    assert_eq!(Value::Object(base.vars.vars.clone()), json!({"app_var": 1}));
    let app = play.tasks[2].role.as_ref().expect("app's task");
    assert_eq!(app.name, "app");
    assert_eq!(
        Value::Object(app.vars.params.clone()),
        json!({"app_port": 80})
    );
    // Public roles: every task of the play sees their defaults and vars.
    assert_eq!(
        Value::Object(play.roles.defaults.clone()),
        json!({"shared": "app", "app_default": 1})
    );
    assert_eq!(
        Value::Object(play.roles.exports.clone()),
        json!({"app_var": 1})
    );
    assert_eq!(play.roles.play_role_names, ["app"]);
    assert_eq!(play.roles.dependent_role_names, ["base"]);
}

#[test]
fn same_parameters_are_one_identity() {
    let dir = tree(&[
        (
            "site.yml",
            "- hosts: all\n  roles:\n    - r\n    - role: r\n    - {role: r, x: 1}\n    - {role: r, vars: {x: 1}}\n",
        ),
        ("roles/r/tasks/main.yml", "- debug: msg=r\n"),
    ]);
    let pb = load(dir.path()).expect("loads");
    let keys: Vec<String> = pb.plays[0]
        .tasks
        .iter()
        .filter(|t| t.is_implicit())
        .filter_map(|t| t.role.as_ref().map(|r| r.key.clone()))
        .collect();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys[0], keys[1]);
    assert_ne!(keys[0], keys[2]);
    assert_ne!(keys[2], keys[3]);
    assert_eq!(pb.plays[0].roles.graph.graph.node_count(), 3);
}

#[test]
fn a_cycle_names_every_edge() {
    let dir = tree(&[
        ("site.yml", "- hosts: all\n  roles:\n    - a\n"),
        ("roles/a/meta/main.yml", "dependencies:\n  - b\n"),
        (
            "roles/b/meta/main.yml",
            "galaxy_info: {}\ndependencies:\n  - c\n",
        ),
        ("roles/c/meta/main.yml", "dependencies:\n  - role: a\n"),
    ]);
    let e = load(dir.path()).expect_err("a cycle");
    let roles = dir.path().join("roles");
    assert_eq!(
        e.message,
        format!(
            "role dependency cycle: {0}/a/meta/main.yml:2 -> {0}/b/meta/main.yml:3 -> {0}/c/meta/main.yml:2 -> a",
            roles.display()
        )
    );
    assert_eq!(e.notes, ["the cycle: a -> b -> c -> a"]);
    assert_eq!(e.code, exit::ERROR);
}

#[test]
fn a_misspelt_meta_key_is_refused() {
    let dir = tree(&[
        ("site.yml", "- hosts: all\n  roles:\n    - a\n"),
        ("roles/a/meta/main.yml", "dependecies:\n  - b\n"),
    ]);
    let e = load(dir.path()).expect_err("refused");
    assert_eq!(
        e.message,
        "'dependecies' is not a valid attribute for a RoleMetadata"
    );
    assert_eq!(e.notes, ["did you mean 'dependencies'?"]);
}

#[test]
fn import_role_brings_tasks_handlers_and_public_vars() {
    let dir = tree(&[
        (
            "site.yml",
            "- hosts: all\n  tasks:\n    - import_role:\n        name: web\n        tasks_from: setup\n      tags: [web]\n    - command: 'true'\n      notify: 'web : reload'\n",
        ),
        ("elsewhere/web/tasks/setup.yml", "- name: set up\n  debug: msg=x\n"),
        ("elsewhere/web/handlers/main.yml", "- name: reload\n  debug: msg=r\n"),
        ("elsewhere/web/vars/main.yml", "web_port: 8080\n"),
    ]);
    let pb = load(dir.path()).expect("loads");
    let play = &pb.plays[0];
    assert_eq!(names(&play.tasks), ["web : set up", "command"]);
    assert_eq!(play.tasks[0].tags, ["web"]);
    assert_eq!(names(&play.handlers), ["web : reload"]);
    assert_eq!(
        Value::Object(play.roles.exports.clone()),
        json!({"web_port": 8080})
    );
}

#[test]
fn role_task_arguments_are_checked() {
    let dir = tree(&[(
        "site.yml",
        "- hosts: all\n  tasks:\n    - include_role:\n        name: web\n        task_from: x\n",
    )]);
    let e = load(dir.path()).expect_err("refused");
    assert_eq!(e.message, "Invalid options for include_role: task_from");
    let dir = tree(&[(
        "site.yml",
        "- hosts: all\n  tasks:\n    - import_role: name=web\n      loop: [1, 2]\n",
    )]);
    let e = load(dir.path()).expect_err("refused");
    assert_eq!(
        e.message,
        "You cannot use loops on 'import_role' statements. You should use 'include_role' instead."
    );
}

#[test]
fn end_role_belongs_in_a_role() {
    let dir = tree(&[("site.yml", "- hosts: all\n  tasks:\n    - meta: end_role\n")]);
    let e = load(dir.path()).expect_err("refused");
    assert_eq!(
        e.message,
        "Cannot execute 'end_role' from outside of a role"
    );
    let dir = tree(&[
        ("site.yml", "- hosts: all\n  roles: [r]\n"),
        (
            "roles/r/tasks/main.yml",
            "- meta: end_role\n- debug: msg=never\n",
        ),
    ]);
    let pb = load(dir.path()).expect("loads");
    assert_eq!(
        pb.plays[0].tasks.len(),
        3,
        "end_role, debug, completion marker"
    );
}

#[test]
fn a_role_importing_itself_is_refused() {
    let dir = tree(&[
        ("site.yml", "- hosts: all\n  roles: [a]\n"),
        ("roles/a/tasks/main.yml", "- import_role: name=b\n"),
        (
            "roles/b/tasks/main.yml",
            "- debug: msg=b\n- import_role: name=a\n",
        ),
    ]);
    let e = load(dir.path()).expect_err("refused");
    assert_eq!(e.message, "role cycle through import_role: a -> b -> a");
    let span = e.span.expect("span");
    assert!(span.file.ends_with("roles/b/tasks/main.yml"), "{span}");
    assert_eq!(span.line, 2);
}
