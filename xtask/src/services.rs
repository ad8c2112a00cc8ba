//! Services the tests need, started by `cargo xtask test` and stopped when the guard drops.
//! (The foundation's tests need none yet; the S3 server for export_to_s3 joins here.)

use anyhow::Result;

/// Keeps the started services alive for the duration of the test run.
pub struct Services {
    children: Vec<std::process::Child>,
}

impl Drop for Services {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn start_for_tests() -> Result<Services> {
    Ok(Services { children: Vec::new() })
}
