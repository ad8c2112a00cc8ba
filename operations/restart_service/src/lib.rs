//! `restart_service`: a job restarting one service. `http_workers` (alias `http`) rebinds the
//! HTTP listeners gracefully (requests in flight finish); `clustering` and `clustering_config`
//! reconnect to NATS with the `clustering.*` settings as they are now (or disconnect, when
//! `clustering.enabled` is now false; services/cluster); `harperdb` and `custom_functions`
//! are accepted names too (HarperDB's source accepts them). `replicated` is accepted and has no
//! effect on a single node.
//!
//! Request: `{"operation": "restart_service", "service": "http_workers"}` →
//! `{"message": "Restarting http_workers", "job_id": "<id>"}`; the job's message is
//! `Successfully completed job: <id>`. Capabilities: `control`, `jobs`.

use opshost_guest::jobs;
use opshost_guest::prelude::*;
use serde_json::Map;

pub struct RestartService;

/// The names HarperDB accepts (case-sensitive).
const SERVICES: [&str; 6] = ["http_workers", "http", "clustering_config", "clustering", "harperdb", "custom_functions"];

impl Operation for RestartService {
    const NAME: &'static str = "restart_service";
    const JOB: bool = true;
    // Decoded by hand: a missing, mistyped or unknown service is one text, `Invalid service`.
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        Ok(Some(format!("Restarting {}", service(req)?)))
    }

    fn handle(ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let service = service(&req)?;
        control::restart_service(service)?;
        log::info(&format!("restart of service {service} requested by {}", ctx.username));
        Ok(json!({ "message": jobs::completed_message(ctx) }))
    }
}

opshost_guest::export_operation!(RestartService);

fn service(req: &Map<String, Value>) -> Result<&str, Error> {
    match req.get("service") {
        Some(Value::String(s)) if SERVICES.contains(&s.as_str()) => Ok(s),
        _ => Err(Error::BadRequest("Invalid service".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_services_case_sensitive() {
        let req = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(service(&req(json!({"service": "http_workers", "replicated": true}))).ok(), Some("http_workers"));
        for bad in [json!({}), json!({"service": 1}), json!({"service": "HTTP_WORKERS"}), json!({"service": "nope"})] {
            assert!(matches!(service(&req(bad)), Err(Error::BadRequest(m)) if m == "Invalid service"));
        }
    }
}
