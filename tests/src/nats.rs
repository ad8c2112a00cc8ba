//! A JetStream cluster of real `nats-server` processes on loopback for the cluster tests: three
//! servers routed to each other, each with its own store folder, on free ports. A test that
//! kills servers starts its own; others may use the run's shared one (`OPSHOST_TEST_NATS_URLS`,
//! started by `cargo xtask test`).

use crate::{free_port, TempRoot};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `nats-server` as `cargo xtask test` found it (`OPSHOST_TEST_NATS_SERVER`), else on PATH.
pub fn server_binary() -> String {
    std::env::var("OPSHOST_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".to_string())
}

pub struct NatsCluster {
    dir: TempRoot,
    ports: Vec<(u16, u16)>,
    children: Vec<Option<Child>>,
}

impl NatsCluster {
    /// Starts `n` routed JetStream servers and waits until each accepts clients.
    pub fn start(n: usize) -> Self {
        let dir = TempRoot::new();
        let ports = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut cluster = Self { dir, ports, children: (0..n).map(|_| None).collect() };
        for i in 0..n {
            cluster.start_server(i);
        }
        cluster
    }

    /// The client URLs, comma-separated (the form of `clustering.nats.servers`).
    pub fn urls(&self) -> String {
        self.ports.iter().map(|(c, _)| format!("nats://127.0.0.1:{c}")).collect::<Vec<_>>().join(",")
    }

    /// Starts server `i` (again, after [`NatsCluster::kill`]: it rejoins with its store).
    pub fn start_server(&mut self, i: usize) {
        let (client, route) = self.ports[i];
        let routes: Vec<String> = self.ports.iter().map(|(_, r)| format!("nats-route://127.0.0.1:{r}")).collect();
        let store = self.dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&store).expect("store dir");
        let config = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{client}\njetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 2GB }}\ncluster {{ name: opshost_test, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
            store.display(),
            routes.join(", ")
        );
        let path = self.dir.path().join(format!("n{i}.conf"));
        std::fs::write(&path, config).expect("nats config");
        let log = std::fs::File::create(self.dir.path().join(format!("n{i}.log"))).expect("nats log");
        let child = Command::new(server_binary())
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting nats-server (apt-get install nats-server)");
        self.children[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&([127, 0, 0, 1], client).into(), Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "nats-server n{i} did not listen on {client}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// Publishes `payload` on `subject` through the first server of `urls` (the NATS text
/// protocol over a plain socket) and returns JetStream's acknowledgement, e.g.
/// `{"stream":"T1","seq":7}`: the cluster tests put changes "from" nodes that do not exist
/// (chosen names and timestamps) on a stream.
pub fn publish(urls: &str, subject: &str, payload: &[u8]) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let url = urls.split(',').next().expect("a NATS url");
    let addr = url.trim().trim_start_matches("nats://");
    let stream = TcpStream::connect(addr).expect("connecting to NATS");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).expect("INFO");
    assert!(line.starts_with("INFO"), "not a NATS server: {line}");
    let mut out = Vec::new();
    out.extend_from_slice(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nSUB _INBOX.opshost_test 1\r\n");
    out.extend_from_slice(format!("PUB {subject} _INBOX.opshost_test {}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    writer.write_all(&out).expect("publishing");
    loop {
        line.clear();
        reader.read_line(&mut line).expect("reading from NATS");
        if line.starts_with("PING") {
            writer.write_all(b"PONG\r\n").expect("pong");
        } else if line.starts_with("-ERR") {
            panic!("NATS refused the publish: {line}");
        } else if let Some(rest) = line.strip_prefix("MSG ") {
            let len: usize = rest.split_whitespace().last().and_then(|n| n.parse().ok()).expect("MSG length");
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body).expect("MSG body");
            body.truncate(len);
            return String::from_utf8_lossy(&body).into_owned();
        }
    }
}
