//! How numbers read on screen: sizes, durations, times of day. Pure.

/// `512.0M`, `1.5G`: binary units, one decimal, as `docker stats` shows them.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut size = value as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value}B")
    } else {
        format!("{size:.1}{}", UNITS[unit])
    }
}

/// `42s`, `5m07s`, `3h02m`, `2d04h`.
pub fn duration(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// CPU time used, from microseconds: `0.25s`, `12.3s`, `5m07s`.
pub fn cpu(usec: u64) -> String {
    let seconds = usec as f64 / 1e6;
    if seconds < 10.0 {
        format!("{seconds:.2}s")
    } else if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        duration(usec / 1_000_000)
    }
}

/// `HH:MM:SS` (UTC) of an epoch-milliseconds time: the audit log's clock.
pub fn time_of_day(epoch_ms: u64) -> String {
    let seconds = epoch_ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// `host:port path` of a request, as one reads a URL.
pub fn target(host: &str, port: u16, path: Option<&str>) -> String {
    format!("{host}:{port}{}", path.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_docker_stats() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(512 << 20), "512.0M");
        assert_eq!(bytes(3 << 29), "1.5G");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(307), "5m07s");
        assert_eq!(duration(3 * 3600 + 120), "3h02m");
        assert_eq!(duration(2 * 86_400 + 4 * 3600), "2d04h");
        assert_eq!(cpu(250_000), "0.25s");
        assert_eq!(cpu(307_000_000), "5m07s");
        assert_eq!(time_of_day(86_400_000 + 3_723_000), "01:02:03");
    }
}
