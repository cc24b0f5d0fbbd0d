//! The programs' aya-log records, on the real kernel: written for refusals when the loader
//! asks for them, and not at all by default (aya-log's level is a load-time constant).

mod support;

use std::sync::{Arc, Mutex};

use hh::enforce::ebpf::{LoadOptions, Ports, Programs};
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
