//! opshost guest SDK: write an Operations API operation as a plain Rust type, export it as a
//! WebAssembly component with one macro. Backed by wit-bindgen over the repo's `wit/` package.
//!
//! ```ignore
//! use opshost_guest::prelude::*;
//!
//! pub struct GetConfiguration;
//! impl Operation for GetConfiguration {
//!     const NAME: &'static str = "get_configuration";
//!     type Request = Empty;
//!     type Response = serde_json::Value;
//!     fn handle(_ctx: &Context, _req: Empty) -> Result<Self::Response, Error> {
//!         config::get_json()
//!     }
//! }
//! opshost_guest::export_operation!(GetConfiguration);
//! ```

pub mod data;
mod decode;
mod host;
pub mod jobs;
pub mod users;

pub use decode::{decode_error, decode_request, Empty};
pub use host::{catalog, certs, cluster, components, config, control, log, packages, sysinfo};

/// The raw bindings. Operation authors use the trait and the macro instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "operation",
        pub_export_macro: true,
        default_bindings_module: "opshost_guest::bindings",
        generate_all,
    });
}

pub use bindings::opshost::host::types::CallContext as Context;
pub use bindings::opshost::host::types::OpError as Error;

impl Error {
    /// A 400 with HarperDB's text, the error most request checks raise.
    pub fn bad_request(text: impl Into<String>) -> Self {
        Error::BadRequest(text.into())
    }
}

/// Everything an operation crate usually needs.
pub mod prelude {
    pub use crate::{catalog, certs, cluster, components, config, control, data, log, packages, sysinfo, users};
    pub use crate::{Context, Empty, Error, Operation};
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::{json, Value};
}

/// One operation of the Operations API.
pub trait Operation {
    /// The `operation` value this answers.
    const NAME: &'static str;
    /// Other names it answers to (`create_schema` for `create_database`).
    const ALIASES: &'static [&'static str] = &[];
    /// Only `super_user` roles may call it (HarperDB's default for utilities).
    const SUPER_USER_ONLY: bool = true;
    /// The host runs it as a background job and answers with a job id. A job operation is
    /// called twice: first [`Operation::validate`] (before the job exists), then `handle` in the
    /// background, whose response `{"message", "result"?}` becomes the job record's.
    const JOB: bool = false;
    /// The decoded request body. Decoding errors name the field in HarperDB's words.
    type Request: serde::de::DeserializeOwned;
    /// The response body.
    type Response: serde::Serialize;

    fn handle(ctx: &Context, request: Self::Request) -> Result<Self::Response, Error>;

    /// For a job operation: checks what can be checked before the job starts, changing
    /// nothing. An error answers the request (400) and no job is created; `Ok(Some(text))`
    /// replaces the "Starting job with id ..." message.
    fn validate(_ctx: &Context, _request: &Self::Request) -> Result<Option<String>, Error> {
        Ok(None)
    }
}

/// Exports `$ty` (an [`Operation`]) as this component's `describe` and `handle`.
#[macro_export]
macro_rules! export_operation {
    ($ty:ty) => {
        const _: () = {
            struct OpshostExport;
            impl $crate::bindings::Guest for OpshostExport {
                fn describe() -> $crate::bindings::opshost::host::types::OperationInfo {
                    $crate::__describe::<$ty>(env!("CARGO_PKG_VERSION"))
                }
                fn handle(
                    ctx: $crate::Context,
                    request: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, $crate::Error> {
                    $crate::__handle::<$ty>(ctx, request)
                }
            }
            $crate::bindings::export!(OpshostExport with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub fn __describe<T: Operation>(version: &str) -> bindings::opshost::host::types::OperationInfo {
    bindings::opshost::host::types::OperationInfo {
        name: T::NAME.to_string(),
        aliases: T::ALIASES.iter().map(|a| a.to_string()).collect(),
        version: version.to_string(),
        super_user_only: T::SUPER_USER_ONLY,
        job: T::JOB,
    }
}

#[doc(hidden)]
pub fn __handle<T: Operation>(ctx: Context, request: String) -> Result<String, Error> {
    host::install_panic_hook();
    let request: T::Request = decode_request(&request)?;
    if T::JOB && ctx.job_id.is_none() {
        let message = T::validate(&ctx, &request)?;
        return serde_json::to_string(&serde_json::json!({ "message": message }))
            .map_err(|e| Error::Internal(format!("could not encode the response: {e}")));
    }
    let response = T::handle(&ctx, request)?;
    serde_json::to_string(&response)
        .map_err(|e| Error::Internal(format!("could not encode the response: {e}")))
}
