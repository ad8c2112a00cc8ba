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
