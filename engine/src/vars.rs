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
//! | 13 | play `vars_prompt`                                             | (not supported) |
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

use serde_json::{Map, Value};

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

/// The per-host variable layers that outlive a single task.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// Level 2: the defaults of every public role of the play.
    pub role_defaults: Map<String, Value>,
    pub inventory: Map<String, Value>,
    pub facts: Map<String, Value>,
    pub play: Map<String, Value>,
    pub vars_files: Map<String, Value>,
    /// Level 15: the `vars/` of every public role of the play.
    pub role_exports: Map<String, Value>,
    pub include_vars: Map<String, Value>,
    pub set_facts: Map<String, Value>,
    pub extra: Map<String, Value>,
}

impl Layers {
    /// Merge every layer with the task's own scope (its role, block/task vars, include
    /// params) and the magic variables, in precedence order.
    pub fn merged(
        &self,
        role: Option<&RoleVars>,
        task_vars: &Map<String, Value>,
        include_params: &Map<String, Value>,
        magic: &Map<String, Value>,
    ) -> Map<String, Value> {
        let mut out = Map::with_capacity(
            self.inventory.len()
                + self.facts.len()
                + self.play.len()
                + task_vars.len()
                + self.set_facts.len()
                + magic.len(),
        );
        let empty = Map::new();
        let role_part = |f: fn(&RoleVars) -> &Map<String, Value>| role.map_or(&empty, f);
        for layer in [
            &self.role_defaults,
            role_part(|r| &r.defaults),
            &self.inventory,
            &self.facts,
            &self.play,
            &self.vars_files,
            &self.role_exports,
            role_part(|r| &r.vars),
            task_vars,
            &self.include_vars,
            &self.set_facts,
            role_part(|r| &r.params),
            role_part(|r| &r.include_params),
            include_params,
            &self.extra,
            magic,
        ] {
            for (k, v) in layer {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// Facts as Ansible injects them: `ansible_facts.x` and, for each, a top-level `ansible_x`.
    pub fn set_facts_from_setup(&mut self, facts: &Map<String, Value>) {
        let mut all = match self.facts.remove("ansible_facts") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in facts {
            let short = k.strip_prefix("ansible_").unwrap_or(k);
            all.insert(short.to_string(), v.clone());
            self.facts.insert(format!("ansible_{short}"), v.clone());
        }
        self.facts
            .insert("ansible_facts".into(), Value::Object(all));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
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
        let merged = layers.merged(
            None,
            &map(json!({"e": "task", "c": "task"})),
            &Map::new(),
            &map(json!({"inventory_hostname": "h"})),
        );
        assert_eq!(
            Value::Object(merged),
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
            defaults: map(json!({"a": "own default", "b": "own default"})),
            vars: map(json!({"e": "own vars"})),
            params: map(json!({"f": "param"})),
            include_params: Map::new(),
        };
        let merged = layers.merged(Some(&role), &Map::new(), &Map::new(), &Map::new());
        assert_eq!(
            Value::Object(merged),
            json!({"a": "own default", "b": "inv", "c": "play", "d": "public vars", "e": "fact", "f": "param"})
        );
    }

    #[test]
    fn facts_are_injected_with_and_without_prefix() {
        let mut layers = Layers::default();
        layers.set_facts_from_setup(&map(json!({"distribution": "Debian"})));
        assert_eq!(
            layers.facts.get("ansible_distribution"),
            Some(&json!("Debian"))
        );
        assert_eq!(
            layers.facts.get("ansible_facts"),
            Some(&json!({"distribution": "Debian"}))
        );
    }
}
