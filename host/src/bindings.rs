//! The one `bindgen!` call for the whole host, over the repo's `wit/` package.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "operation",
    // Guest calls run as futures on a fiber and yield at every epoch tick, so a long call
    // never holds a server thread; host imports stay synchronous (they are short).
    exports: { default: async },
});

// The world `use`s the shared types, so `CallContext`, `OpError` and `OperationInfo` are
// re-exported at this level by the macro itself.

