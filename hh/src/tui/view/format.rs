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

/// `text` in lines of at most `width` characters, never cut short: each line ends, where it can,
/// just after one of `after` (a host breaks after a `.`, a path after a `/`), and a piece longer
/// than a line is split where it must. Nothing is dropped: the lines joined give `text` back.
pub fn wrap(text: &str, width: usize, after: &[char]) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_len = 0;
    for piece in text.split_inclusive(after) {
        let piece_len = piece.chars().count();
        if line_len + piece_len > width && line_len > 0 {
            lines.push(std::mem::take(&mut line));
            line_len = 0;
        }
        for c in piece.chars() {
            if line_len == width {
                lines.push(std::mem::take(&mut line));
                line_len = 0;
            }
            line.push(c);
            line_len += 1;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `value` [`wrap`]ped after a `label` column `indent` wide, in `width` columns: each line's lead
/// (the label on the first, spaces after it) and its piece of `value`.
pub fn labeled(
    label: &str,
    indent: usize,
    value: &str,
    width: usize,
    after: &[char],
) -> Vec<(String, String)> {
    wrap(value, width.saturating_sub(indent), after)
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let lead = if i == 0 {
                format!("{label:<indent$}")
            } else {
                " ".repeat(indent)
            };
            (lead, chunk)
        })
        .collect()
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

    #[test]
    fn wrapped_text_breaks_after_separators_and_loses_nothing() {
        let host = "very-long-label.another-label.registry.example.test";
        assert_eq!(
            wrap(host, 20, &['.']),
            [
                "very-long-label.",
                "another-label.",
                "registry.example.",
                "test"
            ]
        );
        // A label longer than a line is split where it must.
        assert_eq!(wrap("abcdefghij.k", 4, &['.']), ["abcd", "efgh", "ij.k"]);
        assert_eq!(wrap("", 10, &['.']), [""]);
        assert_eq!(wrap("short.test", 80, &['.']), ["short.test"]);
        for width in 1..60 {
            let lines = wrap(host, width, &['.']);
            assert_eq!(lines.concat(), host, "width {width}");
            assert!(
                lines.iter().all(|line| line.chars().count() <= width),
                "width {width}"
            );
        }
    }
}
