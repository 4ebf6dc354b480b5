//! What `tokwatch config` prints: the key bindings in force, as a table to
//! read or as a `[bindings]` section to paste into a config file.

use std::fmt::Write as _;

use super::keys::{Action, KeyBinding, Keymap};
use crate::sanitize::sanitize;

/// Whether `action`'s keys differ from its built-in ones.
fn changed(keymap: &Keymap, action: Action) -> bool {
    keymap.keys(action) != action.default_keys()
}

/// The bindings as a table: action, keys, what it does; `*` marks the
/// actions the config file rebound. `origin` says where they come from
/// (e.g. "the defaults with [bindings] from '…'"); it is sanitized here.
#[must_use]
pub fn bindings_table(keymap: &Keymap, origin: &str) -> String {
    let rows: Vec<(bool, &str, String, &str)> = Action::ALL
        .iter()
        .map(|&action| {
            let keys = if keymap.keys(action).is_empty() {
                "(none)".to_owned()
            } else {
                sanitize(&keymap.describe(action)).into_owned()
            };
            (changed(keymap, action), action.name(), keys, action.help())
        })
        .collect();
    let name_width = rows
        .iter()
        .map(|r| r.1.chars().count())
        .chain(["ACTION".len()])
        .max()
        .unwrap_or(0);
    let keys_width = rows
        .iter()
        .map(|r| r.2.chars().count())
        .chain(["KEYS".len()])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "Key bindings in force: {}", sanitize(origin));
    if rows.iter().any(|r| r.0) {
        out.push_str("(* = changed by the config file)\n");
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "  {:name_width$}  {:keys_width$}  WHAT IT DOES",
        "ACTION", "KEYS"
    );
    for (changed, name, keys, help) in rows {
        let mark = if changed { '*' } else { ' ' };
        let line = format!("{mark} {name:name_width$}  {keys:keys_width$}  {help}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One key as a TOML string (quoted and escaped as TOML needs).
fn toml_key(key: &KeyBinding) -> String {
    toml::Value::String(key.to_string()).to_string()
}

/// The bindings as a `[bindings]` section that reads back as the same
/// keymap (every action listed, one key as a string, several as a list,
/// none as `[]`).
#[must_use]
pub fn bindings_toml(keymap: &Keymap, origin: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Key bindings in force: {}", sanitize(origin));
    out.push_str("[bindings]\n");
    for &action in Action::ALL {
        let keys: Vec<String> = keymap.keys(action).iter().map(toml_key).collect();
        let value = match keys.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let _ = writeln!(out, "{} = {value}", action.name());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn the_table_lists_every_action_and_marks_changes() {
        let settings =
            Settings::from_toml("[bindings]\nquit = \"x\"\nfreeze = []\nhelp = \"f1\"\n").unwrap();
        let table = bindings_table(&settings.keymap, "test");
        assert!(
            table.starts_with("Key bindings in force: test\n"),
            "{table}"
        );
        for &action in Action::ALL {
            assert!(table.contains(action.name()), "{action} missing:\n{table}");
        }
        let line = |name: &str| {
            table
                .lines()
                .find(|l| {
                    l.get(2..)
                        .is_some_and(|l| l.starts_with(&format!("{name} ")))
                })
                .unwrap_or_else(|| panic!("no {name} line in\n{table}"))
                .to_owned()
        };
        assert!(line("quit").starts_with("* quit"), "{table}");
        assert!(line("quit").contains(" x "), "{table}");
        assert!(line("freeze").starts_with('*') && line("freeze").contains("(none)"));
        assert!(line("help").contains("f1"));
        assert!(line("up").starts_with("  up") && line("up").contains("k, up"));
        // Without changes, no marker and no legend.
        let defaults = bindings_table(&Keymap::default(), "the defaults");
        assert!(!defaults.contains('*'), "{defaults}");
    }

    #[test]
    fn the_toml_reads_back_as_the_same_keymap() {
        for config in [
            "",
            "[bindings]\nquit = [\"x\", \"ctrl+q\"]\nfreeze = []\nhelp = \"\\\"\"\nfilter = \"\\\\\"\n",
            "[bindings]\nnext-sort = \"space\"\nreverse-sort = \"ctrl+plus\"\ntop = \"'\"\n",
        ] {
            let keymap = Settings::from_toml(config).unwrap().keymap;
            let text = bindings_toml(&keymap, "test\nwith a newline");
            assert!(text.starts_with("# Key bindings in force: test"), "{text}");
            let again = Settings::from_toml(&text)
                .unwrap_or_else(|e| panic!("{e}:\n{text}"))
                .keymap;
            assert_eq!(again, keymap, "{text}");
        }
    }

    #[test]
    fn control_characters_in_keys_never_reach_the_terminal() {
        let keymap = Settings::from_toml("[bindings]\nquit = \"\\u001b\"\n")
            .unwrap()
            .keymap;
        let table = bindings_table(&keymap, "'/tmp/\u{1b}[31mred'");
        assert!(!table.contains('\u{1b}'), "{table:?}");
        let text = bindings_toml(&keymap, "x");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert_eq!(Settings::from_toml(&text).unwrap().keymap, keymap);
    }
}
