//! A line diff of two versions of a rules file, for a person deciding whether to trust a change.
//! Pure; the longest-common-subsequence table is bounded, past which the whole middle is shown
//! as removed and added (never wrong, only less compact).

/// The largest LCS table computed (lines before × lines after).
const MAX_CELLS: usize = 4_000_000;

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
    let mut out = String::new();
    for line in &old[..prefix] {
        push(&mut out, ' ', line);
    }
    if old_mid.len().saturating_mul(new_mid.len()) > MAX_CELLS {
        old_mid.iter().for_each(|line| push(&mut out, '-', line));
        new_mid.iter().for_each(|line| push(&mut out, '+', line));
    } else {
        middle(&mut out, old_mid, new_mid);
    }
    for line in &old[old.len() - suffix..] {
        push(&mut out, ' ', line);
    }
    out
}

fn middle(out: &mut String, old: &[&str], new: &[&str]) {
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
            push(out, ' ', old[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < old.len()
            && (j == new.len() || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1])
        {
            // Removals first, as `diff -u` shows them.
            push(out, '-', old[i]);
            i += 1;
        } else {
            push(out, '+', new[j]);
            j += 1;
        }
    }
}

fn push(out: &mut String, mark: char, line: &str) {
    out.push(mark);
    out.push(' ');
    out.push_str(line);
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
}
