//! The host's layering, checked on its source: `api -> registry/runtime -> capabilities ->
//! services`, with nothing importing upwards (services never see WIT types or the call machinery;
//! capabilities never reach the HTTP layer, the registry or the server).

use std::path::{Path, PathBuf};

/// (folder or file under host/src, the modules it must not use)
const RULES: &[(&str, &[&str])] = &[
    ("services", &["crate::capabilities", "crate::runtime", "crate::registry", "crate::api", "crate::bindings", "crate::server", "crate::deployer"]),
    ("capabilities", &["crate::api", "crate::registry", "crate::server", "crate::runtime", "crate::deployer"]),
    ("runtime.rs", &["crate::api", "crate::registry", "crate::server"]),
    // A leaf every service may use (atomic writes): it imports no other module of the host.
    ("services/fsutil.rs", &["crate::", "super::"]),
    // The configuration's schema is plain data and validation: no file access, no service.
    ("services/config/schema.rs", &["ConfigService", "super::super"]),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("readable source folder") {
            rust_files(&entry.expect("entry").path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut checked = 0;
    for (scope, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(scope), &mut files);
        assert!(!files.is_empty(), "{scope} has no source: the rule checks nothing");
        for file in files {
            checked += 1;
            let text = std::fs::read_to_string(&file).expect("readable source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for f in forbidden.iter() {
                    // Also `use crate::{api, ...}`: the module's name inside a grouped import.
                    let module = f.trim_start_matches("crate::");
                    let grouped = code.contains("crate::{") && code.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == module);
                    if code.contains(f) || grouped {
                        violations.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} files checked");
    assert!(violations.is_empty(), "upward imports:\n{}", violations.join("\n"));
}
