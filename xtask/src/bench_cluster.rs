//! `cargo xtask bench cluster`: replication figures on this machine. A 3-server NATS JetStream
//! cluster on loopback (stream replicas 3), node A and node C with clustering on: the lag from
//! a write acknowledged on A to the record being readable on C, sampled while A takes a paced
//! load of 1,000 single-record inserts per second; then single-record insert throughput (wrk
//! at concurrency 16) on A against a node with clustering off, alternating, for
//! `OPSHOST_BENCH_ROUNDS` rounds (default 2). `OPSHOST_BENCH_CLUSTER_VARIANTS` (`;`-separated
//! variants, each `KEY=VALUE,KEY=VALUE` of server environment) adds one more clustered node per
//! variant on the same stream, measured the same way in each round (an A/B in one build).
//! Every run also prints each process's CPU (user + system) per write and the NATS servers'
//! messages per write (their `/varz`). `OPSHOST_BENCH_CLUSTER_BASE` (a dist folder: opshost,
//! operations/, precompiled/) runs a second cluster of that build, with NATS servers of its
//! own, measured in the same rounds (an interleaved A/B of two builds).

use super::{free_port, post, server_command_of, stop, wait_ready, wrk};
use anyhow::{bail, Context, Result};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RATE: u64 = 1_000;
const LOAD_SECONDS: u64 = 10;
const WRITERS: u64 = 8;

pub fn run() -> Result<()> {
    let base = std::env::temp_dir().join(format!("opshost-bench-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let mut children = Vec::new();
    let result = (|| -> Result<()> {
        let main = Setup::start(&crate::paths::dist(), &base.join("main"), &mut children)?;
        let (a, c) = (main.a, main.c);
        // `OPSHOST_BENCH_CLUSTER_BASE`: a dist folder (opshost, operations/, precompiled/) of
        // another build, run as a second cluster with NATS servers of its own, measured in the
        // same rounds: an interleaved A/B of builds (one cluster's consumers cost its own
        // NATS servers only).
        let other = match std::env::var("OPSHOST_BENCH_CLUSTER_BASE") {
            Ok(dist) if !dist.trim().is_empty() => Some(Setup::start(Path::new(dist.trim()), &base.join("other"), &mut children)?),
            _ => None,
        };
        let mut variant_pids = Vec::new();
        let variants: Vec<(String, u16)> = std::env::var("OPSHOST_BENCH_CLUSTER_VARIANTS")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| Ok((v.to_string(), free_port()?)))
            .collect::<Result<_>>()?;
        for (n, (variant, port)) in variants.iter().enumerate() {
            let name = format!("node_v{n}");
            let mut cmd = node_command(&crate::paths::dist(), &base.join(&name), *port, Some((&main.urls, &name)))?;
            for pair in variant.split(',') {
                let (key, value) = pair.split_once('=').context("a variant is KEY=VALUE,...")?;
                cmd.env(key.trim(), value.trim());
            }
            children.push(cmd.spawn().context("starting opshost")?);
            variant_pids.push(children.last().map(Child::id).unwrap_or(0));
        }
        let single = free_port()?;
        children.push(spawn_node(&crate::paths::dist(), &base.join("single"), single, None)?);
        let single_pid = children.last().map(Child::id).unwrap_or(0);
        for port in [single].into_iter().chain(variants.iter().map(|(_, p)| *p)) {
            wait_ready(port, Duration::from_secs(60))?;
        }
        post(single, r#"{"operation":"create_table","database":"bench","table":"dog","primary_key":"id"}"#)?;
        main.ready()?;
        if let Some(other) = &other {
            other.ready()?;
        }
        // For `perf record -p` while the bench runs.
        println!("processes: {}", main.pids.iter().map(|(n, p)| format!("{n} {p}")).collect::<Vec<_>>().join(", "));
        println!("load average before: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
        lag(a, c, 0)?;
        for (n, (variant, port)) in variants.iter().enumerate() {
            print!("variant {variant}: ");
            lag(*port, c, n as u64 + 1)?;
        }
        let seconds = 10;
        let rounds: u32 = std::env::var("OPSHOST_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(2);
        // Every run inserts ids of its own (`run`): a repeated id would be skipped, not written.
        let insert = |run: u32| "local seen = 0\nsetup = function(thread)\n  thread:set(\"tid\", seen)\n  seen = seen + 1\nend\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  local id = RUN * 1000000000 + tid * 100000000 + counter\n  return wrk.format(nil, nil, nil, string.format('{\"operation\":\"insert\",\"database\":\"bench\",\"table\":\"dog\",\"records\":[{\"id\":%.0f,\"name\":\"n\",\"breed\":\"b\",\"age\":1}]}', id))\nend\n".replace("RUN", &(run + 1).to_string());
        let mut run = 0;
        // Off and on alternate, so a neighbour's load on this shared machine hits both alike.
        for round in 1..=rounds {
            let before = Split::take(&[("single", single_pid)], &[]);
            let off = wrk(single, seconds, &base, "", Some(&insert(run)))?;
            run += 1;
            println!("round {round}: single-record insert, clustering off, wrk -t2 -c16 -d{seconds}s: {off}");
            println!("  {}", before.report(&off, seconds));
            let mut measure = |setup: &Setup, what: &str| -> Result<()> {
                let before = setup.split();
                let on = wrk(setup.a, seconds, &base, "", Some(&insert(run)))?;
                run += 1;
                println!("round {round}: single-record insert, clustering on{what} (acknowledged by JetStream, 3 replicas), wrk -t2 -c16 -d{seconds}s: {on}");
                println!("  {}", before.report(&on, seconds));
                Ok(())
            };
            // The base build goes first in odd rounds, second in even ones.
            match &other {
                Some(other) if round % 2 == 1 => {
                    measure(other, ", base build")?;
                    measure(&main, "")?;
                }
                Some(other) => {
                    measure(&main, "")?;
                    measure(other, ", base build")?;
                }
                None => measure(&main, "")?,
            }
            for ((variant, port), pid) in variants.iter().zip(&variant_pids) {
                // The variant's node in place of node A (C and the NATS servers are shared).
                let pids: Vec<(&str, u32)> = main.pids.iter().filter(|(n, _)| n != "node A").map(|(n, p)| (n.as_str(), *p)).chain([("variant node", *pid)]).collect();
                let before = Split::take(&pids, &main.monitors);
                let on = wrk(*port, seconds, &base, "", Some(&insert(run)))?;
                run += 1;
                println!("round {round}: single-record insert, clustering on, variant {variant}, wrk -t2 -c16 -d{seconds}s: {on}");
                println!("  {}", before.report(&on, seconds));
            }
        }
        println!("load average after: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
        Ok(())
    })();
    for child in children.iter_mut().rev() {
        stop(child);
    }
    let _ = std::fs::remove_dir_all(&base);
    result
}

/// Three NATS servers and clustered nodes A and C of one build.
struct Setup {
    urls: String,
    a: u16,
    c: u16,
    /// (name, pid) of the NATS servers, node A and node C.
    pids: Vec<(String, u32)>,
    /// The NATS servers' monitoring ports (`/varz`).
    monitors: Vec<u16>,
}

impl Setup {
    fn start(dist: &Path, dir: &Path, children: &mut Vec<Child>) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (urls, monitors) = start_nats(dir, children)?;
        let mut pids: Vec<(String, u32)> = children[children.len() - 3..].iter().enumerate().map(|(i, c)| (format!("nats n{i}"), c.id())).collect();
        let a = free_port()?;
        children.push(spawn_node(dist, &dir.join("a"), a, Some((&urls, "node_a")))?);
        pids.push(("node A".into(), children.last().map(Child::id).unwrap_or(0)));
        let c = free_port()?;
        children.push(spawn_node(dist, &dir.join("c"), c, Some((&urls, "node_c")))?);
        pids.push(("node C".into(), children.last().map(Child::id).unwrap_or(0)));
        Ok(Self { urls, a, c, pids, monitors })
    }

    /// Waits for both nodes, makes the table on A and waits until C has it.
    fn ready(&self) -> Result<()> {
        for port in [self.a, self.c] {
            wait_ready(port, Duration::from_secs(60))?;
        }
        post(self.a, r#"{"operation":"create_table","database":"bench","table":"dog","primary_key":"id"}"#)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while post(self.c, r#"{"operation":"describe_table","database":"bench","table":"dog"}"#).is_err() {
            if Instant::now() > deadline {
                bail!("the table did not reach node C");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn split(&self) -> Split {
        let pids: Vec<(&str, u32)> = self.pids.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        Split::take(&pids, &self.monitors)
    }
}

/// CPU seconds (user + system) of each process and the NATS servers' message counters at
/// one moment: two of them give the CPU per write of each process during a run.
struct Split {
    cpu: Vec<(String, u32, f64)>,
    monitors: Vec<u16>,
    msgs: Option<(u64, u64)>,
}

impl Split {
    fn take(pids: &[(&str, u32)], monitors: &[u16]) -> Self {
        Self { cpu: pids.iter().map(|(n, p)| (n.to_string(), *p, cpu_seconds(*p))).collect(), monitors: monitors.to_vec(), msgs: nats_msgs(monitors) }
    }

    /// CPU ms per write of each process, and NATS messages per write, since `self`; the
    /// writes are wrk's req/s times its seconds.
    fn report(&self, wrk_line: &str, seconds: u32) -> String {
        let rps: f64 = wrk_line.split_whitespace().nth(1).and_then(|r| r.parse().ok()).unwrap_or(0.0);
        let writes = (rps * seconds as f64).max(1.0);
        let mut total = 0.0;
        let mut nats = 0.0;
        let mut parts = Vec::new();
        for (name, pid, before) in &self.cpu {
            let ms = (cpu_seconds(*pid) - before) * 1e3 / writes;
            total += ms;
            if name.starts_with("nats") {
                nats += ms;
            }
            parts.push(format!("{name} {ms:.3}"));
        }
        let mut line = format!("CPU ms per write: {} (NATS together {nats:.3}, all {total:.3})", parts.join(", "));
        if let (Some((in0, out0)), Some((in1, out1))) = (self.msgs, nats_msgs(&self.monitors)) {
            line.push_str(&format!("; NATS messages per write (3 servers, /varz): in {:.2}, out {:.2}", (in1 - in0) as f64 / writes, (out1 - out0) as f64 / writes));
        }
        line
    }
}

/// utime + stime of a process, seconds (0 when it is gone).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux's USER_HZ is 100 on every supported architecture.
    (ticks(11) + ticks(12)) / 100.0
}

/// Messages in and out of the NATS servers together (clients, routes and JetStream's own).
fn nats_msgs(monitors: &[u16]) -> Option<(u64, u64)> {
    if monitors.is_empty() {
        return None;
    }
    monitors.iter().try_fold((0, 0), |(i, o), port| {
        let varz: serde_json::Value = serde_json::from_str(&ureq::get(&format!("http://127.0.0.1:{port}/varz")).call().ok()?.into_string().ok()?).ok()?;
        Some((i + varz.get("in_msgs")?.as_u64()?, o + varz.get("out_msgs")?.as_u64()?))
    })
}

/// Paced inserts on A (`WRITERS` threads, `RATE` per second together) while a prober reads the
/// newest acknowledged id on C until it is there: each probe is one lag sample.
fn lag(a: u16, c: u16, run: u64) -> Result<()> {
    let stop_flag = Arc::new(AtomicBool::new(false));
    // (id, acknowledged at) of the newest acknowledged write.
    let newest: Arc<Mutex<Option<(u64, Instant)>>> = Arc::new(Mutex::new(None));
    let written = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (newest, written) = (newest.clone(), written.clone());
        writers.push(std::thread::spawn(move || -> Result<()> {
            let interval = Duration::from_micros(1_000_000 * WRITERS / RATE);
            for n in 0..RATE * LOAD_SECONDS / WRITERS {
                let due = started + interval * n as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let id = run * 1_000_000_000_000 + w * 10_000_000 + n;
                post(a, &format!(r#"{{"operation":"insert","database":"bench","table":"dog","records":[{{"id":{id},"name":"n"}}]}}"#))?;
                written.fetch_add(1, Ordering::Relaxed);
                *newest.lock().expect("lock") = Some((id, Instant::now()));
            }
            Ok(())
        }));
    }
    let prober = {
        let (newest, stop_flag) = (newest.clone(), stop_flag.clone());
        std::thread::spawn(move || -> Result<Vec<Duration>> {
            let mut samples = Vec::new();
            while !stop_flag.load(Ordering::Relaxed) {
                let Some((id, acked)) = *newest.lock().expect("lock") else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let body = format!(r#"{{"operation":"search_by_hash","database":"bench","table":"dog","hash_values":[{id}],"get_attributes":["id"]}}"#);
                let give_up = Instant::now() + Duration::from_secs(30);
                loop {
                    if post(c, &body)?.contains(&format!("\"id\":{id}")) {
                        samples.push(acked.elapsed());
                        break;
                    }
                    if Instant::now() > give_up {
                        bail!("id {id} did not reach node C within 30 s");
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(samples)
        })
    };
    for w in writers {
        w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    }
    let elapsed = started.elapsed();
    stop_flag.store(true, Ordering::Relaxed);
    let mut samples = prober.join().map_err(|_| anyhow::anyhow!("prober panicked"))??;
    samples.sort();
    if samples.is_empty() {
        bail!("no lag samples");
    }
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let done = written.load(Ordering::Relaxed);
    println!(
        "replication lag A -> C (write acknowledged on A -> readable on C) under {done} inserts in {:.1} s ({:.0}/s, {WRITERS} writers): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples; a sample includes one search_by_hash round trip)",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        samples.len()
    );
    Ok(())
}

/// Three routed JetStream servers on free loopback ports; their client URLs and monitoring
/// ports.
fn start_nats(base: &Path, children: &mut Vec<Child>) -> Result<(String, Vec<u16>)> {
    let bin = ["/usr/bin/nats-server", "/usr/sbin/nats-server"].into_iter().map(PathBuf::from).find(|p| p.is_file());
    let bin = match bin {
        Some(b) => b,
        None if crate::apt_install(&["nats-server"]) => PathBuf::from("/usr/sbin/nats-server"),
        None => bail!("bench cluster needs NATS: apt-get install nats-server"),
    };
    let ports: Vec<(u16, u16)> = (0..3).map(|_| Ok((free_port()?, free_port()?))).collect::<Result<_>>()?;
    let monitors: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_>>()?;
    let routes: Vec<String> = ports.iter().map(|(_, r)| format!("nats-route://127.0.0.1:{r}")).collect();
    for (i, (client, route)) in ports.iter().enumerate() {
        let store = base.join(format!("nats{i}"));
        std::fs::create_dir_all(&store)?;
        let conf = base.join(format!("nats{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\ncluster {{ name: opshost_bench, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                monitors[i],
                store.display(),
                routes.join(", ")
            ),
        )?;
        children.push(Command::new(&bin).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().context("starting nats-server")?);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", *client)).is_err() {
            if Instant::now() > deadline {
                bail!("nats-server did not listen on {client}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok((ports.iter().map(|(c, _)| format!("nats://127.0.0.1:{c}")).collect::<Vec<_>>().join(","), monitors))
}

fn spawn_node(dist: &Path, root: &Path, port: u16, cluster: Option<(&str, &str)>) -> Result<Child> {
    node_command(dist, root, port, cluster)?.spawn().context("starting opshost")
}

fn node_command(dist: &Path, root: &Path, port: u16, cluster: Option<(&str, &str)>) -> Result<Command> {
    std::fs::create_dir_all(root)?;
    let mut cmd = server_command_of(dist, root, port);
    if let Some((urls, name)) = cluster {
        cmd.env("CLUSTERING_ENABLED", "true")
            .env("CLUSTERING_NODENAME", name)
            .env("CLUSTERING_NATS_SERVERS", urls)
            .env("CLUSTERING_NATS_REPLICAS", "3");
    }
    Ok(cmd)
}
