//! Text that came from a session (a diff, a branch name, a command's output) made safe to
//! show on a person's terminal.

/// Characters that make text display other than it reads, without being control characters:
/// bidirectional overrides, isolates and marks, and the Unicode line and paragraph separators.
pub fn rewrites_display(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// Bytes from a session, made safe for a terminal: every control character but newline and
/// tab (escape sequences could retitle, recolour or rewrite the terminal) and every character
/// that [`rewrites_display`] shown as `?`.
pub fn for_terminal(bytes: &[u8]) -> Vec<u8> {
    text_for_terminal(&String::from_utf8_lossy(bytes)).into_bytes()
}

/// [`for_terminal`] for text (a branch name, git's message).
pub fn text_for_terminal(text: &str) -> String {
    text.chars()
        .map(|c| {
            if rewrites_display(c) || (c.is_control() && c != '\n' && c != '\t') {
                '?'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_sees_no_control_character_from_a_session() {
        let shown = for_terminal(b"ok\tline\n\x1b]0;owned\x07\x1b[2J\r\xc2\x9b");
        assert_eq!(
            String::from_utf8(shown).unwrap(),
            "ok\tline\n?]0;owned??[2J??"
        );
    }

    #[test]
    fn names_from_a_session_cannot_turn_text_around() {
        assert_eq!(
            text_for_terminal("hh/s/main\u{202e}txt.exe\u{2066}"),
            "hh/s/main?txt.exe?"
        );
    }
}
