//! The one `bindgen!` call for the whole host, over the repo's `wit/` package.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "operation",
});

// The world `use`s the shared types, so `CallContext`, `OpError` and `OperationInfo` are
// re-exported at this level by the macro itself.

