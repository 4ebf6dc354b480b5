//! Untrusted text (agent names, models, run ids, file names from logs) never
//! reaches a terminal raw: control characters, escape sequences and bidi
//! controls are replaced by a visible `�`.

use std::borrow::Cow;

/// Whether `c` could move the cursor, recolour, or reorder what a terminal shows.
#[must_use]
pub fn is_unsafe(c: char) -> bool {
    c.is_control() // C0 (ESC, BEL, CR …), DEL and C1 (CSI U+009B …)
        || matches!(c,
            '\u{200E}' | '\u{200F}'            // LRM, RLM
            | '\u{202A}'..='\u{202E}'          // LRE RLE PDF LRO RLO
            | '\u{2066}'..='\u{2069}'          // LRI RLI FSI PDI
            | '\u{061C}'                       // ALM
            | '\u{FEFF}') // BOM / zero-width no-break space
}

/// Replaces every unsafe character with U+FFFD; borrows when nothing changes.
#[must_use]
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(sanitize("planner → writer"), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_sequences_and_controls_are_neutralized() {
        assert_eq!(
            sanitize("evil\x1b[2J\x1b]0;title\x07"),
            "evil\u{FFFD}[2J\u{FFFD}]0;title\u{FFFD}"
        );
        assert_eq!(sanitize("a\rb\nc\td"), "a\u{FFFD}b\u{FFFD}c\u{FFFD}d");
        assert_eq!(sanitize("csi\u{9b}31m"), "csi\u{FFFD}31m");
        assert_eq!(sanitize("del\u{7f}"), "del\u{FFFD}");
    }

    #[test]
    fn bidi_overrides_are_neutralized() {
        assert_eq!(sanitize("user\u{202E}gnp.exe"), "user\u{FFFD}gnp.exe");
        assert_eq!(sanitize("\u{2066}x\u{2069}"), "\u{FFFD}x\u{FFFD}");
    }
}
