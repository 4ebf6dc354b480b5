//! Key bindings: `"ctrl+c"` → [`KeyBinding`], the `[bindings]` table →
//! [`Keymap`], and the [`Action`]s keys stand for.
//!
//! Matching works on a canonical form so that what the user writes and what
//! terminals report agree: a character key never carries SHIFT (the shift is
//! in the character, `G` or `?`), and shift+tab is always `BackTab`. Terminals
//! disagree on whether an uppercase letter arrives with SHIFT; the canonical
//! form makes both reports the same key.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::TableKey;

/// One key with its modifiers, in canonical form (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyBinding {
    code: KeyCode,
    modifiers: KeyModifiers,
}

/// The modifiers a binding can name; others (hyper, meta) are ignored when
/// matching because few terminals report them.
const KNOWN_MODIFIERS: KeyModifiers = KeyModifiers::CONTROL
    .union(KeyModifiers::ALT)
    .union(KeyModifiers::SHIFT)
    .union(KeyModifiers::SUPER);

impl KeyBinding {
    /// A binding for `code` with `modifiers`, canonicalised.
    #[must_use]
    pub fn new(code: KeyCode, modifiers: KeyModifiers) -> Self {
        let mut modifiers = modifiers.intersection(KNOWN_MODIFIERS);
        let shift = modifiers.contains(KeyModifiers::SHIFT);
        let code = match code {
            KeyCode::Char(c) => {
                modifiers.remove(KeyModifiers::SHIFT);
                KeyCode::Char(if shift { to_upper(c) } else { c })
            }
            KeyCode::BackTab => {
                modifiers.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            KeyCode::Tab if shift => {
                modifiers.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        KeyBinding { code, modifiers }
    }

    /// The binding a key event stands for.
    #[must_use]
    pub fn from_event(event: &KeyEvent) -> Self {
        KeyBinding::new(event.code, event.modifiers)
    }

    /// The key code (canonical).
    #[must_use]
    pub fn code(&self) -> KeyCode {
        self.code
    }

    /// The modifiers (canonical: never SHIFT with a character).
    #[must_use]
    pub fn modifiers(&self) -> KeyModifiers {
        self.modifiers
    }

    /// Whether `event` is this key (releases never match).
    #[must_use]
    pub fn matches(&self, event: &KeyEvent) -> bool {
        event.kind != KeyEventKind::Release && KeyBinding::from_event(event) == *self
    }

    /// A plain character key, for the built-in defaults.
    const fn char(c: char) -> Self {
        KeyBinding {
            code: KeyCode::Char(c),
            modifiers: KeyModifiers::NONE,
        }
    }

    /// Ctrl plus a lowercase character, for the built-in defaults.
    const fn ctrl(c: char) -> Self {
        KeyBinding {
            code: KeyCode::Char(c),
            modifiers: KeyModifiers::CONTROL,
        }
    }

    /// A named key without modifiers, for the built-in defaults.
    const fn key(code: KeyCode) -> Self {
        KeyBinding {
            code,
            modifiers: KeyModifiers::NONE,
        }
    }
}

/// `c` in upper case when that is a single character (`ß` stays `ß`).
fn to_upper(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Why a key string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a key: {reason}")]
pub struct KeyParseError {
    /// The string as written.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for KeyBinding {
    type Err = KeyParseError;

    /// Parses `"q"`, `"G"`, `"?"`, `"ctrl+c"`, `"shift+tab"`, `"alt+x"`,
    /// `"f5"`, `"space"`, `"+"`, `"ctrl++"`. Modifier and key names are
    /// case-insensitive; a single character is taken literally, so `"G"` is
    /// shift+g.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| KeyParseError {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        // Surrounding spaces are forgiven, but " " alone is the space bar.
        let text = if input == " " { input } else { input.trim() };
        if text.is_empty() {
            return Err(fail("it is empty"));
        }
        // The key is after the last '+', unless the key itself is '+'.
        let (mods, key) = if text == "+" {
            ("", "+")
        } else if let Some(mods) = text.strip_suffix("++") {
            (mods, "+")
        } else {
            match text.rsplit_once('+') {
                Some((mods, key)) => (mods, key),
                None => ("", text),
            }
        };
        if key.is_empty() {
            return Err(fail("a modifier needs a key after it, e.g. 'ctrl+c'"));
        }
        let mut modifiers = KeyModifiers::NONE;
        if !mods.is_empty() {
            for name in mods.split('+') {
                modifiers |= match name.to_ascii_lowercase().as_str() {
                    "ctrl" | "control" => KeyModifiers::CONTROL,
                    "alt" => KeyModifiers::ALT,
                    "shift" => KeyModifiers::SHIFT,
                    "super" => KeyModifiers::SUPER,
                    "" => return Err(fail("empty modifier (two '+' in a row?)")),
                    other => {
                        return Err(fail(&format!(
                            "unknown modifier '{other}' (use ctrl, alt, shift or super)"
                        )));
                    }
                };
            }
        }
        let mut chars = key.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => {
                // Which symbol shift gives depends on the keyboard layout.
                if modifiers.contains(KeyModifiers::SHIFT) && !c.is_alphabetic() {
                    return Err(fail(
                        "shift only goes with letters and named keys; write the symbol itself (e.g. '?')",
                    ));
                }
                KeyCode::Char(c)
            }
            _ => named_key(&key.to_ascii_lowercase()).ok_or_else(|| {
                fail(
                    "unknown key name (use a single character or one of enter, esc, tab, \
                     backtab, backspace, delete, insert, home, end, pageup, pagedown, up, down, \
                     left, right, space, plus, f1..f24)",
                )
            })?,
        };
        Ok(KeyBinding::new(code, modifiers))
    }
}

/// The key a (lowercase, multi-character) name stands for.
fn named_key(name: &str) -> Option<KeyCode> {
    Some(match name {
        "enter" | "return" => KeyCode::Enter,
        "esc" | "escape" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backtab" => KeyCode::BackTab,
        "backspace" => KeyCode::Backspace,
        "delete" | "del" => KeyCode::Delete,
        "insert" | "ins" => KeyCode::Insert,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "pageup" | "pgup" => KeyCode::PageUp,
        "pagedown" | "pgdn" => KeyCode::PageDown,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "space" => KeyCode::Char(' '),
        "plus" => KeyCode::Char('+'),
        _ => {
            let n: u8 = name.strip_prefix('f')?.parse().ok()?;
            if !(1..=24).contains(&n) {
                return None;
            }
            KeyCode::F(n)
        }
    })
}

impl fmt::Display for KeyBinding {
    /// The form [`FromStr`] reads back, e.g. `ctrl+c`, `shift+tab`, `G`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (flag, name) in [
            (KeyModifiers::CONTROL, "ctrl+"),
            (KeyModifiers::ALT, "alt+"),
            (KeyModifiers::SUPER, "super+"),
            (KeyModifiers::SHIFT, "shift+"),
        ] {
            if self.modifiers.contains(flag) {
                f.write_str(name)?;
            }
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            // "ctrl++" reads back but is hard to read; "plus" is clearer.
            KeyCode::Char('+') if !self.modifiers.is_empty() => f.write_str("plus"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::BackTab => f.write_str("shift+tab"),
            KeyCode::F(n) => write!(f, "f{n}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::Insert => f.write_str("insert"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pageup"),
            KeyCode::PageDown => f.write_str("pagedown"),
            KeyCode::Up => f.write_str("up"),
            KeyCode::Down => f.write_str("down"),
            KeyCode::Left => f.write_str("left"),
            KeyCode::Right => f.write_str("right"),
            other => write!(f, "{}", format!("{other:?}").to_lowercase()),
        }
    }
}

impl<'de> Deserialize<'de> for KeyBinding {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// Declares [`Action`] once: variant, config name, help text, default keys.
macro_rules! actions {
    ($( $variant:ident = $name:literal, $help:literal, [$($key:expr),* $(,)?]; )*) => {
        /// What the user asked for; keys map to these through the [`Keymap`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum Action {
            $( #[doc = $help] $variant, )*
        }

        impl Action {
            /// Every action, in help-overlay order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The name used in `[bindings]` (kebab-case).
            #[must_use]
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }

            /// One line for the help overlay.
            #[must_use]
            pub fn help(self) -> &'static str {
                match self { $(Action::$variant => $help,)* }
            }

            /// The keys bound when the config does not say otherwise.
            #[must_use]
            pub fn default_keys(self) -> &'static [KeyBinding] {
                // A const per arm: calls are not promoted to 'static.
                match self {
                    $(Action::$variant => {
                        const KEYS: &[KeyBinding] = &[$($key),*];
                        KEYS
                    })*
                }
            }
        }
    };
}

actions! {
    Quit = "quit", "Quit", [KeyBinding::char('q'), KeyBinding::ctrl('c')];
    Help = "help", "Show or hide this help", [KeyBinding::char('?')];
    NextScreen = "next-screen", "Next screen", [KeyBinding::key(KeyCode::Tab)];
    PrevScreen = "prev-screen", "Previous screen", [KeyBinding::key(KeyCode::BackTab)];
    ScreenOverview = "screen-overview", "Overview screen", [KeyBinding::char('1')];
    ScreenRuns = "screen-runs", "Runs screen", [KeyBinding::char('2')];
    ScreenAgents = "screen-agents", "Agents screen", [KeyBinding::char('3')];
    ScreenSegments = "screen-segments", "Segments screen", [KeyBinding::char('4')];
    ScreenModels = "screen-models", "Models screen", [KeyBinding::char('5')];
    ScreenEvents = "screen-events", "Live events screen", [KeyBinding::char('6')];
    ScreenBudgets = "screen-budgets", "Budgets screen", [KeyBinding::char('7')];
    ScreenAdvice = "screen-advice", "Advice screen (what to change, what it saves)", [KeyBinding::char('8')];
    Up = "up", "Move up", [KeyBinding::char('k'), KeyBinding::key(KeyCode::Up)];
    Down = "down", "Move down", [KeyBinding::char('j'), KeyBinding::key(KeyCode::Down)];
    PageUp = "page-up", "Page up", [KeyBinding::key(KeyCode::PageUp)];
    PageDown = "page-down", "Page down", [KeyBinding::key(KeyCode::PageDown)];
    Top = "top", "Go to the first row", [KeyBinding::char('g'), KeyBinding::key(KeyCode::Home)];
    Bottom = "bottom", "Go to the last row", [KeyBinding::char('G'), KeyBinding::key(KeyCode::End)];
    DrillDown = "drill-down", "Open the selected row", [KeyBinding::key(KeyCode::Enter)];
    Back = "back", "Go back / close", [KeyBinding::key(KeyCode::Esc)];
    Filter = "filter", "Filter rows", [KeyBinding::char('/')];
    NextSort = "next-sort", "Sort by the next column", [KeyBinding::char('s')];
    ReverseSort = "reverse-sort", "Reverse the sort order", [KeyBinding::char('r')];
    Freeze = "freeze", "Freeze or resume the display", [KeyBinding::char('f')];
    WhatIf = "what-if", "A run's hops with the advisor's recommendations applied, or as they were", [KeyBinding::char('w')];
    NextTheme = "next-theme", "Switch to the next theme", [KeyBinding::char('t')];
    EditBudget = "edit-budget", "Edit the selected budget", [KeyBinding::char('b')];
}

impl Action {
    /// The action named `name` in `[bindings]`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `[bindings]` table as written: the keys each listed action gets.
///
/// Deserialised by hand so that errors name the action and quote the bad
/// value, and so that a single string and a list both work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings(pub BTreeMap<Action, Vec<KeyBinding>>);

impl<'de> Deserialize<'de> for Bindings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BindingsVisitor)
    }
}

struct BindingsVisitor;

impl<'de> Visitor<'de> for BindingsVisitor {
    type Value = Bindings;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of action = \"key\" or action = [\"key\", ...]")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bindings, A::Error> {
        let mut out = BTreeMap::new();
        let known = |name: &str| {
            Action::from_name(name).ok_or_else(|| {
                format!(
                    "unknown action '{name}' in [bindings] (actions: {})",
                    action_list()
                )
            })
        };
        while let Some(action) = map.next_key_seed(TableKey(known))? {
            let keys = map.next_value_seed(KeysSeed(action))?;
            out.insert(action, keys);
        }
        Ok(Bindings(out))
    }
}

fn action_list() -> String {
    Action::ALL
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads `"key"` or `["key", ...]` for one action, naming it in errors.
struct KeysSeed(Action);

impl KeysSeed {
    fn parse<E: de::Error>(&self, text: &str) -> Result<KeyBinding, E> {
        text.parse::<KeyBinding>()
            .map_err(|e| E::custom(format!("[bindings] {}: {e}", self.0)))
    }
}

impl<'de> DeserializeSeed<'de> for KeysSeed {
    type Value = Vec<KeyBinding>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeysSeed {
    type Value = Vec<KeyBinding>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a key or a list of keys for '{}'", self.0)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(vec![self.parse(text)?])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut keys = Vec::new();
        while let Some(text) = seq.next_element::<String>()? {
            keys.push(self.parse::<A::Error>(&text)?);
        }
        Ok(keys)
    }
}

/// Why `[bindings]` cannot be turned into a [`Keymap`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeymapError {
    /// One key for two actions.
    #[error(
        "[bindings]: key '{key}' is bound to both '{first}' and '{second}' \
         (bind one of them to another key)"
    )]
    Conflict {
        /// The key.
        key: KeyBinding,
        /// The action that had it first (in [`Action::ALL`] order).
        first: Action,
        /// The other action.
        second: Action,
    },
    /// `quit = []`.
    #[error("[bindings]: 'quit' needs at least one key")]
    NoQuit,
}

/// Keys → actions, resolved from the defaults and `[bindings]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    by_key: HashMap<KeyBinding, Action>,
    /// Each action's keys in the order written, for the help overlay.
    by_action: BTreeMap<Action, Vec<KeyBinding>>,
}

impl Default for Keymap {
    /// The built-in bindings (a test proves they do not conflict).
    fn default() -> Self {
        let mut keymap = Keymap {
            by_key: HashMap::new(),
            by_action: BTreeMap::new(),
        };
        for &action in Action::ALL {
            for &key in action.default_keys() {
                keymap.by_key.insert(key, action);
            }
            keymap
                .by_action
                .insert(action, action.default_keys().to_vec());
        }
        keymap
    }
}

impl Keymap {
    /// The defaults with `bindings` applied: an action listed there gets
    /// exactly the keys listed (its defaults are dropped).
    ///
    /// # Errors
    /// A key bound to two actions, or `quit` left without keys.
    pub fn new(bindings: &Bindings) -> Result<Keymap, KeymapError> {
        let mut by_key = HashMap::new();
        let mut by_action = BTreeMap::new();
        for &action in Action::ALL {
            let keys = bindings
                .0
                .get(&action)
                .map_or(action.default_keys(), Vec::as_slice);
            if action == Action::Quit && keys.is_empty() {
                return Err(KeymapError::NoQuit);
            }
            let mut unique: Vec<KeyBinding> = Vec::with_capacity(keys.len());
            for &key in keys {
                if unique.contains(&key) {
                    continue;
                }
                if let Some(first) = by_key.insert(key, action) {
                    return Err(KeymapError::Conflict {
                        key,
                        first,
                        second: action,
                    });
                }
                unique.push(key);
            }
            by_action.insert(action, unique);
        }
        Ok(Keymap { by_key, by_action })
    }

    /// The action `event` triggers, if any. Key releases trigger nothing
    /// (terminals with the kitty protocol report them).
    #[must_use]
    pub fn lookup(&self, event: &KeyEvent) -> Option<Action> {
        if event.kind == KeyEventKind::Release {
            return None;
        }
        self.by_key.get(&KeyBinding::from_event(event)).copied()
    }

    /// The keys bound to `action`, in the order written.
    #[must_use]
    pub fn keys(&self, action: Action) -> &[KeyBinding] {
        self.by_action.get(&action).map_or(&[], Vec::as_slice)
    }

    /// The keys for the help overlay, e.g. `q, ctrl+c`; empty when unbound.
    #[must_use]
    pub fn describe(&self, action: Action) -> String {
        self.keys(action)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventState;

    fn key(text: &str) -> KeyBinding {
        text.parse().unwrap()
    }

    fn event(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn parses_plain_characters_literally() {
        assert_eq!(key("q"), KeyBinding::char('q'));
        assert_eq!(key("G"), KeyBinding::char('G'));
        assert_eq!(key("?"), KeyBinding::char('?'));
        assert_eq!(key("/"), KeyBinding::char('/'));
        assert_eq!(key("1"), KeyBinding::char('1'));
        assert_eq!(key("+"), KeyBinding::char('+'));
        assert_eq!(key(" q "), KeyBinding::char('q'));
    }

    #[test]
    fn parses_modifiers_case_insensitively() {
        assert_eq!(key("ctrl+c"), KeyBinding::ctrl('c'));
        assert_eq!(key("CTRL+c"), KeyBinding::ctrl('c'));
        assert_eq!(key("Control+c"), KeyBinding::ctrl('c'));
        assert_eq!(
            key("alt+x"),
            KeyBinding::new(KeyCode::Char('x'), KeyModifiers::ALT)
        );
        assert_eq!(
            key("ctrl+alt+x"),
            KeyBinding::new(
                KeyCode::Char('x'),
                KeyModifiers::ALT | KeyModifiers::CONTROL
            )
        );
        assert_eq!(
            key("ctrl++"),
            KeyBinding::new(KeyCode::Char('+'), KeyModifiers::CONTROL)
        );
        assert_eq!(key("ctrl+plus"), key("ctrl++"));
    }

    #[test]
    fn shift_with_a_letter_is_the_uppercase_letter() {
        assert_eq!(key("shift+g"), key("G"));
        assert_eq!(key("shift+G"), key("G"));
        assert_eq!(
            key("ctrl+shift+x"),
            KeyBinding::new(KeyCode::Char('X'), KeyModifiers::CONTROL)
        );
    }

    #[test]
    fn parses_named_keys() {
        assert_eq!(key("enter"), KeyBinding::key(KeyCode::Enter));
        assert_eq!(key("Return"), KeyBinding::key(KeyCode::Enter));
        assert_eq!(key("ESC"), KeyBinding::key(KeyCode::Esc));
        assert_eq!(key("shift+tab"), KeyBinding::key(KeyCode::BackTab));
        assert_eq!(key("backtab"), KeyBinding::key(KeyCode::BackTab));
        assert_eq!(key("space"), KeyBinding::char(' '));
        assert_eq!(key("f5"), KeyBinding::key(KeyCode::F(5)));
        assert_eq!(key("F12"), KeyBinding::key(KeyCode::F(12)));
        assert_eq!(key("pageup"), KeyBinding::key(KeyCode::PageUp));
        assert_eq!(key("up"), KeyBinding::key(KeyCode::Up));
        assert_eq!(
            key("shift+up"),
            KeyBinding::new(KeyCode::Up, KeyModifiers::SHIFT)
        );
    }

    #[test]
    fn rejects_bad_keys_naming_them() {
        for (text, reason) in [
            ("", "empty"),
            ("ctrl+", "needs a key"),
            ("hyper+x", "unknown modifier 'hyper'"),
            ("ctrl++x", "empty modifier"),
            ("f25", "unknown key name"),
            ("f0", "unknown key name"),
            ("escape-hatch", "unknown key name"),
            ("shift+1", "write the symbol itself"),
        ] {
            let err = text.parse::<KeyBinding>().unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&format!("'{text}'")), "{text}: {message}");
            assert!(message.contains(reason), "{text}: {message}");
        }
    }

    #[test]
    fn display_reads_back() {
        for text in [
            "q",
            "G",
            "?",
            "ctrl+c",
            "shift+tab",
            "enter",
            "esc",
            "f5",
            "alt+x",
            "space",
            "up",
            "pagedown",
            "+",
            "ctrl+plus",
            "shift+up",
            "ctrl+alt+X",
        ] {
            let binding = key(text);
            assert_eq!(binding.to_string().parse::<KeyBinding>().unwrap(), binding);
        }
        assert_eq!(key("Ctrl+C").to_string(), "ctrl+C");
        assert_eq!(key("BackTab").to_string(), "shift+tab");
        assert_eq!(key(" ").to_string(), "space");
    }

    #[test]
    fn events_match_with_or_without_shift_for_characters() {
        let keymap = Keymap::default();
        // Terminals differ: 'G' alone, 'G' + SHIFT, even 'g' + SHIFT.
        for ev in [
            event(KeyCode::Char('G'), KeyModifiers::NONE),
            event(KeyCode::Char('G'), KeyModifiers::SHIFT),
            event(KeyCode::Char('g'), KeyModifiers::SHIFT),
        ] {
            assert_eq!(keymap.lookup(&ev), Some(Action::Bottom), "{ev:?}");
        }
        assert_eq!(
            keymap.lookup(&event(KeyCode::Char('g'), KeyModifiers::NONE)),
            Some(Action::Top)
        );
        for ev in [
            event(KeyCode::Char('?'), KeyModifiers::NONE),
            event(KeyCode::Char('?'), KeyModifiers::SHIFT),
        ] {
            assert_eq!(keymap.lookup(&ev), Some(Action::Help), "{ev:?}");
        }
        for ev in [
            event(KeyCode::BackTab, KeyModifiers::SHIFT),
            event(KeyCode::BackTab, KeyModifiers::NONE),
            event(KeyCode::Tab, KeyModifiers::SHIFT),
        ] {
            assert_eq!(keymap.lookup(&ev), Some(Action::PrevScreen), "{ev:?}");
        }
        assert_eq!(
            keymap.lookup(&event(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            keymap.lookup(&event(KeyCode::Char('c'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            keymap.lookup(&event(KeyCode::Char('q'), KeyModifiers::ALT)),
            None
        );
    }

    #[test]
    fn releases_trigger_nothing_repeats_do() {
        let keymap = Keymap::default();
        let mut ev = KeyEvent::new_with_kind_and_state(
            KeyCode::Char('j'),
            KeyModifiers::NONE,
            KeyEventKind::Release,
            KeyEventState::NONE,
        );
        assert_eq!(keymap.lookup(&ev), None);
        assert!(!key("j").matches(&ev));
        ev.kind = KeyEventKind::Repeat;
        assert_eq!(keymap.lookup(&ev), Some(Action::Down));
        assert!(key("j").matches(&ev));
    }

    #[test]
    fn defaults_do_not_conflict_and_describe() {
        let checked = Keymap::new(&Bindings::default()).unwrap();
        assert_eq!(checked, Keymap::default());
        assert_eq!(checked.describe(Action::Quit), "q, ctrl+c");
        assert_eq!(checked.describe(Action::PrevScreen), "shift+tab");
        assert_eq!(checked.describe(Action::Bottom), "G, end");
        for &action in Action::ALL {
            assert!(!checked.keys(action).is_empty(), "{action} has no key");
        }
    }

    #[test]
    fn action_names_match_serde() {
        use serde::de::value::{Error, StrDeserializer};
        for &action in Action::ALL {
            let parsed = Action::deserialize(StrDeserializer::<Error>::new(action.name())).unwrap();
            assert_eq!(parsed, action);
            assert_eq!(Action::from_name(action.name()), Some(action));
        }
    }

    #[test]
    fn user_bindings_replace_defaults_for_that_action() {
        let mut bindings = Bindings::default();
        bindings.0.insert(Action::Quit, vec![key("x"), key("x")]);
        let keymap = Keymap::new(&bindings).unwrap();
        assert_eq!(keymap.describe(Action::Quit), "x");
        assert_eq!(
            keymap.lookup(&event(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            keymap.lookup(&event(KeyCode::Char('x'), KeyModifiers::NONE)),
            Some(Action::Quit)
        );
        assert_eq!(keymap.describe(Action::Help), "?");
    }

    #[test]
    fn conflicts_name_both_actions() {
        let mut bindings = Bindings::default();
        bindings.0.insert(Action::Quit, vec![key("t")]);
        let err = Keymap::new(&bindings).unwrap_err();
        assert_eq!(
            err,
            KeymapError::Conflict {
                key: key("t"),
                first: Action::Quit,
                second: Action::NextTheme
            }
        );
        let message = err.to_string();
        assert!(message.contains("'t'") && message.contains("'quit'"));
        assert!(message.contains("'next-theme'"), "{message}");
    }

    #[test]
    fn quit_cannot_be_unbound_but_others_can() {
        let mut bindings = Bindings::default();
        bindings.0.insert(Action::Freeze, vec![]);
        let keymap = Keymap::new(&bindings).unwrap();
        assert_eq!(keymap.describe(Action::Freeze), "");
        bindings.0.insert(Action::Quit, vec![]);
        assert_eq!(Keymap::new(&bindings), Err(KeymapError::NoQuit));
    }
}
