//! The one `bindgen!` call for the whole host, over the repo's `wit/` package.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "operation",
    // Guest calls run as futures on a fiber and yield at every epoch tick, so a long call
    // never holds a server thread; host imports stay synchronous (they are short).
    exports: { default: async },
    // Writes fsync and schema changes create or drop column families: they run on a blocking
    // thread so other requests keep this one. Reads are short and stay inline.
    imports: {
        "opshost:host/storage.write": async,
        "opshost:host/storage.write-text": async,
        "opshost:host/storage.delete": async,
        "opshost:host/storage.create-database": async,
        "opshost:host/storage.drop-database": async,
        "opshost:host/storage.create-table": async,
        "opshost:host/storage.drop-table": async,
        // A cursor batch and a read by many keys can be long: bounded steps on a blocking
        // thread, so the call's time limit (which drops the call) stops them between steps.
        "opshost:host/storage.[method]cursor.next-batch": async,
        "opshost:host/storage.[method]cursor.next-page": async,
        "opshost:host/storage.get": async,
        "opshost:host/storage.read-audit-log": async,
        "opshost:host/log.read": async,
        "opshost:host/storage.delete-audit-log-before": async,
        // Uploads wait on the network; password hashing takes tens of milliseconds.
        "opshost:host/objectstore.put": async,
        "opshost:host/objectstore.[method]upload.write": async,
        "opshost:host/objectstore.[method]upload.finish": async,
        // Load inputs wait on the disk (a blocking thread) or the network.
        "opshost:host/sources.open-url": async,
        "opshost:host/sources.open-s3": async,
        "opshost:host/sources.[method]source.read": async,
        "opshost:host/users.add-user": async,
        "opshost:host/users.alter-user": async,
        "opshost:host/users.create-tokens": async,
        "opshost:host/packages.npm-install": async,
        // Deploying compiles and reloads the registry; the others read or write storage.
        "opshost:host/components.deploy": async,
        "opshost:host/components.drop": async,
        "opshost:host/components.rollback": async,
        // Durable writes (fsync) and whole-table reads: on a blocking thread.
        "opshost:host/jobs.search-by-start": async,
        "opshost:host/certs.add": async,
        "opshost:host/certs.remove": async,
    },
    with: {
        "opshost:host/storage.cursor": crate::services::storage::Paged,
        "opshost:host/filesystem.writer": crate::services::files::Writer,
        "opshost:host/objectstore.upload": crate::services::objectstore::Upload,
        "opshost:host/sources.source": crate::services::imports::Source,
    },
});

// The world `use`s the shared types, so `CallContext`, `OpError` and `OperationInfo` are
// re-exported at this level by the macro itself.

