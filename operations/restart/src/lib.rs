//! `restart`: reloads configuration and components in place once this call has answered
//! (opshost restarts without downtime; see deviations.md).
//!
//! Request: `{"operation": "restart"}`. Capabilities: `control`.

use opshost_guest::prelude::*;

pub struct Restart;

#[derive(Serialize)]
pub struct Response {
    message: &'static str,
}

impl Operation for Restart {
    const NAME: &'static str = "restart";
    type Request = Empty;
    type Response = Response;

    fn handle(ctx: &Context, _request: Empty) -> Result<Response, Error> {
        control::restart()?;
        log::info(&format!("restart requested by {}", ctx.username));
        // HarperDB's text, kept for clients that match on it.
        Ok(Response { message: "Restarting HarperDB. This may take up to 60 seconds." })
    }
}

opshost_guest::export_operation!(Restart);
