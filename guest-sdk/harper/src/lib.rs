//! HarperDB's request logic for the built-in operations, on top of the thin `opshost-guest` SDK:
//! request defaults, write answers and the `describe_table` shape ([`data`]), job and user JSON
//! shapes ([`jobs`], [`users`]), the `search_by_*` requests and their row sources ([`search`]), `export_local`/`export_to_s3`
//! encoders and sinks ([`export`]), the CSV/JSON bulk loads ([`load`]) and, with the `sql`
//! feature, HarperDB's SQL subset ([`sql`]). A third-party operation depends on `opshost-guest`
//! alone; these modules are what the built-ins share so that no operation crate copies them.

pub mod data;
pub mod export;
pub mod jobs;
pub mod load;
pub mod search;
#[cfg(feature = "sql")]
pub mod sql;
pub mod users;
