//! Variable layers and their precedence: the one table the docs quote, and the code that applies it.
//!
//! | level (low → high) | where it comes from                                  | here            |
//! |---:|---------------------------------------------------------------|-----------------|
//! |  1 | command-line values (`-u`, `-c`: not variables)             | `Options`       |
//! |  2 | role defaults                                                 | (roles issue)   |
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
//! | 15 | role vars                                                      | (roles issue)   |
//! | 16 | block `vars`                                                   | task scope (blocks pass theirs down) |
//! | 17 | task `vars`                                                    | task scope      |
//! | 18 | `include_vars`                                                 | `Layers::include_vars` |
//! | 19 | `set_fact` and registered results                              | `Layers::set_facts` |
//! | 20 | role and `include_role` params                                 | (roles issue)   |
//! | 21 | `include_tasks` params (`vars:` of the include)                | task scope      |
//! | 22 | extra vars (`-e`), always win                                  | `Layers::extra` |
//!
//! Magic variables (`inventory_hostname`, `groups`, `hostvars`, `playbook_dir`, ...) are set
//! last and cannot be overridden, as in Ansible. Within a level, later keys replace earlier
//! ones (Ansible's `hash_behaviour = replace`). Values stay raw (untemplated) here: the
//! templar resolves them lazily when they are used.

use serde_json::{Map, Value};

/// The per-host variable layers that outlive a single task.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub inventory: Map<String, Value>,
    pub facts: Map<String, Value>,
    pub play: Map<String, Value>,
    pub vars_files: Map<String, Value>,
    pub include_vars: Map<String, Value>,
    pub set_facts: Map<String, Value>,
    pub extra: Map<String, Value>,
}

impl Layers {
    /// Merge every layer with the task's own scope (block/task vars, include params) and the
    /// magic variables, in precedence order.
    pub fn merged(
        &self,
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
        for layer in [
            &self.inventory,
            &self.facts,
            &self.play,
            &self.vars_files,
            task_vars,
            &self.include_vars,
            &self.set_facts,
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
