//! Unit tests for filters, tests, lazy variables, undefined handling and native types.
//!
//! Expected values were checked against ansible-core 2.19 (`ansible localhost -m debug`).

use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::{HostVars, Map, Scope, Source, Templar, TemplateError, Vars};

fn scope(vars: Json) -> Scope {
    match vars {
        Json::Object(map) => Scope::new(map),
        _ => Scope::new(Map::new()),
    }
}

fn vars() -> Scope {
    scope(json!({
        "base": "/srv",
        "app_name": "shop",
        "app_root": "{{ base }}/apps/{{ app_name }}",
        "nested": {"a": "{{ base }}/n", "l": ["{{ base }}", 2, "{{ 40 + 2 }}"]},
        "num": "{{ 40 + 2 }}",
        "flag": true,
        "nothing": null,
        "d": {"a": 1, "b": [1, "x", null, true, 1.5]},
        "users": [
            {"name": "alice", "uid": 1001, "shell": "/bin/bash", "groups": ["wheel", "dev"]},
            {"name": "bob", "uid": 1002, "groups": []}
        ],
        "s": "hello World",
        "csv": "a,b,,c",
        "cycle_a": "{{ cycle_b }}",
        "cycle_b": "{{ cycle_a }}",
        "broken": "{{ no_such_var }}",
        "version": "1.2.3"
    }))
}

/// Renders `{{ expr }}` inside text (string form, as a template file would).
fn render(expr: &str) -> String {
    let t = Templar::new();
    match t.template_str(&format!("<{{{{ {expr} }}}}>"), &vars()) {
        Ok(Json::String(s)) => s.trim_start_matches('<').trim_end_matches('>').to_string(),
        other => panic!("{expr}: {other:?}"),
    }
}

/// The native value of `{{ expr }}`.
fn native(expr: &str) -> Json {
    Templar::new()
        .template_str(&format!("{{{{ {expr} }}}}"), &vars())
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn error(expr: &str) -> TemplateError {
    match Templar::new().template_str(&format!("{{{{ {expr} }}}}"), &vars()) {
        Err(e) => e,
        Ok(v) => panic!("{expr}: expected an error, got {v}"),
    }
}

#[test]
fn python_rendering_of_values() {
    assert_eq!(render("d"), "{'a': 1, 'b': [1, 'x', None, True, 1.5]}");
    assert_eq!(render("1.0"), "1.0");
    assert_eq!(render("1e20"), "1e+20");
    assert_eq!(render("true"), "True");
    assert_eq!(render("none"), "");
    assert_eq!(render("[none]"), "[None]");
    assert_eq!(render("\"it's\""), "it's");
    assert_eq!(render("[\"it's\"]"), "[\"it's\"]");
    assert_eq!(render("7 / 2"), "3.5");
    assert_eq!(render("4 / 2"), "2.0");
}

#[test]
fn native_types_for_lone_expressions() {
    assert_eq!(native("num"), json!(42));
    assert_eq!(native("d.b"), json!([1, "x", null, true, 1.5]));
    assert_eq!(native("flag"), json!(true));
    assert_eq!(native("nothing"), json!(null));
    assert_eq!(native("'42'"), json!("42"));
    let t = Templar::new();
    assert_eq!(
        t.template_str(" {{ 42 }} ", &vars()).ok(),
        Some(json!(" 42 "))
    );
    assert_eq!(
        t.template_str("{{ [1, 2] }}\n", &vars()).ok(),
        Some(json!([1, 2]))
    );
    assert_eq!(
        t.template_str("{{ 1 }}{{ 2 }}", &vars()).ok(),
        Some(json!("12"))
    );
    assert_eq!(t.template_str("plain", &vars()).ok(), Some(json!("plain")));
}

#[test]
fn lazy_variables_resolve_on_access() {
    assert_eq!(native("app_root"), json!("/srv/apps/shop"));
    assert_eq!(
        native("nested"),
        json!({"a": "/srv/n", "l": ["/srv", 2, 42]})
    );
    assert_eq!(native("nested.l[2] + 1"), json!(43));
    assert_eq!(render("nested"), "{'a': '/srv/n', 'l': ['/srv', 2, 42]}");
}

#[test]
fn cycles_are_reported() {
    let e = error("cycle_a");
    assert!(
        e.message.contains("Recursive loop detected"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("cycle_a -> cycle_b -> cycle_a"),
        "{}",
        e.message
    );
}

#[test]
fn undefined_variables_fail_with_their_name() {
    let e = error("foo");
    assert_eq!(e.message, "'foo' is undefined");
    assert_eq!(e.undefined.as_deref(), Some("foo"));
    assert_eq!(error("foo | upper").message, "'foo' is undefined");
    assert_eq!(error("foo + 1").message, "'foo' is undefined");
    assert_eq!(error("foo == 1").message, "'foo' is undefined");
    assert_eq!(
        error("d.missing").message,
        "object of type 'dict' has no attribute 'missing'"
    );
    assert_eq!(
        error("d.missing.deeper").message,
        "object of type 'dict' has no attribute 'missing'"
    );
    assert_eq!(
        error("users[5]").message,
        "object of type 'list' has no attribute 5"
    );
    assert_eq!(error("broken").message, "'no_such_var' is undefined");
    let t = Templar::new();
    let e = t
        .template_str("{% for x in foo %}{{ x }}{% endfor %}", &vars())
        .err();
    assert_eq!(e.map(|e| e.message), Some("'foo' is undefined".to_string()));
    assert!(t.eval_bool("foo == 1", &vars()).is_err());
    assert!(t.eval_bool("foo", &vars()).is_err());
}

#[test]
fn guarded_undefined_values_do_not_fail() {
    assert_eq!(native("foo | default('x')"), json!("x"));
    assert_eq!(native("foo.bar | default('x')"), json!("x"));
    assert_eq!(native("foo.bar is defined"), json!(false));
    assert_eq!(native("d.missing.deeper | default('x')"), json!("x"));
    assert_eq!(native("foo is undefined"), json!(true));
    assert_eq!(native("broken | default('d')"), json!("d"));
    assert_eq!(native("broken is defined"), json!(false));
    assert_eq!(
        native("users | selectattr('shell', 'defined') | map(attribute='name') | list"),
        json!(["alice"])
    );
    assert_eq!(
        native("users | map(attribute='shell', default='none') | list"),
        json!(["/bin/bash", "none"])
    );
    assert_eq!(native("d.get('z', 5)"), json!(5));
    let t = Templar::new();
    assert_eq!(
        t.eval_bool("foo is defined and foo.x", &vars()).ok(),
        Some(false)
    );
}

struct TwoHosts;

impl HostVars for TwoHosts {
    fn host_names(&self) -> Vec<String> {
        vec!["web1".into(), "db1".into()]
    }
    fn vars_of(&self, host: &str) -> Option<Vars> {
        let v = match host {
            "web1" => {
                json!({"inventory_hostname": "web1", "port": "{{ base_port + 1 }}", "base_port": 8000})
            }
            "db1" => json!({"inventory_hostname": "db1", "ansible_host": "10.0.0.5"}),
            _ => return None,
        };
        match v {
            Json::Object(m) => Some(Vars::from(m)),
            _ => None,
        }
    }
}

#[test]
fn hostvars_resolve_in_the_hosts_own_scope() {
    let mut s = vars();
    s.hostvars = Some(Arc::new(TwoHosts));
    let t = Templar::new();
    let get = |e: &str| t.template_str(&format!("{{{{ {e} }}}}"), &s);
    assert_eq!(get("hostvars['web1'].port").ok(), Some(json!(8001)));
    assert_eq!(
        get("hostvars.db1['ansible_host']").ok(),
        Some(json!("10.0.0.5"))
    );
    assert_eq!(
        get("hostvars['nope'].x | default('none')").ok(),
        Some(json!("none"))
    );
    assert_eq!(
        get("hostvars | dictsort | map('first') | list").ok(),
        Some(json!(["db1", "web1"]))
    );
}

#[test]
fn templar_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Templar>();
    assert_send_sync::<Scope>();
    let t = Arc::new(Templar::new());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                t.template_str(&format!("{{{{ {i} + num }}}}"), &vars())
                    .ok()
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().ok().flatten())
        .collect();
    assert_eq!(
        results,
        vec![
            Some(json!(42)),
            Some(json!(43)),
            Some(json!(44)),
            Some(json!(45))
        ]
    );
}

#[test]
fn template_value_walks_structures_and_keeps_types() {
    let t = Templar::new();
    let args = json!({
        "path": "{{ app_root }}/conf",
        "mode": "0644",
        "count": "{{ num }}",
        "list": ["{{ flag }}", "literal", {"deep": "{{ d.b[1] }}"}],
        "n": 5,
        "opt": "{{ nope | default(omit) }}"
    });
    let out = t.template_value(&args, &vars()).expect("templated");
    assert_eq!(
        out,
        json!({
            "path": "/srv/apps/shop/conf",
            "mode": "0644",
            "count": 42,
            "list": [true, "literal", {"deep": "x"}],
            "n": 5,
            "opt": super::OMIT_TOKEN
        })
    );
    // No markers: returned as is.
    let plain = json!({"a": ["b", 1, {"c": "d"}]});
    assert_eq!(t.template_value(&plain, &vars()).ok(), Some(plain));
}

#[test]
fn conditionals_and_bare_expressions() {
    let t = Templar::new();
    let s = vars();
    assert_eq!(t.eval_bool("flag", &s).ok(), Some(true));
    assert_eq!(
        t.eval_bool("num > 40 and app_name == 'shop'", &s).ok(),
        Some(true)
    );
    assert_eq!(
        t.eval_bool(
            "users | selectattr('name', 'eq', 'bob') | list | length == 1",
            &s
        )
        .ok(),
        Some(true)
    );
    assert_eq!(t.eval_bool("not flag", &s).ok(), Some(false));
    assert_eq!(t.eval_bool("{{ flag }}", &s).ok(), Some(true));
    assert_eq!(t.eval_bool("{{ num == 41 }}", &s).ok(), Some(false));
    assert_eq!(t.eval_bool("nothing", &s).ok(), Some(false));
    assert_eq!(t.eval_bool("[]", &s).ok(), Some(false));
    assert_eq!(t.eval_bool("'x'", &s).ok(), Some(true));
    assert_eq!(
        t.eval_bool("version is version('1.2', '>=')", &s).ok(),
        Some(true)
    );
    assert!(t.eval_bool("", &s).is_err());
    let e = t.eval_bool("missing_var == 1", &s).err();
    assert_eq!(e.and_then(|e| e.undefined), Some("missing_var".to_string()));
    assert_eq!(
        t.eval_expr("users | map(attribute='uid') | list", &s).ok(),
        Some(json!([1001, 1002]))
    );
    assert_eq!(
        t.eval_expr("nested", &s).ok(),
        Some(json!({"a": "/srv/n", "l": ["/srv", 2, 42]}))
    );
    assert_eq!(
        t.eval_expr("{{ app_name }}-x", &s).ok(),
        Some(json!("shop-x"))
    );
}

#[test]
fn backslashes_in_string_templates_are_literal() {
    // As Ansible: YAML already processed escapes, so Jinja string literals keep backslashes.
    let t = Templar::new();
    let s = scope(json!({"name": "test1_name"}));
    let r = t.template_str(r"{{ name | regex_replace('^(.*)_name$', '\1') }}", &s);
    assert_eq!(r.ok(), Some(json!("test1")));
    let r = t.template_str(r"{{ 'C:\new' }}", &s);
    assert_eq!(r.ok(), Some(json!(r"C:\new")));
    let r = t.template_str(r#"{{ "a\"b" }}"#, &s);
    assert_eq!(r.ok(), Some(json!(r#"a\"b"#)));
}

#[test]
fn trailing_newlines_and_trim_blocks_in_strings() {
    let t = Templar::new();
    let s = vars();
    assert_eq!(t.template_str("a {{ 1 }}\n", &s).ok(), Some(json!("a 1\n")));
    assert_eq!(
        t.template_str("a {{ 1 }}\n\n", &s).ok(),
        Some(json!("a 1\n\n"))
    );
    assert_eq!(
        t.template_str("{% if true %}\nx\n{% endif %}\ny\n", &s)
            .ok(),
        Some(json!("x\ny\n"))
    );
    assert_eq!(
        t.template_str("  {% for i in [1,2] %}\n  {{ i }}\n  {% endfor %}\n", &s)
            .ok(),
        Some(json!("    1\n    2\n  \n"))
    );
}

#[test]
fn jinja2_header_overrides() {
    let t = Templar::new();
    let s = vars();
    let src = "#jinja2: variable_start_string: '[%', variable_end_string: '%]', trim_blocks: False\n[% app_name %] {{ raw }}\n{% if true %}\nx\n{% endif %}\n";
    let out = t.render_file(src, std::path::Path::new("/nonexistent/t.j2"), &s);
    // Checked against ansible-core 2.19's template module.
    assert_eq!(out.ok(), Some("shop {{ raw }}\n\nx\n".to_string()));
    let crlf = "#jinja2: newline_sequence: '\\r\\n'\na\nb\n";
    let out = t.render_file(crlf, std::path::Path::new("/nonexistent/t.j2"), &s);
    // Ansible restores the dropped final newline as a plain `\n`.
    assert_eq!(out.ok(), Some("a\r\nb\n".to_string()));
}

#[test]
fn lookups_search_role_and_playbook_dirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let role = dir.path().join("roles/web");
    std::fs::create_dir_all(role.join("files")).expect("mkdir");
    std::fs::create_dir_all(role.join("templates")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("files")).expect("mkdir");
    std::fs::write(role.join("files/motd"), "role motd\n\n").expect("write");
    std::fs::write(dir.path().join("files/only_play"), "play file").expect("write");
    std::fs::write(
        role.join("templates/t.j2"),
        "{{ app_name }} at {{ template_path | basename }}\n",
    )
    .expect("write");
    let mut vars = (*vars().vars.flat()).clone();
    vars.insert("role_path".into(), json!(role.display().to_string()));
    vars.insert(
        "playbook_dir".into(),
        json!(dir.path().display().to_string()),
    );
    let s = Scope::new(vars);
    let t = Templar::new();
    let get = |e: &str| t.template_str(&format!("{{{{ {e} }}}}"), &s);
    assert_eq!(get("lookup('file', 'motd')").ok(), Some(json!("role motd")));
    assert_eq!(
        get("lookup('file', 'only_play')").ok(),
        Some(json!("play file"))
    );
    assert_eq!(
        get("lookup('template', 't.j2')").ok(),
        Some(json!("shop at t.j2\n"))
    );
    assert_eq!(
        get("query('file', 'motd', 'only_play')").ok(),
        Some(json!(["role motd", "play file"]))
    );
    assert_eq!(
        get("lookup('file', 'motd', 'only_play')").ok(),
        Some(json!("role motd,play file"))
    );
    assert_eq!(
        get("lookup('first_found', ['nope', 'motd']) | basename").ok(),
        Some(json!("motd"))
    );
    assert_eq!(
        get("lookup('env', 'PLAY_TEST_UNSET_VAR') | default('x', true)").ok(),
        Some(json!("x"))
    );
    assert_eq!(
        get("lookup('lines', 'printf \"a\\nb\"')").ok(),
        Some(json!("a,b"))
    );
    assert!(get("lookup('file', 'absent')").is_err());
    assert_eq!(
        get("lookup('file', 'absent', errors='ignore')").ok(),
        Some(json!(null))
    );
}

/// Counts `vars_of` calls: hostvars must be fetched on access, not copied up front.
struct CountingHosts(std::sync::atomic::AtomicUsize);

impl HostVars for CountingHosts {
    fn host_names(&self) -> Vec<String> {
        (0..50).map(|i| format!("h{i}")).collect()
    }
    fn vars_of(&self, host: &str) -> Option<Vars> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = Map::new();
        m.insert("inventory_hostname".into(), json!(host));
        m.insert("ip".into(), json!(format!("10.0.0.{}", &host[1..])));
        Some(Vars::from(m))
    }
}

#[test]
fn hostvars_are_fetched_lazily() {
    let hosts = Arc::new(CountingHosts(std::sync::atomic::AtomicUsize::new(0)));
    let mut s = vars();
    s.hostvars = Some(hosts.clone());
    let t = Templar::new();
    assert_eq!(
        t.template_str("{{ hostvars['h7'].ip }}", &s).ok(),
        Some(json!("10.0.0.7"))
    );
    assert_eq!(hosts.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    let all = t.template_str(
        "{% for h in hostvars %}{{ hostvars[h].ip }}{% if not loop.last %},{% endif %}{% endfor %}",
        &s,
    );
    assert!(
        matches!(all, Ok(Json::String(ref s)) if s.starts_with("10.0.0.0,10.0.0.1,") && s.ends_with("10.0.0.49"))
    );
}

#[test]
fn hot_path_leaves_plain_strings_alone() {
    let t = Templar::new();
    let s = vars();
    let start = std::time::Instant::now();
    for _ in 0..100_000 {
        let _ = t.template_str("just a plain value with { braces } but no jinja", &s);
    }
    // Generous bound: this is about not compiling anything, even in debug builds.
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn long_variable_chains_resolve_on_a_small_stack() {
    // v0 -> v1 -> ... -> v59 = 1: deep lazy resolution must fit a 2 MiB thread stack.
    let mut m = Map::new();
    for i in 0..59 {
        m.insert(format!("v{i}"), json!(format!("{{{{ v{} }}}}", i + 1)));
    }
    m.insert("v59".into(), json!(1));
    let s = Scope::new(m);
    let out = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || Templar::new().template_str("{{ v0 + 1 }}", &s).ok())
        .expect("spawn")
        .join()
        .ok()
        .flatten();
    assert_eq!(out, Some(json!(2)));
}

#[test]
fn membership_in_mappings_and_chained_misses_behave_as_in_ansible() {
    let mut s = vars();
    s.hostvars = Some(Arc::new(TwoHosts));
    let t = Templar::new();
    let get = |e: &str| t.template_str(&format!("{{{{ {e} }}}}"), &s);
    assert_eq!(get("'web1' in hostvars").ok(), Some(json!(true)));
    assert_eq!(get("'nope' not in hostvars").ok(), Some(json!(true)));
    assert_eq!(get("'port' in hostvars['web1']").ok(), Some(json!(true)));
    assert_eq!(get("'x' in {'a': 1}").ok(), Some(json!(false)));
    assert_eq!(
        get("hostvars['web1']['nope']['deeper'] | default('d')").ok(),
        Some(json!("d"))
    );
    assert_eq!(
        get("hostvars['web1']['nope']").map_err(|e| e.message),
        Err("object of type 'dict' has no attribute 'nope'".to_string())
    );
}

#[test]
fn gathered_facts_answer_their_prefixed_names_from_one_copy() {
    let facts = json!({"ansible_facts": {
        "distribution": "Debian",
        "default_ipv4": {"address": "10.0.0.2", "interface": "eth0"},
        "motd": "{{ base }}/motd",
    }});
    let own = json!({"base": "/etc", "ansible_distribution": "overridden by a higher layer"});
    let layer = |v: Json| match v {
        Json::Object(m) => Arc::new(m),
        _ => Arc::default(),
    };
    let t = Templar::new();
    let render = |vars: Vars, expr: &str| {
        t.template_str(&format!("{{{{ {expr} }}}}"), &Scope::new(vars))
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    };
    let low = || {
        Vars::layered(
            vec![
                (layer(json!({"base": "/etc"})), Source::Written),
                (layer(facts.clone()), Source::Data),
            ],
            Some(1),
        )
    };
    assert_eq!(render(low(), "ansible_distribution"), json!("Debian"));
    assert_eq!(
        render(low(), "ansible_default_ipv4.address"),
        json!("10.0.0.2")
    );
    assert_eq!(
        render(low(), "ansible_facts.default_ipv4.interface"),
        json!("eth0")
    );
    // Facts come from the target: text, never a template the controller would run.
    assert_eq!(render(low(), "ansible_motd"), json!("{{ base }}/motd"));
    assert_eq!(
        render(low(), "ansible_facts.motd ~ '|' ~ vars.ansible_motd"),
        json!("{{ base }}/motd|{{ base }}/motd")
    );
    assert_eq!(
        render(low(), "ansible_nothing | default('none')"),
        json!("none")
    );
    assert_eq!(
        render(
            low(),
            "'ansible_default_ipv4' in vars and 'ansible_facts' in vars"
        ),
        json!(true)
    );
    let high = Vars::layered(
        vec![
            (layer(facts.clone()), Source::Data),
            (layer(own), Source::Written),
        ],
        Some(0),
    );
    assert_eq!(
        render(high, "ansible_distribution"),
        json!("overridden by a higher layer")
    );
    // Without a facts layer, `ansible_<x>` is only what a layer defines.
    let plain = Vars::new(vec![layer(facts)]);
    assert_eq!(
        render(plain, "ansible_distribution | default('unset')"),
        json!("unset")
    );
}

#[test]
fn seeded_random_and_shuffle_pick_what_ansible_picks() {
    // Expected values from Python 3.11 random.Random(seed) and ansible-core 2.19 (same output).
    assert_eq!(native("60 | random(seed='h1')"), json!(32));
    assert_eq!(native("59 | random(seed='inventory-host-7')"), json!(43));
    assert_eq!(native("100 | random(start=10, step=7, seed=0)"), json!(52));
    assert_eq!(native("1000 | random(seed=true)"), json!(137));
    assert_eq!(native("['a', 'b', 'c'] | random(seed='x')"), json!("c"));
    assert_eq!(native("'hello' | random(seed=1)"), json!("e"));
    assert_eq!(
        native("range(1, 11) | list | shuffle(seed='web.example.com')"),
        json!([5, 8, 4, 6, 2, 10, 7, 3, 9, 1])
    );
    // Unseeded: any value of the range, every item kept.
    for _ in 0..20 {
        let n = native("10 | random(start=5)");
        assert!((5..10).contains(&n.as_i64().unwrap_or(-1)), "{n}");
    }
    let mut shuffled = native("[3, 1, 2] | shuffle");
    if let Json::Array(items) = &mut shuffled {
        items.sort_by_key(|v| v.as_i64());
    }
    assert_eq!(shuffled, json!([1, 2, 3]));
    assert!(error("1.5 | random")
        .message
        .contains("random can only be used on sequences and integers"));
    assert!(error("'abc' | random(start=1)")
        .message
        .contains("start and step can only be used with integer values"));
    assert!(error("0 | random")
        .message
        .contains("empty range in randrange(0, 0)"));
}

#[test]
fn controller_time_with_now_and_strftime() {
    // Expected values from Python 3.11's time.strftime(fmt, time.gmtime(second)).
    assert_eq!(
        native("'%Y-%m-%d %H:%M:%S' | strftime(0, utc=true)"),
        json!("1970-01-01 00:00:00")
    );
    assert_eq!(
        native("'%a %d %b %Y %j %%f %f' | strftime(second=1700000000.9, utc=true)"),
        json!("Tue 14 Nov 2023 318 %f %f")
    );
    assert_eq!(native("'%s' | strftime('86400', utc=true)"), json!("86400"));
    let year = native("'%Y' | strftime").as_str().map(str::len);
    assert_eq!(year, Some(4));
    assert!(error("'%Y' | strftime('soon')")
        .message
        .contains("Invalid value for epoch value (soon)"));
    assert!(error("'%Q' | strftime")
        .message
        .contains("invalid strftime format"));

    let this_year = native("now().year");
    assert!(this_year.as_i64().is_some_and(|y| y >= 2024), "{this_year}");
    assert_eq!(native("now(fmt='%Y') | int == now().year"), json!(true));
    assert_eq!(native("now(true, '%Y') | length"), json!(4));
    assert_eq!(native("now(utc=true).strftime('%f') | length"), json!(6));
    // str(datetime): "YYYY-MM-DD HH:MM:SS" with ".ffffff" when there are microseconds.
    let text = render("now()");
    assert!(text.len() == 19 || text.len() == 26, "{text}");
    assert_eq!(&text[4..5], "-");
    assert_eq!(render("now().isoformat()")[10..11].to_string(), "T");
    assert!(error("now().nope()")
        .message
        .contains("has no attribute 'nope'"));
}
