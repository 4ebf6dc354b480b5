//! Config file, themes and key bindings, through the public API:
//! the sample config is the defaults, every theme is complete, user themes
//! override and fall back, `NO_COLOR` has no colour, and each invalid config
//! fails with a message that names the problem and the file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};
use tokwatch::config::{self, Action, ConfigError, Settings, ThemeFile};
use tokwatch::ui::theme::{Theme, ThemeError};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn sample_config_is_exactly_the_defaults() {
    let path = repo("config/tokwatch.sample.toml");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(Settings::from_toml(&text).unwrap(), Settings::default());
    // `tokwatch config --print-default` prints this very file.
    assert_eq!(config::SAMPLE, text);
    // Through the loader too, as an explicit file.
    assert_eq!(
        config::load(Some(&path), true).unwrap(),
        Settings::default()
    );
}

#[test]
fn sample_config_lists_every_action_and_role() {
    let text = fs::read_to_string(repo("config/tokwatch.sample.toml")).unwrap();
    for action in Action::ALL {
        assert!(
            text.contains(&format!("\n{} = ", action.name())),
            "sample lacks binding for {action}"
        );
    }
    for role in ThemeFile::ROLES {
        assert!(text.contains(role), "sample does not mention role {role}");
    }
}

#[test]
fn every_theme_file_is_complete_and_built_in() {
    let files = toml_files(&repo("themes"));
    let stems: BTreeSet<String> = files.iter().map(|p| stem(p)).collect();
    let builtin: BTreeSet<String> = Theme::builtin_names()
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    assert_eq!(stems, builtin, "themes/ and the built-in list differ");
    for path in &files {
        let text = fs::read_to_string(path).unwrap();
        let file = ThemeFile::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            file.missing_roles().is_empty(),
            "{} lacks roles {:?}",
            path.display(),
            file.missing_roles()
        );
        let name = stem(path);
        // The embedded copy is this file.
        assert_eq!(ThemeFile::builtin(&name), Some(file), "{name}");
        let theme = Theme::builtin(&name).unwrap();
        assert_eq!(theme.name, name);
        assert_eq!(Theme::load(&name, None).unwrap(), theme);
        // A selection must be visible: it has a background or is reversed.
        assert!(
            theme.selected.bg.is_some() || theme.selected.add_modifier.contains(Modifier::REVERSED),
            "{name}: invisible selection"
        );
    }
}

#[test]
fn builtin_themes_differ_from_each_other() {
    let themes: Vec<Theme> = Theme::builtin_names()
        .iter()
        .map(|n| Theme::builtin(n).unwrap())
        .collect();
    for (i, a) in themes.iter().enumerate() {
        for b in &themes[i + 1..] {
            assert_ne!(a.styles(), b.styles(), "{} == {}", a.name, b.name);
        }
    }
}

#[test]
fn user_theme_overrides_builtin_and_falls_back_to_dark() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("light.toml"), "cost = \"red\"\n").unwrap();
    let dark = Theme::builtin("dark").unwrap();
    let builtin_light = Theme::builtin("light").unwrap();

    let user_light = Theme::load("light", Some(dir.path())).unwrap();
    assert_eq!(user_light.name, "light");
    assert_eq!(user_light.cost.fg, Some(Color::Red));
    // Omitted roles come from dark, not from the built-in light theme.
    assert_eq!(user_light.accent, dark.accent);
    assert_ne!(user_light.accent, builtin_light.accent);
    // Other built-ins are still found with a user dir.
    assert_eq!(
        Theme::load("solarized", Some(dir.path())).unwrap(),
        Theme::builtin("solarized").unwrap()
    );
}

#[test]
fn partial_user_theme_and_theme_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    fs::write(
        &path,
        "# only two roles\nwarning = { fg = \"#ff00ff\", underline = true }\nstatus-bg = \"blue\"\n",
    )
    .unwrap();
    let dark = Theme::builtin("dark").unwrap();
    for theme in [
        Theme::load("mine", Some(dir.path())).unwrap(),
        Theme::load(path.to_str().unwrap(), None).unwrap(),
    ] {
        assert_eq!(theme.name, "mine");
        assert_eq!(theme.warning.fg, Some(Color::Rgb(255, 0, 255)));
        assert!(theme.warning.add_modifier.contains(Modifier::UNDERLINED));
        assert_eq!(theme.status.bg, Some(Color::Blue));
        assert_eq!(theme.status.fg, dark.status.fg);
        assert_eq!(theme.text, dark.text);
        assert_eq!(theme.selected, dark.selected);
    }
    // Unknown names list built-in and user themes.
    let message = Theme::load("nope", Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(message.contains("unknown theme 'nope'"), "{message}");
    assert!(message.contains("solarized"), "{message}");
    assert!(message.contains("mine"), "{message}");
}

#[test]
fn bad_user_theme_names_file_role_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    fs::write(&path, "text = \"white\"\nborder = \"grren\"\n").unwrap();
    let err = Theme::load("broken", Some(dir.path())).unwrap_err();
    assert!(matches!(err, ThemeError::Parse { .. }), "{err:?}");
    let message = err.to_string();
    for needle in [
        path.display().to_string().as_str(),
        "line 2",
        "'border'",
        "'grren'",
    ] {
        assert!(message.contains(needle), "{needle} not in {message}");
    }
    let missing = Theme::load(dir.path().join("absent.toml").to_str().unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("absent.toml"), "{missing}");
}

#[test]
fn no_color_theme_has_no_colours_but_keeps_meaning() {
    let theme = Theme::no_color();
    for (role, style) in theme.styles() {
        assert_eq!(style.fg, None, "{role}");
        assert_eq!(style.bg, None, "{role}");
    }
    let bold = |s: ratatui::style::Style| s.add_modifier.contains(Modifier::BOLD);
    assert!(theme.selected.add_modifier.contains(Modifier::REVERSED));
    for style in [
        theme.warning,
        theme.budget_over,
        theme.error,
        theme.cost_high,
        theme.title,
        theme.header,
    ] {
        assert!(bold(style));
    }
    assert_eq!(theme.text, ratatui::style::Style::default());
    assert_eq!(theme.row(true), theme.selected);
    assert_eq!(Theme::builtin(Theme::NO_COLOR), Some(theme.clone()));
    assert_eq!(Theme::load("no-color", None).unwrap(), theme);
}

#[test]
fn theme_overrides_from_the_config_file() {
    let settings = Settings::from_toml(
        "[theme]\nname = \"high-contrast\"\n\n[theme.overrides]\ncost = \"color(208)\"\nselected-bg = \"#000080\"\n",
    )
    .unwrap();
    let theme = Theme::resolve(&settings, None, false, None).unwrap();
    let base = Theme::builtin("high-contrast").unwrap();
    assert_eq!(theme.name, "high-contrast");
    assert_eq!(theme.cost.fg, Some(Color::Indexed(208)));
    assert_eq!(theme.selected.bg, Some(Color::Rgb(0, 0, 128)));
    assert_eq!(theme.selected.fg, base.selected.fg);
    assert_eq!(theme.header, base.header);
    // NO_COLOR wins over the file, --theme over NO_COLOR.
    assert_eq!(
        Theme::resolve(&settings, None, true, None).unwrap(),
        Theme::no_color()
    );
    assert_eq!(
        Theme::resolve(&settings, Some("dark"), true, None)
            .unwrap()
            .cost
            .fg,
        Some(Color::Indexed(208))
    );
}

/// Each invalid config and a substring its error must contain.
const INVALID: &[(&str, &str)] = &[
    ("unknown_top_level_key", "unknown field `colour-scheme`"),
    ("unknown_nested_key", "unknown field `max_fps`"),
    ("bad_color", "theme role 'cost': 'purpel' is not a colour"),
    ("bad_key_binding", "[bindings] quit: 'ctrl+' is not a key"),
    (
        "duplicate_binding",
        "key 'q' is bound to both 'quit' and 'freeze'",
    ),
    ("unknown_action", "unknown action 'explode'"),
    (
        "max_fps_out_of_range",
        "[ui] max-fps = 500 is out of range (allowed: 1 to 120)",
    ),
    ("bad_duration", "'fast' is not a duration"),
    ("wrong_type", "mouse"),
    ("unknown_theme_role", "unknown theme role 'background'"),
    (
        "share_out_of_range",
        "[insights] cost-share = 1.5 is out of range",
    ),
    ("theme_name_and_table", "[theme.overrides]"),
];

#[test]
fn invalid_configs_fail_with_specific_messages() {
    let dir = repo("tests/invalid_configs");
    let on_disk: BTreeSet<String> = toml_files(&dir).iter().map(|p| stem(p)).collect();
    let listed: BTreeSet<String> = INVALID.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(
        on_disk, listed,
        "every invalid config needs an expected message"
    );
    for (name, needle) in INVALID {
        let path = dir.join(format!("{name}.toml"));
        let err = config::load(Some(&path), true).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { .. }),
            "{name}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(needle),
            "{name}: {needle:?} not in:\n{message}"
        );
        assert!(
            message.contains(&path.display().to_string()),
            "{name}: no path in:\n{message}"
        );
    }
}

#[test]
fn syntax_errors_point_at_the_line() {
    let message = config::load(Some(&repo("tests/invalid_configs/bad_color.toml")), true)
        .unwrap_err()
        .to_string();
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.toml");
    // A default location without a file means defaults …
    assert_eq!(
        config::load(Some(&absent), false).unwrap(),
        Settings::default()
    );
    // … a file the user named must exist.
    let err = config::load(Some(&absent), true).unwrap_err();
    assert!(matches!(err, ConfigError::Missing { .. }));
    assert!(err.to_string().contains("absent.toml"), "{err}");
}

#[test]
fn bindings_from_a_file_drive_lookup_and_help() {
    let settings = Settings::from_toml(
        "[bindings]\nquit = \"ctrl+q\"\nnext-theme = [\"T\", \"f2\"]\nfreeze = \"space\"\n",
    )
    .unwrap();
    let keymap = &settings.keymap;
    let press = |code, modifiers| keymap.lookup(&KeyEvent::new(code, modifiers));
    assert_eq!(
        press(KeyCode::Char('q'), KeyModifiers::CONTROL),
        Some(Action::Quit)
    );
    assert_eq!(press(KeyCode::Char('q'), KeyModifiers::NONE), None);
    assert_eq!(
        press(KeyCode::Char('T'), KeyModifiers::SHIFT),
        Some(Action::NextTheme)
    );
    assert_eq!(
        press(KeyCode::F(2), KeyModifiers::NONE),
        Some(Action::NextTheme)
    );
    assert_eq!(press(KeyCode::Char('t'), KeyModifiers::NONE), None);
    assert_eq!(
        press(KeyCode::Char(' '), KeyModifiers::NONE),
        Some(Action::Freeze)
    );
    assert_eq!(keymap.describe(Action::NextTheme), "T, f2");
    assert_eq!(keymap.describe(Action::Quit), "ctrl+q");
    assert_eq!(keymap.describe(Action::Help), "?");
}

#[test]
fn default_paths_end_in_tokwatch() {
    if let Some(path) = config::default_config_path() {
        assert!(path.ends_with("tokwatch/config.toml"), "{}", path.display());
    }
    if let Some(dir) = config::user_theme_dir() {
        assert!(dir.ends_with("tokwatch/themes"), "{}", dir.display());
    }
}
