//! Every module's imports against the table in `docs/ARCHITECTURE.md` ("Imports"): an import
//! the table does not allow fails, and so does a listed exception that no longer exists, so
//! the table and the code cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `module → modules` from the lines between `<!-- name -->` and `<!-- /name -->`.
fn listed(doc: &str, name: &str) -> Vec<String> {
    let start = format!("<!-- {name} -->");
    let end = format!("<!-- /{name} -->");
    let from = doc
        .find(&start)
        .unwrap_or_else(|| panic!("no {start} in ARCHITECTURE.md"));
    let to = doc[from..].find(&end).unwrap_or_else(|| panic!("no {end}")) + from;
    doc[from + start.len()..to]
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .map(String::from)
        .collect()
}

fn module_of(s: &str) -> String {
    s.trim().trim_matches('`').to_string()
}

/// `crate::<module>` paths used under `src/<module>/` (comments left out).
fn actual_imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut out = BTreeMap::new();
    for m in &modules {
        let mut found = BTreeSet::new();
        let mut todo = vec![src.join(m)];
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                    continue;
                }
                if p.extension().is_none_or(|x| x != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap();
                for line in text.lines() {
                    let code = line.split("//").next().unwrap_or_default();
                    for part in code.split("crate::").skip(1) {
                        let name: String = part
                            .chars()
                            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                            .collect();
                        if &name != m && modules.contains(&name) {
                            found.insert(name);
                        }
                    }
                }
            }
        }
        out.insert(m.clone(), found);
    }
    out
}

#[test]
fn imports_follow_the_table_in_architecture_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in listed(&doc, "imports") {
        let (m, deps) = line.split_once(':').expect("`module`: a, b");
        let deps = deps.split(',').map(module_of).filter(|d| !d.is_empty());
        allowed.insert(module_of(m), deps.collect());
    }
    let mut exceptions = BTreeSet::new();
    for line in listed(&doc, "exceptions") {
        let edge = line.split(':').next().unwrap();
        let (a, b) = edge.split_once('→').expect("`a` → `b`: why");
        exceptions.insert((module_of(a), module_of(b)));
    }
    let actual = actual_imports(&root.join("src"));
    let mut problems = Vec::new();
    for (m, deps) in &actual {
        let Some(ok) = allowed.get(m) else {
            problems.push(format!("`{m}` is not in the table"));
            continue;
        };
        for d in deps {
            if !ok.contains(d) && !exceptions.contains(&(m.clone(), d.clone())) {
                problems.push(format!(
                    "`{m}` imports `{d}`, which the table does not allow"
                ));
            }
        }
    }
    for (a, b) in &exceptions {
        if !actual.get(a).is_some_and(|d| d.contains(b)) {
            problems.push(format!(
                "the exception `{a}` → `{b}` no longer exists: remove it"
            ));
        }
    }
    for m in allowed.keys() {
        if !actual.contains_key(m) {
            problems.push(format!("the table lists `{m}`, which is not a module"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
