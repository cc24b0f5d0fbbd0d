//! A line diff of two versions of a rules file, for a person deciding whether to trust a change.
//! Pure; the longest-common-subsequence table is bounded, past which the whole middle is shown
//! as removed and added (never wrong, only less compact).
//!
//! The text may come from a session, which would like the person to see something else than
//! what they trust: every control character (C0, DEL, C1: terminal escapes) and every bidi
//! formatting character is shown escaped (`\u{1b}`), and unchanged lines are cut to three
//! around each change, so a change cannot hide in a long file.

/// The largest LCS table computed (lines before × lines after).
const MAX_CELLS: usize = 4_000_000;

/// Unchanged lines shown before and after each change.
const CONTEXT: usize = 3;

/// A unified-style diff of `before` → `after`: `-` removed lines, `+` added lines, two
/// spaces for unchanged ones; empty when they are equal.
pub fn line_diff(before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    if old == new {
        return "  (only line endings differ)\n".into();
    }
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (old_mid, new_mid) = (
        &old[prefix..old.len() - suffix],
        &new[prefix..new.len() - suffix],
    );
    let mut marked: Vec<(char, &str)> = old[..prefix].iter().map(|l| (' ', *l)).collect();
    if old_mid.len().saturating_mul(new_mid.len()) > MAX_CELLS {
        marked.extend(old_mid.iter().map(|line| ('-', *line)));
        marked.extend(new_mid.iter().map(|line| ('+', *line)));
    } else {
        middle(&mut marked, old_mid, new_mid);
    }
    marked.extend(old[old.len() - suffix..].iter().map(|l| (' ', *l)));
    render(&marked)
}

/// The marked lines, unchanged runs cut to [`CONTEXT`] lines beside each change.
fn render(marked: &[(char, &str)]) -> String {
    let changed: Vec<usize> = (0..marked.len()).filter(|&i| marked[i].0 != ' ').collect();
    let near = |i: usize| {
        changed
            .iter()
            .any(|&c| i + CONTEXT >= c && i <= c + CONTEXT)
    };
    let mut out = String::new();
    let mut skipped = 0;
    for (i, (mark, line)) in marked.iter().enumerate() {
        if *mark == ' ' && !near(i) {
            skipped += 1;
            continue;
        }
        if skipped > 0 {
            out.push_str(&format!("  … {skipped} unchanged lines\n"));
            skipped = 0;
        }
        push(&mut out, *mark, line);
    }
    if skipped > 0 {
        out.push_str(&format!("  … {skipped} unchanged lines\n"));
    }
    out
}

/// `line` with every control and bidi formatting character escaped.
pub fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if (c.is_control() && c != '\t') || crate::terminal_text::rewrites_display(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn middle<'a>(out: &mut Vec<(char, &'a str)>, old: &[&'a str], new: &[&'a str]) {
    // lcs[i][j]: the LCS length of old[i..] and new[j..].
    let width = new.len() + 1;
    let mut lcs = vec![0u32; (old.len() + 1) * width];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lcs[i * width + j] = if old[i] == new[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            out.push((' ', old[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < old.len()
            && (j == new.len() || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1])
        {
            // Removals first, as `diff -u` shows them.
            out.push(('-', old[i]));
            i += 1;
        } else {
            out.push(('+', new[j]));
            j += 1;
        }
    }
}

fn push(out: &mut String, mark: char, line: &str) {
    out.push(mark);
    out.push(' ');
    out.push_str(&printable(line));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_added_removed_and_kept_lines() {
        assert_eq!(line_diff("a\nb\n", "a\nb\n"), "");
        assert_eq!(line_diff("", "x\n"), "+ x\n");
        assert_eq!(line_diff("x\n", ""), "- x\n");
        assert_eq!(
            line_diff(
                "# keep\nallowlist = [\"a\"]\nend\n",
                "# keep\nallowlist = [\"*\"]\nend\n"
            ),
            "  # keep\n- allowlist = [\"a\"]\n+ allowlist = [\"*\"]\n  end\n"
        );
        assert_eq!(line_diff("a\nb\nc\n", "a\nc\n"), "  a\n- b\n  c\n");
        assert_eq!(line_diff("a\nc\n", "a\nb\nc\n"), "  a\n+ b\n  c\n");
        assert_eq!(line_diff("a", "a\n"), "  (only line endings differ)\n");
    }

    #[test]
    fn terminal_escapes_and_bidi_controls_are_shown_escaped() {
        let diff = line_diff(
            "",
            "# \u{1b}[1A\u{1b}[2K in force\u{9b}2K \u{202e}evil\tok\n",
        );
        assert_eq!(
            diff,
            "+ # \\u{1b}[1A\\u{1b}[2K in force\\u{9b}2K \\u{202e}evil\tok\n"
        );
        assert!(!diff.contains('\u{1b}') && !diff.contains('\u{202e}'));
    }

    #[test]
    fn a_change_in_a_long_file_shows_three_lines_around_it() {
        let before: String = (0..20).map(|n| format!("line {n}\n")).collect();
        let after = before.replace("line 10\n", "line ten\n");
        assert_eq!(
            line_diff(&before, &after),
            "  … 7 unchanged lines\n  line 7\n  line 8\n  line 9\n- line 10\n+ line ten\n  \
             line 11\n  line 12\n  line 13\n  … 6 unchanged lines\n"
        );
    }
}
