//! Theme files: semantic roles → styles, as written in `themes/*.toml`, in
//! user theme files and in `[theme.overrides]`; plus the built-in themes.
//!
//! A role value is a colour (`cost = "yellow"`: the foreground, or the
//! background for the `*-bg` roles) or a table
//! (`cost-high = { fg = "red", bold = true }`). Colours are checked while
//! parsing, so a bad one is reported with its line, its role and its value.
//! [`crate::ui::theme::Theme`] turns a complete [`ThemeFile`] into the styles
//! views use.

use std::fmt;
use std::path::PathBuf;

use ratatui::style::{Color, Modifier, Style};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::TableKey;

/// The theme used when none is chosen; also where roles a user theme omits
/// come from.
pub const DEFAULT_THEME: &str = "dark";

/// The built-in themes, embedded so the binary needs no files.
pub const BUILTIN_THEMES: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("solarized", include_str!("../../themes/solarized.toml")),
];

/// Declares the roles once: the [`ThemeFile`] field and its TOML key.
macro_rules! roles {
    ($( $(#[doc = $doc:literal])* $field:ident = $key:literal, )*) => {
        /// A theme as written: every role optional (a user theme or
        /// `[theme.overrides]` may set only some).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct ThemeFile {
            $( $(#[doc = $doc])* pub $field: Option<Style>, )*
        }

        impl ThemeFile {
            /// Every role's key, in the order of the built-in theme files.
            pub const ROLES: &'static [&'static str] = &[$($key),*];

            /// The slot for the role named `key`.
            fn slot_mut(&mut self, key: &str) -> Option<&mut Option<Style>> {
                match key {
                    $( $key => Some(&mut self.$field), )*
                    _ => None,
                }
            }

            /// The style set for the role named `key`, if any.
            #[must_use]
            pub fn get(&self, key: &str) -> Option<Style> {
                match key {
                    $( $key => self.$field, )*
                    _ => None,
                }
            }

            /// Sets every role `patch` sets (whole-role replacement).
            pub fn merge(&mut self, patch: &ThemeFile) {
                $( if patch.$field.is_some() { self.$field = patch.$field; } )*
            }
        }
    };
}

roles! {
    /// Ordinary text.
    text = "text",
    /// Secondary text: labels, units, hints.
    muted = "muted",
    /// Highlights that are not warnings: keys in the help, the active tab.
    accent = "accent",
    /// Block titles.
    title = "title",
    /// Table headers.
    header = "header",
    /// Block borders.
    border = "border",
    /// The border of the focused block.
    border_focused = "border-focused",
    /// Foreground (and modifiers) of the selected row.
    selected_fg = "selected-fg",
    /// Background of the selected row.
    selected_bg = "selected-bg",
    /// Dollar amounts.
    cost = "cost",
    /// Dollar amounts that take a large share of the total.
    cost_high = "cost-high",
    /// Good news: cache savings, healthy values.
    good = "good",
    /// Bleeding hops and other things worth a look.
    warning = "warning",
    /// A budget with room left.
    budget_ok = "budget-ok",
    /// A budget close to its limit.
    budget_warn = "budget-warn",
    /// A budget over its limit.
    budget_over = "budget-over",
    /// Errors: rejected lines, failed control requests.
    error = "error",
    /// The first chart series.
    chart = "chart",
    /// The second chart series.
    chart_alt = "chart-alt",
    /// Status bar foreground.
    status_fg = "status-fg",
    /// Status bar background.
    status_bg = "status-bg",
}

impl ThemeFile {
    /// Parses a theme file's text.
    ///
    /// # Errors
    /// TOML syntax, an unknown role, a bad colour or style key; the message
    /// has the line and names the role and value.
    pub fn parse(text: &str) -> Result<ThemeFile, toml::de::Error> {
        toml::from_str(text)
    }

    /// The built-in theme `name` as written (complete: a test checks it).
    ///
    /// # Panics
    /// Never in a released build: unit tests parse every embedded theme. A
    /// broken one fails loudly, naming it, rather than turning every role
    /// into plain text.
    #[must_use]
    pub fn builtin(name: &str) -> Option<ThemeFile> {
        let (name, text) = BUILTIN_THEMES.iter().find(|(n, _)| *n == name)?;
        Some(ThemeFile::parse_builtin(name, text))
    }

    #[allow(clippy::panic)]
    fn parse_builtin(name: &str, text: &str) -> ThemeFile {
        ThemeFile::parse(text)
            .unwrap_or_else(|e| panic!("the built-in theme '{name}' does not parse: {e}"))
    }

    /// The roles this file leaves unset.
    #[must_use]
    pub fn missing_roles(&self) -> Vec<&'static str> {
        ThemeFile::ROLES
            .iter()
            .copied()
            .filter(|role| self.get(role).is_none())
            .collect()
    }
}

impl<'de> Deserialize<'de> for ThemeFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ThemeFileVisitor)
    }
}

struct ThemeFileVisitor;

impl<'de> Visitor<'de> for ThemeFileVisitor {
    type Value = ThemeFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of role = \"colour\" or role = { fg = ..., bold = ... }")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ThemeFile, A::Error> {
        let mut file = ThemeFile::default();
        let known = |key: &str| {
            ThemeFile::ROLES
                .iter()
                .copied()
                .find(|r| *r == key)
                .ok_or_else(|| {
                    format!(
                        "unknown theme role '{key}' (roles: {})",
                        ThemeFile::ROLES.join(", ")
                    )
                })
        };
        while let Some(role) = map.next_key_seed(TableKey(known))? {
            let style = map.next_value_seed(RoleSeed(role))?;
            if let Some(slot) = file.slot_mut(role) {
                *slot = Some(style);
            }
        }
        Ok(file)
    }
}

/// Reads one role's value, knowing the role for error messages and for
/// whether a bare colour is the foreground or the background.
struct RoleSeed(&'static str);

impl RoleSeed {
    fn is_background(&self) -> bool {
        self.0.ends_with("-bg")
    }

    fn color<E: de::Error>(&self, part: &str, text: &str) -> Result<Color, E> {
        parse_color(text).ok_or_else(|| {
            E::custom(format!(
                "theme role '{}'{part}: '{text}' is not a colour (use a name like 'red' or \
                 'lightblue', '#rrggbb', 'color(0-255)' or 'reset')",
                self.0
            ))
        })
    }
}

impl<'de> DeserializeSeed<'de> for RoleSeed {
    type Value = Style;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Style, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RoleSeed {
    type Value = Style;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a colour or a table {{ fg, bg, bold, italic, underline, reversed, dim }} for theme role '{}'",
            self.0
        )
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Style, E> {
        let color = self.color("", text)?;
        Ok(if self.is_background() {
            Style::new().bg(color)
        } else {
            Style::new().fg(color)
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Style, A::Error> {
        let table = StyleTable::deserialize(MapAccessDeserializer::new(map))?;
        let mut style = Style::new();
        if let Some(fg) = &table.fg {
            style = style.fg(self.color(".fg", fg)?);
        }
        if let Some(bg) = &table.bg {
            style = style.bg(self.color(".bg", bg)?);
        }
        for (on, modifier) in [
            (table.bold, Modifier::BOLD),
            (table.italic, Modifier::ITALIC),
            (table.underline, Modifier::UNDERLINED),
            (table.reversed, Modifier::REVERSED),
            (table.dim, Modifier::DIM),
        ] {
            if on == Some(true) {
                style = style.add_modifier(modifier);
            }
        }
        Ok(style)
    }
}

/// The table form of a role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StyleTable {
    fg: Option<String>,
    bg: Option<String>,
    bold: Option<bool>,
    italic: Option<bool>,
    underline: Option<bool>,
    reversed: Option<bool>,
    dim: Option<bool>,
}

/// A colour: a ratatui name (`red`, `lightblue`, `darkgray`), `reset`,
/// `#rrggbb` or `color(N)` for the 256-colour palette.
#[must_use]
pub fn parse_color(text: &str) -> Option<Color> {
    let text = text.trim();
    if let Some(index) = text
        .strip_prefix("color(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return index.trim().parse::<u8>().ok().map(Color::Indexed);
    }
    // ratatui also reads a bare number as an index; `color(N)` is the
    // documented form, but accepting both costs nothing.
    text.parse().ok()
}

/// Why a theme could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    /// No built-in or user theme has that name.
    #[error("unknown theme '{name}' (available: {})", available.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Built-in and user theme names.
        available: Vec<String>,
    },
    /// The theme file exists but cannot be read.
    #[error("cannot read theme file '{}': {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The theme file is not a valid theme.
    #[error("theme file '{}': {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error (line, role, value).
        source: toml::de::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_in_every_form() {
        assert_eq!(parse_color("red"), Some(Color::Red));
        assert_eq!(parse_color("LightBlue"), Some(Color::LightBlue));
        assert_eq!(parse_color("darkgray"), Some(Color::DarkGray));
        assert_eq!(parse_color("reset"), Some(Color::Reset));
        assert_eq!(parse_color("#ff8700"), Some(Color::Rgb(255, 135, 0)));
        assert_eq!(parse_color("color(208)"), Some(Color::Indexed(208)));
        assert_eq!(parse_color("color( 7 )"), Some(Color::Indexed(7)));
        for bad in ["purpel", "#ff87", "color(256)", "color(x)", "", "#gggggg"] {
            assert_eq!(parse_color(bad), None, "{bad}");
        }
    }

    #[test]
    fn string_and_table_forms() {
        let file = ThemeFile::parse(
            r##"
            cost = "yellow"
            selected-bg = "blue"
            cost-high = { fg = "#ff0000", bg = "black", bold = true, underline = true }
            muted = { dim = true, italic = false }
            "##,
        )
        .unwrap();
        assert_eq!(file.cost, Some(Style::new().fg(Color::Yellow)));
        assert_eq!(file.selected_bg, Some(Style::new().bg(Color::Blue)));
        assert_eq!(
            file.cost_high,
            Some(
                Style::new()
                    .fg(Color::Rgb(255, 0, 0))
                    .bg(Color::Black)
                    .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
            )
        );
        assert_eq!(file.muted, Some(Style::new().add_modifier(Modifier::DIM)));
        assert_eq!(file.text, None);
        assert_eq!(file.missing_roles().len(), ThemeFile::ROLES.len() - 4);
    }

    #[test]
    fn errors_name_role_and_value() {
        for (text, needles) in [
            ("cost = \"purpel\"", &["'cost'", "'purpel'", "line 1"][..]),
            ("error = { fg = \"nope\" }", &["'error'.fg", "'nope'"][..]),
            ("purple = \"red\"", &["unknown theme role 'purple'"][..]),
            ("text = { blink = true }", &["blink"][..]),
            ("text = 3", &["theme role 'text'"][..]),
        ] {
            let message = ThemeFile::parse(text).unwrap_err().to_string();
            for needle in needles {
                assert!(
                    message.contains(needle),
                    "{text}: {needle} not in {message}"
                );
            }
        }
    }

    #[test]
    fn every_built_in_theme_parses_complete() {
        for (name, _) in BUILTIN_THEMES {
            let file = ThemeFile::builtin(name).unwrap();
            assert_eq!(file.missing_roles(), Vec::<&str>::new(), "{name}");
        }
        assert_eq!(ThemeFile::builtin("nope"), None);
    }

    #[test]
    #[should_panic(expected = "the built-in theme 'broken' does not parse: ")]
    fn a_broken_built_in_theme_fails_loudly() {
        let _ = ThemeFile::parse_builtin("broken", "cost = \"purpel\"");
    }

    #[test]
    fn merge_replaces_whole_roles() {
        let mut base =
            ThemeFile::parse("cost = { fg = \"red\", bold = true }\ntext = \"white\"").unwrap();
        base.merge(&ThemeFile::parse("cost = \"blue\"").unwrap());
        assert_eq!(base.cost, Some(Style::new().fg(Color::Blue)));
        assert_eq!(base.text, Some(Style::new().fg(Color::White)));
    }
}
