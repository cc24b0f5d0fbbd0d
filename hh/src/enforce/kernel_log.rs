//! The programs' aya-log records (refusals, a full map) in hh's logs, under the target
//! [`TARGET`], only when hh's log filter asks for them (`HH_LOG=hh::ebpf=info`).
//!
//! Not asked, the loader sets aya-log's level global to "off": it is a load-time constant,
//! so the verifier drops the logging code (connect4 translates to 1,320 bytes instead of
//! 10,680), no record is ever written, and no reader runs.

use std::os::fd::AsRawFd as _;

use aya_log::EbpfLogger;
use tokio::io::{Interest, unix::AsyncFd};

/// The tracing target of the programs' records (the eBPF module that wrote one is a field).
pub const TARGET: &str = "hh::ebpf";

/// The most verbose level the installed tracing filter enables for [`TARGET`], if it is
/// `info` or more verbose; `None` (the default filter, `warn`) leaves kernel logging off.
pub fn wanted_level() -> Option<log::Level> {
    if tracing::enabled!(target: TARGET, tracing::Level::TRACE) {
        Some(log::Level::Trace)
    } else if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
        Some(log::Level::Debug)
    } else if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        Some(log::Level::Info)
    } else {
        None
    }
}

/// aya-log's level global for `level`: its levels count from 1 (error) to 5 (trace), as
/// `log`'s do; 0 logs nothing.
pub fn level_global(level: Option<log::Level>) -> u8 {
    level.map_or(0, |level| level as u8)
}

/// A `log::Log` that re-emits aya-log's records as tracing events under [`TARGET`].
pub struct TracingLog;

impl log::Log for TracingLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        // The record's own target is the eBPF module (`hh_bpf::programs::route`).
        let program = record.target();
        let message = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(target: TARGET, program, "{message}"),
            log::Level::Warn => tracing::warn!(target: TARGET, program, "{message}"),
            log::Level::Info => tracing::info!(target: TARGET, program, "{message}"),
            log::Level::Debug => tracing::debug!(target: TARGET, program, "{message}"),
            log::Level::Trace => tracing::trace!(target: TARGET, program, "{message}"),
        }
    }

    fn flush(&self) {}
}

/// Reads the programs' records as they come, on the current tokio runtime, for as long as it
/// runs.
pub fn forward(logger: EbpfLogger<TracingLog>) -> std::io::Result<()> {
    let fd = logger.as_raw_fd();
    // SAFETY: the descriptor is the logger's ring buffer map, which the logger owns and never
    // closes or replaces while it lives; the `AsyncFd` owns the logger.
    let mut logger = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }
        .map_err(|error| error.into_parts().1)?;
    tokio::spawn(async move {
        loop {
            let Ok(mut ready) = logger.readable_mut().await else {
                tracing::warn!(target: TARGET, fd, "stopped reading the programs' log records");
                return;
            };
            ready.get_inner_mut().flush();
            ready.clear_ready();
        }
    });
    Ok(())
}
