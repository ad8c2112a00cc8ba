//! `sysinfo` capability: system facts, through the sysinfo service.

use super::CallState;
use crate::bindings::opshost::host::sysinfo::{Host, Section as WitSection};
use crate::bindings::OpError;
use crate::services::sysinfo::Section;

impl Host for CallState {
    fn get(&mut self, section: WitSection) -> Result<String, OpError> {
        self.check("sysinfo")?;
        let section = match section {
            WitSection::System => Section::System,
            WitSection::Time => Section::Time,
            WitSection::Cpu => Section::Cpu,
            WitSection::Memory => Section::Memory,
            WitSection::Disk => Section::Disk,
            WitSection::Network => Section::Network,
            WitSection::Processes => Section::Processes,
            WitSection::TableSize => Section::TableSize,
            WitSection::Metrics => Section::Metrics,
            WitSection::Threads => Section::Threads,
        };
        let mut value = self.services.sysinfo.section(section).map_err(|e| {
            tracing::error!(request_id = %self.request_id, "system information failed: {e:#}");
            OpError::Internal("system information is unavailable".into())
        })?;
        if section == Section::Metrics {
            // The operation catalog's call counters, beside the storage metrics.
            if let Some(map) = value.as_object_mut() {
                map.insert("operations".into(), self.services.catalog.metrics());
            }
        }
        Ok(value.to_string())
    }
}
