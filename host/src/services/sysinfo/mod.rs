//! System facts for HarperDB's `system_information` operation, shaped like systeminformation.js output.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use sysinfo::{CpuRefreshKind, Disks, Networks, RefreshKind, System};

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

/// Jiffies from one `cpu` line of /proc/stat, in the groups of `LOAD_KINDS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ticks([u64; 7]);

/// systeminformation's load key suffixes, in `Ticks` order.
const LOAD_KINDS: [&str; 7] = ["User", "Nice", "System", "Idle", "Irq", "Steal", "Guest"];
const IDLE: usize = 3;

impl Ticks {
    fn parse(fields: &[u64]) -> Self {
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

    fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Saturating, because counters restart when a CPU goes offline and comes back.
    fn since(&self, earlier: &Ticks) -> Ticks {
        Ticks(std::array::from_fn(|i| {
            self.0[i].saturating_sub(earlier.0[i])
        }))
    }

    /// `(base, raw)` is `("currentLoad", "rawCurrentLoad")` or `("load", "rawLoad")`.
    fn to_json(self, base: &str, raw: &str, out: &mut Map<String, Value>) {
        let total = self.total();
        let busy = total - self.0[IDLE];
        out.insert(base.into(), json!(percent(busy, total)));
        out.insert(raw.into(), json!(busy));
        for (kind, ticks) in LOAD_KINDS.iter().zip(self.0) {
            out.insert(format!("{base}{kind}"), json!(percent(ticks, total)));
            out.insert(format!("{raw}{kind}"), json!(ticks));
        }
    }
}

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
    os_release: HashMap<String, String>,
    kernel: String,
    vendor_id: String,
    model_name: String,
    flags: String,
    physical_cores: Option<usize>,
    speed_min: Option<f64>,
    speed_max: Option<f64>,
    clk_tck: u64,
    page_size: u64,
    boot_time: u64,
}

/// Serves `system_information` sections from data a background thread keeps fresh.
pub struct SysinfoService {
    statics: Statics,
    /// Separate from `state` so the slow frequency refresh never holds up other sections.
    sys: Mutex<System>,
    state: Mutex<State>,
}

impl SysinfoService {
    /// Starts a background thread that refreshes CPU load every second (so a request never sleeps), returns the service.
    pub fn start() -> Arc<Self> {
        let service = Arc::new(Self::new());
        service.sample();
        let weak = Arc::downgrade(&service);
        // If the thread cannot be spawned the service still answers, from the startup sample
        // (load figures then cover the time since boot).
        let _ = std::thread::Builder::new()
            .name("opshost-sysinfo".into())
            .spawn(move || sampler(weak));
        service
    }

    /// One section of HarperDB's system_information as JSON.
    pub fn section(&self, section: Section) -> Result<Value> {
        Ok(match section {
            Section::System => self.system(),
            Section::Time => time(),
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
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_field = |keys: &[&str]| {
            cpuinfo
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(k, _)| keys.contains(&k.trim()))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let khz_to_ghz = |file: &str| {
            read_trimmed(&format!("/sys/devices/system/cpu/cpu0/cpufreq/{file}"))
                .and_then(|s| s.parse::<f64>().ok())
                .map(|khz| round2(khz / 1_000_000.0))
        };
        let statics = Statics {
            os_release: parse_os_release(
                &fs::read_to_string("/etc/os-release").unwrap_or_default(),
            ),
            kernel: System::kernel_version().unwrap_or_default(),
            vendor_id: cpu_field(&["vendor_id", "CPU implementer"]),
            model_name: cpu_field(&["model name", "Model", "cpu model"]),
            flags: cpu_field(&["flags", "Features"]),
            physical_cores: System::physical_core_count(),
            speed_min: khz_to_ghz("cpuinfo_min_freq"),
            speed_max: khz_to_ghz("cpuinfo_max_freq"),
            clk_tck: sysconf_or(libc::_SC_CLK_TCK, 100),
            page_size: sysconf_or(libc::_SC_PAGESIZE, 4096),
            boot_time: System::boot_time(),
        };
        let sys = System::new_with_specifics(
            RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_frequency()),
        );
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
        }
    }

    /// One refresh. The file reads and statvfs calls (which can stall on a dead network
    /// mount) happen before taking the lock, so requests never wait on them.
    fn sample(&self) {
        let stat = read_proc_stat();
        let own = PidStat::read(Path::new("/proc/self/stat")).map(|s| s.unum(14) + s.unum(15));
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

    fn system(&self) -> Value {
        let os = &self.statics.os_release;
        let get = |k: &str| os.get(k).cloned().unwrap_or_default();
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x64",
            "aarch64" => "arm64",
            other => other,
        };
        let hostname = System::host_name().unwrap_or_default();
        json!({
            "platform": "linux",
            "distro": get("NAME"),
            "release": get("VERSION_ID"),
            "codename": get("VERSION_CODENAME"),
            "kernel": self.statics.kernel,
            "arch": arch,
            "hostname": hostname,
            "fqdn": hostname,
            "opshost_version": env!("CARGO_PKG_VERSION"),
        })
    }

    fn cpu(&self) -> Value {
        let s = &self.statics;
        let freqs: Vec<f64> = {
            let sys = self.sys.lock();
            sys.cpus()
                .iter()
                .map(|c| round2(c.frequency() as f64 / 1000.0))
                .collect()
        };
        let (all, per_cpu) = {
            let st = self.state.lock();
            (st.delta.all, st.delta.per_cpu.clone())
        };

        let cores = if freqs.is_empty() {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            freqs.len()
        };
        let physical = s.physical_cores.unwrap_or(cores);
        let known = freqs.iter().copied().filter(|f| *f > 0.0);
        let min = known.clone().reduce(f64::min).unwrap_or(0.0);
        let max = known.clone().reduce(f64::max).unwrap_or(0.0);
        let avg = round2(known.clone().sum::<f64>() / known.count().max(1) as f64);
        let manufacturer = match s.vendor_id.as_str() {
            "GenuineIntel" => "Intel".to_string(),
            "AuthenticAMD" => "AMD".to_string(),
            other => other.to_string(),
        };
        let speed = nominal_ghz(&s.model_name).or(s.speed_max).unwrap_or(avg);
        let virtualization = s.flags.split_whitespace().any(|f| f == "vmx" || f == "svm");

        let mut load = Map::new();
        load.insert("avgLoad".into(), json!(round2(System::load_average().one)));
        all.to_json("currentLoad", "rawCurrentLoad", &mut load);
        let cpus: Vec<Value> = per_cpu
            .into_iter()
            .map(|t| {
                let mut m = Map::new();
                t.to_json("load", "rawLoad", &mut m);
                Value::Object(m)
            })
            .collect();
        load.insert("cpus".into(), Value::Array(cpus));

        json!({
            "manufacturer": manufacturer,
            "brand": brand(&s.model_name),
            "vendor": s.vendor_id,
            "speed": speed,
            "speedMin": s.speed_min.unwrap_or(min),
            "speedMax": s.speed_max.unwrap_or(max),
            "cores": cores,
            "physicalCores": physical,
            "performanceCores": physical,
            "efficiencyCores": 0,
            "processors": 1,
            "flags": s.flags,
            "virtualization": virtualization,
            "cpu_speed": { "min": min, "max": max, "avg": avg, "cores": freqs },
            "current_load": load,
        })
    }

    fn memory(&self) -> Result<Value> {
        let m = read_meminfo()?;
        let get = |k: &str| m.get(k).copied().unwrap_or(0);
        let total = get("MemTotal");
        let free = get("MemFree");
        let available = m.get("MemAvailable").copied().unwrap_or(free);
        let reclaimable = get("SReclaimable");
        let (swap_total, swap_free) = (get("SwapTotal"), get("SwapFree"));
        // systeminformation's "active" is what cannot be handed out, not /proc/meminfo's Active.
        Ok(json!({
            "total": total,
            "free": free,
            "used": total.saturating_sub(free),
            "active": total.saturating_sub(available),
            "available": available,
            "reclaimable": reclaimable,
            "buffcache": get("Buffers") + get("Cached") + reclaimable,
            "swaptotal": swap_total,
            "swapused": swap_total.saturating_sub(swap_free),
            "swapfree": swap_free,
            "writeback": get("Writeback"),
            "dirty": get("Dirty"),
            "rss": self.own_rss(),
        }))
    }

    fn own_rss(&self) -> u64 {
        let pages = PidStat::read(Path::new("/proc/self/stat")).map_or(0, |s| s.unum(24));
        pages * self.statics.page_size
    }

    fn disk(&self) -> Value {
        let st = self.state.lock();
        let size: Vec<Value> = st
            .disks
            .list()
            .iter()
            .map(|d| {
                let size = d.total_space();
                let available = d.available_space();
                let used = size.saturating_sub(available);
                json!({
                    "fs": d.name().to_string_lossy(),
                    "type": d.file_system().to_string_lossy(),
                    "size": size,
                    "used": used,
                    "available": available,
                    "use": round2(percent(used, size)),
                    "mount": d.mount_point().to_string_lossy(),
                })
            })
            .collect();
        json!({ "size": size })
    }

    fn network(&self) -> Value {
        let st = self.state.lock();
        let mut list: Vec<_> = st.networks.list().iter().collect();
        list.sort_by(|a, b| a.0.cmp(b.0));
        let mut interfaces = Vec::with_capacity(list.len());
        let mut stats = Vec::with_capacity(list.len());
        for (name, data) in list {
            let ips = data.ip_networks();
            let ip4 = ips.iter().find(|n| n.addr.is_ipv4());
            // Prefer a routable IPv6 address over the always-present link-local one.
            let ip6 = ips
                .iter()
                .filter(|n| n.addr.is_ipv6())
                .min_by_key(|n| n.addr.to_string().starts_with("fe80"));
            let internal = is_loopback(name) || ips.iter().any(|n| n.addr.is_loopback());
            interfaces.push(json!({
                "iface": name,
                "ip4": ip4.map(|n| n.addr.to_string()).unwrap_or_default(),
                "ip6": ip6.map(|n| n.addr.to_string()).unwrap_or_default(),
                "mac": data.mac_address().to_string(),
                "internal": internal,
                "operstate": read_trimmed(&format!("/sys/class/net/{name}/operstate"))
                    .unwrap_or_else(|| "unknown".into()),
            }));
            stats.push(json!({
                "iface": name,
                "rx_bytes": data.total_received(),
                "tx_bytes": data.total_transmitted(),
                "rx_errors": data.total_errors_on_received(),
                "tx_errors": data.total_errors_on_transmitted(),
            }));
        }
        json!({
            "default_interface": default_interface(),
            "latency": {},
            "interfaces": interfaces,
            "stats": stats,
            "connections": [],
        })
    }

    fn processes(&self) -> Result<Value> {
        let stat =
            PidStat::read(Path::new("/proc/self/stat")).context("reading /proc/self/stat")?;
        let s = &self.statics;
        let cpu = {
            let st = self.state.lock();
            percent(st.delta.own, st.delta.all.total())
        };
        let rss = self.own_rss();
        let mem_total = read_meminfo()?.get("MemTotal").copied().unwrap_or(0);
        let started = s.boot_time + stat.unum(22) / s.clk_tck;

        let cmdline = fs::read("/proc/self/cmdline").unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let exe = fs::read_link("/proc/self/exe").ok();
        let command = exe
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| stat.comm.clone());
        let path = exe
            .as_deref()
            .and_then(Path::parent)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();

        Ok(json!({
            "core": [{
                "pid": std::process::id(),
                "parentPid": stat.num(4),
                "name": stat.comm,
                "cpu": round2(cpu),
                "mem": round2(percent(rss, mem_total)),
                "priority": stat.num(18),
                "memVsz": stat.unum(23) / 1024,
                "memRss": rss / 1024,
                "nice": stat.num(19),
                "started": utc_string(i64::try_from(started).unwrap_or(0)),
                "state": state_name(stat.field(3)),
                "user": own_user(),
                "command": command,
                "params": redact_params(args.get(1..).unwrap_or_default()).join(" "),
                "path": path,
            }],
            "clustering": [],
        }))
    }

    fn threads(&self) -> Result<Value> {
        let tick_ms = 1000.0 / self.statics.clk_tck as f64;
        let mut threads: Vec<(u64, Value)> = Vec::new();
        for entry in fs::read_dir("/proc/self/task").context("listing /proc/self/task")? {
            let entry = entry?;
            let tid = entry.file_name().to_string_lossy().parse::<u64>();
            // A thread may exit between listing and reading; it is simply gone.
            let (Ok(tid), Some(stat)) = (tid, PidStat::read(&entry.path().join("stat"))) else {
                continue;
            };
            let cpu_ms = ((stat.unum(14) + stat.unum(15)) as f64 * tick_ms).round() as u64;
            let value = json!({
                "threadId": tid,
                "name": stat.comm,
                "cpuTimeMs": cpu_ms,
                "state": state_name(stat.field(3)),
            });
            threads.push((tid, value));
        }
        threads.sort_by_key(|(tid, _)| *tid);
        Ok(Value::Array(threads.into_iter().map(|(_, v)| v).collect()))
    }
}

fn sampler(service: Weak<SysinfoService>) {
    loop {
        std::thread::sleep(TICK);
        // Holding only a Weak between ticks lets the service drop, which ends this thread.
        let Some(service) = service.upgrade() else {
            return;
        };
        service.sample();
    }
}

fn time() -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let uptime = read_trimmed("/proc/uptime")
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|u| u.parse::<f64>().ok())
        })
        .unwrap_or_else(|| System::uptime() as f64);
    json!({
        "current": now.as_millis() as u64,
        "uptime": uptime,
        "timezone": format_offset(utc_offset_secs(now.as_secs() as i64)),
        "timezoneName": timezone_name(),
    })
}

fn utc_offset_secs(now: i64) -> i64 {
    let t = now as libc::time_t;
    // SAFETY: `tm` is plain integers plus a nullable pointer, so all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r keeps no reference to them.
    let res = unsafe { libc::localtime_r(&t, &mut tm) };
    if res.is_null() {
        0
    } else {
        tm.tm_gmtoff as i64
    }
}

fn format_offset(secs: i64) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    format!("UTC{sign}{:02}{:02}", abs / 3600, (abs % 3600) / 60)
}

fn timezone_name() -> String {
    let from_path = |p: &str| p.split_once("zoneinfo/").map(|(_, name)| name.to_string());
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.trim().trim_start_matches(':');
        if !tz.is_empty() {
            return from_path(tz).unwrap_or_else(|| tz.to_string());
        }
    }
    if let Some(tz) = read_trimmed("/etc/timezone").filter(|s| !s.is_empty()) {
        return tz;
    }
    fs::read_link("/etc/localtime")
        .ok()
        .and_then(|target| from_path(&target.to_string_lossy()))
        .unwrap_or_else(|| "Etc/UTC".into())
}

/// "YYYY-MM-DD HH:MM:SS" in UTC, without pulling in a date crate for one format.
fn utc_string(epoch_secs: i64) -> String {
    let (days, secs) = (epoch_secs.div_euclid(86_400), epoch_secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// /proc/<pid>/stat, split so fields can be fetched by their number in proc(5).
struct PidStat {
    comm: String,
    /// Fields 3 onwards.
    rest: Vec<String>,
}

impl PidStat {
    fn read(path: &Path) -> Option<Self> {
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
}

fn state_name(code: &str) -> &'static str {
    match code {
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

/// The aggregate `cpu` line and the per-CPU `cpuN` lines of /proc/stat.
fn read_proc_stat() -> Option<(Ticks, Vec<Ticks>)> {
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
fn read_meminfo() -> Result<HashMap<String, u64>> {
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

fn parse_os_release(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches(['"', '\'']).to_string(),
            )
        })
        .collect()
}

/// The interface of the lowest-metric default IPv4 route.
fn default_interface() -> Option<String> {
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

fn is_loopback(iface: &str) -> bool {
    const IFF_LOOPBACK: u32 = 0x8;
    read_trimmed(&format!("/sys/class/net/{iface}/flags"))
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .map_or(iface == "lo", |flags| flags & IFF_LOOPBACK != 0)
}

/// The real user of this process, by name when /etc/passwd knows it.
fn own_user() -> String {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_string())
        })
        .unwrap_or(uid)
}

/// "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz" -> "Xeon® CPU E5-2680 v4", as systeminformation trims it.
fn brand(model: &str) -> String {
    let model = model.split('@').next().unwrap_or_default();
    let cleaned = model
        .replace("(R)", "®")
        .replace("(TM)", "™")
        .replace("(tm)", "™");
    let trimmed = cleaned.trim();
    ["Intel® ", "Intel ", "AMD "]
        .iter()
        .find_map(|p| trimmed.strip_prefix(p))
        .unwrap_or(trimmed)
        .trim()
        .to_string()
}

/// The rated clock in a model name such as "... @ 2.40GHz".
fn nominal_ghz(model: &str) -> Option<f64> {
    let after = model.split_once('@')?.1.trim();
    after.strip_suffix("GHz")?.trim().parse().ok()
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn sysconf_or(name: libc::c_int, default: u64) -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(default)
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Command-line arguments as `system_information` shows them: the value of any flag that
/// carries a secret (`--admin-password secret`, `--password=secret`) becomes `***`.
fn redact_params(args: &[String]) -> Vec<String> {
    let secret = |flag: &str| {
        let name = flag.trim_start_matches('-').to_ascii_lowercase();
        flag.starts_with('-') && ["password", "secret", "token", "key"].iter().any(|w| name.contains(w))
    };
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        if std::mem::take(&mut hide_next) && !arg.starts_with("--") {
            out.push("***".to_string());
            continue;
        }
        match arg.split_once('=') {
            Some((flag, _)) if secret(flag) => out.push(format!("{flag}=***")),
            None if secret(arg) => {
                hide_next = true;
                out.push(arg.clone());
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_flags_are_redacted_in_params() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            redact_params(&args(&["--admin-password", "secret", "run", "--root", "/srv/x"])).join(" "),
            "--admin-password *** run --root /srv/x"
        );
        assert_eq!(redact_params(&args(&["--admin-password=secret", "--password=p"])).join(" "), "--admin-password=*** --password=***");
        assert_eq!(redact_params(&args(&["--admin-username", "admin", "run"])).join(" "), "--admin-username admin run");
        // A secret flag with no value before the next flag hides nothing else.
        assert_eq!(redact_params(&args(&["--admin-password", "--root", "/r"])).join(" "), "--admin-password --root /r");
    }

    fn has_keys(v: &Value, keys: &[&str]) {
        for k in keys {
            assert!(v.get(*k).is_some(), "missing key {k} in {v}");
        }
    }

    fn in_pct(v: &Value) -> bool {
        v.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p))
    }

    /// A service sampled twice by hand, far enough apart that the tick deltas are not empty.
    fn sampled() -> Arc<SysinfoService> {
        let svc = Arc::new(SysinfoService::new());
        svc.sample();
        std::thread::sleep(Duration::from_millis(50));
        svc.sample();
        svc
    }

    #[test]
    fn system_and_time() -> Result<()> {
        let svc = sampled();
        let v = svc.section(Section::System)?;
        has_keys(
            &v,
            &[
                "distro", "release", "codename", "kernel", "arch", "hostname", "fqdn",
            ],
        );
        assert_eq!(v["platform"], "linux");
        assert_eq!(v["opshost_version"], env!("CARGO_PKG_VERSION"));
        assert!(v
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string)));

        let v = svc.section(Section::Time)?;
        assert!(v["current"]
            .as_u64()
            .is_some_and(|ms| ms > 1_600_000_000_000));
        assert!(v["uptime"].as_f64().is_some_and(|u| u > 0.0));
        let tz = v["timezone"].as_str().unwrap_or_default();
        let (sign, digits) = (
            tz.get(..4).unwrap_or_default(),
            tz.get(4..).unwrap_or_default(),
        );
        assert!(sign == "UTC+" || sign == "UTC-", "{tz}");
        assert!(
            digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit()),
            "{tz}"
        );
        assert!(v["timezoneName"].as_str().is_some_and(|s| !s.is_empty()));
        Ok(())
    }

    #[test]
    fn cpu() -> Result<()> {
        let v = sampled().section(Section::Cpu)?;
        has_keys(
            &v,
            &[
                "manufacturer",
                "brand",
                "vendor",
                "speed",
                "speedMin",
                "speedMax",
                "flags",
            ],
        );
        has_keys(&v["cpu_speed"], &["min", "max", "avg", "cores"]);
        let cores = v["cores"].as_u64().unwrap_or(0);
        assert!(cores >= 1 && v["physicalCores"].as_u64().is_some_and(|c| c >= 1));
        assert!(v["virtualization"].is_boolean() && v["efficiencyCores"] == 0);
        let load = &v["current_load"];
        has_keys(load, &["avgLoad", "rawCurrentLoad", "rawCurrentLoadIdle"]);
        let mut shares = 0.0;
        for kind in LOAD_KINDS {
            assert!(
                in_pct(&load[format!("currentLoad{kind}")]),
                "{kind} in {load}"
            );
            shares += load[format!("currentLoad{kind}")].as_f64().unwrap_or(0.0);
        }
        assert!(in_pct(&load["currentLoad"]));
        assert!((shares - 100.0).abs() < 0.01, "shares sum to {shares}");
        let cpus = load["cpus"].as_array().cloned().unwrap_or_default();
        assert_eq!(cpus.len() as u64, cores);
        for c in &cpus {
            has_keys(c, &["rawLoad", "rawLoadUser", "rawLoadGuest"]);
            assert!(in_pct(&c["load"]) && in_pct(&c["loadIdle"]) && in_pct(&c["loadSteal"]));
        }
        Ok(())
    }

    #[test]
    fn memory_and_disk() -> Result<()> {
        let svc = sampled();
        let v = svc.section(Section::Memory)?;
        has_keys(
            &v,
            &[
                "active",
                "reclaimable",
                "buffcache",
                "swaptotal",
                "swapused",
            ],
        );
        has_keys(&v, &["swapfree", "writeback", "dirty"]);
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        assert!(n("total") > 0 && n("free") <= n("total") && n("available") <= n("total"));
        assert_eq!(n("used"), n("total") - n("free"));
        assert!(n("rss") > 0 && n("rss") < n("total"));

        let v = svc.section(Section::Disk)?;
        for d in v["size"].as_array().into_iter().flatten() {
            has_keys(d, &["fs", "type", "size", "used", "available", "mount"]);
            assert!(in_pct(&d["use"]));
        }
        Ok(())
    }

    #[test]
    fn network() -> Result<()> {
        let v = sampled().section(Section::Network)?;
        has_keys(&v, &["default_interface", "latency", "connections"]);
        let ifaces = v["interfaces"].as_array().cloned().unwrap_or_default();
        for i in &ifaces {
            has_keys(i, &["iface", "ip4", "ip6", "mac", "internal", "operstate"]);
        }
        if let Some(lo) = ifaces.iter().find(|i| i["iface"] == "lo") {
            assert_eq!(lo["internal"], true);
        }
        for s in v["stats"].as_array().into_iter().flatten() {
            has_keys(
                s,
                &["iface", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors"],
            );
        }
        Ok(())
    }

    #[test]
    fn processes_threads_and_placeholders() -> Result<()> {
        let svc = sampled();
        let v = svc.section(Section::Processes)?;
        assert_eq!(v["core"].as_array().map(Vec::len), Some(1));
        let p = &v["core"][0];
        has_keys(
            p,
            &[
                "parentPid",
                "name",
                "priority",
                "nice",
                "user",
                "command",
                "params",
                "path",
            ],
        );
        assert_eq!(p["pid"].as_u64(), Some(u64::from(std::process::id())));
        assert!(in_pct(&p["cpu"]) && in_pct(&p["mem"]));
        assert!(p["memRss"].as_u64().is_some_and(|r| r > 0));
        assert!(p["memVsz"].as_u64() >= p["memRss"].as_u64());
        let started = p["started"].as_str().unwrap_or_default();
        assert!(
            started.len() == 19 && started.starts_with("20"),
            "{started}"
        );
        assert_ne!(p["state"], "unknown");
        assert_eq!(v["clustering"], json!([]));

        let threads = svc.section(Section::Threads)?;
        let threads = threads.as_array().cloned().unwrap_or_default();
        assert!(!threads.is_empty());
        for t in &threads {
            has_keys(t, &["threadId", "name", "cpuTimeMs", "state"]);
        }
        assert_eq!(svc.section(Section::TableSize)?, json!([]));
        assert_eq!(svc.section(Section::Metrics)?, json!({}));
        Ok(())
    }

    #[test]
    fn helpers() {
        assert_eq!(utc_string(0), "1970-01-01 00:00:00");
        assert_eq!(utc_string(951_782_400 + 3_723), "2000-02-29 01:02:03");
        assert_eq!(format_offset(-(5 * 3600 + 30 * 60)), "UTC-0530");
        assert_eq!(format_offset(3600), "UTC+0100");
        assert_eq!(
            brand("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"),
            "Xeon® CPU E5-2680 v4"
        );
        assert_eq!(
            nominal_ghz("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"),
            Some(2.4)
        );
        let t = Ticks::parse(&[10, 5, 3, 100, 2, 1, 1, 0, 4, 1]);
        assert_eq!(t, Ticks([6, 4, 3, 102, 2, 0, 5]));
    }

    #[test]
    fn background_thread_samples_and_stops() {
        let svc = SysinfoService::start();
        let weak = Arc::downgrade(&svc);
        std::thread::sleep(TICK + Duration::from_millis(300));
        assert!(svc.state.lock().samples >= 2);
        drop(svc);
        // The sampler holds a strong reference only while sampling, which takes milliseconds.
        std::thread::sleep(Duration::from_millis(200));
        assert!(weak.upgrade().is_none());
    }
}
