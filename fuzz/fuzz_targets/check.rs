//! Any input gives a recipe or diagnostics with valid spans, and `fmt` is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmrun::recipe::{self, CheckOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.recipe");
    std::fs::write(&p, text).unwrap();
    let opts = CheckOptions {
        no_fs: true,
        ..CheckOptions::default()
    };
    let out = recipe::check(&p, &[], &opts);
    for d in out.diagnostics.iter() {
        for l in &d.labels {
            let f = out.files.get(l.loc.file).unwrap();
            assert!(l.loc.start <= l.loc.end && l.loc.end <= f.text.len());
        }
    }
    if let Ok(once) = mmrun::syntax::fmt::format(text) {
        assert_eq!(mmrun::syntax::fmt::format(&once).unwrap(), once);
    }
});
