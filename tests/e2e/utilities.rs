//! The four utility operations: success shapes and bad input (harper-behaviour.md §6).

use opshost_tests::Server;
use serde_json::{json, Value};

#[test]
fn get_configuration_returns_the_file_as_nested_json() {
    let server = Server::start();
    let (status, config) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200, "{config}");
    let root = server.root().display().to_string();
    assert_eq!(config["rootPath"], Value::String(root.clone()));
    assert_eq!(config["componentsRoot"], Value::String(format!("{root}/components")));
    assert_eq!(config["operationsApi"]["network"]["port"], json!(server.port));
    assert_eq!(config["operationsApi"]["network"]["host"], "127.0.0.1");
    assert_eq!(config["logging"]["level"], "info");
    assert_eq!(config["authentication"]["operationTokenTimeout"], "1d");
    assert_eq!(config["storage"]["writeAsync"], false);
    // Exactly what the file says.
    let file = std::fs::read_to_string(server.root().join("opshost-config.yaml")).expect("config file");
    assert!(file.contains(&format!("port: {}", server.port)), "{file}");
    assert!(server.root().join("database").is_dir(), "data folder created at first start");
}

#[test]
fn set_configuration_persists_validated_keys_with_a_backup() {
    let server = Server::start();
    let (status, body) = server.post(json!({"operation": "set_configuration", "logging_level": "debug", "threads_count": 3}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"message": "Configuration successfully set. You must restart HarperDB for new config settings to take effect."})
    );
    let (_, config) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(config["logging"]["level"], "debug");
    assert_eq!(config["threads"]["count"], 3);
    let backups: Vec<_> = std::fs::read_dir(server.root().join("backup")).expect("backup folder").collect();
    assert_eq!(backups.len(), 1);
}

#[test]
fn set_configuration_bad_input_names_the_key_and_writes_nothing() {
    let server = Server::start();
    let config_path = server.root().join("opshost-config.yaml");
    let before = std::fs::read(&config_path).expect("config");
    let cases = [
        (json!({"logging_level": "loud"}), "HarperDB config file validation error: 'logging.level' must be one of [notify, fatal, error, warn, info, debug, trace]"),
        (json!({"threads_count": "many"}), "HarperDB config file validation error: 'threads.count' must be a number"),
        (json!({"logging_stdStreams": "yes"}), "HarperDB config file validation error: 'logging.stdStreams' must be a boolean"),
        (json!({"no_such_key": 1}), "Unknown configuration key 'no_such_key'"),
        (json!({"logging": {"level": "warn"}}), "'logging' must be a flattened key with a plain value, not an object"),
        (json!({}), "at least one configuration key is required, e.g. 'logging_level'"),
        // One bad key spoils the batch: the good one is not written either.
        (json!({"logging_level": "error", "operationsapi_network_port": "notaport"}), "HarperDB config file validation error: 'operationsApi.network.port' must be a port number (1-65535) or 'host:port'"),
        (json!({"rootPath": "/elsewhere"}), "'rootPath' cannot be changed with set_configuration"),
    ];
    for (fields, text) in cases {
        let mut body = fields.clone();
        body["operation"] = json!("set_configuration");
        let (status, resp) = server.post(body);
        assert_eq!((status, resp), (400, json!({ "error": text })), "{fields}");
    }
    assert_eq!(std::fs::read(&config_path).expect("config"), before, "config file changed");
    assert!(!server.root().join("backup").exists(), "no backup for refused changes");
}

#[test]
fn system_information_has_every_section_and_filters() {
    let server = Server::start();
    let (status, info) = server.post(json!({"operation": "system_information"}));
    assert_eq!(status, 200, "{info}");
    let keys: Vec<&str> = info.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["system", "time", "cpu", "memory", "disk", "network", "harperdb_processes", "table_size", "metrics", "threads"]
    );
    assert_eq!(info["system"]["platform"], "linux");
    assert!(info["cpu"]["cores"].as_u64().is_some_and(|c| c >= 1));
    assert!(info["memory"]["total"].as_u64().is_some_and(|t| t > 0));
    assert!(info["time"]["current"].as_u64().is_some_and(|t| t > 1_700_000_000_000));
    assert!(info["time"]["timezone"].as_str().is_some_and(|t| t.starts_with("UTC")));
    let me = &info["harperdb_processes"]["core"][0];
    assert!(me["pid"].as_u64().is_some_and(|p| p > 0), "{me}");
    assert_eq!(info["table_size"], json!([]));
    assert!(info["threads"].as_array().is_some_and(|t| !t.is_empty()));

    let (_, some) = server.post(json!({"operation": "system_information", "attributes": ["memory", "CPU", "database_metrics", "bogus"]}));
    let keys: Vec<&str> = some.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["memory", "metrics"]);
    let (_, none) = server.post(json!({"operation": "system_information", "attributes": ["bogus"]}));
    assert_eq!(none, json!({}));
    let (_, all) = server.post(json!({"operation": "system_information", "attributes": "cpu"}));
    assert_eq!(all.as_object().map(|o| o.len()), Some(10), "a non-array means everything");
}

#[test]
fn restart_answers_at_once_with_harpers_message() {
    let server = Server::start();
    let (status, body) = server.post(json!({"operation": "restart"}));
    assert_eq!((status, body), (200, json!({"message": "Restarting HarperDB. This may take up to 60 seconds."})));
    // And the server still serves afterwards.
    let (status, _) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let server = Server::start();
    let status = server.stop();
    assert!(status.success(), "exit status {status}");
}
