//! The role graph of a play (a petgraph DAG of role calls and their dependencies), cycle
//! finding, and `play graph`'s three renderings: an indented tree, Graphviz dot, and JSON.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;

use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use serde_json::{json, Map, Value};

use crate::error::Span;
use crate::playbook::Playbook;

/// One role call in the graph: calls with the same identity (same role, same parameters)
/// share a node, which is how a diamond shows.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleNode {
    pub name: String,
    pub path: PathBuf,
    pub params: Map<String, Value>,
    pub vars: Map<String, Value>,
    pub allow_duplicates: bool,
    pub from_include: bool,
    /// Roles its tasks `include_role` (decided when they run): name as written, where.
    pub includes: Vec<(String, Span)>,
}

/// How a role is reached: from the play (`roles:`, or a task of the play), or from another
/// role (its `meta/main.yml`, or one of its tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Roles,
    Dependency,
    ImportRole,
    IncludeRole,
}

impl Via {
    fn word(self) -> &'static str {
        match self {
            Via::Roles => "roles",
            Via::Dependency => "dependency",
            Via::ImportRole => "import_role",
            Via::IncludeRole => "include_role",
        }
    }
}

/// An edge of the graph: the place that names the role, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleEdge {
    pub span: Span,
    pub via: Via,
}

/// A role the play itself names; `include_role`s are decided when they run, so they are
/// shown by name only.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleRoot {
    pub via: Via,
    pub name: String,
    pub span: Span,
    pub node: Option<NodeIndex>,
}

/// Every role call of a play: nodes are calls, edges are `meta/main.yml` dependencies and
/// roles imported by a role's tasks (with the place they are written), roots are what the
/// play names, in order.
#[derive(Debug, Clone, Default)]
pub struct RoleGraph {
    pub graph: DiGraph<RoleNode, RoleEdge>,
    pub roots: Vec<RoleRoot>,
    index: HashMap<String, NodeIndex>,
}

impl PartialEq for RoleGraph {
    fn eq(&self, other: &Self) -> bool {
        let edges = |g: &DiGraph<RoleNode, RoleEdge>| -> Vec<(usize, usize, RoleEdge)> {
            g.edge_references()
                .map(|e| (e.source().index(), e.target().index(), e.weight().clone()))
                .collect()
        };
        self.roots == other.roots
            && self.graph.node_weights().eq(other.graph.node_weights())
            && edges(&self.graph) == edges(&other.graph)
    }
}

impl RoleGraph {
    /// The node of a role call, added the first time its identity is seen.
    pub fn add_role(&mut self, key: &str, node: RoleNode) -> NodeIndex {
        if let Some(n) = self.index.get(key) {
            return *n;
        }
        let n = self.graph.add_node(node);
        self.index.insert(key.to_string(), n);
        n
    }

    /// The node of the role call with this identity.
    pub fn node_of(&self, key: &str) -> Option<NodeIndex> {
        self.index.get(key).copied()
    }

    /// `from` depends on (or imports) `to`, written at `span`; compiled twice, it is one edge.
    pub fn add_edge(&mut self, from: NodeIndex, to: NodeIndex, span: &Span, via: Via) {
        if self.graph.find_edge(from, to).is_none() {
            let edge = RoleEdge {
                span: span.clone(),
                via,
            };
            self.graph.add_edge(from, to, edge);
        }
    }

    /// What the play names, in order; the node is filled in once the role is compiled.
    pub fn add_root(&mut self, via: Via, name: &str, span: &Span) -> usize {
        self.roots.push(RoleRoot {
            via,
            name: name.to_string(),
            span: span.clone(),
            node: None,
        });
        self.roots.len() - 1
    }

    /// Edges out of a node in the order they are written.
    fn children(&self, n: NodeIndex) -> Vec<(NodeIndex, &RoleEdge)> {
        let mut out: Vec<(EdgeIndex, NodeIndex, &RoleEdge)> = self
            .graph
            .edges(n)
            .map(|e| (e.id(), e.target(), e.weight()))
            .collect();
        out.sort_by_key(|(id, _, _)| *id);
        out.into_iter().map(|(_, t, e)| (t, e)).collect()
    }
}

/// A cycle of the graph as its edges, starting at the cycle's earliest-added node (the one
/// nearest the play), or `None` for a DAG.
pub fn find_cycle<N, E>(g: &DiGraph<N, E>) -> Option<Vec<EdgeIndex>> {
    let cyclic = petgraph::algo::tarjan_scc(g)
        .into_iter()
        .filter(|scc| scc.len() > 1 || g.find_edge(scc[0], scc[0]).is_some());
    let scc = cyclic.min_by_key(|scc| scc.iter().min().copied())?;
    let start = scc.iter().min().copied()?;
    let members: HashSet<NodeIndex> = scc.iter().copied().collect();
    // The shortest way from `start` back to itself, edges taken in the order they were written.
    let mut came_by: HashMap<NodeIndex, EdgeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    let mut visited = HashSet::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut out: Vec<_> = g.edges(n).map(|e| (e.id(), e.target())).collect();
        out.sort_by_key(|(id, _)| *id);
        for (id, target) in out {
            if target == start {
                let mut path = vec![id];
                let mut cur = n;
                while cur != start {
                    let e = *came_by.get(&cur)?;
                    path.push(e);
                    cur = g.edge_endpoints(e)?.0;
                }
                path.reverse();
                return Some(path);
            }
            if members.contains(&target) && visited.insert(target) {
                came_by.insert(target, id);
                queue.push_back(target);
            }
        }
    }
    None
}

fn params_text(params: &Map<String, Value>) -> String {
    if params.is_empty() {
        String::new()
    } else {
        format!(" {}", Value::Object(params.clone()))
    }
}

fn vars_text(vars: &Map<String, Value>) -> String {
    if vars.is_empty() {
        String::new()
    } else {
        format!(" vars={}", Value::Object(vars.clone()))
    }
}

/// The indented tree: each play, the roles it names, their dependencies below them. A call
/// that Ansible runs only once per host is marked where it comes up again.
pub fn render_tree(playbooks: &[Playbook]) -> String {
    let mut out = String::new();
    for pb in playbooks {
        let _ = writeln!(out, "\nplaybook: {}", pb.path.display());
        for (n, play) in pb.plays.iter().enumerate() {
            let _ = writeln!(out, "\n  play #{} ({}): {}", n + 1, play.hosts, play.name);
            let g = &play.roles.graph;
            if g.roots.is_empty() {
                let _ = writeln!(out, "    (no roles)");
            }
            let mut shown: HashSet<NodeIndex> = HashSet::new();
            for root in &g.roots {
                let prefix = match root.via {
                    Via::Roles => String::new(),
                    via => format!("{}: ", via.word()),
                };
                match root.node {
                    Some(node) => tree_node(g, node, 4, &prefix, &mut shown, &mut out),
                    None => {
                        let _ = writeln!(out, "    {prefix}{} (decided at run time)", root.name);
                    }
                }
            }
        }
    }
    out
}

fn tree_node(
    g: &RoleGraph,
    node: NodeIndex,
    indent: usize,
    prefix: &str,
    shown: &mut HashSet<NodeIndex>,
    out: &mut String,
) {
    let r = &g.graph[node];
    let again = !shown.insert(node);
    let mark = if again && !r.allow_duplicates {
        " (same role and parameters as above: skipped where it already ran)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{:indent$}{prefix}{}{}{} [{}]{mark}",
        "",
        r.name,
        params_text(&r.params),
        vars_text(&r.vars),
        r.path.display(),
    );
    if again && !r.allow_duplicates {
        return;
    }
    for (child, edge) in g.children(node) {
        let prefix = match edge.via {
            Via::Dependency | Via::Roles => String::new(),
            via => format!("{}: ", via.word()),
        };
        tree_node(g, child, indent + 2, &prefix, shown, out);
    }
    for (name, _) in &r.includes {
        let _ = writeln!(
            out,
            "{:width$}include_role: {name} (decided at run time)",
            "",
            width = indent + 2
        );
    }
}

fn dot_quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// Graphviz: one cluster per play, a node per role call, an edge per dependency labelled
/// with the line it is written on.
pub fn render_dot(playbooks: &[Playbook]) -> String {
    let mut out = String::from("digraph roles {\n  node [shape=box];\n");
    for (b, pb) in playbooks.iter().enumerate() {
        for (p, play) in pb.plays.iter().enumerate() {
            let id = |n: NodeIndex| dot_quote(&format!("b{b}p{p}r{}", n.index()));
            let play_id = dot_quote(&format!("b{b}p{p}"));
            let g = &play.roles.graph;
            let _ = writeln!(
                out,
                "  subgraph {} {{",
                dot_quote(&format!("cluster_b{b}p{p}"))
            );
            let _ = writeln!(
                out,
                "    label={};",
                dot_quote(&format!("{}: play #{}", pb.path.display(), p + 1))
            );
            let _ = writeln!(
                out,
                "    {play_id} [label={}, shape=ellipse];",
                dot_quote(&format!("{} ({})", play.name, play.hosts))
            );
            for n in g.graph.node_indices() {
                let r = &g.graph[n];
                let label = format!(
                    "{}{}{}\n{}",
                    r.name,
                    params_text(&r.params),
                    vars_text(&r.vars),
                    r.path.display()
                );
                let _ = writeln!(out, "    {} [label={}];", id(n), dot_quote(&label));
            }
            for (i, root) in g.roots.iter().enumerate() {
                let target = match root.node {
                    Some(n) => id(n),
                    None => {
                        let t = dot_quote(&format!("b{b}p{p}i{i}"));
                        let _ = writeln!(
                            out,
                            "    {t} [label={}, style=dashed];",
                            dot_quote(&format!("{} (at run time)", root.name))
                        );
                        t
                    }
                };
                let _ = writeln!(
                    out,
                    "    {play_id} -> {target} [label={}];",
                    dot_quote(root.via.word())
                );
            }
            for e in g.graph.edge_references() {
                let span = &e.weight().span;
                let via = match e.weight().via {
                    Via::Dependency | Via::Roles => String::new(),
                    via => format!("{} ", via.word()),
                };
                let _ = writeln!(
                    out,
                    "    {} -> {} [label={}];",
                    id(e.source()),
                    id(e.target()),
                    dot_quote(&format!("{via}{}:{}", span.file.display(), span.line))
                );
            }
            for n in g.graph.node_indices() {
                for (k, (name, span)) in g.graph[n].includes.iter().enumerate() {
                    let t = dot_quote(&format!("b{b}p{p}r{}i{k}", n.index()));
                    let _ = writeln!(
                        out,
                        "    {t} [label={}, style=dashed];",
                        dot_quote(&format!("{name} (at run time)"))
                    );
                    let _ = writeln!(
                        out,
                        "    {} -> {t} [label={}];",
                        id(n),
                        dot_quote(&format!(
                            "include_role {}:{}",
                            span.file.display(),
                            span.line
                        ))
                    );
                }
            }
            out.push_str("  }\n");
        }
    }
    out.push_str("}\n");
    out
}

/// JSON: per play, the role calls (nodes), what the play names (roots), and the dependency
/// edges with the file and line of each.
pub fn render_json(playbooks: &[Playbook]) -> String {
    let books: Vec<Value> = playbooks
        .iter()
        .map(|pb| {
            let plays: Vec<Value> = pb
                .plays
                .iter()
                .map(|play| {
                    let g = &play.roles.graph;
                    let roles: Vec<Value> = g
                        .graph
                        .node_indices()
                        .map(|n| {
                            let r = &g.graph[n];
                            let includes: Vec<Value> = r
                                .includes
                                .iter()
                                .map(|(name, span)| {
                                    json!({
                                        "name": name,
                                        "file": span.file.display().to_string(),
                                        "line": span.line,
                                    })
                                })
                                .collect();
                            json!({
                                "id": n.index(),
                                "name": r.name,
                                "path": r.path.display().to_string(),
                                "params": r.params,
                                "vars": r.vars,
                                "allow_duplicates": r.allow_duplicates,
                                "include_role": includes,
                            })
                        })
                        .collect();
                    let roots: Vec<Value> = g
                        .roots
                        .iter()
                        .map(|r| {
                            json!({
                                "role": r.node.map(NodeIndex::index),
                                "name": r.name,
                                "via": r.via.word(),
                                "file": r.span.file.display().to_string(),
                                "line": r.span.line,
                            })
                        })
                        .collect();
                    let deps: Vec<Value> = g
                        .graph
                        .edge_references()
                        .map(|e| {
                            json!({
                                "from": e.source().index(),
                                "to": e.target().index(),
                                "via": e.weight().via.word(),
                                "file": e.weight().span.file.display().to_string(),
                                "line": e.weight().span.line,
                            })
                        })
                        .collect();
                    json!({
                        "name": play.name,
                        "hosts": play.hosts,
                        "roles": roles,
                        "roots": roots,
                        "dependencies": deps,
                    })
                })
                .collect();
            json!({"path": pb.path.display().to_string(), "plays": plays})
        })
        .collect();
    let doc = json!({ "playbooks": books });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cycle_nearest_the_root() {
        let mut g: DiGraph<&str, u32> = DiGraph::new();
        let play = g.add_node("play");
        let a = g.add_node("a");
        let b = g.add_node("b");
        let c = g.add_node("c");
        g.add_edge(play, a, 1);
        g.add_edge(a, b, 2);
        g.add_edge(b, c, 3);
        g.add_edge(c, a, 4);
        let cycle = find_cycle(&g).expect("a cycle");
        let weights: Vec<u32> = cycle.iter().map(|e| g[*e]).collect();
        assert_eq!(weights, vec![2, 3, 4]);
        let mut dag: DiGraph<&str, u32> = DiGraph::new();
        let x = dag.add_node("x");
        let y = dag.add_node("y");
        dag.add_edge(x, y, 1);
        assert!(find_cycle(&dag).is_none());
        let mut self_loop: DiGraph<&str, u32> = DiGraph::new();
        let s = self_loop.add_node("s");
        self_loop.add_edge(s, s, 7);
        assert_eq!(find_cycle(&self_loop).map(|c| c.len()), Some(1));
    }
}
