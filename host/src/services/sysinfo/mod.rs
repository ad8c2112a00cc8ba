//! System facts for HarperDB's `system_information` operation, shaped like systeminformation.js output:
//! the service, its sections and the background sampler (JSON shaping in sections.rs, the Linux
//! readers the `sysinfo` crate does not cover in linux.rs, time zone and dates in clock.rs).

mod clock;
mod linux;
mod sections;
#[cfg(test)]
mod tests;

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Result;
use parking_lot::Mutex;
use serde_json::{json, Value};
use sysinfo::{CpuRefreshKind, Disks, Networks, RefreshKind, System};

use linux::{PidStat, Ticks};

/// One part of the `system_information` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    System,
    Time,
    Cpu,
    Memory,
    Disk,
    Network,
    Processes,
    TableSize,
    Metrics,
    Threads,
}

/// How often the background thread samples CPU ticks, disks and interfaces.
const TICK: Duration = Duration::from_secs(1);
/// Without cpufreq in sysfs, sysinfo re-reads /proc/cpuinfo once per core to get clock speeds,
/// so those are refreshed less often than the load figures.
const FREQ_EVERY: u64 = 5;

/// Counters read at one instant, or the difference between two such readings.
#[derive(Clone, Debug, Default)]
struct CpuSample {
    all: Ticks,
    per_cpu: Vec<Ticks>,
    /// utime + stime of this process.
    own: u64,
}

/// What the background thread refreshes; requests only read it.
struct State {
    disks: Disks,
    networks: Networks,
    last: CpuSample,
    delta: CpuSample,
    samples: u64,
}

/// Facts that do not change while the process runs, read once at start.
struct Statics {
    distro: String,
    release: String,
    codename: String,
    kernel: String,
    vendor_id: String,
    model_name: String,
    flags: String,
    physical_cores: Option<usize>,
    speed_min: Option<f64>,
    speed_max: Option<f64>,
    clk_tck: u64,
}

/// Serves `system_information` sections from data a background thread keeps fresh.
pub struct SysinfoService {
    statics: Statics,
    /// Separate from `state` so the slow frequency refresh never holds up other sections.
    sys: Mutex<System>,
    state: Mutex<State>,
    /// Dropping the service drops this sender, which wakes and ends the sampler at once.
    _stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl SysinfoService {
    /// Starts a background thread that refreshes CPU load every second (so a request never sleeps), returns the service.
    pub fn start() -> Arc<Self> {
        Self::start_every(TICK)
    }

    /// `start` with the sampling period as a parameter, so a test can tick fast.
    fn start_every(tick: Duration) -> Arc<Self> {
        let service = Arc::new(Self::new());
        service.sample();
        let (stop, stopped) = mpsc::channel();
        *service._stop.lock() = Some(stop);
        let weak = Arc::downgrade(&service);
        // If the thread cannot be spawned the service still answers, from the startup sample
        // (load figures then cover the time since boot).
        let _ = std::thread::Builder::new()
            .name("opshost-sysinfo".into())
            .spawn(move || sampler(weak, tick, stopped));
        service
    }

    /// One section of HarperDB's system_information as JSON.
    pub fn section(&self, section: Section) -> Result<Value> {
        Ok(match section {
            Section::System => self.system(),
            Section::Time => clock::time(),
            Section::Cpu => self.cpu(),
            Section::Memory => self.memory()?,
            Section::Disk => self.disk(),
            Section::Network => self.network(),
            Section::Processes => self.processes()?,
            Section::TableSize => json!([]),
            Section::Metrics => json!({}),
            Section::Threads => self.threads()?,
        })
    }

    fn new() -> Self {
        let khz_to_ghz = |file: &str| {
            linux::read_trimmed(&format!("/sys/devices/system/cpu/cpu0/cpufreq/{file}"))
                .and_then(|s| s.parse::<f64>().ok())
                .map(|khz| sections::round2(khz / 1_000_000.0))
        };
        let sys = System::new_with_specifics(
            RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_frequency()),
        );
        let first = sys.cpus().first();
        let statics = Statics {
            distro: System::name().unwrap_or_default(),
            release: System::os_version().unwrap_or_default(),
            codename: linux::os_codename(),
            kernel: System::kernel_version().unwrap_or_default(),
            vendor_id: first.map(|c| c.vendor_id().to_string()).unwrap_or_default(),
            model_name: first.map(|c| c.brand().to_string()).unwrap_or_default(),
            flags: linux::cpu_flags(),
            physical_cores: System::physical_core_count(),
            speed_min: khz_to_ghz("cpuinfo_min_freq"),
            speed_max: khz_to_ghz("cpuinfo_max_freq"),
            clk_tck: linux::clk_tck(),
        };
        SysinfoService {
            statics,
            sys: Mutex::new(sys),
            state: Mutex::new(State {
                disks: Disks::new(),
                networks: Networks::new(),
                last: CpuSample::default(),
                delta: CpuSample::default(),
                samples: 0,
            }),
            _stop: Mutex::new(None),
        }
    }

    /// One refresh. The file reads and statvfs calls (which can stall on a dead network
    /// mount) happen before taking the lock, so requests never wait on them.
    fn sample(&self) {
        let stat = linux::read_proc_stat();
        let own = PidStat::read(std::path::Path::new("/proc/self/stat")).map(|s| s.cpu_ticks());
        let disks = Disks::new_with_refreshed_list();
        let networks = Networks::new_with_refreshed_list();

        let refresh_freq = {
            let mut st = self.state.lock();
            st.disks = disks;
            st.networks = networks;
            if let Some((all, per_cpu)) = stat {
                let now = CpuSample {
                    all,
                    per_cpu,
                    own: own.unwrap_or(st.last.own),
                };
                let delta = CpuSample {
                    all: now.all.since(&st.last.all),
                    per_cpu: now
                        .per_cpu
                        .iter()
                        .enumerate()
                        .map(|(i, t)| t.since(&st.last.per_cpu.get(i).copied().unwrap_or_default()))
                        .collect(),
                    own: now.own.saturating_sub(st.last.own),
                };
                // Two samples inside one jiffy say nothing; keep the previous figures.
                if delta.all.total() > 0 {
                    st.delta = delta;
                }
                st.last = now;
            }
            st.samples += 1;
            st.samples % FREQ_EVERY == 1
        };
        if refresh_freq {
            self.sys.lock().refresh_cpu_frequency();
        }
    }
}

/// Samples every `tick` until the service is dropped: the service's `Sender` goes with it, so
/// `recv_timeout` reports `Disconnected` at once instead of after the next tick.
fn sampler(service: Weak<SysinfoService>, tick: Duration, stopped: mpsc::Receiver<()>) {
    loop {
        match stopped.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // Holding only a Weak between ticks lets the service drop, which ends this thread.
        let Some(service) = service.upgrade() else {
            return;
        };
        service.sample();
    }
}
