//! Tests of the whole inventory layer: formats, precedence, patterns and error texts, against fixtures in temp dirs.
//!
//! Unless a test says otherwise, its expectations (host order, groups, variables, pattern
//! results) were checked by hand against `ansible-inventory -i X --list`,
//! `ansible -i X PATTERN --list-hosts` and `ansible-playbook` debug output of ansible-core 2.19.

use super::*;
use serde_json::json;

fn write(dir: &Path, relative: &str, text: &str) -> PathBuf {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
    path
}

fn load(sources: &[PathBuf]) -> Inventory {
    match Inventory::load(sources) {
        Ok(inventory) => inventory,
        Err(e) => panic!("inventory should load:\n{}", e.render()),
    }
}

fn load_err(sources: &[PathBuf]) -> Diagnostic {
    match Inventory::load(sources) {
        Ok(_) => panic!("inventory should not load"),
        Err(e) => e,
    }
}

fn select(inventory: &Inventory, pattern: &str) -> Vec<String> {
    match inventory.select(pattern) {
        Ok(hosts) => hosts,
        Err(e) => panic!("pattern {pattern} should work:\n{}", e.render()),
    }
}

fn vars(inventory: &Inventory, host: &str) -> Value {
    Value::Object(inventory.host_vars(host))
}

const INI: &str = r#"# comment
; other comment
u1 a=1 b=True c='1' d="'1'" e=0644 f=yes g=[1,2] h="x y" i=a#comment
[web]
web[01:03]:2222 role=web
[db]
db-[a:c]
[db:vars]
x = '1'
y = 1 # comment
z = hello # not a comment for strings
ansible_group_priority = 5
[prod:children]
web
db
[prod:vars]
env=prod
[all:vars]
top=1
[ungrouped]
u2
[late:children]
early
[early]
e1
"#;

#[test]
fn ini_hosts_groups_and_values() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inventory = load(&[write(tmp.path(), "hosts.ini", INI)]);
    assert_eq!(
        inventory.hosts(),
        ["u1", "u2", "web01", "web02", "web03", "db-a", "db-b", "db-c", "e1"]
    );
    assert_eq!(
        Value::Object(inventory.groups_var()),
        json!({
            "all": ["u1", "u2", "web01", "web02", "web03", "db-a", "db-b", "db-c", "e1"],
            "ungrouped": ["u1", "u2"],
            "web": ["web01", "web02", "web03"],
            "db": ["db-a", "db-b", "db-c"],
            "prod": ["web01", "web02", "web03", "db-a", "db-b", "db-c"],
            "late": ["e1"],
            "early": ["e1"],
        })
    );
    assert_eq!(
        vars(&inventory, "u1"),
        json!({"top": 1, "a": 1, "b": true, "c": 1, "d": "1", "e": "0644", "f": "yes", "g": [1, 2], "h": "x y", "i": "a"})
    );
    assert_eq!(
        vars(&inventory, "web02"),
        json!({"top": 1, "env": "prod", "ansible_port": 2222, "role": "web"})
    );
    // ansible_group_priority is the group's priority, not a variable.
    assert_eq!(
        vars(&inventory, "db-b"),
        json!({"top": 1, "env": "prod", "x": "1", "y": 1, "z": "hello # not a comment for strings"})
    );
    assert_eq!(inventory.group_names("u2"), ["ungrouped"]);
    assert_eq!(inventory.group_names("db-a"), ["db", "prod"]);
    assert_eq!(inventory.group_names("e1"), ["early", "late"]);
    assert!(inventory.warnings().is_empty());
}

#[test]
fn every_pattern_operator() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inventory = load(&[write(tmp.path(), "hosts.ini", INI)]);
    let web = ["web01", "web02", "web03"];
    let db = ["db-a", "db-b", "db-c"];
    let everyone = [
        "u1", "u2", "web01", "web02", "web03", "db-a", "db-b", "db-c", "e1",
    ];
    let cases: &[(&str, &[&str])] = &[
        ("all", &everyone),
        ("*", &everyone),
        // `a*` matches the group `all`, so everything, as in Ansible.
        ("a*", &everyone),
        ("web", &web),
        ("web02", &["web02"]),
        (
            "web:db",
            &["web01", "web02", "web03", "db-a", "db-b", "db-c"],
        ),
        (
            "db:web",
            &["db-a", "db-b", "db-c", "web01", "web02", "web03"],
        ),
        ("web01,db", &["web01", "db-a", "db-b", "db-c"]),
        ("db , web01", &["db-a", "db-b", "db-c", "web01"]),
        ("prod:&db", &db),
        ("prod:!db", &web),
        // Written order doesn't matter: unions, then intersections, then exclusions.
        ("!db:prod", &web),
        ("&db:prod", &db),
        ("!web", &["u1", "u2", "db-a", "db-b", "db-c", "e1"]),
        ("&web", &web),
        ("web[0]", &["web01"]),
        ("web[-1]", &["web03"]),
        ("web[1:]", &["web02", "web03"]),
        ("prod[1:3]", &["web02", "web03", "db-a"]),
        ("~db-[ab]", &["db-a", "db-b"]),
        ("~web0", &web),
        ("web0*", &web),
        ("db-?", &db),
        ("*.example.com", &[]),
        ("ungrouped", &["u1", "u2"]),
        ("e1:late", &["e1"]),
        ("localhost", &["localhost"]),
        ("nosuch", &[]),
        ("nosuch:web01", &["web01"]),
    ];
    for (pattern, expected) in cases {
        assert_eq!(select(&inventory, pattern), *expected, "pattern {pattern}");
    }
}

#[test]
fn pattern_errors_name_the_pattern() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inventory = load(&[write(tmp.path(), "hosts.ini", INI)]);
    let err = inventory.select("web[5]").expect_err("out of range");
    assert_eq!(
        err.message,
        "No hosts matched the subscripted pattern 'web[5]'"
    );
    assert_eq!(err.code, 1);
    let err = inventory.select("~web(").expect_err("bad regex");
    assert_eq!(err.message, "Invalid host list pattern: ~web(");
    assert_eq!(err.code, 1);
}

const YAML: &str = r#"all:
  hosts:
    solo:
      ansible_host: 10.0.0.5
  vars:
    top: 1
  children:
    web:
      hosts:
        web[1:3]:
          http_port: 80
          cfg: {a: 1}
        "web4:2222":
      vars:
        tier: front
    db:
      hosts:
        db1:
        db2: {ansible_port: 5432}
        web1: {cfg: {b: 2}}
      children:
        replicas:
          hosts:
            db3:
      vars:
        tier: back
    pa:
      hosts: pr1
      vars: {x: a, ansible_group_priority: 10}
    pb:
      hosts: pr1
      vars: {x: b}
    other:
      host:
        foo:
      junk: 5
prod:
  children:
    web:
    db:
notagroup: [1, 2]
"#;

#[test]
fn yaml_hosts_groups_vars_and_warnings() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write(tmp.path(), "inv.yml", YAML);
    let inventory = load(std::slice::from_ref(&file));
    assert_eq!(
        Value::Object(inventory.groups_var()),
        json!({
            "all": ["solo", "web1", "web2", "web3", "web4", "db1", "db2", "pr1", "db3"],
            "ungrouped": ["solo"],
            "web": ["web1", "web2", "web3", "web4"],
            "db": ["db1", "db2", "web1", "db3"],
            "replicas": ["db3"],
            "pa": ["pr1"],
            "pb": ["pr1"],
            "other": [],
            "prod": ["web1", "web2", "web3", "web4", "db1", "db2", "db3"],
        })
    );
    // web and db have the same depth, so `web` (later by name) wins `tier`; a mapping
    // set twice is replaced, not merged.
    assert_eq!(
        vars(&inventory, "web1"),
        json!({"top": 1, "tier": "front", "http_port": 80, "cfg": {"b": 2}})
    );
    assert_eq!(
        vars(&inventory, "web4"),
        json!({"top": 1, "tier": "front", "ansible_port": 2222})
    );
    assert_eq!(
        vars(&inventory, "db2"),
        json!({"top": 1, "tier": "back", "ansible_port": 5432})
    );
    // pa has the higher ansible_group_priority, so it wins over pb despite the name order.
    assert_eq!(vars(&inventory, "pr1"), json!({"top": 1, "x": "a"}));
    assert_eq!(inventory.group_names("web1"), ["db", "prod", "web"]);
    assert_eq!(inventory.group_names("solo"), ["ungrouped"]);
    assert_eq!(
        select(&inventory, "prod"),
        ["web1", "web2", "web3", "web4", "db1", "db2", "db3"]
    );
    assert_eq!(select(&inventory, "web*:!web4"), ["web1", "web2", "web3"]);
    assert_eq!(select(&inventory, "db[0]"), ["db1"]);
    let f = file.display();
    assert_eq!(
        inventory.warnings(),
        [
            format!("{f}:34:7: Skipping unexpected key (host) in group (other), only \"vars\", \"children\" and \"hosts\" are valid"),
            format!("{f}:36:7: Skipping key (junk) in group (other) as it is not a mapping, it is a number"),
            format!("{f}:41:1: Skipping 'notagroup' as this is not a valid group definition (it is a list, not a mapping)"),
        ]
    );
}

#[test]
fn json_and_extensionless_files_are_detected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let json_file = write(
        tmp.path(),
        "a.json",
        r#"{"web": {"hosts": {"j1": {"port": 1}}, "vars": {"from": "json"}}}"#,
    );
    let yaml_no_ext = write(tmp.path(), "yamlish", "db:\n  hosts:\n    y1:\n");
    let ini_no_ext = write(tmp.path(), "iniish", "[cache]\nc1 mem=64\n");
    // Not YAML at all despite the name: Ansible falls back to INI, and so do we.
    let ini_in_yml = write(tmp.path(), "misnamed.yml", "[cache]\nc2\n");
    let inventory = load(&[json_file, yaml_no_ext, ini_no_ext, ini_in_yml]);
    assert_eq!(inventory.hosts(), ["j1", "y1", "c1", "c2"]);
    assert_eq!(vars(&inventory, "j1"), json!({"from": "json", "port": 1}));
    assert_eq!(vars(&inventory, "c1"), json!({"mem": 64}));
    assert_eq!(select(&inventory, "db"), ["y1"]);
}

#[test]
fn directories_are_read_sorted_skipping_backups_and_use_their_vars_dirs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("inventory");
    write(&dir, "02-web.ini", "[web]\nw1\n");
    write(&dir, "01-db.yml", "db:\n  hosts:\n    d1:\n");
    write(&dir, "sub/03-cache", "[cache]\nc1\n");
    write(&dir, "02-web.ini~", "[web]\nbackup\n");
    write(&dir, "hosts.retry", "retry\n");
    write(&dir, "hosts.orig", "orig\n");
    write(&dir, ".hidden", "hidden\n");
    write(&dir, "README.md", "# docs\n");
    write(&dir, "group_vars/web.yml", "from_dir: true\n");
    // Vars dirs in subdirectories of a source are not read (only beside the source).
    write(&dir, "sub/group_vars/cache.yml", "nested: true\n");
    let inventory = load(std::slice::from_ref(&dir));
    assert_eq!(inventory.hosts(), ["d1", "w1", "c1"]);
    assert_eq!(vars(&inventory, "w1"), json!({"from_dir": true}));
    assert_eq!(vars(&inventory, "c1"), json!({}));
    assert_eq!(inventory.inventory_file("w1"), Some(dir.join("02-web.ini")));
    assert_eq!(inventory.inventory_dir("c1"), Some(dir.join("sub")));
}

#[test]
fn host_lists_add_ungrouped_hosts_with_ports() {
    let inventory = load(&[PathBuf::from("h1, h2:2222,[::1]:2200,h1,")]);
    assert_eq!(inventory.hosts(), ["h1", "h2", "::1"]);
    assert_eq!(select(&inventory, "ungrouped"), ["h1", "h2", "::1"]);
    assert_eq!(vars(&inventory, "h2"), json!({"ansible_port": 2222}));
    assert_eq!(vars(&inventory, "::1"), json!({"ansible_port": 2200}));
    assert_eq!(inventory.inventory_dir("h1"), None);
    // A defined localhost-like host stands in for `localhost`.
    assert_eq!(select(&inventory, "localhost"), ["::1"]);
}

#[test]
fn localhost_is_implicit_unless_defined() {
    let inventory = Inventory::empty();
    assert!(inventory.hosts().is_empty());
    assert!(inventory.has_host("localhost"));
    assert!(!inventory.has_host("web1"));
    assert_eq!(select(&inventory, "localhost"), ["localhost"]);
    assert_eq!(select(&inventory, "all"), Vec::<String>::new());
    assert_eq!(
        vars(&inventory, "localhost"),
        json!({"ansible_connection": "local"})
    );
    assert_eq!(inventory.group_names("localhost"), Vec::<String>::new());
    assert_eq!(vars(&inventory, "web1"), json!({}));

    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "group_vars/all.yml",
        "everyone: 1\nansible_connection: ssh\n",
    );
    write(tmp.path(), "host_vars/localhost.yml", "own: 2\n");
    let implicit = load(&[write(tmp.path(), "hosts", "web1\n[all:vars]\nfrom_all=0\n")]);
    assert_eq!(implicit.hosts(), ["web1"]);
    // all's vars and group_vars/all apply; its own ansible_connection beats group_vars/all.
    assert_eq!(
        vars(&implicit, "localhost"),
        json!({"from_all": 0, "everyone": 1, "ansible_connection": "local", "own": 2})
    );

    let explicit = load(&[write(
        tmp.path(),
        "explicit",
        "localhost ansible_connection=ssh\n",
    )]);
    assert_eq!(explicit.hosts(), ["localhost"]);
    assert_eq!(select(&explicit, "all"), ["localhost"]);
    assert_eq!(
        vars(&explicit, "localhost"),
        json!({"everyone": 1, "ansible_connection": "ssh", "own": 2})
    );
}

/// Level i sets x_i..x_12 to i, so the result is x_k = k exactly when the levels apply in
/// this order (lowest first). A second source's group_vars/prod beats the first source's
/// group_vars/web (`y`): Ansible merges source by source, not group by group.
#[test]
fn variable_precedence_across_all_levels() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let levels = |from: usize, separator: &str| {
        (from..=12)
            .map(|k| format!("x{k}{separator}{from}\n"))
            .collect::<String>()
    };
    let inline_host_vars: String = (10..=12).map(|k| format!(" x{k}=10")).collect();
    let hosts = format!(
        "[web]\nweb1{inline_host_vars}\n[prod:children]\nweb\n[all:vars]\n{}[prod:vars]\n{}[web:vars]\n{}",
        levels(1, "="),
        levels(2, "="),
        levels(3, "=")
    );
    let first = write(root, "inv/hosts", &hosts);
    write(root, "inv/group_vars/all.yml", &levels(4, ": "));
    write(root, "pb/group_vars/all", &levels(5, ": "));
    write(root, "inv/group_vars/prod.yaml", &levels(6, ": "));
    let web_json: Vec<String> = (7..=12).map(|k| format!("\"x{k}\": 7")).collect();
    write(
        root,
        "inv/group_vars/web.json",
        &format!("{{{}, \"y\": \"invweb\"}}", web_json.join(", ")),
    );
    write(root, "pb/group_vars/prod.yml", &levels(8, ": "));
    write(root, "pb/group_vars/web/a.yml", &levels(9, ": "));
    write(root, "pb/group_vars/web/b.yml", "x9: 9\n");
    write(root, "inv/host_vars/web1.yml", &levels(11, ": "));
    write(root, "pb/host_vars/web1.yml", &levels(12, ": "));
    let second = write(root, "inv2/hosts", "[web]\nweb1\n");
    write(root, "inv2/group_vars/prod.yml", "y: inv2prod\n");

    let mut inventory = load(&[first, second]);
    inventory
        .set_playbook_dir(&root.join("pb"))
        .expect("playbook vars load");
    let mut expected: Map = (1..=12).map(|k| (format!("x{k}"), json!(k))).collect();
    expected.insert("y".into(), json!("inv2prod"));
    assert_eq!(inventory.host_vars("web1"), expected);

    // Another playbook dir replaces the first one's vars.
    write(root, "other/group_vars/all.yml", "x5: other\n");
    inventory
        .set_playbook_dir(&root.join("other"))
        .expect("loads");
    let vars = inventory.host_vars("web1");
    assert_eq!(vars.get("x5"), Some(&json!("other")));
    assert_eq!(vars.get("x8"), Some(&json!(7)));
    assert_eq!(vars.get("x12"), Some(&json!(11)));
}

#[test]
fn same_depth_groups_merge_by_priority_then_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plain = load(&[write(
        tmp.path(),
        "a",
        "[b]\nh\n[a]\nh\n[a:vars]\nx=a\n[b:vars]\nx=b\n",
    )]);
    assert_eq!(vars(&plain, "h"), json!({"x": "b"}));
    let prioritised = load(&[write(
        tmp.path(),
        "b",
        "[b]\nh\n[a]\nh\n[a:vars]\nx=a\nansible_group_priority=10\n[b:vars]\nx=b\n",
    )]);
    assert_eq!(vars(&prioritised, "h"), json!({"x": "a"}));
    // A child group's vars beat its parent's whatever the names.
    let nested = load(&[write(
        tmp.path(),
        "c",
        "[z]\nh\n[a:children]\nz\n[a:vars]\nx=parent\n[z:vars]\nx=child\n",
    )]);
    assert_eq!(vars(&nested, "h"), json!({"x": "child"}));
}

#[test]
fn hosts_added_at_runtime() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "group_vars/new.yml", "from_group_vars: 1\n");
    write(tmp.path(), "host_vars/n1.yml", "from_host_vars: 2\n");
    let mut inventory = load(&[write(tmp.path(), "hosts", "[web]\nw1 x=1\n")]);
    let mut new_vars = Map::new();
    new_vars.insert("x".into(), json!("added"));
    inventory
        .add_host("n1", &["new".to_string()], new_vars.clone())
        .expect("adds");
    inventory.add_host("n2", &[], Map::new()).expect("adds");
    inventory
        .add_host("w1", &["new".to_string()], new_vars)
        .expect("updates");
    // New hosts sit directly in `all`, so Ansible lists them first.
    assert_eq!(inventory.hosts(), ["n1", "n2", "w1"]);
    assert_eq!(select(&inventory, "new"), ["n1", "w1"]);
    assert_eq!(select(&inventory, "ungrouped"), ["n2"]);
    assert_eq!(inventory.group_names("n1"), ["new"]);
    assert_eq!(inventory.group_names("w1"), ["new", "web"]);
    assert_eq!(
        vars(&inventory, "n1"),
        json!({"from_group_vars": 1, "x": "added", "from_host_vars": 2})
    );
    assert_eq!(
        vars(&inventory, "w1"),
        json!({"from_group_vars": 1, "x": "added"})
    );
    assert_eq!(inventory.inventory_file("n1"), None);
    let err = inventory
        .add_host("", &[], Map::new())
        .expect_err("empty name");
    assert_eq!(err.message, "add_host: a host name must not be empty");
}

#[test]
fn limit_checks_every_name_and_suggests_near_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inventory = load(&[write(tmp.path(), "hosts.ini", INI)]);
    assert_eq!(
        inventory.limit("web:!web02").expect("ok"),
        ["web01", "web03"]
    );
    assert_eq!(inventory.limit("!prod").expect("ok"), ["u1", "u2", "e1"]);
    assert_eq!(inventory.limit("db[1:]").expect("ok"), ["db-b", "db-c"]);
    assert_eq!(inventory.limit("localhost").expect("ok"), ["localhost"]);

    let err = inventory.limit("webb").expect_err("unknown");
    assert_eq!(
        err.message,
        "--limit pattern 'webb' matches no host or group in the inventory"
    );
    assert_eq!(err.notes, ["did you mean 'web', 'web01' or 'web02'?"]);
    assert_eq!(err.code, 1);

    let err = inventory
        .limit("web:dbz:!nothing_like_it")
        .expect_err("unknown");
    assert_eq!(
        err.message,
        "--limit patterns 'dbz', 'nothing_like_it' match no host or group in the inventory"
    );
    assert_eq!(err.notes, ["'dbz': did you mean 'db'?"]);

    let err = inventory.limit("zz*").expect_err("a glob matching nothing");
    assert_eq!(
        err.message,
        "--limit pattern 'zz*' matches no host or group in the inventory"
    );
    assert!(err.notes.is_empty());

    let retry = write(tmp.path(), "site.retry", "web01\n\ndb-c\n");
    assert_eq!(
        inventory
            .limit(&format!("@{}", retry.display()))
            .expect("ok"),
        ["web01", "db-c"]
    );
    let missing = tmp.path().join("missing.retry");
    let err = inventory
        .limit(&format!("@{}", missing.display()))
        .expect_err("missing file");
    assert_eq!(
        err.message,
        format!("Unable to find limit file {}", missing.display())
    );
}

#[test]
fn yaml_structure_errors_name_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str, usize)] = &[
        (
            "web:\n  hosts:\n    - a\n    - b\n",
            "Invalid \"hosts\" entry for \"web\" group, requires a dictionary, found a list instead.",
            3,
        ),
        (
            "all:\n  children:\n    web:\n      vars: 5\n",
            "Invalid \"vars\" entry for \"web\" group, requires a dictionary, found a number instead.",
            4,
        ),
        (
            "web:\n  hosts:\n    1:\n",
            "Host pattern 1 must be a string. Enclose integers/floats in quotation marks.",
            3,
        ),
        (
            "web:\n  hosts:\n    web1: just-a-string\n",
            "host 'web1' in group 'web' must map to a mapping of variables (or nothing), not a string",
            3,
        ),
        (
            "web:\n  hosts:\n    web[1:]:\n",
            "invalid host range in 'web[1:]': a host range must specify an end value",
            3,
        ),
        (
            "- web1\n- web2\n",
            "YAML inventory has invalid structure, it should be a mapping of group names to groups, got a list",
            1,
        ),
        (
            // b gets a as its child first (children are parsed before being attached),
            // so attaching b under a is the step that closes the loop.
            "a:\n  children:\n    b:\n      children:\n        a:\n",
            "Adding group 'b' as child to 'a' creates a recursive dependency loop.",
            3,
        ),
        (
            "web:\n  children:\n    child: [x]\n",
            "'child' is not a known host nor group",
            3,
        ),
        ("web: {}\n---\ndb: {}\n", "", 3),
    ];
    for (index, (text, message, line)) in cases.iter().enumerate() {
        let file = write(tmp.path(), &format!("case{index}.yml"), text);
        let err = load_err(std::slice::from_ref(&file));
        let expected = if message.is_empty() {
            format!(
                "{} holds several YAML documents; an inventory must be one",
                file.display()
            )
        } else {
            message.to_string()
        };
        assert_eq!(err.message, expected, "case {index}");
        let span = err.span.clone().expect("has a position");
        assert_eq!(
            (span.file.as_path(), span.line),
            (file.as_path(), *line),
            "case {index}"
        );
        assert_eq!(err.code, 4, "case {index}");
    }

    let plugin = write(
        tmp.path(),
        "aws.yml",
        "plugin: amazon.aws.aws_ec2\nregions: [x]\n",
    );
    assert_eq!(
        load_err(std::slice::from_ref(&plugin)).message,
        format!(
            "{} is an inventory plugin configuration (plugin: amazon.aws.aws_ec2), which is not supported",
            plugin.display()
        )
    );
    let syntax = write(tmp.path(), "broken.yml", "web:\n  hosts: [a\n");
    let err = load_err(std::slice::from_ref(&syntax));
    assert!(
        err.message.starts_with("YAML syntax error"),
        "{}",
        err.message
    );
    assert_eq!(err.span.map(|s| s.file.to_path_buf()), Some(syntax));
}

#[test]
fn ini_errors_name_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str, usize)] = &[
        (
            "[web]\nw1\n[bad group]\n",
            "Invalid section entry: '[bad group]'. Please make sure that there are no spaces in the section entry, and that there are no other invalid characters",
            3,
        ),
        ("[web:hostz]\n", "Section [web:hostz] has unknown type: hostz", 1),
        ("[web]\nw1\n[web:vars]\njustaword\n", "Expected key=value, got: justaword", 4),
        ("[web]\nw1 flag\n", "Expected key=value host variable assignment, got: flag", 2),
        (
            "[web]\nw1 a=\"open\n",
            "Error parsing host definition 'w1 a=\"open': No closing quotation",
            2,
        ),
        (
            "[web]\nw1\n[db:vars]\nx=1\n",
            "Section [db:vars] not valid for undefined group 'db'.",
            3,
        ),
        (
            "[prod:children]\nweb\ndb\n[web]\nw1\n",
            "Section [prod:children] includes undefined group 'db'.",
            3,
        ),
        (
            "[a:children]\nb\n[b:children]\na\n",
            "Adding group 'a' as child to 'b' creates a recursive dependency loop.",
            4,
        ),
        ("[web]\nw[1:a]\n", "invalid host range in 'w[1:a]': begin and end must both be numbers or both single letters", 2),
        (
            "[web:vars]\nansible_group_priority=high\n[web]\n",
            "ansible_group_priority must be an integer, got 'high'",
            2,
        ),
    ];
    for (index, (text, message, line)) in cases.iter().enumerate() {
        let file = write(tmp.path(), &format!("case{index}.ini"), text);
        let err = load_err(std::slice::from_ref(&file));
        assert_eq!(err.message, *message, "case {index}");
        let span = err.span.clone().expect("has a position");
        assert_eq!(
            (span.file.as_path(), span.line),
            (file.as_path(), *line),
            "case {index}"
        );
        assert_eq!(err.code, 4, "case {index}");
    }
    // An extensionless file that is neither says why YAML did not apply either.
    let neither = write(tmp.path(), "neither", "[web]\nw1 a=\"open\n");
    let err = load_err(&[neither]);
    assert_eq!(
        err.message,
        "Error parsing host definition 'w1 a=\"open': No closing quotation"
    );
    assert_eq!(err.notes.len(), 1);
    assert!(
        err.notes[0]
            .starts_with("read as INI because it is not a YAML mapping either: YAML syntax error"),
        "{:?}",
        err.notes
    );
}

#[test]
fn ini_children_may_be_declared_later_and_vars_before_groups() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inventory = load(&[write(
        tmp.path(),
        "hosts",
        "[web:vars]\nport=80\n[prod:children]\nweb\n[web]\nw1\n",
    )]);
    assert_eq!(select(&inventory, "prod"), ["w1"]);
    assert_eq!(vars(&inventory, "w1"), json!({"port": 80}));
}

#[test]
fn missing_sources_and_unsupported_kinds_are_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope");
    let err = load_err(std::slice::from_ref(&missing));
    assert_eq!(
        err.message,
        format!(
            "inventory source {} does not exist (a list of hosts needs a comma, e.g. 'host1,')",
            missing.display()
        )
    );
    assert_eq!(err.code, 1);
    let toml = write(tmp.path(), "hosts.toml", "[web]\n");
    assert_eq!(
        load_err(std::slice::from_ref(&toml)).message,
        format!("{}: TOML inventories are not supported", toml.display())
    );
}

#[test]
fn broken_vars_files_are_errors_only_for_known_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "host_vars/ghost.yml", "a: [unclosed\n");
    let hosts = write(tmp.path(), "hosts", "web1\n");
    // No host named ghost: its file is never read, as in Ansible.
    let mut inventory = load(&[hosts]);
    let err = inventory
        .add_host("ghost", &[], Map::new())
        .expect_err("now it is read");
    assert!(
        err.message.starts_with("YAML syntax error"),
        "{}",
        err.message
    );
}

#[test]
fn name_clashes_and_odd_group_names_are_warnings() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inventory = load(&[write(
        tmp.path(),
        "hosts",
        "web\n[web-servers]\nw1\n[web]\nw2\n",
    )]);
    assert_eq!(
        inventory.warnings(),
        [
            "Invalid characters were found in group name 'web-servers' but not replaced",
            "Found both group and host with same name: web",
        ]
    );
    // A plain host name wins over the group of the same name, as in Ansible.
    assert_eq!(select(&inventory, "web"), ["web"]);
    assert_eq!(select(&inventory, "web-servers"), ["w1"]);
}

#[test]
fn deep_group_chains_do_not_exhaust_the_stack() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let levels = 1000;
    let mut ini: String = (0..levels)
        .map(|i| format!("[g{i}:children]\ng{}\n", i + 1))
        .collect();
    ini.push_str(&format!("[g{levels}]\nbottom\n"));
    let inventory = load(&[write(tmp.path(), "chain.ini", &ini)]);
    assert_eq!(select(&inventory, "g0"), ["bottom"]);
    assert_eq!(inventory.group_names("bottom").len(), levels + 1);

    let mut yaml = String::new();
    // 250 groups are 500 YAML levels: within what the YAML loader handles, beyond our limit.
    for i in 0..250 {
        let indent = "  ".repeat(2 * i);
        yaml.push_str(&format!("{indent}g{i}:\n{indent}  children:\n"));
    }
    let file = write(tmp.path(), "deep.yml", &yaml);
    let err = load_err(std::slice::from_ref(&file));
    assert_eq!(err.message, "groups nest more than 200 levels deep here");
}
