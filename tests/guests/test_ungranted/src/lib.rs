//! Test guest `test_ungranted`: a third-party operation that imports `storage` (it lists the
//! databases), which third-party components are not granted by default. The host refuses it
//! at load, naming the operation and the import, unless `operationsApi.grants` grants it.

use opshost_guest::prelude::*;

pub struct TestUngranted;

impl Operation for TestUngranted {
    const NAME: &'static str = "test_ungranted";
    const SUPER_USER_ONLY: bool = false;
    type Request = Empty;
    type Response = Value;

    fn handle(_ctx: &Context, _request: Empty) -> Result<Value, Error> {
        let databases = data::list_databases()?;
        Ok(json!({ "databases": databases.into_iter().map(|(name, _)| name).collect::<Vec<_>>() }))
    }
}

opshost_guest::export_operation!(TestUngranted);
