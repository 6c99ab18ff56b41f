//! Ansible inventories: hosts and groups with their variables (YAML/INI files, directories, host lists, group_vars/host_vars) and host patterns.
//!
//! The model follows ansible-core's `InventoryData`: groups hold direct hosts and child
//! groups, every group hangs under `all`, hosts without a group land in `ungrouped`, and
//! `localhost` exists implicitly (outside `all`) unless the inventory defines it.
//! Variables are kept raw (untemplated); `host_vars` merges them in Ansible's order.

mod address;
mod ini;
mod pattern;
mod pyliteral;
mod sources;
mod vars_dirs;
mod yaml_inv;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::Value;

use crate::error::{exit, Diagnostic};
use vars_dirs::VarsDir;

pub type Map = serde_json::Map<String, Value>;

/// Names Ansible treats as the control machine (`C.LOCALHOST`).
const LOCALHOST_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Indices of the two groups every inventory starts with.
const ALL: usize = 0;
const UNGROUPED: usize = 1;

#[derive(Debug, Clone, Default)]
struct Group {
    /// Variables set by inventory files (`vars:`, `[g:vars]`), not group_vars/.
    vars: Map,
    /// `ansible_group_priority`: orders groups of the same depth when merging vars.
    priority: i64,
    parents: Vec<usize>,
    children: Vec<usize>,
    /// Direct members, in the order they were added.
    hosts: Vec<usize>,
    /// Longest path from `all`; computed by `reconcile`.
    depth: usize,
    /// Members including those of descendant groups, in Ansible's order; computed by `reconcile`.
    all_hosts: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
struct Host {
    /// Variables set by inventory files (`host var=x`, `hosts: {h: {var: x}}`), plus `ansible_port`.
    vars: Map,
    /// Groups the host was put in directly (ancestors are derived).
    groups: Vec<usize>,
    /// The inventory file the host was first seen in (`inventory_file`).
    source: Option<PathBuf>,
}

/// A loaded inventory: hosts, groups, their variables, and the vars directories beside
/// the inventory sources and the playbook.
#[derive(Debug, Clone)]
pub struct Inventory {
    groups: IndexMap<String, Group>,
    hosts: IndexMap<String, Host>,
    /// group_vars/ and host_vars/ beside each inventory source, in source order.
    inventory_vars: Vec<VarsDir>,
    /// group_vars/ and host_vars/ beside the current playbook.
    playbook_vars: Option<VarsDir>,
    warnings: Vec<String>,
}

impl Default for Inventory {
    fn default() -> Self {
        Self::empty()
    }
}

impl Inventory {
    /// Loads inventory sources in order: files (YAML or INI, told apart by extension and
    /// content), directories (every file inside, sorted, skipping backups, hidden files and
    /// group_vars/host_vars), or a comma-separated host list (`"h1,h2,"`).
    pub fn load(sources: &[PathBuf]) -> Result<Inventory, Diagnostic> {
        let mut inventory = Inventory::empty();
        let mut vars_bases = Vec::new();
        for source in sources {
            if let Some(base) = sources::load_source(&mut inventory, source)? {
                vars_bases.push(base);
            }
        }
        inventory.reconcile();
        let clashes: Vec<String> = inventory
            .hosts
            .keys()
            .filter(|name| inventory.groups.contains_key(*name))
            .map(|name| format!("Found both group and host with same name: {name}"))
            .collect();
        inventory.warnings.extend(clashes);
        for base in vars_bases {
            let dir = VarsDir::open(&base, &mut inventory.warnings);
            inventory.inventory_vars.push(dir);
        }
        inventory.load_vars_files()?;
        Ok(inventory)
    }

    /// An inventory without hosts; it still knows the implicit localhost.
    pub fn empty() -> Inventory {
        let mut inventory = Inventory {
            groups: IndexMap::new(),
            hosts: IndexMap::new(),
            inventory_vars: Vec::new(),
            playbook_vars: None,
            warnings: Vec::new(),
        };
        inventory.ensure_group("all");
        inventory.ensure_group("ungrouped");
        inventory.reconcile();
        inventory
    }

    /// Uses group_vars/ and host_vars/ beside the playbook in `dir` (replacing those of a
    /// previous playbook dir, as Ansible does when it moves on to the next playbook).
    pub fn set_playbook_dir(&mut self, dir: &Path) -> Result<(), Diagnostic> {
        let base = sources::absolute(dir);
        if self
            .playbook_vars
            .as_ref()
            .is_some_and(|v| v.base() == base)
        {
            return Ok(());
        }
        self.playbook_vars = Some(VarsDir::open(&base, &mut self.warnings));
        self.load_vars_files()
    }

    /// Every host, in the order of `groups['all']` (the implicit localhost is not one).
    pub fn hosts(&self) -> Vec<String> {
        self.group_host_names(ALL)
    }

    /// Whether `name` is a host of the inventory or the implicit localhost.
    pub fn has_host(&self, name: &str) -> bool {
        self.hosts.contains_key(name) || LOCALHOST_NAMES.contains(&name)
    }

    /// The hosts a pattern (as in `hosts:`) selects, in inventory order, without duplicates.
    /// A part that matches nothing is skipped, as Ansible does (it warns), so the result
    /// may be empty; errors are for bad regexes and out-of-range subscripts.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>, Diagnostic> {
        pattern::select(self, pattern)
    }

    /// The hosts `-l/--limit` allows. Like `select`, but a name, group or glob that matches
    /// nothing is an error naming the nearest existing names; `@file` reads one pattern a line.
    pub fn limit(&self, pattern: &str) -> Result<Vec<String>, Diagnostic> {
        pattern::limit(self, pattern)
    }

    /// The host's variables from inventory sources, raw, merged with key replacement in
    /// Ansible's order (lowest first): inventory-file vars of `all` then of the host's groups
    /// (by depth, `ansible_group_priority`, name); group_vars/all beside the inventory, then
    /// beside the playbook; group_vars/<group> beside the inventory, then the playbook;
    /// inventory-file host vars; host_vars/<host> beside the inventory, then the playbook.
    /// Unknown hosts get an empty map.
    pub fn host_vars(&self, host: &str) -> Map {
        let (groups, own_vars) = match self.resolve_host(host) {
            Some(index) => (self.sorted_groups_of(index), self.hosts[index].vars.clone()),
            None if LOCALHOST_NAMES.contains(&host) => (Vec::new(), implicit_localhost_vars()),
            None => return Map::new(),
        };
        let group_names: Vec<&str> = groups.iter().map(|&g| self.group_name(g)).collect();
        let dirs: Vec<&VarsDir> = self
            .inventory_vars
            .iter()
            .chain(&self.playbook_vars)
            .collect();

        let mut vars = self.groups[ALL].vars.clone();
        for &g in &groups {
            merge(&mut vars, &self.groups[g].vars);
        }
        for dir in &dirs {
            merge_opt(&mut vars, dir.group("all"));
        }
        // Source by source, each source's files for every group (Ansible's loop order).
        for dir in &dirs {
            for name in &group_names {
                merge_opt(&mut vars, dir.group(name));
            }
        }
        merge(&mut vars, &own_vars);
        let host_name = self.resolve_host(host).map_or(host, |i| self.host_name(i));
        for dir in &dirs {
            merge_opt(&mut vars, dir.host(host_name));
        }
        vars
    }

    /// The host's groups, sorted, without `all` — Ansible's `group_names`, which does
    /// include `ungrouped` for ungrouped hosts.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let Some(index) = self.resolve_host(host) else {
            return Vec::new();
        };
        let mut names: Vec<String> = self
            .groups_of(index)
            .into_iter()
            .filter(|&g| g != ALL)
            .map(|g| self.group_name(g).to_string())
            .collect();
        names.sort();
        names
    }

    /// The `groups` magic variable: every group with its hosts (descendants included).
    pub fn groups_var(&self) -> Map {
        (0..self.groups.len())
            .map(|g| {
                let hosts = self
                    .group_host_names(g)
                    .into_iter()
                    .map(Value::String)
                    .collect();
                (self.group_name(g).to_string(), Value::Array(hosts))
            })
            .collect()
    }

    /// The directory of the inventory file the host came from (`inventory_dir`); `None` for
    /// the implicit localhost, host-list sources and hosts added at runtime.
    pub fn inventory_dir(&self, host: &str) -> Option<PathBuf> {
        self.inventory_file(host)
            .and_then(|file| file.parent().map(Path::to_path_buf))
    }

    /// The inventory file the host was first defined in (`inventory_file`).
    pub fn inventory_file(&self, host: &str) -> Option<PathBuf> {
        let index = self.resolve_host(host)?;
        self.hosts[index].source.clone()
    }

    /// Adds a host at runtime (the `add_host` action): into `all` if new, then into each
    /// group (created under `all` when missing); `vars` replace same-named host vars.
    /// Returns whether anything changed, as Ansible decides it (a new host, a changed
    /// variable, a new group or membership). Fails when a group_vars/host_vars file for the
    /// new names can't be read.
    pub fn add_host(
        &mut self,
        name: &str,
        groups: &[String],
        vars: Map,
    ) -> Result<bool, Diagnostic> {
        if name.is_empty() {
            return Err(
                Diagnostic::new("add_host: a host name must not be empty").exit_code(exit::ERROR)
            );
        }
        let mut changed = false;
        let host = match self.hosts.get_index_of(name) {
            Some(index) => index,
            None => {
                changed = true;
                let index = self.ensure_host(name, None, None);
                self.add_host_to_group(index, ALL);
                index
            }
        };
        for (key, value) in vars {
            if self.hosts[host].vars.get(&key) != Some(&value) {
                changed = true;
                self.hosts[host].vars.insert(key, value);
            }
        }
        for group in groups {
            changed |= !self.groups.contains_key(group.as_str());
            let g = self.ensure_group(group);
            changed |= !self.groups[g].hosts.contains(&host);
            self.add_host_to_group(host, g);
        }
        self.reconcile();
        self.load_vars_files()?;
        Ok(changed)
    }

    /// Puts `host` into group `name` at runtime (the `group_by` action), creating it and
    /// its `parents` (which become its parents) when missing. Returns whether anything
    /// changed, as Ansible decides it.
    pub fn group_by(
        &mut self,
        host: &str,
        name: &str,
        parents: &[String],
    ) -> Result<bool, Diagnostic> {
        let fail = |m: String| Diagnostic::new(format!("group_by: {m}")).exit_code(exit::ERROR);
        let Some(h) = self.resolve_host(host) else {
            return Err(fail(format!("no host '{host}' in the inventory")));
        };
        let mut changed = false;
        let g = self.ensure_group(name);
        for parent in parents {
            changed |= !self.groups.contains_key(parent.as_str());
            let p = self.ensure_group(parent);
            changed |= !self.groups[p].children.contains(&g);
            self.add_child_group(p, g).map_err(fail)?;
        }
        changed |= !self.groups[g].hosts.contains(&h);
        self.add_host_to_group(h, g);
        self.reconcile();
        self.load_vars_files()?;
        Ok(changed)
    }

    /// Problems Ansible reports as warnings (skipped keys, invalid group definitions), in
    /// the order found; the caller prints them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    // ----- building (used by the source parsers) -----

    fn ensure_group(&mut self, name: &str) -> usize {
        if let Some(index) = self.groups.get_index_of(name) {
            return index;
        }
        // Ansible's default (TRANSFORM_INVALID_GROUP_CHARS=never) keeps such names but warns,
        // since `groups.web-servers` can't be written in a template.
        let invalid = name.starts_with(|c: char| c.is_numeric())
            || name.contains(|c: char| !(c.is_alphanumeric() || c == '_'));
        if invalid {
            self.warn(format!(
                "Invalid characters were found in group name '{name}' but not replaced"
            ));
        }
        self.groups
            .insert_full(name.to_string(), Group::default())
            .0
    }

    /// The host's index, creating it (with `ansible_port` and its source file) when new.
    /// A port given for an existing host is ignored, as in Ansible.
    fn ensure_host(&mut self, name: &str, port: Option<i64>, source: Option<&Path>) -> usize {
        if let Some(index) = self.hosts.get_index_of(name) {
            return index;
        }
        let mut host = Host {
            source: source.map(Path::to_path_buf),
            ..Host::default()
        };
        if let Some(port) = port {
            host.vars.insert("ansible_port".into(), Value::from(port));
        }
        self.hosts.insert_full(name.to_string(), host).0
    }

    fn add_host_to_group(&mut self, host: usize, group: usize) {
        if !self.groups[group].hosts.contains(&host) {
            self.groups[group].hosts.push(host);
            self.hosts[host].groups.push(group);
        }
    }

    fn remove_host_from_group(&mut self, host: usize, group: usize) {
        self.groups[group].hosts.retain(|&h| h != host);
        self.hosts[host].groups.retain(|&g| g != group);
    }

    /// Makes `child` a child group of `parent`; refuses loops with Ansible's message.
    fn add_child_group(&mut self, parent: usize, child: usize) -> Result<(), String> {
        if parent == child {
            return Err(format!(
                "group '{}' can't be a child of itself",
                self.group_name(child)
            ));
        }
        if self.groups[parent].children.contains(&child) {
            return Ok(());
        }
        if self.is_ancestor(child, parent) {
            return Err(format!(
                "Adding group '{}' as child to '{}' creates a recursive dependency loop.",
                self.group_name(child),
                self.group_name(parent)
            ));
        }
        self.groups[parent].children.push(child);
        self.groups[child].parents.push(parent);
        Ok(())
    }

    /// Sets a group variable from an inventory file. `ansible_group_priority` is not a
    /// variable but the group's priority, as in Ansible.
    fn set_group_var(&mut self, group: usize, key: &str, value: Value) -> Result<(), String> {
        if key == "ansible_group_priority" {
            let priority = match &value {
                Value::Null => return Ok(()),
                Value::Bool(b) => i64::from(*b),
                Value::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
                    .unwrap_or(0),
                Value::String(s) => s
                    .trim()
                    .parse()
                    .map_err(|_| format!("ansible_group_priority must be an integer, got '{s}'"))?,
                other => {
                    return Err(format!(
                        "ansible_group_priority must be an integer, got {other}"
                    ))
                }
            };
            self.groups[group].priority = priority;
            return Ok(());
        }
        set_var(&mut self.groups[group].vars, key, value);
        Ok(())
    }

    fn set_host_var(&mut self, host: usize, key: &str, value: Value) {
        set_var(&mut self.hosts[host].vars, key, value);
    }

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// Restores Ansible's invariants after changes: every group hangs under `all`, hosts
    /// without a real group are in `ungrouped` (and only they), depths and member lists are fresh.
    fn reconcile(&mut self) {
        for g in 0..self.groups.len() {
            if g != ALL && self.groups[g].parents.is_empty() {
                // `all` has no ancestors, so this can't make a loop.
                let _ = self.add_child_group(ALL, g);
            }
        }
        for h in 0..self.hosts.len() {
            let groups = self.groups_of(h);
            let has_real_group = groups.iter().any(|&g| g != ALL && g != UNGROUPED);
            if groups.contains(&UNGROUPED) {
                if has_real_group {
                    self.remove_host_from_group(h, UNGROUPED);
                }
            } else if !has_real_group {
                self.add_host_to_group(h, UNGROUPED);
            }
        }
        self.compute_depths();
        for g in 0..self.groups.len() {
            self.groups[g].all_hosts = self.collect_hosts(g);
        }
    }

    /// Each group's longest path from `all` (Ansible keeps `depth = max(parent depth + 1)`),
    /// in topological order so long `[a:children]` chains need no recursion.
    fn compute_depths(&mut self) {
        let count = self.groups.len();
        let mut unvisited_parents: Vec<usize> =
            (0..count).map(|g| self.groups[g].parents.len()).collect();
        let mut depths = vec![0; count];
        let mut ready: Vec<usize> = (0..count).filter(|&g| unvisited_parents[g] == 0).collect();
        while let Some(group) = ready.pop() {
            for &child in &self.groups[group].children {
                depths[child] = depths[child].max(depths[group] + 1);
                unvisited_parents[child] -= 1;
                if unvisited_parents[child] == 0 {
                    ready.push(child);
                }
            }
        }
        for (group, depth) in depths.into_iter().enumerate() {
            self.groups[group].depth = depth;
        }
    }

    /// Members of a group and its descendants: the group's own hosts first, then its
    /// children's, then grandchildren's, level by level (Ansible's `get_hosts` order).
    fn collect_hosts(&self, group: usize) -> Vec<usize> {
        let mut ordered = vec![group];
        let mut seen_groups = vec![false; self.groups.len()];
        seen_groups[group] = true;
        let mut level = vec![group];
        while !level.is_empty() {
            let mut next = Vec::new();
            for &g in &level {
                for &child in &self.groups[g].children {
                    if !std::mem::replace(&mut seen_groups[child], true) {
                        ordered.push(child);
                        next.push(child);
                    }
                }
            }
            level = next;
        }
        let mut seen_hosts = vec![false; self.hosts.len()];
        ordered
            .iter()
            .flat_map(|&g| self.groups[g].hosts.iter().copied())
            .filter(|&h| !std::mem::replace(&mut seen_hosts[h], true))
            .collect()
    }

    /// Every group above `group` (parents, their parents, …).
    fn ancestors(&self, group: usize) -> Vec<usize> {
        let mut seen = vec![false; self.groups.len()];
        let mut found = Vec::new();
        let mut stack = self.groups[group].parents.clone();
        while let Some(g) = stack.pop() {
            if !std::mem::replace(&mut seen[g], true) {
                found.push(g);
                stack.extend(self.groups[g].parents.iter().copied());
            }
        }
        found
    }

    /// Whether `candidate` is above `group`; stops as soon as it is found.
    fn is_ancestor(&self, candidate: usize, group: usize) -> bool {
        let mut seen = vec![false; self.groups.len()];
        let mut stack = self.groups[group].parents.clone();
        while let Some(g) = stack.pop() {
            if g == candidate {
                return true;
            }
            if !std::mem::replace(&mut seen[g], true) {
                stack.extend(self.groups[g].parents.iter().copied());
            }
        }
        false
    }

    /// The host's groups with their ancestors (Ansible's `host.get_groups()`).
    fn groups_of(&self, host: usize) -> Vec<usize> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for &g in &self.hosts[host].groups {
            if seen.insert(g) {
                found.push(g);
                found.extend(self.ancestors(g).into_iter().filter(|&a| seen.insert(a)));
            }
        }
        found
    }

    /// The host's groups except `all`, in the order their vars apply.
    fn sorted_groups_of(&self, host: usize) -> Vec<usize> {
        let mut groups: Vec<usize> = self
            .groups_of(host)
            .into_iter()
            .filter(|&g| g != ALL)
            .collect();
        groups.sort_by(|&a, &b| {
            let (ga, gb) = (&self.groups[a], &self.groups[b]);
            (ga.depth, ga.priority, self.group_name(a)).cmp(&(
                gb.depth,
                gb.priority,
                self.group_name(b),
            ))
        });
        groups
    }

    /// A host by name; a localhost alias finds the first localhost-like host the
    /// inventory defines (Ansible reuses it instead of creating an implicit one).
    fn resolve_host(&self, name: &str) -> Option<usize> {
        self.hosts.get_index_of(name).or_else(|| {
            if LOCALHOST_NAMES.contains(&name) {
                self.hosts
                    .keys()
                    .position(|h| LOCALHOST_NAMES.contains(&h.as_str()))
            } else {
                None
            }
        })
    }

    fn group_name(&self, group: usize) -> &str {
        self.groups
            .get_index(group)
            .map_or("", |(name, _)| name.as_str())
    }

    fn host_name(&self, host: usize) -> &str {
        self.hosts
            .get_index(host)
            .map_or("", |(name, _)| name.as_str())
    }

    fn group_host_names(&self, group: usize) -> Vec<String> {
        self.groups[group]
            .all_hosts
            .iter()
            .map(|&h| self.host_name(h).to_string())
            .collect()
    }

    /// Reads group_vars/host_vars files for every known group and host (and the localhost
    /// names) that are not loaded yet, so `host_vars` needs no I/O and can't fail.
    fn load_vars_files(&mut self) -> Result<(), Diagnostic> {
        let group_names: Vec<String> = self.groups.keys().cloned().collect();
        let mut host_names: Vec<String> = self.hosts.keys().cloned().collect();
        host_names.extend(LOCALHOST_NAMES.iter().map(|s| s.to_string()));
        for dir in self
            .inventory_vars
            .iter_mut()
            .chain(&mut self.playbook_vars)
        {
            for name in &group_names {
                dir.load_group(name)?;
            }
            for name in &host_names {
                dir.load_host(name)?;
            }
        }
        Ok(())
    }
}

/// Sets a variable as Ansible's `set_variable` does. Its "merge a mapping into a mapping"
/// branch goes through `combine_vars`, which with the default `hash_behaviour = replace`
/// replaces the key, so a later definition always wins whole (checked against ansible-core 2.19).
fn set_var(vars: &mut Map, key: &str, value: Value) {
    vars.insert(key.to_string(), value);
}

/// Key replacement (Ansible's default `hash_behaviour = replace`).
fn merge(vars: &mut Map, layer: &Map) {
    for (key, value) in layer {
        vars.insert(key.clone(), value.clone());
    }
}

fn merge_opt(vars: &mut Map, layer: Option<&Map>) {
    if let Some(layer) = layer {
        merge(vars, layer);
    }
}

/// The implicit localhost's own variables. Ansible also sets `ansible_python_interpreter`
/// to its own interpreter; play has no Python of its own to point at, so it doesn't.
fn implicit_localhost_vars() -> Map {
    let mut vars = Map::new();
    vars.insert("ansible_connection".into(), Value::String("local".into()));
    vars
}

#[cfg(test)]
mod tests;
