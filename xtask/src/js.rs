//! JavaScript operations: find them, install the JS toolchain (componentize-js and jco, pinned
//! by `xtask/js/package-lock.json`) into `~/.cache/opshost/npm` once, and build each into a
//! component with a WIT world of its own that imports only the interfaces its package.json lists.
//!
//! A JavaScript operation is a folder under `examples/js/`, `operations/js/` or
//! `tests/guests-js/` (kept out of the cargo workspace, see `JS_PLACES`) with a package.json
//! that has an `"opshost"` object:
//!
//! ```json
//! { "name": "js_aggregate", "type": "module", "main": "index.js",
//!   "opshost": { "imports": ["storage"], "wasi": false } }
//! ```
//!
//! The build writes `target/opshost-js/<name>/`: a copy of `wit/` plus a world `js-operation`
//! that imports `log` and the listed interfaces, and an entry module that imports exactly those
//! host interfaces, hands them to the SDK (`bind`) and re-exports the operation's `describe` and
//! `handle`. Without `"wasi": true` the JS engine's WASI features (clocks, stdio, random) are left out,
//! so the component imports no WASI at all and needs no `wasi` grant. A build is
//! skipped when a SHA-256 over every input (sources, SDK, WIT, toolchain lock, build script)
//! matches the last one: a warm `cargo xtask build` costs no JS build.

use super::{Kind, JS_PLACES};
use super::componentize::{self, hex, kind_label, wit_files};
use crate::paths;
use anyhow::{bail, Context, Result};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host interfaces a JavaScript operation may list in `"opshost": {"imports": [...]}`.
const INTERFACES: [&str; 13] = [
    "log", "config", "sysinfo", "control", "storage", "certs", "jobs", "filesystem", "objectstore", "users", "catalog",
    "packages", "components",
];
/// The engine's WASI features an operation gets with `"wasi": true`: the clocks (`Date.now()`
/// and `performance.now()` read the time; the engine reads it on entry to every export,
/// `describe` included, which the host's load sandbox allows), console output to the server
/// log, real randomness for Math.random and crypto. Without them `Date.now()` is frozen at
/// build time.
const WASI_FEATURES: [&str; 3] = ["clocks", "stdio", "random"];
/// Left out always. `http` (wasi:http): the host does not link it.
const ALWAYS_DISABLED: [&str; 2] = ["http", "fetch-event"];
/// The world every generated WIT names.
const WORLD: &str = "js-operation";

/// One JavaScript operation folder.
pub struct JsGuest {
    /// The folder name: also the component's file name.
    pub name: String,
    dir: PathBuf,
    kind: Kind,
    /// The module that exports the operation (package.json `main`, default `index.js`).
    main: String,
    imports: Vec<String>,
    wasi: bool,
}

/// Every JavaScript operation (examples and test guests only `with_test_guests`, as for Rust).
pub fn discover(with_test_guests: bool) -> Result<Vec<JsGuest>> {
    let mut out = Vec::new();
    for (place, kind) in JS_PLACES {
        if kind != Kind::Builtin && !with_test_guests {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(paths::root().join(place)) else { continue };
        for entry in entries {
            let dir = entry?.path();
            let manifest = dir.join("package.json");
            if !manifest.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
            let Some(meta) = json.get("opshost") else { continue };
            let name = dir.file_name().and_then(|n| n.to_str()).context("folder name")?.to_string();
            out.push(parse_guest(name, dir, kind, &json, meta).with_context(|| format!("in {}", manifest.display()))?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn parse_guest(name: String, dir: PathBuf, kind: Kind, json: &serde_json::Value, meta: &serde_json::Value) -> Result<JsGuest> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!("'{name}' is not a valid operation folder name: lowercase letters, digits and '_', starting with a letter");
    }
    let mut imports = Vec::new();
    match meta.get("imports") {
        None => {}
        Some(serde_json::Value::Array(list)) => {
            for item in list {
                let Some(i) = item.as_str() else { bail!("\"opshost\".\"imports\" must be an array of strings") };
                if i == "wasi" {
                    bail!("\"opshost\".\"imports\": WASI is asked for with \"wasi\": true, not as an import");
                }
                if !INTERFACES.contains(&i) {
                    bail!("\"opshost\".\"imports\": unknown interface '{i}' (one of {})", INTERFACES.join(", "));
                }
                if !imports.iter().any(|x| x == i) {
                    imports.push(i.to_string());
                }
            }
        }
        Some(_) => bail!("\"opshost\".\"imports\" must be an array of strings"),
    }
    let wasi = match meta.get("wasi") {
        None => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => bail!("\"opshost\".\"wasi\" must be a boolean"),
    };
    let main = json.get("main").and_then(|m| m.as_str()).unwrap_or("index.js").trim_start_matches("./").to_string();
    if main.contains("..") || Path::new(&main).is_absolute() {
        bail!("\"main\" must name a module inside the operation's folder");
    }
    Ok(JsGuest { name, dir, kind, main, imports, wasi })
}

/// Builds the given JavaScript operations (nothing to do, and no toolchain needed, when empty).
pub fn build(guests: Vec<JsGuest>) -> Result<()> {
    if guests.is_empty() {
        return Ok(());
    }
    let npm = ensure_toolchain()?;
    refresh_types(&npm)?;
    for g in &guests {
        build_one(&npm, g).with_context(|| format!("building the JavaScript operation {}", g.dir.display()))?;
    }
    Ok(())
}

/// The folder holding componentize-js and jco (`npm ci` of the pinned lock file, once per
/// lock: the stamp records which lock the installed tree came from).
pub fn ensure_toolchain() -> Result<PathBuf> {
    ensure_node()?;
    let dir = paths::cache().join("npm");
    let source = paths::root().join("xtask").join("js");
    let manifest = std::fs::read(source.join("package.json"))?;
    let lock = std::fs::read(source.join("package-lock.json"))?;
    let digest = hex(&sha2::Sha256::digest([&manifest[..], &lock[..]].concat()));
    let stamp = dir.join(".opshost-installed");
    let installed = dir.join("node_modules").join("@bytecodealliance").join("componentize-js").join("package.json");
    if installed.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("package.json"), &manifest)?;
    std::fs::write(dir.join("package-lock.json"), &lock)?;
    eprintln!("xtask: installing componentize-js and jco into {} (npm ci, about 400 MB)", dir.display());
    // No package of this tree has an install script; none may run.
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .context("running npm (install Node.js 18+ and npm)")?;
    if !status.success() {
        bail!("npm ci in {} failed (the npm registry must be reachable)", dir.display());
    }
    std::fs::write(&stamp, digest)?;
    Ok(dir)
}

/// Node.js runs componentize-js (and the examples' unit tests).
fn ensure_node() -> Result<()> {
    let works = || Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if works() || (crate::apt_install(&["nodejs", "npm"]) && works()) {
        return Ok(());
    }
    bail!("building JavaScript operations needs Node.js 18+ and npm: apt-get install nodejs npm")
}

/// `guest-sdk-js/types/`: TypeScript declarations of the host interfaces, regenerated from the
/// WIT when it changed.
fn refresh_types(npm: &Path) -> Result<()> {
    let out = paths::root().join("guest-sdk-js").join("types");
    let digest = hex(&sha2::Sha256::digest(wit_text()?.as_bytes()));
    let stamp = paths::cache().join("js-stamps").join("types");
    if out.is_dir() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(());
    }
    node(npm, &["types".as_ref(), paths::root().join("wit").as_os_str(), out.as_os_str()])?;
    std::fs::create_dir_all(stamp.parent().context("stamp folder")?)?;
    std::fs::write(&stamp, digest)?;
    Ok(())
}

fn build_one(npm: &Path, g: &JsGuest) -> Result<()> {
    let gen = paths::root().join("target").join("opshost-js").join(&g.name);
    let world = world_wit(g);
    let entry = entry_js(g)?;
    let mut disabled: Vec<&str> = ALWAYS_DISABLED.to_vec();
    if !g.wasi {
        disabled.extend(WASI_FEATURES);
    }
    let disabled = disabled.join(",");
    let digest = inputs_digest(g, &format!("{world}\n{disabled}"), &entry)?;
    let dests: Vec<PathBuf> = super::dest_dirs(g.kind).into_iter().map(|d| d.join(format!("{}.wasm", g.name))).collect();
    let stamp = paths::cache().join("js-stamps").join(format!("{}--{}", kind_label(g.kind), g.name));
    if dests.iter().all(|d| d.is_file()) && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(());
    }
    let wit_dir = gen.join("wit");
    let _ = std::fs::remove_dir_all(&wit_dir);
    std::fs::create_dir_all(&wit_dir)?;
    for file in wit_files()? {
        std::fs::copy(&file, wit_dir.join(file.file_name().context("wit file name")?))?;
    }
    std::fs::write(wit_dir.join("zz-js-operation.wit"), &world)?;
    let entry_path = gen.join("entry.js");
    std::fs::write(&entry_path, &entry)?;
    let built = gen.join(format!("{}.wasm", g.name));
    node(npm, &["component".as_ref(), entry_path.as_os_str(), wit_dir.as_os_str(), WORLD.as_ref(), built.as_os_str(), disabled.as_ref()])?;
    for dest in &dests {
        std::fs::create_dir_all(dest.parent().context("destination folder")?)?;
        // Unchanged bytes are not rewritten: servers watch these folders.
        crate::copy_if_changed(&built, dest)?;
    }
    std::fs::create_dir_all(stamp.parent().context("stamp folder")?)?;
    std::fs::write(&stamp, digest)?;
    Ok(())
}

fn world_wit(g: &JsGuest) -> String {
    componentize::world_wit(WORLD, &g.name, "package.json", &g.imports)
}

fn imports_with_log(g: &JsGuest) -> Vec<&str> {
    componentize::imports_with_log(&g.imports)
}

/// The module componentize-js starts from: binds the imported host interfaces for the SDK's
/// helpers, then re-exports the operation. Paths are relative to `target/opshost-js/<name>/`.
fn entry_js(g: &JsGuest) -> Result<String> {
    let up = "../../../";
    let op_dir = g.dir.strip_prefix(paths::root()).context("the operation lies in the repository")?;
    let op_module = format!("{up}{}/{}", slash(op_dir), g.main);
    let mut text = format!("//! Generated by cargo xtask for {}: binds its host interfaces, re-exports the operation.\n", g.name);
    let imports = imports_with_log(g);
    for i in &imports {
        text.push_str(&format!("import * as {i} from 'opshost:host/{i}@0.1.0';\n"));
    }
    text.push_str(&format!("import {{ bind }} from '{up}guest-sdk-js/index.js';\n"));
    text.push_str(&format!("bind({{ {} }});\n", imports.join(", ")));
    text.push_str(&format!("export {{ describe, handle }} from '{op_module}';\n"));
    Ok(text)
}

fn slash(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

/// SHA-256 over everything a build reads: the operation's files (not node_modules or tests),
/// the SDK, the WIT, the toolchain's lock file and build script, and the generated world and
/// entry (which carry the imports and the WASI choice).
fn inputs_digest(g: &JsGuest, world: &str, entry: &str) -> Result<String> {
    let mut files = Vec::new();
    collect_files(&g.dir, &mut files)?;
    collect_files(&paths::root().join("guest-sdk-js"), &mut files)?;
    files.extend(wit_files()?);
    files.push(paths::root().join("xtask").join("js").join("package-lock.json"));
    files.push(paths::root().join("xtask").join("js").join("build.mjs"));
    componentize::inputs_digest(files, world, entry)
}

/// The files under `dir` that can end up in a component: not node_modules, tests, or the
/// generated type declarations.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    componentize::collect_files(dir, out, &|name| matches!(name, "node_modules" | "test" | "types") || name.ends_with(".test.js"))
}


fn wit_text() -> Result<String> {
    let mut text = String::new();
    for file in wit_files()? {
        text.push_str(&std::fs::read_to_string(file)?);
    }
    Ok(text)
}

/// Runs `xtask/js/build.mjs` with the toolchain folder, from the repo root (componentize-js maps
/// the current folder to `/` for the JS engine, so the entry, the operation and the SDK must lie
/// below it).
fn node(npm: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let script = paths::root().join("xtask").join("js").join("build.mjs");
    let status = Command::new("node")
        .arg(&script)
        .arg(args[0])
        .arg(npm)
        .args(&args[1..])
        .current_dir(paths::root())
        .status()
        .context("running node")?;
    if !status.success() {
        bail!("node {} {} failed with {status}", script.display(), args[0].to_string_lossy());
    }
    Ok(())
}


/// `cargo xtask new-operation NAME --lang js [--out examples|operations]`: a JavaScript
/// operation folder at `<place>/js/NAME/` (package.json, index.js, a unit test for node).
pub fn scaffold(name: &str, place: &str) -> Result<()> {
    let dir = paths::root().join(place).join("js").join(name);
    if dir.exists() {
        bail!("{} already exists; not overwriting it", dir.display());
    }
    std::fs::create_dir_all(dir.parent().context("folder has a parent")?)?;
    // create_dir (not _all) fails if something appeared meanwhile: never overwrite.
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::create_dir(dir.join("test"))?;
    for (file, template) in [
        ("package.json", include_str!("../templates/js-operation/package.json.tmpl")),
        ("index.js", include_str!("../templates/js-operation/index.js.tmpl")),
        ("test/operation.test.js", include_str!("../templates/js-operation/operation.test.js.tmpl")),
    ] {
        std::fs::write(dir.join(file), template.replace("{{name}}", name))?;
    }
    let rel = format!("{place}/js/{name}");
    let out = if place == "operations" { format!("target/opshost/operations/{name}.wasm") } else { format!("target/opshost-components/{name}.wasm") };
    println!("created {rel}/: package.json, index.js and test/operation.test.js, an operation that echoes its request\n");
    println!("next steps:");
    println!("  1. edit {rel}/index.js (unit tests: node --test {rel}/test/)");
    println!("     list the host interfaces it uses in package.json: \"opshost\": {{\"imports\": [\"storage\"]}}");
    println!("  2. cargo xtask build-guests {name}      -> {out}");
    if place != "operations" {
        println!("  3. cp {out} ~/opshost/components/   (<rootPath>/components/)");
    }
    println!("  then: curl -s -u admin:secret -H 'Content-Type: application/json' -d '{{\"operation\":\"{name}\",\"hello\":\"world\"}}' http://127.0.0.1:9925/");
    println!();
    println!("It may import only `log` until granted more: grant what package.json lists in operationsApi.grants");
    println!("(OPERATIONSAPI_GRANTS='{{\"{name}\": [\"storage\"]}}'), and `wasi` too if it sets \"wasi\": true.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guest(meta: serde_json::Value) -> Result<JsGuest> {
        let json = json!({ "opshost": meta.clone() });
        parse_guest("my_op".into(), paths::root().join("examples/js/my_op"), Kind::Example, &json, &meta)
    }

    #[test]
    fn imports_are_checked_and_log_always_comes_first() {
        let g = guest(json!({"imports": ["storage", "jobs", "storage"]})).expect("valid");
        assert_eq!(imports_with_log(&g), ["log", "storage", "jobs"]);
        assert!(!g.wasi);
        let world = world_wit(&g);
        assert!(world.contains("world js-operation {") && world.contains("    import storage;\n") && !world.contains("import config"), "{world}");
        let entry = entry_js(&g).expect("entry");
        assert!(entry.contains("import * as storage from 'opshost:host/storage@0.1.0';"), "{entry}");
        assert!(entry.contains("bind({ log, storage, jobs });"), "{entry}");
        assert!(entry.contains("export { describe, handle } from '../../../examples/js/my_op/index.js';"), "{entry}");
        assert!(guest(json!({"imports": ["wasi"]})).is_err());
        assert!(guest(json!({"imports": ["nosuch"]})).is_err());
        assert!(guest(json!({"imports": "storage"})).is_err());
        assert!(guest(json!({"wasi": "yes"})).is_err());
        assert!(guest(json!({"wasi": true})).expect("valid").wasi);
    }
}
