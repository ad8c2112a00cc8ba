//! End-to-end tests: one binary, one module per area. Each test starts the real server
//! (built by `cargo xtask build`) on its own port and root folder.

mod answers;
mod audit;
mod auth;
mod certs;
mod cli;
mod cluster;
mod compat;
mod components;
mod data;
mod export_values;
mod faults;
mod hostile_clients;
mod hostile_data;
mod hostile_jobs;
mod hostile_plugins;
mod crash;
mod jobs;
mod loads;
mod logs;
mod perf;
mod pipeline;
mod plugins;
mod polyglot;
mod restart;
mod sql;
mod studio;
mod users;
mod utilities;
