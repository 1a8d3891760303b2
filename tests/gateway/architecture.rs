//! The module map holds: every top-level module of `src/` sits in one layer and uses only its own
//! layer and those below; no modules and no files go round in a circle. Read from the sources, as
//! text: a file of module A uses module B when it mentions `crate::B` (in a path or a
//! `use crate::{…}` group). Test modules (`#[cfg(test)] mod …` to the end of a file, files named
//! `tests.rs` or `testing.rs`) are left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. ARCHITECTURE.md shows the same table.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "protocol", "uri", "seal", "sse", "lines", "session", "metrics", "logs", "error",
            "jsonrpc", "outcome", "mutate",
        ],
    ),
    ("configuration model", &["config"]),
    (
        "domains",
        &[
            "auth", "policy", "limits", "audit", "listen", "upstream", "compose", "issuer",
            "registry", "jobs", "connect", "guard", "trace",
        ],
    ),
    ("request path", &["proxy"]),
    (
        "runtime and commands",
        &[
            "reload", "server", "console", "bridge", "tools", "stdio", "admin", "alloc", "lib",
            "main",
        ],
    ),
];

/// One reference from a file to a module: `crate::name` or `crate::name::sub`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Use {
    name: String,
    sub: Option<String>,
}

fn ident_at(text: &str, from: usize) -> Option<&str> {
    let rest = &text[from..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let id = &rest[..end];
    (!id.is_empty() && !id.starts_with(|c: char| c.is_ascii_digit())).then_some(id)
}

/// The path after `head` (`name` and, when it goes on with `::`, the next segment).
fn path_at(text: &str, at: usize) -> Option<Use> {
    let name = ident_at(text, at)?;
    let after = at + name.len();
    let sub = text[after..]
        .strip_prefix("::")
        .and_then(|_| ident_at(text, after + 2))
        .map(str::to_string);
    Some(Use {
        name: name.to_string(),
        sub,
    })
}

/// Every `crate::` reference in a file's code, and the heads of `use crate::{a, b::c}` groups.
fn uses_in(code: &str) -> BTreeSet<Use> {
    let mut out = BTreeSet::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if code[from..].starts_with('{') {
            let end = code[from..].find("};").map_or(code.len(), |e| from + e);
            let group = &code[from + 1..end];
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices().chain([(group.len(), ',')]) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let item = group[start..j].trim_start();
                        if let Some(u) = path_at(item, 0) {
                            out.insert(u);
                        }
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            continue;
        }
        if let Some(u) = path_at(code, from) {
            out.insert(u);
        }
    }
    out
}

/// A file's text without its trailing test module.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut at = 0;
    while let Some(i) = text[at..].find("#[cfg(test)]") {
        let start = at + i;
        let rest = text[start + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod ") && (start == 0 || text[..start].ends_with('\n')) {
            return text[..start].to_string();
        }
        at = start + 1;
    }
    text
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs")
            && !matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("tests.rs" | "testing.rs")
            )
        {
            out.push(p);
        }
    }
}

/// A file's module (`proxy`, `error`, `lib`) and its name relative to `src`.
fn unit_of(src: &Path, file: &Path) -> (String, String) {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let rel_s = rel.to_string_lossy().replace('\\', "/");
    let first = rel_s.split('/').next().unwrap_or("");
    (first.trim_end_matches(".rs").to_string(), rel_s)
}

/// Strongly connected sets of two or more nodes (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn strong<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        if let Some(ws) = s.edges.get(v) {
            for w in ws {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    strong(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.found.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        found: Vec::new(),
    };
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(a, bs)| std::iter::once(a.as_str()).chain(bs.iter().map(String::as_str)))
        .collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            strong(&mut s, v);
        }
    }
    s.found
}

/// Everything wrong with the module map under `src`, one line each.
fn problems(src: &Path) -> Vec<String> {
    let layer_of = |m: &str| LAYERS.iter().position(|(_, ms)| ms.contains(&m));
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let units: BTreeSet<String> = files.iter().map(|f| unit_of(src, f).1).collect();
    let file_of = |u: &Use| -> Option<String> {
        let n = &u.name;
        let mut cands = Vec::new();
        if let Some(s) = &u.sub {
            cands.push(format!("{n}/{s}.rs"));
            cands.push(format!("{n}/{s}/mod.rs"));
        }
        cands.push(format!("{n}/mod.rs"));
        cands.push(format!("{n}.rs"));
        cands.into_iter().find(|c| units.contains(c))
    };
    let mut out = Vec::new();
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut per_file: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let (module, rel) = unit_of(src, f);
        let Some(la) = layer_of(&module) else {
            out.push(format!(
                "src/{rel}: module `{module}` is in no layer (add it to LAYERS and ARCHITECTURE.md)"
            ));
            continue;
        };
        for u in uses_in(&code_of(f)) {
            let Some(target) = file_of(&u) else { continue };
            if target != rel {
                per_file.entry(rel.clone()).or_default().insert(target);
            }
            if u.name == module {
                continue;
            }
            modules
                .entry(module.clone())
                .or_default()
                .insert(u.name.clone());
            if let Some(lb) = layer_of(&u.name).filter(|lb| *lb > la) {
                out.push(format!(
                    "src/{rel} uses crate::{}{}: {} ({}) may not use {} ({})",
                    u.name,
                    u.sub
                        .as_deref()
                        .map(|s| format!("::{s}"))
                        .unwrap_or_default(),
                    module,
                    LAYERS[la].0,
                    u.name,
                    LAYERS[lb].0
                ));
            }
        }
    }
    for c in circles(&modules) {
        out.push(format!("modules in a circle: {}", c.join(", ")));
    }
    for c in circles(&per_file) {
        out.push(format!("files in a circle: {}", c.join(", ")));
    }
    out
}

#[test]
fn every_module_uses_only_its_layer_and_those_below_and_nothing_goes_round() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = problems(&src);
    assert!(
        found.is_empty(),
        "the module map is broken:\n{}",
        found.join("\n")
    );
}

/// The check itself catches what it is for: an upward use, a circle of files, a module in no layer.
#[test]
fn the_check_names_an_upward_use_a_circle_and_an_unplaced_module() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("error/mod.rs", "use crate::proxy::Gateway;\n");
    write("proxy/mod.rs", "pub struct Gateway;\n");
    write("config/a.rs", "use crate::config::b::B;\n");
    write("config/b.rs", "use crate::{config::a::A, error};\n");
    write(
        "auth/mod.rs",
        "//! no use\n#[cfg(test)]\nmod tests { use crate::proxy::Gateway; }\n",
    );
    write("gadget.rs", "\n");
    let found = problems(src);
    let has = |needle: &str| found.iter().any(|p| p.contains(needle));
    assert!(
        has("src/error/mod.rs uses crate::proxy::Gateway: error (foundation) may not use proxy (request path)"),
        "{found:#?}"
    );
    assert!(
        has("files in a circle: config/a.rs, config/b.rs"),
        "{found:#?}"
    );
    assert!(has("module `gadget` is in no layer"), "{found:#?}");
    assert!(!has("src/auth"), "test modules are left out: {found:#?}");
    assert_eq!(found.len(), 3, "{found:#?}");
}
