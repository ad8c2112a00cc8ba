//! The HTTP operations API: `POST /` with a JSON body naming the operation.

pub mod auth;
pub mod error;
pub mod routes;
pub mod studio;
