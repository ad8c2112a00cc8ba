//! `cargo xtask new-operation NAME [--out DIR]`: a new operation crate from the template in
//! `xtask/templates/operation/` (embedded in xtask), ready to build. The crate uses the guest SDK
//! through the workspace, so it must live in a folder whose crates are workspace members and
//! that xtask builds: `operations/` (a built-in operation, the default) or `examples/` (a
//! third-party component to copy into `componentsRoot`). A standalone crate outside the
//! workspace is not supported.
//! `--lang js` makes a JavaScript operation in `<folder>/js/NAME/` instead (guests.rs's js.rs).
//! `--lang python` makes a Python operation in `<folder>/py/NAME/` (guests.rs's py.rs).

use crate::paths;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("../templates/operation/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/operation/lib.rs.tmpl");

/// Folders (relative to the repo root) whose crates are workspace members built by xtask, and
/// what a crate there becomes.
const PLACES: [(&str, &str); 2] = [
    ("operations", "a built-in operation"),
    ("examples", "a third-party component"),
];

/// Crate names that would clash with the standard library, the prelude or the workspace's own crates.
const RESERVED: [&str; 12] = [
    "std", "core", "alloc", "test", "proc_macro", "xtask", "tests", "host", "opshost", "opshost_guest", "opshost_harper",
    "opshost_conditions",
];

pub fn new_operation(args: &[String]) -> Result<()> {
    let (lang, args) = take_lang(args)?;
    let (name, out) = parse_args(&args)?;
    check_name(&name)?;
    let place = place(out.as_deref())?;
    for (folder, _) in PLACES.iter().chain(&[("tests/guests", "")]) {
        // A JavaScript operation's folder name is also its component's name: one per name.
        for existing in [paths::root().join(folder).join(&name), paths::root().join(folder).join("js").join(&name), paths::root().join(folder).join("py").join(&name)] {
            if existing.exists() {
                bail!("{} already exists; not overwriting it (a crate named '{name}' would also clash in the workspace)", existing.display());
            }
        }
    }
    if lang == "js" {
        return crate::guests::js::scaffold(&name, place);
    }
    if lang == "python" {
        return crate::guests::py::scaffold(&name, place);
    }
    let dir = paths::root().join(place).join(&name);
    write_crate(&dir, &name)?;
    print_next_steps(&name, place);
    Ok(())
}

/// `--lang rust|js|python` (default rust), taken out of the arguments.
fn take_lang(args: &[String]) -> Result<(String, Vec<String>)> {
    let mut lang = "rust".to_string();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--lang" {
            lang = it.next().context("--lang needs a language: rust, js or python")?.clone();
        } else if let Some(value) = arg.strip_prefix("--lang=") {
            lang = value.to_string();
        } else {
            rest.push(arg.clone());
        }
    }
    match lang.as_str() {
        "rust" | "js" | "python" => Ok((lang, rest)),
        "javascript" => Ok(("js".into(), rest)),
        "py" => Ok(("python".into(), rest)),
        other => bail!("--lang {other}: unknown language; use rust, js or python"),
    }
}

/// `NAME [--out DIR]` in either order.
fn parse_args(args: &[String]) -> Result<(String, Option<String>)> {
    let mut name = None;
    let mut out = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => out = Some(it.next().context("--out needs a folder: operations or examples")?.clone()),
            s if s.starts_with("--out=") => out = Some(s["--out=".len()..].to_string()),
            s if s.starts_with('-') => bail!("unknown option '{s}'\n\nusage: cargo xtask new-operation NAME [--out operations|examples] [--lang rust|js|python]"),
            s if name.is_none() => name = Some(s.to_string()),
            s => bail!("unexpected argument '{s}'"),
        }
    }
    let name = name.context("usage: cargo xtask new-operation NAME [--out operations|examples] [--lang rust|js|python]")?;
    Ok((name, out))
}

/// An operation name is also the crate name and the component file name: `[a-z][a-z0-9_]*`.
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!("'{name}' is not a valid operation name: use lowercase letters, digits and '_', starting with a letter (e.g. my_op)");
    }
    if RESERVED.contains(&name) {
        bail!("'{name}' is reserved (a standard or workspace crate has that name); choose another");
    }
    Ok(())
}

/// `--out` as one of [`PLACES`], given relative to the repo root or the current folder, or
/// absolute; `operations` without it.
fn place(out: Option<&str>) -> Result<&'static str> {
    let Some(out) = out else { return Ok(PLACES[0].0) };
    let given = PathBuf::from(out);
    let absolute = if given.is_absolute() { given.clone() } else { std::env::current_dir()?.join(&given) };
    for (folder, _) in PLACES {
        let wanted = paths::root().join(folder);
        if same_folder(&absolute, &wanted) || same_folder(&paths::root().join(&given), &wanted) {
            return Ok(folder);
        }
    }
    bail!(
        "--out {out}: a new operation must live in the opshost workspace, in operations/ (built-in) or \
         examples/ (third-party), where cargo and xtask build it with the SDK; standalone crates \
         outside the workspace are not supported"
    )
}

fn same_folder(a: &Path, b: &Path) -> bool {
    let clean = |p: &Path| -> PathBuf { p.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect() };
    clean(a) == clean(b) || (a.exists() && b.exists() && a.canonicalize().ok() == b.canonicalize().ok())
}

fn write_crate(dir: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(dir.parent().context("crate folder has a parent")?)?;
    // create_dir (not _all) fails if something appeared meanwhile: never overwrite.
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::create_dir(dir.join("src"))?;
    std::fs::write(dir.join("Cargo.toml"), render(CARGO_TOML, name))?;
    std::fs::write(dir.join("src").join("lib.rs"), render(LIB_RS, name))?;
    Ok(())
}

/// Fills `{{name}}` (the operation and crate name) and `{{Type}}` (its CamelCase type name).
fn render(template: &str, name: &str) -> String {
    template.replace("{{name}}", name).replace("{{Type}}", &type_name(name))
}

/// `my_op2` -> `MyOp2`.
fn type_name(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

fn print_next_steps(name: &str, place: &str) {
    let kind = PLACES.iter().find(|(f, _)| *f == place).map(|(_, k)| *k).unwrap_or("an operation");
    println!("created {place}/{name}/ ({kind}): Cargo.toml and src/lib.rs, an operation that echoes its request\n");
    println!("next steps:");
    println!("  1. edit {place}/{name}/src/lib.rs (unit tests: cargo test -p {name})");
    if place == "operations" {
        println!("  2. cargo xtask build-guests {name}");
        println!("     -> target/opshost/operations/{name}.wasm; a server started with `cargo xtask run` watches that");
        println!("        folder and serves the new operation within half a second, without a restart");
        println!("     (for a server installed elsewhere, copy the .wasm into its <rootPath>/components/ instead)");
    } else {
        println!("  2. cargo xtask build-guests {name}      -> target/opshost-components/{name}.wasm");
        println!("  3. cp target/opshost-components/{name}.wasm ~/opshost/components/   (<rootPath>/components/)");
        println!("     the server hot-loads it within half a second, without a restart");
    }
    println!("  then: curl -s -u admin:secret -H 'Content-Type: application/json' -d '{{\"operation\":\"{name}\",\"hello\":\"world\"}}' http://127.0.0.1:9925/");
    println!();
    println!("It may import only `log` until granted more: list the interfaces it needs (config, sysinfo,");
    println!("control, storage, certs, jobs, filesystem, objectstore, users, catalog, packages, wasi) in");
    println!("<rootPath>/opshost-config.yaml, then call {{\"operation\":\"restart\"}} (the file is re-read on restart):");
    println!("  operationsApi:");
    println!("    grants:");
    println!("      {name}: [storage]");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_identifiers() {
        for ok in ["my_op", "a", "op2", "hello_world_3"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "My_op", "2op", "_op", "my-op", "my op", "my.op", "op/x", "../x", "é", "test", "xtask"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("my_op"), "MyOp");
        assert_eq!(type_name("a"), "A");
        assert_eq!(type_name("get_2_things"), "Get2Things");
        assert_eq!(type_name("trailing__"), "Trailing");
    }

    #[test]
    fn templates_are_filled_completely() {
        for template in [CARGO_TOML, LIB_RS] {
            let text = render(template, "my_op");
            assert!(!text.contains("{{"), "unfilled placeholder in:\n{text}");
        }
        let lib = render(LIB_RS, "my_op");
        assert!(lib.contains("pub struct MyOp;") && lib.contains("const NAME: &'static str = \"my_op\";"));
        assert!(lib.contains("export_operation!(MyOp)"));
        assert!(render(CARGO_TOML, "my_op").contains("name = \"my_op\""));
    }

    #[test]
    fn arguments_in_either_order() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_args(&args(&["my_op"])).ok(), Some(("my_op".into(), None)));
        assert_eq!(parse_args(&args(&["--out", "examples", "my_op"])).ok(), Some(("my_op".into(), Some("examples".into()))));
        assert_eq!(parse_args(&args(&["my_op", "--out=examples"])).ok(), Some(("my_op".into(), Some("examples".into()))));
        assert!(parse_args(&args(&[])).is_err());
        assert!(parse_args(&args(&["a", "b"])).is_err());
        assert!(parse_args(&args(&["a", "--force"])).is_err());
    }

    #[test]
    fn out_is_a_built_folder_of_the_workspace() {
        assert_eq!(place(None).ok(), Some("operations"));
        assert_eq!(place(Some("examples")).ok(), Some("examples"));
        assert_eq!(place(Some("./examples/")).ok(), Some("examples"));
        let absolute = paths::root().join("operations");
        assert_eq!(place(absolute.to_str()).ok(), Some("operations"));
        assert!(place(Some("/tmp")).is_err());
        assert!(place(Some("tests/guests")).is_err());
    }
}
