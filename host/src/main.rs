//! The `opshost` binary: parses the command line and environment, then runs the server
//! (or a maintenance subcommand).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use opshost::server::Options;
use std::path::PathBuf;

mod cli;

/// mimalloc: request handling allocates many small short-lived objects (JSON values, keys)
/// across threads, where it measurably beats the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// jemalloc replaces the C library's malloc for the whole process (its symbols are linked
/// unprefixed), so RocksDB's C++ heap is jemalloc's (issue 16). With glibc's malloc, each thread
/// that allocated (request threads writing memtables, flush and compaction threads) got an arena
/// of its own that kept what was freed in it: a 1,000,000-row load grew those arenas by 30-45 MiB
/// while RocksDB's live heap grew by far less. Interleaved runs of `cargo xtask bench loads`'
/// measurement (see README "Bulk loads") with glibc against jemalloc: figures there.
extern crate tikv_jemalloc_sys;

/// Transparent huge pages off for this process (issue 16). mimalloc asks for them on its arena,
/// and a 2 MiB page stays resident while any byte of it is in use: with them the idle server's
/// mimalloc heap held 103-109 MiB after a 100,000-row load, without them 81-87 MiB; peaks were
/// alike. RocksDB's and wasmtime's memory never asked for them.
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes no pointers; it sets one flag of this process.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[derive(Parser)]
#[command(name = "opshost", version, about = "HarperDB Operations API server with WebAssembly operations")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Clone, Default)]
struct RunArgs {
    /// Root folder for configuration, data, keys and components.
    #[arg(long, env = "ROOTPATH", global = true)]
    root: Option<PathBuf>,
    /// Operations API port (overrides operationsApi.network.port).
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind (overrides operationsApi.network.host).
    #[arg(long)]
    host: Option<String>,
    /// super_user created on first start.
    #[arg(long, env = "HDB_ADMIN_USERNAME")]
    admin_username: Option<String>,
    /// Its password; generated and printed once when not given.
    #[arg(long, env = "HDB_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Folder of built-in operation components (default: `operations/` beside the binary).
    #[arg(long, env = "OPSHOST_OPERATIONS_DIR")]
    operations_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Run,
    /// Compile components into the compile cache ahead of the first start (`$OPSHOST_COMPILE_CACHE`,
    /// else `<root>/cache/components`), so that start is fast. Takes files or folders.
    Precompile {
        paths: Vec<PathBuf>,
    },
    /// Manage users in the root's user store (while the server is stopped).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Any other word runs that operation against a running server:
    /// `opshost describe_table database=dev table=dog [--url URL] [--format table|json|yaml]`
    /// (`opshost completion bash` prints a shell completion of operation names).
    #[command(external_subcommand)]
    Operation(Vec<String>),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, env = "OPSHOST_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "user")]
        role: String,
        /// Give the user super_user rights.
        #[arg(long)]
        super_user: bool,
    },
}

fn main() -> Result<()> {
    disable_transparent_huge_pages();
    opshost::memtrace::start_from_env();
    let cli = Cli::parse();
    let root = match cli.run.root.clone() {
        Some(root) => root,
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --root")?).join("opshost"),
    };
    match cli.command {
        None | Some(Command::Run) => opshost::server::run(options(root, cli.run)),
        Some(Command::Precompile { paths }) => {
            let started = std::time::Instant::now();
            let count = opshost::server::precompile(&root, &paths)?;
            println!("compiled {count} components in {:?}", started.elapsed());
            Ok(())
        }
        Some(Command::User { command: UserCommand::Add { username, password, role, super_user } }) => {
            opshost::server::add_user(&root, &username, &password, if super_user { "super_user" } else { &role })?;
            println!("added user '{username}' with role '{role}'");
            Ok(())
        }
        Some(Command::Operation(args)) => std::process::exit(cli::run(&root, args)),
    }
}

/// Environment variables named like configuration keys, then flags (which win).
fn options(root: PathBuf, args: RunArgs) -> Options {
    let mut overrides = opshost::services::config::ConfigService::env_overrides(|name| std::env::var(name).ok());
    if let Some(port) = args.port {
        overrides.push(("operationsApi.network.port".into(), port.into()));
    }
    if let Some(host) = args.host {
        overrides.push(("operationsApi.network.host".into(), host.into()));
    }
    Options {
        root,
        overrides,
        admin_username: args.admin_username,
        admin_password: args.admin_password,
        builtin_dir: args.operations_dir,
    }
}
