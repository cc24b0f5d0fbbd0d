//! The programs' aya-log records, on the real kernel: written for refusals when the loader
//! asks for them, and not at all by default (aya-log's level is a load-time constant).

mod support;

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use hh::enforce::{
    ebpf::{LoadOptions, Ports, Programs},
    kernel_log,
};
use serde_json::json;
use support::{
    kernel::{Cgroup, NetNs, client},
    require_root,
};

const PORTS: Ports = Ports {
    proxy: 15001,
    dns: 15053,
};

/// A `log::Log` that keeps every record's message.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        self.0.lock().unwrap().push(line);
    }

    fn flush(&self) {}
}

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Refuses a raw socket and a UDP datagram in a fresh session.
fn refuse_twice(programs: &mut Programs) {
    let (netns, cgroup) = (NetNs::new(), Cgroup::new());
    let _links = programs.attach(&cgroup.path).expect("attach");
    let results = client(
        &netns,
        Some(&cgroup.path),
        &json!([
            {"op": "socket", "kind": "raw"},
            {"op": "udp", "host": "203.0.113.10", "port": 9999},
        ]),
    );
    assert!(results.iter().all(|result| result["ok"] == false));
}

/// Loads the programs with `log`, refuses a raw socket and a UDP datagram in a session, and
/// returns the records read.
fn records_of_refusals(log: Option<log::Level>) -> Vec<String> {
    let options = LoadOptions {
        log,
        ..LoadOptions::default()
    };
    let mut programs = Programs::load_with(PORTS, &options).expect("load");
    let capture = Capture::default();
    let mut logger = programs.kernel_log(capture.clone()).expect("log reader");
    refuse_twice(&mut programs);
    logger.flush();
    capture.0.lock().unwrap().clone()
}

#[test]
fn refusals_are_logged_when_asked() {
    if !require_root("refusals_are_logged_when_asked") {
        return;
    }
    let records = records_of_refusals(Some(log::Level::Info));
    assert_eq!(
        records,
        [
            "INFO refused a raw IP socket",
            "INFO refused UDP to 203.0.113.10:9999"
        ]
    );
}

#[test]
fn by_default_the_programs_log_nothing() {
    if !require_root("by_default_the_programs_log_nothing") {
        return;
    }
    assert_eq!(records_of_refusals(None), Vec::<String>::new());
}

#[tokio::test]
async fn the_agent_asks_for_records_when_its_filter_enables_hh_ebpf_and_logs_them() {
    if !require_root("the_agent_asks_for_records_when_its_filter_enables_hh_ebpf…") {
        return;
    }
    let output = Buffer::default();
    let writer = output.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,hh::ebpf=info"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // This test's thread only; the runtime is single-threaded, so the reader task runs here.
    let _default = tracing::subscriber::set_default(subscriber);
    let log = kernel_log::wanted_level();
    assert_eq!(log, Some(log::Level::Info));
    let options = LoadOptions {
        log,
        ..LoadOptions::default()
    };
    let mut programs = Programs::load_with(PORTS, &options).expect("load");
    let logger = programs.kernel_log(kernel_log::TracingLog).unwrap();
    kernel_log::forward(logger).unwrap();
    refuse_twice(&mut programs);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let output = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
    assert!(
        output.contains("INFO hh::ebpf: refused a raw IP socket")
            && output.contains("refused UDP to 203.0.113.10:9999"),
        "{output}"
    );
}
