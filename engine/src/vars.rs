//! Variable layers and their precedence: the one table the docs quote, and the code that applies it.
//!
//! | level (low → high) | where it comes from                                  | here            |
//! |---:|---------------------------------------------------------------|-----------------|
//! |  1 | command-line values (`-u`, `-c`: not variables)             | `Options`       |
//! |  2 | role defaults: every public role's of the play, then the task's own role's (along its dependency chain) | `Layers::role_defaults`, `RoleVars::defaults` |
//! |  3 | inventory file/script group vars (`all` first, parents before children) | `Inventory::host_vars` |
//! |  4 | inventory `group_vars/all`                                     | `Inventory::host_vars` |
//! |  5 | playbook `group_vars/all`                                      | `Inventory::host_vars` |
//! |  6 | inventory `group_vars/*`                                       | `Inventory::host_vars` |
//! |  7 | playbook `group_vars/*`                                        | `Inventory::host_vars` |
//! |  8 | inventory file/script host vars                              | `Inventory::host_vars` |
//! |  9 | inventory `host_vars/*`                                        | `Inventory::host_vars` |
//! | 10 | playbook `host_vars/*`                                         | `Inventory::host_vars` |
//! | 11 | host facts (`ansible_*`, `ansible_facts`)                     | `Layers::facts` |
//! | 12 | play `vars`                                                    | `Layers::play`  |
//! | 13 | play `vars_prompt`                                             | `Layers::play` (over the play's `vars`) |
//! | 14 | play `vars_files`                                              | `Layers::vars_files` |
//! | 15 | role vars: every public role's `vars/` (exported), then the task's own role's `vars/` and the `vars:` of its role entry, along its dependency chain | `Layers::role_exports`, `RoleVars::vars` |
//! | 16 | block `vars`                                                   | task scope (blocks pass theirs down) |
//! | 17 | task `vars`                                                    | task scope      |
//! | 18 | `include_vars`                                                 | `Layers::include_vars` |
//! | 19 | `set_fact` and registered results                              | `Layers::set_facts` |
//! | 20 | role params (`- {role: x, param: 1}`, along the dependency chain) | `RoleVars::params` |
//! | 21 | `include_tasks`/`include_role` params (`vars:` of the include; `ansible_parent_role_names`) | task scope, `RoleVars::include_params` |
//! | 22 | extra vars (`-e`), always win                                  | `Layers::extra` |
//!
//! Magic variables (`inventory_hostname`, `groups`, `hostvars`, `playbook_dir`, `role_name`,
//! `role_path`, ...) are set last and cannot be overridden, as in Ansible. Within a level,
//! later keys replace earlier ones (Ansible's `hash_behaviour = replace`). Values stay raw
//! (untemplated) here: the templar resolves them lazily when they are used.
//!
//! Roles: a role is *public* when the play lists it in `roles:`, or a task imports it
//! (`import_role`), or an `include_role` says `public: true`; Ansible then shows its defaults
//! and its `vars/` to every task of the play, before and after the role runs. A role's own
//! tasks (and its dependencies' tasks) see more: the defaults, vars and params of every role
//! on the chain that led to them, nearer roles winning (see `roles::RoleCall`).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::template::Vars;

/// What a role contributes to the variables of its own tasks, computed along the chain of
/// roles that led to it (Ansible's `dep_chain`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleVars {
    /// Level 2, above every public role's defaults.
    pub defaults: Map<String, Value>,
    /// Level 15, above every public role's exported vars.
    pub vars: Map<String, Value>,
    /// Level 20.
    pub params: Map<String, Value>,
    /// Level 21: what an `include_role`/`import_role` inside another role passes down
    /// (`ansible_parent_role_names`, `ansible_parent_role_paths`, the parent's params).
    pub include_params: Map<String, Value>,
}

/// The per-host variable layers that outlive a single task. Each layer is shared (`Arc`):
/// hosts share the play's, the extra vars and the public roles' layers, and a task's
/// variables (`Layers::vars`) point at them instead of copying them. Changing a layer
/// (`Arc::make_mut`) copies it only while a task's variables or a `hostvars` snapshot
/// still hold the old one.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// Level 2: the defaults of every public role of the play.
    pub role_defaults: Arc<Map<String, Value>>,
    pub inventory: Arc<Map<String, Value>>,
    pub facts: Arc<Map<String, Value>>,
    pub play: Arc<Map<String, Value>>,
    pub vars_files: Arc<Map<String, Value>>,
    /// Level 15: the `vars/` of every public role of the play.
    pub role_exports: Arc<Map<String, Value>>,
    pub include_vars: Arc<Map<String, Value>>,
    pub set_facts: Arc<Map<String, Value>>,
    pub extra: Arc<Map<String, Value>>,
}

/// Where `Layers::vars` puts the facts layer.
const FACTS_AT: usize = 3;

impl Layers {
    /// Every layer with the task's own scope (its role, block/task vars, include params) and
    /// the magic variables (`magic`, in order), in precedence order. Nothing is copied but
    /// the task's own small maps.
    pub fn vars(
        &self,
        role: Option<&RoleVars>,
        task_vars: &Map<String, Value>,
        include_params: &Map<String, Value>,
        magic: &[Arc<Map<String, Value>>],
    ) -> Vars {
        let own = |m: &Map<String, Value>| Arc::new(m.clone());
        let role_part = |f: fn(&RoleVars) -> &Map<String, Value>| {
            role.map_or_else(|| Arc::new(Map::new()), |r| own(f(r)))
        };
        use crate::template::Source::{Data, Written};
        let mut layers = vec![
            (self.role_defaults.clone(), Written),
            (role_part(|r| &r.defaults), Written),
            (self.inventory.clone(), Written),
            (self.facts.clone(), Data),
            (self.play.clone(), Written),
            (self.vars_files.clone(), Written),
            (self.role_exports.clone(), Written),
            (role_part(|r| &r.vars), Written),
            (own(task_vars), Written),
            (self.include_vars.clone(), Written),
            // set_fact values and registered results were rendered when they were made.
            (self.set_facts.clone(), Data),
            (role_part(|r| &r.params), Written),
            (role_part(|r| &r.include_params), Written),
            (own(include_params), Written),
            (self.extra.clone(), Written),
        ];
        layers.extend(magic.iter().map(|m| (m.clone(), Written)));
        debug_assert!(Arc::ptr_eq(&layers[FACTS_AT].0, &self.facts));
        Vars::layered(layers, Some(FACTS_AT))
    }

    /// Gathered facts, kept once under `ansible_facts` (names without the `ansible_` prefix);
    /// the top-level `ansible_x` of each is answered from there (`Vars::layered`).
    pub fn set_facts_from_setup(&mut self, facts: Map<String, Value>) {
        let layer = Arc::make_mut(&mut self.facts);
        let mut all = match layer.remove("ansible_facts") {
            Some(Value::Object(m)) => m,
            _ => Map::with_capacity(facts.len()),
        };
        for (k, v) in facts {
            let short = match k.strip_prefix("ansible_") {
                Some(short) => short.to_string(),
                None => k,
            };
            all.insert(short, v);
        }
        layer.insert("ansible_facts".into(), Value::Object(all));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Arc<Map<String, Value>> {
        match v {
            Value::Object(m) => Arc::new(m),
            _ => Arc::default(),
        }
    }

    #[test]
    fn precedence_follows_the_table() {
        let layers = Layers {
            inventory: map(json!({"a": "inv", "b": "inv", "c": "inv", "d": "inv", "e": "inv"})),
            play: map(json!({"b": "play", "c": "play", "d": "play", "e": "play"})),
            set_facts: map(json!({"c": "fact", "d": "fact"})),
            extra: map(json!({"d": "extra"})),
            ..Layers::default()
        };
        let merged = layers.vars(
            None,
            &Map::from_iter([("e".into(), json!("task")), ("c".into(), json!("task"))]),
            &Map::new(),
            &[map(json!({"inventory_hostname": "h"}))],
        );
        assert_eq!(merged.get("c"), Some(&json!("fact")));
        assert_eq!(
            Value::Object((*merged.flat()).clone()),
            json!({"a": "inv", "b": "play", "c": "fact", "d": "extra", "e": "task", "inventory_hostname": "h"})
        );
    }

    #[test]
    fn role_levels_sit_where_the_table_puts_them() {
        let layers = Layers {
            role_defaults: map(json!({"a": "public default", "b": "public default"})),
            inventory: map(json!({"b": "inv", "c": "inv"})),
            play: map(json!({"c": "play", "d": "play", "e": "play"})),
            role_exports: map(json!({"d": "public vars"})),
            set_facts: map(json!({"e": "fact", "f": "fact"})),
            ..Layers::default()
        };
        let role = RoleVars {
            defaults: (*map(json!({"a": "own default", "b": "own default"}))).clone(),
            vars: (*map(json!({"e": "own vars"}))).clone(),
            params: (*map(json!({"f": "param"}))).clone(),
            include_params: Map::new(),
        };
        let merged = layers.vars(Some(&role), &Map::new(), &Map::new(), &[]);
        assert_eq!(merged.get("e"), Some(&json!("fact")));
        assert_eq!(
            Value::Object((*merged.flat()).clone()),
            json!({"a": "own default", "b": "inv", "c": "play", "d": "public vars", "e": "fact", "f": "param"})
        );
    }

    #[test]
    fn facts_are_injected_with_and_without_prefix() {
        let mut layers = Layers::default();
        layers.set_facts_from_setup((*map(json!({"distribution": "Debian"}))).clone());
        layers.play = map(json!({"ansible_os_family": "from play vars"}));
        let merged = layers.vars(None, &Map::new(), &Map::new(), &[]);
        assert_eq!(merged.get("ansible_distribution"), Some(&json!("Debian")));
        assert_eq!(
            merged.get("ansible_facts"),
            Some(&json!({"distribution": "Debian"}))
        );
        assert_eq!(
            merged.get("ansible_os_family"),
            Some(&json!("from play vars"))
        );
        assert_eq!(merged.get("ansible_missing"), None);
        assert_eq!(
            Value::Object((*merged.flat()).clone()),
            json!({
                "ansible_distribution": "Debian",
                "ansible_facts": {"distribution": "Debian"},
                "ansible_os_family": "from play vars",
            })
        );
        assert_eq!(
            layers.facts.get("ansible_distribution"),
            None,
            "each fact is held once"
        );
    }
}
