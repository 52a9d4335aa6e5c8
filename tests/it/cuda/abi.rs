//! Each PTX module declares exactly the entries in `kernels::ENTRIES`, with the same
//! parameter types in the same order, and the `.version` / `.target` the README states.

use std::collections::BTreeMap;

use mmrun::backend::cuda::kernels::{ENTRIES, Module};

/// `(entry name, [param types])` of every `.entry` in a PTX text, in file order.
fn parse_entries(ptx: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut rest = ptx;
    while let Some(pos) = rest.find(".entry ") {
        rest = &rest[pos + ".entry ".len()..];
        let open = rest.find('(').ok_or("`.entry` without `(`")?;
        let name = rest[..open].trim().to_string();
        let close = rest.find(')').ok_or("`.entry` without `)`")?;
        let mut params = Vec::new();
        for decl in rest[open + 1..close].split(',') {
            let words: Vec<&str> = decl.split_whitespace().collect();
            match words.as_slice() {
                [".param", ty, _name] => params.push(ty.trim_start_matches('.').to_string()),
                [] => {}
                other => return Err(format!("entry {name}: unparsed parameter {other:?}")),
            }
        }
        out.push((name, params));
        rest = &rest[close..];
    }
    Ok(out)
}

#[test]
fn every_module_declares_exactly_the_expected_entries() {
    for m in Module::ALL {
        let declared = parse_entries(m.ptx()).unwrap_or_else(|e| panic!("{}: {e}", m.file()));
        let mut seen = BTreeMap::new();
        for (name, params) in &declared {
            assert!(
                seen.insert(name.clone(), params.clone()).is_none(),
                "{}: entry {name} declared twice",
                m.file()
            );
        }
        let mut expected = BTreeMap::new();
        for e in ENTRIES.iter().filter(|e| e.module == m) {
            let params: Vec<String> = e.params.iter().map(|p| p.ptx().to_string()).collect();
            expected.insert(e.name(), params);
        }
        let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
        let extra: Vec<_> = seen.keys().filter(|k| !expected.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{}: missing entries {missing:?}, undeclared in kernels::ENTRIES {extra:?}",
            m.file()
        );
        for (name, params) in &expected {
            assert_eq!(
                &seen[name],
                params,
                "{}: parameter list of {name}",
                m.file()
            );
        }
    }
}

#[test]
fn every_module_targets_ptx_7_0_sm_80() {
    for m in Module::ALL {
        let src = m.ptx();
        for directive in [".version 7.0", ".target sm_80", ".address_size 64"] {
            assert!(
                src.lines().any(|l| l.trim() == directive),
                "{}: expected `{directive}`",
                m.file()
            );
        }
    }
}

#[test]
fn entry_names_follow_op_pass_dtype() {
    for e in ENTRIES {
        let name = e.name();
        let ok = ["_fwd_", "_bwd_", "_stats_", "_reduce_", "_grad_", "_multi_"]
            .iter()
            .any(|p| name.contains(p));
        assert!(ok, "{name}: expected <op>_<pass>_f32");
    }
}

#[test]
fn parser_reads_params_in_order() {
    let ptx = ".visible .entry k_f32(\n\t.param .u64 a,\n\t.param .f32 b\n)\n{ ret; }";
    let got = parse_entries(ptx).unwrap();
    assert_eq!(
        got,
        vec![("k_f32".to_string(), vec!["u64".into(), "f32".into()])]
    );
}
