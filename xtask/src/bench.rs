//! `cargo xtask bench`: prints the performance figures (filled in below).

use anyhow::Result;

pub fn run(_args: &[String]) -> Result<()> {
    anyhow::bail!("bench: not yet implemented")
}
