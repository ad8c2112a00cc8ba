//! Python operations: find them, install componentize-py (pinned by `xtask/py/requirements.txt`)
//! into a venv at `~/.cache/opshost/py` once, and build each into a component with a WIT world of
//! its own that imports only the interfaces its pyproject.toml lists.
//!
//! A Python operation is a folder under `examples/py/`, `operations/py/` or `tests/guests-py/`
//! (kept out of the cargo workspace, see `PY_PLACES`) with a pyproject.toml holding:
//!
//! ```toml
//! [tool.opshost]
//! module = "operation"      # the module that declares @operation (default "operation")
//! imports = ["storage"]     # host interfaces beyond `log`
//! wasi = false              # true: real WASI (stdio, clocks, randomness), granted as `wasi`
//! ```
//!
//! The build writes `target/opshost-py/<name>/`: a copy of `wit/` plus a world `py-operation`
//! that imports `log` and the listed interfaces, and an entry module that imports exactly those
//! host interfaces, hands them to the SDK (`bind`) and exports the declared operation. Without
//! `wasi = true` the component is built with `--stub-wasi`: CPython's WASI imports become
//! trapping stubs, so it imports no WASI at all and needs no `wasi` grant (`print`, `time.time()`
//! and `os.urandom` trap; the `random` module is seeded at build time). A build is skipped when
//! a SHA-256 over every input (sources, SDK, WIT, requirements, generated world and entry)
//! matches the last one.

use super::{Kind, PY_PLACES};
use super::componentize::{self, hex, kind_label, wit_files};
use crate::paths;
use anyhow::{bail, Context, Result};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host interfaces a Python operation may list in `[tool.opshost] imports`.
const INTERFACES: [&str; 13] = [
    "log", "config", "sysinfo", "control", "storage", "certs", "jobs", "filesystem", "objectstore", "users", "catalog",
    "packages", "components",
];
/// The world every generated WIT names.
const WORLD: &str = "py-operation";
/// The generated module componentize-py starts from.
const ENTRY: &str = "opshost_entry";

/// One Python operation folder.
pub struct PyGuest {
    /// The folder name: also the component's file name.
    pub name: String,
    dir: PathBuf,
    kind: Kind,
    /// The module that declares the operation.
    module: String,
    imports: Vec<String>,
    wasi: bool,
}

/// Every Python operation (examples and test guests only `with_test_guests`, as for Rust).
pub fn discover(with_test_guests: bool) -> Result<Vec<PyGuest>> {
    let mut out = Vec::new();
    for (place, kind) in PY_PLACES {
        if kind != Kind::Builtin && !with_test_guests {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(paths::root().join(place)) else { continue };
        for entry in entries {
            let dir = entry?.path();
            let manifest = dir.join("pyproject.toml");
            if !manifest.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
            let Some(section) = opshost_section(&text) else { continue };
            let name = dir.file_name().and_then(|n| n.to_str()).context("folder name")?.to_string();
            out.push(parse_guest(name, dir, kind, &section).with_context(|| format!("in {}", manifest.display()))?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The `key = value` lines of `[tool.opshost]` (None without that table). Enough TOML for the
/// three keys: single-line values, `#` comments.
fn opshost_section(text: &str) -> Option<Vec<(String, String)>> {
    let mut found = None;
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[tool.opshost]";
            if inside {
                found = Some(Vec::new());
            }
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            if let (Some(list), Some((key, value))) = (found.as_mut(), line.split_once('=')) {
                let value = strip_comment(value.trim());
                list.push((key.trim().to_string(), value.to_string()));
            }
        }
    }
    found
}

/// A value without a trailing `# comment` (outside quotes).
fn strip_comment(value: &str) -> &str {
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return value[..i].trim(),
            _ => {}
        }
    }
    value
}

fn parse_guest(name: String, dir: PathBuf, kind: Kind, section: &[(String, String)]) -> Result<PyGuest> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!("'{name}' is not a valid operation folder name: lowercase letters, digits and '_', starting with a letter");
    }
    let (mut module, mut imports, mut wasi) = ("operation".to_string(), Vec::new(), false);
    for (key, value) in section {
        match key.as_str() {
            "module" => {
                module = quoted(value).context("[tool.opshost] module must be a string")?;
                let ok = module.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && module.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok || module == ENTRY || module == "wit_world" {
                    bail!("[tool.opshost] module: '{module}' must name a top-level module of the folder (letters, digits, '_')");
                }
            }
            "imports" => {
                let inner = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).context("[tool.opshost] imports must be an array of strings on one line")?;
                for item in inner.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    let i = quoted(item).context("[tool.opshost] imports must be an array of strings")?;
                    if i == "wasi" {
                        bail!("[tool.opshost] imports: WASI is asked for with wasi = true, not as an import");
                    }
                    if !INTERFACES.contains(&i.as_str()) {
                        bail!("[tool.opshost] imports: unknown interface '{i}' (one of {})", INTERFACES.join(", "));
                    }
                    if !imports.contains(&i) {
                        imports.push(i);
                    }
                }
            }
            "wasi" => {
                wasi = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => bail!("[tool.opshost] wasi must be true or false"),
                }
            }
            other => bail!("[tool.opshost]: unknown key '{other}' (module, imports, wasi)"),
        }
    }
    Ok(PyGuest { name, dir, kind, module, imports, wasi })
}

fn quoted(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))?;
    (!inner.contains(['"', '\'', '\\'])).then(|| inner.to_string())
}

/// Builds the given Python operations (nothing to do, and no toolchain needed, when empty).
pub fn build(guests: Vec<PyGuest>) -> Result<()> {
    if guests.is_empty() {
        return Ok(());
    }
    let tool = ensure_toolchain()?;
    for g in &guests {
        build_one(&tool, g).with_context(|| format!("building the Python operation {}", g.dir.display()))?;
    }
    Ok(())
}

/// The componentize-py executable, from a venv at `~/.cache/opshost/py` installed from the
/// pinned requirements once per requirements file (the stamp records which).
pub fn ensure_toolchain() -> Result<PathBuf> {
    let venv = paths::cache().join("py");
    let requirements = std::fs::read(paths::root().join("xtask").join("py").join("requirements.txt"))?;
    let digest = hex(&sha2::Sha256::digest(&requirements));
    let stamp = venv.join(".opshost-installed");
    let tool = venv.join("bin").join("componentize-py");
    if tool.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(tool);
    }
    let python = python3()?;
    if !venv.join("bin").join("pip").is_file() {
        let made = |py: &str| Command::new(py).args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success());
        // Debian's python3 has venv in a package of its own.
        if !made(&python) && !(crate::apt_install(&["python3-venv"]) && made(&python)) {
            bail!("creating a Python venv at {} failed: apt-get install python3-venv", venv.display());
        }
    }
    eprintln!("xtask: installing componentize-py into {} (pip, about 70 MB)", venv.display());
    let status = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:", "-r"])
        .arg(paths::root().join("xtask").join("py").join("requirements.txt"))
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!("pip install -r xtask/py/requirements.txt into {} failed (PyPI must be reachable)", venv.display());
    }
    std::fs::write(&stamp, digest)?;
    Ok(tool)
}

/// python3 (3.10+) runs pip, and the examples' unit tests.
fn python3() -> Result<String> {
    let works = || Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if works() || (crate::apt_install(&["python3", "python3-venv"]) && works()) {
        return Ok("python3".into());
    }
    bail!("building Python operations needs python3 with venv: apt-get install python3 python3-venv")
}

fn build_one(tool: &Path, g: &PyGuest) -> Result<()> {
    let gen = paths::root().join("target").join("opshost-py").join(&g.name);
    let world = world_wit(g);
    let entry = entry_py(g);
    let digest = inputs_digest(g, &format!("{world}\n{}", g.wasi), &entry)?;
    let dests: Vec<PathBuf> = super::dest_dirs(g.kind).into_iter().map(|d| d.join(format!("{}.wasm", g.name))).collect();
    let stamp = paths::cache().join("py-stamps").join(format!("{}--{}", kind_label(g.kind), g.name));
    if dests.iter().all(|d| d.is_file()) && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&gen);
    let wit_dir = gen.join("wit");
    let app_dir = gen.join("app");
    std::fs::create_dir_all(&wit_dir)?;
    std::fs::create_dir_all(&app_dir)?;
    for file in wit_files()? {
        std::fs::copy(&file, wit_dir.join(file.file_name().context("wit file name")?))?;
    }
    std::fs::write(wit_dir.join("zz-py-operation.wit"), &world)?;
    std::fs::write(app_dir.join(format!("{ENTRY}.py")), &entry)?;
    let built = gen.join(format!("{}.wasm", g.name));
    eprintln!("xtask: componentize-py {} (about 20 s)", g.name);
    let mut cmd = Command::new(tool);
    cmd.arg("--quiet").arg("-d").arg(&wit_dir).args(["-w", WORLD, "componentize"]);
    if !g.wasi {
        cmd.arg("--stub-wasi");
    }
    // The generated entry, the SDK and the operation's own folder, in that order of lookup.
    cmd.arg("-p").arg(&app_dir).arg("-p").arg(paths::root().join("guest-sdk-py")).arg("-p").arg(&g.dir);
    cmd.arg("-o").arg(&built).arg(ENTRY).current_dir(&gen).env_remove("VIRTUAL_ENV").env("PYTHONDONTWRITEBYTECODE", "1");
    let status = cmd.status().context("running componentize-py")?;
    if !status.success() {
        bail!("componentize-py failed with {status}");
    }
    for dest in &dests {
        std::fs::create_dir_all(dest.parent().context("destination folder")?)?;
        // Unchanged bytes are not rewritten: servers watch these folders.
        crate::copy_if_changed(&built, dest)?;
    }
    std::fs::create_dir_all(stamp.parent().context("stamp folder")?)?;
    std::fs::write(&stamp, digest)?;
    Ok(())
}

fn world_wit(g: &PyGuest) -> String {
    componentize::world_wit(WORLD, &g.name, "pyproject.toml", &g.imports)
}

fn imports_with_log(g: &PyGuest) -> Vec<&str> {
    componentize::imports_with_log(&g.imports)
}

/// The module componentize-py starts from: binds the imported host interfaces for the SDK's
/// helpers, imports the operation's module (which declares `@operation`), exports `WitWorld`.
fn entry_py(g: &PyGuest) -> String {
    let imports = imports_with_log(g);
    let mut text = format!("\"\"\"Generated by cargo xtask for {}: binds its host interfaces, exports the operation.\"\"\"\n", g.name);
    text.push_str(&format!("from wit_world.imports import types, {}\n", imports.join(", ")));
    text.push_str("from componentize_py_types import Err\n");
    text.push_str("import opshost_guest\n\n");
    let binds: Vec<String> = imports.iter().map(|i| format!("{i}={i}")).collect();
    text.push_str(&format!("opshost_guest.bind({})\n", binds.join(", ")));
    text.push_str(&format!("import {}  # noqa: E402,F401 (declares the @operation)\n\n", g.module));
    text.push_str("WitWorld = opshost_guest.wit_world(types, Err)\n");
    text
}

/// SHA-256 over everything a build reads: the operation's files (not its tests or caches), the
/// SDK, the WIT, the pinned requirements, this build script, and the generated world and entry.
fn inputs_digest(g: &PyGuest, world: &str, entry: &str) -> Result<String> {
    let mut files = Vec::new();
    collect_files(&g.dir, &mut files)?;
    collect_files(&paths::root().join("guest-sdk-py"), &mut files)?;
    files.extend(wit_files()?);
    files.push(paths::root().join("xtask").join("py").join("requirements.txt"));
    componentize::inputs_digest(files, world, entry)
}

/// The files under `dir` that can end up in a component: not tests, caches or hidden files.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    componentize::collect_files(dir, out, &|name| matches!(name, "__pycache__" | "tests" | "test") || name.starts_with("test_"))
}



/// `cargo xtask new-operation NAME --lang python [--out examples|operations]`: a Python
/// operation folder at `<place>/py/NAME/` (pyproject.toml, operation.py, a unittest).
pub fn scaffold(name: &str, place: &str) -> Result<()> {
    let dir = paths::root().join(place).join("py").join(name);
    if dir.exists() {
        bail!("{} already exists; not overwriting it", dir.display());
    }
    std::fs::create_dir_all(dir.parent().context("folder has a parent")?)?;
    // create_dir (not _all) fails if something appeared meanwhile: never overwrite.
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::create_dir(dir.join("tests"))?;
    for (file, template) in [
        ("pyproject.toml", include_str!("../templates/py-operation/pyproject.toml.tmpl")),
        ("operation.py", include_str!("../templates/py-operation/operation.py.tmpl")),
        ("tests/test_operation.py", include_str!("../templates/py-operation/test_operation.py.tmpl")),
    ] {
        std::fs::write(dir.join(file), template.replace("{{name}}", name))?;
    }
    let rel = format!("{place}/py/{name}");
    let out = if place == "operations" { format!("target/opshost/operations/{name}.wasm") } else { format!("target/opshost-components/{name}.wasm") };
    println!("created {rel}/: pyproject.toml, operation.py and tests/test_operation.py, an operation that echoes its request\n");
    println!("next steps:");
    println!("  1. edit {rel}/operation.py (unit tests: cd {rel} && PYTHONPATH=../../../guest-sdk-py python3 -m unittest)");
    println!("     list the host interfaces it uses in pyproject.toml: [tool.opshost] imports = [\"storage\"]");
    println!("  2. cargo xtask build-guests {name}      -> {out}");
    if place != "operations" {
        println!("  3. cp {out} ~/opshost/components/   (<rootPath>/components/)");
    }
    println!("  then: curl -s -u admin:secret -H 'Content-Type: application/json' -d '{{\"operation\":\"{name}\",\"hello\":\"world\"}}' http://127.0.0.1:9925/");
    println!();
    println!("It may import only `log` until granted more: grant what pyproject.toml lists in operationsApi.grants");
    println!("(OPERATIONSAPI_GRANTS='{{\"{name}\": [\"storage\"]}}'), and `wasi` too if it sets wasi = true.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(toml: &str) -> Result<PyGuest> {
        let section = opshost_section(toml).context("no [tool.opshost]")?;
        parse_guest("my_op".into(), paths::root().join("examples/py/my_op"), Kind::Example, &section)
    }

    #[test]
    fn the_opshost_table_is_read_and_checked() {
        let g = guest("[project]\nname = \"x\"\nimports = [\"no\"]\n\n[tool.opshost]\n# what it uses\nimports = [\"storage\", \"jobs\", \"storage\"]  # two\nwasi = false\n[tool.other]\nwasi = true\n")
            .expect("valid");
        assert_eq!(imports_with_log(&g), ["log", "storage", "jobs"]);
        assert!(!g.wasi);
        assert_eq!(g.module, "operation");
        let world = world_wit(&g);
        assert!(world.contains("world py-operation {") && world.contains("    import storage;\n") && !world.contains("import config"), "{world}");
        let entry = entry_py(&g);
        assert!(entry.contains("from wit_world.imports import types, log, storage, jobs\n"), "{entry}");
        assert!(entry.contains("opshost_guest.bind(log=log, storage=storage, jobs=jobs)"), "{entry}");
        assert!(entry.contains("import operation  #"), "{entry}");
        assert!(guest("[tool.opshost]\nmodule = 'aggregate'\nwasi = true\n").is_ok_and(|g| g.wasi && g.module == "aggregate"));
        assert!(opshost_section("[project]\nname = \"x\"\n").is_none());
        for bad in [
            "[tool.opshost]\nimports = [\"wasi\"]\n",
            "[tool.opshost]\nimports = [\"nosuch\"]\n",
            "[tool.opshost]\nimports = \"storage\"\n",
            "[tool.opshost]\nwasi = \"yes\"\n",
            "[tool.opshost]\nmodule = \"../x\"\n",
            "[tool.opshost]\nmodule = \"opshost_entry\"\n",
            "[tool.opshost]\nother = 1\n",
        ] {
            assert!(guest(bad).is_err(), "{bad}");
        }
    }
}
