//! The resolved theme: one ratatui [`Style`] per semantic role.
//!
//! Views ask for a role (`theme.cost`, `theme.row(selected)`), never for a
//! colour, so themes and `NO_COLOR` work everywhere at once. The file format
//! and the built-in theme texts live in [`crate::config::theme`]; this module
//! only resolves them. The only I/O is in [`Theme::load`].

use std::path::{Path, PathBuf};

use ratatui::style::{Modifier, Style};

use crate::config::Settings;
pub use crate::config::theme::ThemeError;
use crate::config::theme::{BUILTIN_THEMES, DEFAULT_THEME, ThemeFile};

/// Share of the total above which a cost is drawn with `cost-high`.
pub const COST_HIGH_SHARE: f64 = 0.25;

/// Styles by semantic role; see `docs/config.md` for what each role is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Theme {
    /// The theme's name (a built-in name, a user theme name, a file stem,
    /// or `no-color`).
    pub name: String,
    /// Ordinary text.
    pub text: Style,
    /// Secondary text: labels, units, hints.
    pub muted: Style,
    /// Highlights that are not warnings.
    pub accent: Style,
    /// Block titles.
    pub title: Style,
    /// Table headers.
    pub header: Style,
    /// Block borders.
    pub border: Style,
    /// The border of the focused block.
    pub border_focused: Style,
    /// The selected row (`selected-fg` and `selected-bg` combined).
    pub selected: Style,
    /// Dollar amounts.
    pub cost: Style,
    /// Dollar amounts with a large share of the total.
    pub cost_high: Style,
    /// Good news: savings, healthy values.
    pub good: Style,
    /// Bleeding hops and other things worth a look.
    pub warning: Style,
    /// A budget with room left.
    pub budget_ok: Style,
    /// A budget close to its limit.
    pub budget_warn: Style,
    /// A budget over its limit.
    pub budget_over: Style,
    /// Errors.
    pub error: Style,
    /// The first chart series.
    pub chart: Style,
    /// The second chart series.
    pub chart_alt: Style,
    /// The status bar (`status-fg` and `status-bg` combined).
    pub status: Style,
}

impl Default for Theme {
    /// The default built-in theme.
    fn default() -> Self {
        Theme::from_file(DEFAULT_THEME, &ThemeFile::default())
    }
}

impl Theme {
    /// The name of the colourless theme used under `NO_COLOR`.
    pub const NO_COLOR: &'static str = "no-color";

    /// The built-in theme `name` (including `no-color`).
    #[must_use]
    pub fn builtin(name: &str) -> Option<Theme> {
        if name == Theme::NO_COLOR {
            return Some(Theme::no_color());
        }
        let file = ThemeFile::builtin(name)?;
        Some(Theme::from_file(name, &file))
    }

    /// The built-in theme names, default first (`no-color` is not listed:
    /// it is not one to cycle through).
    #[must_use]
    pub fn builtin_names() -> &'static [&'static str] {
        const NAMES: &[&str] = &{
            let mut names = [""; BUILTIN_THEMES.len()];
            let mut i = 0;
            while i < names.len() {
                names[i] = BUILTIN_THEMES[i].0;
                i += 1;
            }
            names
        };
        NAMES
    }

    /// The built-in theme after `current` (wrapping), for `next-theme`.
    /// A theme that is not built in is followed by the default.
    #[must_use]
    pub fn next_builtin_name(current: &str) -> &'static str {
        let names = Theme::builtin_names();
        let next = names
            .iter()
            .position(|n| *n == current)
            .map_or(0, |i| (i + 1) % names.len());
        names.get(next).copied().unwrap_or(DEFAULT_THEME)
    }

    /// A theme by name or path:
    /// 1. `name_or_path` ending in `.toml` or containing a path separator is
    ///    a theme file;
    /// 2. else `<user_theme_dir>/<name>.toml`, if it exists (it overrides a
    ///    built-in theme of the same name);
    /// 3. else a built-in theme.
    ///
    /// Roles a file omits come from the default (`dark`) theme.
    ///
    /// # Errors
    /// An unknown name (the message lists the available ones), an unreadable
    /// file, or a file with a bad role or colour.
    pub fn load(name_or_path: &str, user_theme_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        let as_path = Path::new(name_or_path);
        let is_toml = as_path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        if is_toml || as_path.components().count() > 1 {
            let name = as_path.file_stem().map_or_else(
                || name_or_path.to_owned(),
                |s| s.to_string_lossy().into_owned(),
            );
            return Theme::load_file(&name, as_path);
        }
        if let Some(dir) = user_theme_dir {
            let path = dir.join(format!("{name_or_path}.toml"));
            if path.is_file() {
                return Theme::load_file(name_or_path, &path);
            }
        }
        Theme::builtin(name_or_path).ok_or_else(|| ThemeError::Unknown {
            name: name_or_path.to_owned(),
            available: available_names(user_theme_dir),
        })
    }

    /// The theme to start with:
    /// 1. the command line's `--theme`, if given (an explicit choice beats
    ///    `NO_COLOR`, as <https://no-color.org> asks);
    /// 2. else no colour when `no_color` (the environment beats the file);
    /// 3. else the config file's theme.
    ///
    /// `[theme.overrides]` applies to 1 and 3.
    ///
    /// # Errors
    /// As [`Theme::load`].
    pub fn resolve(
        settings: &Settings,
        cli_theme: Option<&str>,
        no_color: bool,
        user_theme_dir: Option<&Path>,
    ) -> Result<Theme, ThemeError> {
        let name = match cli_theme {
            Some(name) => name,
            None if no_color => return Ok(Theme::no_color()),
            None => &settings.theme,
        };
        let mut theme = Theme::load(name, user_theme_dir)?;
        theme.apply_overrides(&settings.theme_overrides);
        Ok(theme)
    }

    /// No colours at all (<https://no-color.org>); modifiers keep what
    /// carries meaning visible: the selection is reversed, warnings, errors,
    /// over-budget and high costs are bold, and so are titles and headers.
    #[must_use]
    pub fn no_color() -> Theme {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        Theme {
            name: Theme::NO_COLOR.to_owned(),
            text: Style::new(),
            muted: Style::new(),
            accent: Style::new(),
            title: bold,
            header: bold,
            border: Style::new(),
            border_focused: Style::new(),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            cost: Style::new(),
            cost_high: bold,
            good: Style::new(),
            warning: bold,
            budget_ok: Style::new(),
            budget_warn: Style::new(),
            budget_over: bold,
            error: bold,
            chart: Style::new(),
            chart_alt: Style::new(),
            status: Style::new(),
        }
    }

    /// Patches the roles `overrides` sets (`[theme.overrides]`). A role is
    /// replaced whole, except the `*-fg`/`*-bg` halves of the selection and
    /// status bar, which replace only their half.
    pub fn apply_overrides(&mut self, overrides: &ThemeFile) {
        let set = |slot: &mut Style, value: Option<Style>| {
            if let Some(style) = value {
                *slot = style;
            }
        };
        set(&mut self.text, overrides.text);
        set(&mut self.muted, overrides.muted);
        set(&mut self.accent, overrides.accent);
        set(&mut self.title, overrides.title);
        set(&mut self.header, overrides.header);
        set(&mut self.border, overrides.border);
        set(&mut self.border_focused, overrides.border_focused);
        set(&mut self.cost, overrides.cost);
        set(&mut self.cost_high, overrides.cost_high);
        set(&mut self.good, overrides.good);
        set(&mut self.warning, overrides.warning);
        set(&mut self.budget_ok, overrides.budget_ok);
        set(&mut self.budget_warn, overrides.budget_warn);
        set(&mut self.budget_over, overrides.budget_over);
        set(&mut self.error, overrides.error);
        set(&mut self.chart, overrides.chart);
        set(&mut self.chart_alt, overrides.chart_alt);
        self.selected = replace_halves(self.selected, overrides.selected_fg, overrides.selected_bg);
        self.status = replace_halves(self.status, overrides.status_fg, overrides.status_bg);
    }

    /// Every style with its field name (`selected` and `status` stand for
    /// both halves), for tests and theme previews.
    #[must_use]
    pub fn styles(&self) -> [(&'static str, Style); 19] {
        [
            ("text", self.text),
            ("muted", self.muted),
            ("accent", self.accent),
            ("title", self.title),
            ("header", self.header),
            ("border", self.border),
            ("border-focused", self.border_focused),
            ("selected", self.selected),
            ("cost", self.cost),
            ("cost-high", self.cost_high),
            ("good", self.good),
            ("warning", self.warning),
            ("budget-ok", self.budget_ok),
            ("budget-warn", self.budget_warn),
            ("budget-over", self.budget_over),
            ("error", self.error),
            ("chart", self.chart),
            ("chart-alt", self.chart_alt),
            ("status", self.status),
        ]
    }

    /// The style of a table row.
    #[must_use]
    pub fn row(&self, selected: bool) -> Style {
        if selected { self.selected } else { self.text }
    }

    /// The style of a cost that is `share_of_total` (0..=1) of the total:
    /// `cost-high` above [`COST_HIGH_SHARE`].
    #[must_use]
    pub fn cost_style(&self, share_of_total: f64) -> Style {
        if share_of_total > COST_HIGH_SHARE {
            self.cost_high
        } else {
            self.cost
        }
    }

    /// A complete theme from a file; roles it omits come from the default.
    fn from_file(name: &str, file: &ThemeFile) -> Theme {
        let mut full = ThemeFile::builtin(DEFAULT_THEME).unwrap_or_default();
        full.merge(file);
        let role = |style: Option<Style>| style.unwrap_or_default();
        Theme {
            name: name.to_owned(),
            text: role(full.text),
            muted: role(full.muted),
            accent: role(full.accent),
            title: role(full.title),
            header: role(full.header),
            border: role(full.border),
            border_focused: role(full.border_focused),
            selected: combine(full.selected_fg, full.selected_bg),
            cost: role(full.cost),
            cost_high: role(full.cost_high),
            good: role(full.good),
            warning: role(full.warning),
            budget_ok: role(full.budget_ok),
            budget_warn: role(full.budget_warn),
            budget_over: role(full.budget_over),
            error: role(full.error),
            chart: role(full.chart),
            chart_alt: role(full.chart_alt),
            status: combine(full.status_fg, full.status_bg),
        }
    }

    fn load_file(name: &str, path: &Path) -> Result<Theme, ThemeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ThemeError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = ThemeFile::parse(&text).map_err(|source| ThemeError::Parse {
            path: path.to_owned(),
            source,
        })?;
        Ok(Theme::from_file(name, &file))
    }
}

/// One style from a `*-fg` role and a `*-bg` role.
fn combine(fg: Option<Style>, bg: Option<Style>) -> Style {
    Style::new()
        .patch(fg.unwrap_or_default())
        .patch(bg.unwrap_or_default())
}

/// `current` with its foreground half (colour and modifiers) replaced by
/// `fg` and its background colour replaced by `bg`, where given.
fn replace_halves(current: Style, fg: Option<Style>, bg: Option<Style>) -> Style {
    let mut style = match fg {
        Some(fg) => Style {
            bg: current.bg,
            ..fg
        },
        None => current,
    };
    if let Some(bg) = bg {
        style = style.patch(bg);
    }
    style
}

/// Built-in names, `no-color`, and the user themes in `dir`, sorted within
/// each group, for the unknown-theme message.
fn available_names(user_theme_dir: Option<&Path>) -> Vec<String> {
    let mut names: Vec<String> = Theme::builtin_names()
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    names.push(Theme::NO_COLOR.to_owned());
    let mut user: Vec<String> = user_theme_dir
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter_map(|p: PathBuf| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .filter(|n| !names.contains(n))
        .collect();
    user.sort();
    names.extend(user);
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Color;

    #[test]
    fn builtin_names_match_the_embedded_files() {
        assert_eq!(
            Theme::builtin_names(),
            &["dark", "light", "high-contrast", "solarized"]
        );
        assert_eq!(Theme::builtin_names()[0], DEFAULT_THEME);
        assert_eq!(Theme::default(), Theme::builtin("dark").unwrap());
    }

    #[test]
    fn next_builtin_name_wraps() {
        assert_eq!(Theme::next_builtin_name("dark"), "light");
        assert_eq!(Theme::next_builtin_name("solarized"), "dark");
        assert_eq!(Theme::next_builtin_name("my-own"), "dark");
    }

    #[test]
    fn selection_and_status_combine_both_halves() {
        let dark = Theme::builtin("dark").unwrap();
        assert_eq!(dark.selected.fg, Some(Color::Black));
        assert_eq!(dark.selected.bg, Some(Color::Cyan));
        assert_eq!(dark.status.fg, Some(Color::White));
        assert_eq!(dark.status.bg, Some(Color::DarkGray));
    }

    #[test]
    fn helpers() {
        let dark = Theme::default();
        assert_eq!(dark.row(true), dark.selected);
        assert_eq!(dark.row(false), dark.text);
        assert_eq!(dark.cost_style(0.25), dark.cost);
        assert_eq!(dark.cost_style(0.26), dark.cost_high);
        assert_ne!(dark.cost, dark.cost_high);
    }

    #[test]
    fn overrides_replace_roles_and_halves() {
        let mut theme = Theme::default();
        let overrides = ThemeFile::parse(
            "cost = { fg = \"blue\", italic = true }\nselected-bg = \"red\"\nstatus-fg = \"black\"",
        )
        .unwrap();
        theme.apply_overrides(&overrides);
        assert_eq!(
            theme.cost,
            Style::new().fg(Color::Blue).add_modifier(Modifier::ITALIC)
        );
        assert_eq!(theme.selected.fg, Some(Color::Black));
        assert_eq!(theme.selected.bg, Some(Color::Red));
        assert_eq!(theme.status.fg, Some(Color::Black));
        assert_eq!(theme.status.bg, Some(Color::DarkGray));
        assert_eq!(theme.text, Theme::default().text);
    }

    #[test]
    fn resolve_precedence() {
        let mut settings = Settings {
            theme: "light".to_owned(),
            ..Settings::default()
        };
        settings.theme_overrides.cost = Some(Style::new().fg(Color::Blue));
        let from_file = Theme::resolve(&settings, None, false, None).unwrap();
        assert_eq!(from_file.name, "light");
        assert_eq!(from_file.cost.fg, Some(Color::Blue));
        // NO_COLOR beats the config file …
        assert_eq!(
            Theme::resolve(&settings, None, true, None).unwrap(),
            Theme::no_color()
        );
        // … and the command line beats NO_COLOR.
        let cli = Theme::resolve(&settings, Some("solarized"), true, None).unwrap();
        assert_eq!(cli.name, "solarized");
        assert_eq!(cli.cost.fg, Some(Color::Blue));
    }

    #[test]
    fn unknown_names_list_the_available_ones() {
        let message = Theme::load("neon", None).unwrap_err().to_string();
        assert!(message.contains("'neon'"), "{message}");
        assert!(
            message.contains("dark, light, high-contrast, solarized, no-color"),
            "{message}"
        );
    }
}
