//! The Linux facts the `sysinfo` crate does not give: per-kind CPU ticks, the meminfo fields
//! systeminformation reports (SReclaimable, Writeback, Dirty), per-thread stats, priority and nice,
//! the OS codename, CPU flags, the default route and the clock tick.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// Jiffies from one `cpu` line of /proc/stat, in the groups of `LOAD_KINDS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Ticks(pub(super) [u64; 7]);

/// systeminformation's load key suffixes, in `Ticks` order.
pub(super) const LOAD_KINDS: [&str; 7] =
    ["User", "Nice", "System", "Idle", "Irq", "Steal", "Guest"];
pub(super) const IDLE: usize = 3;

impl Ticks {
    pub(super) fn parse(fields: &[u64]) -> Self {
        let f = |i: usize| fields.get(i).copied().unwrap_or(0);
        let (guest, guest_nice) = (f(8), f(9));
        // The kernel already counts guest time inside user and nice; taking it out keeps the
        // shares summing to 100%. Waiting on I/O is idle time as far as the CPU is concerned.
        Ticks([
            f(0).saturating_sub(guest),
            f(1).saturating_sub(guest_nice),
            f(2),
            f(3) + f(4),
            f(5) + f(6),
            f(7),
            guest + guest_nice,
        ])
    }

    pub(super) fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Saturating, because counters restart when a CPU goes offline and comes back.
    pub(super) fn since(&self, earlier: &Ticks) -> Ticks {
        Ticks(std::array::from_fn(|i| {
            self.0[i].saturating_sub(earlier.0[i])
        }))
    }
}

/// /proc/<pid>/stat or /proc/self/task/<tid>/stat, split so fields can be fetched by their number
/// in proc(5). Kept for what `sysinfo` has no accessor for: per-thread ticks and state, priority,
/// nice, and ticks in the same unit as /proc/stat (so the own-process share needs no conversion).
pub(super) struct PidStat {
    pub(super) comm: String,
    /// Fields 3 onwards.
    rest: Vec<String>,
}

impl PidStat {
    pub(super) fn read(path: &Path) -> Option<Self> {
        let text = fs::read_to_string(path).ok()?;
        // comm may itself contain spaces and parentheses, so cut at the last ')'.
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        Some(PidStat {
            comm: text.get(open + 1..close)?.to_string(),
            rest: text
                .get(close + 1..)?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        })
    }

    fn field(&self, n: usize) -> &str {
        n.checked_sub(3)
            .and_then(|i| self.rest.get(i))
            .map_or("", String::as_str)
    }

    fn num(&self, n: usize) -> i64 {
        self.field(n).parse().unwrap_or(0)
    }

    fn unum(&self, n: usize) -> u64 {
        self.field(n).parse().unwrap_or(0)
    }

    /// utime + stime in clock ticks.
    pub(super) fn cpu_ticks(&self) -> u64 {
        self.unum(14) + self.unum(15)
    }

    pub(super) fn priority(&self) -> i64 {
        self.num(18)
    }

    pub(super) fn nice(&self) -> i64 {
        self.num(19)
    }

    /// systeminformation's name for the state letter.
    pub(super) fn state(&self) -> &'static str {
        match self.field(3) {
            "R" => "running",
            "S" => "sleeping",
            "D" => "blocked",
            "Z" => "zombie",
            "T" | "t" => "stopped",
            "W" => "paging",
            "X" | "x" => "dead",
            "I" => "idle",
            _ => "unknown",
        }
    }
}

/// The aggregate `cpu` line and the per-CPU `cpuN` lines of /proc/stat.
pub(super) fn read_proc_stat() -> Option<(Ticks, Vec<Ticks>)> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let mut all = None;
    let mut per_cpu = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("cpu")) {
        let mut parts = line.split_whitespace();
        let name = parts.next().unwrap_or_default();
        let nums: Vec<u64> = parts.map(|p| p.parse().unwrap_or(0)).collect();
        if name == "cpu" {
            all = Some(Ticks::parse(&nums));
        } else {
            per_cpu.push(Ticks::parse(&nums));
        }
    }
    Some((all?, per_cpu))
}

/// /proc/meminfo in bytes.
pub(super) fn read_meminfo() -> Result<HashMap<String, u64>> {
    let text = fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let n: u64 = parts.next()?.parse().ok()?;
            let scale = if parts.next() == Some("kB") { 1024 } else { 1 };
            Some((key.to_string(), n * scale))
        })
        .collect())
}

/// VERSION_CODENAME from /etc/os-release (`sysinfo` reads NAME and VERSION_ID, not this one).
pub(super) fn os_codename() -> String {
    let text = fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .unwrap_or_default()
}

/// The first CPU's feature flags from /proc/cpuinfo (`sysinfo` has no accessor for them).
pub(super) fn cpu_flags() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(k, _)| matches!(k.trim(), "flags" | "Features"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// The interface of the lowest-metric default IPv4 route.
pub(super) fn default_interface() -> Option<String> {
    const RTF_UP: u32 = 0x1;
    let text = fs::read_to_string("/proc/net/route").ok()?;
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let metric: u64 = f.get(6)?.parse().ok()?;
            let default = *f.get(1)? == "00000000" && *f.get(7)? == "00000000";
            (default && flags & RTF_UP != 0).then(|| (metric, f[0].to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

pub(super) fn is_loopback(iface: &str) -> bool {
    const IFF_LOOPBACK: u32 = 0x8;
    read_trimmed(&format!("/sys/class/net/{iface}/flags"))
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .map_or(iface == "lo", |flags| flags & IFF_LOOPBACK != 0)
}

pub(super) fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Clock ticks per second, the unit of /proc/*/stat times. libc because neither `sysinfo` nor
/// `std` exposes it, and it is not always 100.
pub(super) fn clk_tck() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(100)
}
