//! `hello_world`: an example third-party operation, loaded from `componentsRoot`. Greets the
//! caller; any logged-in user may call it. It imports only `log`, the one interface a
//! third-party component gets without a grant.
//!
//! Request: `{"operation": "hello_world", "name": "Ada"}` →
//! `{"message": "hello Ada, from admin", "operation_version": "0.1.0"}` (`name` defaults to
//! `world`; a non-string `name` answers 400 `'name' must be a string`). Capabilities: `log`.

use opshost_guest::prelude::*;

pub struct HelloWorld;

#[derive(Deserialize)]
pub struct Request {
    #[serde(default)]
    name: Option<String>,
}

impl Operation for HelloWorld {
    const NAME: &'static str = "hello_world";
    const SUPER_USER_ONLY: bool = false;
    type Request = Request;
    type Response = Value;

    fn handle(ctx: &Context, req: Request) -> Result<Value, Error> {
        log::info(&format!("hello_world called by {}", ctx.username));
        Ok(json!({
            "message": greeting(req.name.as_deref(), &ctx.username),
            "operation_version": env!("CARGO_PKG_VERSION"),
        }))
    }
}

opshost_guest::export_operation!(HelloWorld);

fn greeting(name: Option<&str>, user: &str) -> String {
    format!("hello {}, from {user}", name.filter(|n| !n.is_empty()).unwrap_or("world"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name_or_the_world() {
        assert_eq!(greeting(Some("Ada"), "admin"), "hello Ada, from admin");
        assert_eq!(greeting(None, "bob"), "hello world, from bob");
        assert_eq!(greeting(Some(""), "bob"), "hello world, from bob");
    }
}
