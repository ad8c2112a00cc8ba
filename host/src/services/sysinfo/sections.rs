//! The sections of `system_information` as JSON, in systeminformation.js's shapes.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind, Users};

use super::clock::utc_string;
use super::linux::{self, PidStat, Ticks, IDLE, LOAD_KINDS};
use super::SysinfoService;

impl SysinfoService {
    pub(super) fn system(&self) -> Value {
        let s = &self.statics;
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x64",
            "aarch64" => "arm64",
            other => other,
        };
        let hostname = System::host_name().unwrap_or_default();
        json!({
            "platform": "linux",
            "distro": s.distro,
            "release": s.release,
            "codename": s.codename,
            "kernel": s.kernel,
            "arch": arch,
            "hostname": hostname,
            "fqdn": hostname,
            "opshost_version": env!("CARGO_PKG_VERSION"),
        })
    }

    pub(super) fn cpu(&self) -> Value {
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

    pub(super) fn memory(&self) -> Result<Value> {
        let m = linux::read_meminfo()?;
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

    pub(super) fn own_rss(&self) -> u64 {
        let (pid, sys) = own_process(ProcessRefreshKind::nothing().with_memory());
        sys.process(pid).map_or(0, |p| p.memory())
    }

    pub(super) fn disk(&self) -> Value {
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

    pub(super) fn network(&self) -> Value {
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
            let internal = linux::is_loopback(name) || ips.iter().any(|n| n.addr.is_loopback());
            interfaces.push(json!({
                "iface": name,
                "ip4": ip4.map(|n| n.addr.to_string()).unwrap_or_default(),
                "ip6": ip6.map(|n| n.addr.to_string()).unwrap_or_default(),
                "mac": data.mac_address().to_string(),
                "internal": internal,
                "operstate": linux::read_trimmed(&format!("/sys/class/net/{name}/operstate"))
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
            "default_interface": linux::default_interface(),
            "latency": {},
            "interfaces": interfaces,
            "stats": stats,
            "connections": [],
        })
    }

    pub(super) fn processes(&self) -> Result<Value> {
        let stat =
            PidStat::read(Path::new("/proc/self/stat")).context("reading /proc/self/stat")?;
        let (pid, sys) = own_process(
            ProcessRefreshKind::nothing()
                .with_memory()
                .with_user(UpdateKind::Always)
                .with_cmd(UpdateKind::Always)
                .with_exe(UpdateKind::Always),
        );
        let me = sys.process(pid).context("reading this process")?;
        let cpu = {
            let st = self.state.lock();
            percent(st.delta.own, st.delta.all.total())
        };
        let rss = me.memory();
        let mem_total = linux::read_meminfo()?.get("MemTotal").copied().unwrap_or(0);
        let args: Vec<String> = me
            .cmd()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // By name when the user database knows the uid, as systeminformation shows it.
        let user = me
            .user_id()
            .map(|uid| {
                Users::new_with_refreshed_list()
                    .get_user_by_id(uid)
                    .map_or_else(|| uid.to_string(), |u| u.name().to_string())
            })
            .unwrap_or_default();
        let exe = me.exe();
        let command = exe
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| stat.comm.clone());
        let path = exe
            .and_then(Path::parent)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();

        Ok(json!({
            "core": [{
                "pid": std::process::id(),
                "parentPid": me.parent().map_or(0, |p| p.as_u32()),
                "name": stat.comm,
                "cpu": round2(cpu),
                "mem": round2(percent(rss, mem_total)),
                "priority": stat.priority(),
                "memVsz": me.virtual_memory() / 1024,
                "memRss": rss / 1024,
                "nice": stat.nice(),
                "started": utc_string(i64::try_from(me.start_time()).unwrap_or(0)),
                "state": stat.state(),
                "user": user,
                "command": command,
                "params": redact_params(args.get(1..).unwrap_or_default()).join(" "),
                "path": path,
            }],
            "clustering": [],
        }))
    }

    pub(super) fn threads(&self) -> Result<Value> {
        let tick_ms = 1000.0 / self.statics.clk_tck as f64;
        let mut threads: Vec<(u64, Value)> = Vec::new();
        for entry in std::fs::read_dir("/proc/self/task").context("listing /proc/self/task")? {
            let entry = entry?;
            let tid = entry.file_name().to_string_lossy().parse::<u64>();
            // A thread may exit between listing and reading; it is simply gone.
            let (Ok(tid), Some(stat)) = (tid, PidStat::read(&entry.path().join("stat"))) else {
                continue;
            };
            let cpu_ms = (stat.cpu_ticks() as f64 * tick_ms).round() as u64;
            let value = json!({
                "threadId": tid,
                "name": stat.comm,
                "cpuTimeMs": cpu_ms,
                "state": stat.state(),
            });
            threads.push((tid, value));
        }
        threads.sort_by_key(|(tid, _)| *tid);
        Ok(Value::Array(threads.into_iter().map(|(_, v)| v).collect()))
    }
}

impl Ticks {
    /// `(base, raw)` is `("currentLoad", "rawCurrentLoad")` or `("load", "rawLoad")`.
    pub(super) fn to_json(self, base: &str, raw: &str, out: &mut Map<String, Value>) {
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

/// "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz" -> "Xeon® CPU E5-2680 v4", as systeminformation trims it.
pub(super) fn brand(model: &str) -> String {
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
pub(super) fn nominal_ghz(model: &str) -> Option<f64> {
    let after = model.split_once('@')?.1.trim();
    after.strip_suffix("GHz")?.trim().parse().ok()
}

pub(super) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Command-line arguments as `system_information` shows them: the value of any flag that
/// carries a secret (`--admin-password secret`, `--password=secret`) becomes `***`.
pub(super) fn redact_params(args: &[String]) -> Vec<String> {
    let secret = |flag: &str| {
        let name = flag.trim_start_matches('-').to_ascii_lowercase();
        flag.starts_with('-')
            && ["password", "secret", "token", "key"]
                .iter()
                .any(|w| name.contains(w))
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

/// This process, refreshed for `kind` only (a fresh `System` so no other process is read).
fn own_process(kind: ProcessRefreshKind) -> (Pid, System) {
    let pid = Pid::from_u32(std::process::id());
    let mut sys = System::new();
    sys.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), false, kind);
    (pid, sys)
}
