//! The frame around every screen: the tab bar and the status bar.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::config::keys::Action;
use crate::sanitize::sanitize;

use super::ViewCx;
use super::table::fit_width;
use crate::ui::format::age;
use crate::ui::state::Tab;
use unicode_width::UnicodeWidthStr;

pub(super) fn render_tabs(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let current = cx.view.screen().tab(cx.view.root);
    let mut spans = vec![Span::styled(
        " tokwatch ",
        cx.theme.accent.add_modifier(Modifier::BOLD),
    )];
    // Fits 80 columns; wider terminals get more air.
    let pad = if area.width >= 100 { " " } else { "" };
    for (i, tab) in Tab::ALL.iter().enumerate() {
        let label = format!("{pad}{} {} ", i + 1, tab.title());
        let style = if *tab == current {
            cx.theme.selected
        } else {
            cx.theme.muted
        };
        spans.push(Span::styled(label, style));
    }
    if cx.view.frozen {
        spans.push(Span::styled(
            " FROZEN ",
            cx.theme.warning.add_modifier(Modifier::REVERSED),
        ));
        // FROZEN must show: the name goes first when the line is too long
        let used: usize = spans.iter().map(|s| s.content.width()).sum();
        if used > usize::from(area.width) {
            spans.remove(0);
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub(super) fn render_status(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let data = cx.data;
    let stats = &data.stats;
    let live = stats.live_totals();
    let mut parts = vec![format!(
        " {} sources{}",
        data.sources.len().max(stats.sources.len()),
        source_formats(stats)
    )];
    if !stats.waiting_for.is_empty() {
        let targets = stats.waiting_for.join(", ");
        parts.push(format!("waiting for {} to appear", sanitize(&targets)));
    }
    if data.reading_backlog {
        parts.push("reading backlog…".to_owned());
    }
    // While frozen, the clock, the rate and the line count come from
    // ingest as it goes on, not from the held view.
    let (last_event_ms, lines_per_sec) = match (&data.live, cx.view.frozen) {
        (Some(live), true) => (live.last_event_ms, live.lines_per_sec),
        _ => (data.last_event_ms, data.lines_per_sec),
    };
    // The rate is measured while lines arrive; quiet for 2 s means 0.
    let quiet = last_event_ms.is_none_or(|ms| cx.now_ms - ms > 2_000);
    let rate = format!("{:.0} lines/s", if quiet { 0.0 } else { lines_per_sec });
    if cx.view.frozen {
        // what goes on behind the held view (the tab bar says FROZEN)
        let since = data
            .live
            .map_or(0, |live| live.lines.saturating_sub(stats.lines));
        parts.push(format!("+{since} lines since freeze"));
    } else {
        match last_event_ms {
            Some(ms) => parts.push(format!("last event {} ago", age(cx.now_ms - ms))),
            None => parts.push("no events yet".to_owned()),
        }
    }
    parts.push(rate);
    if stats.malformed > 0 {
        parts.push(format!(
            "{} malformed ({}: Events)",
            stats.malformed,
            cx.keymap.describe(Action::ScreenEvents)
        ));
    }
    if live.dropped > 0 {
        parts.push(format!("{} DROPPED", live.dropped));
    }
    if cx.view.filter_editing || !cx.view.filter.is_empty() {
        let cursor = if cx.view.filter_editing { "▏" } else { "" };
        parts.push(format!("filter: {}{cursor}", sanitize(&cx.view.filter)));
    }
    let status = parts.join(" · ");
    let width = usize::from(area.width);
    let mut help = format!("  {} help ", cx.keymap.describe(Action::Help));
    let mut spans = vec![Span::styled(status.clone(), cx.theme.status)];
    if let Some(toast) = &cx.view.toast {
        let style = if toast.error {
            cx.theme.error
        } else {
            cx.theme.accent
        };
        // a message goes before the help hint, shortened with `…` if need be
        let text = format!("  {}", sanitize(&toast.text));
        let mut room = width.saturating_sub(status.width());
        if room < text.width() + help.width() {
            help.clear();
        } else {
            room -= help.width();
        }
        spans.push(Span::styled(fit_width(&text, room), style));
    }
    let used: usize = spans.iter().map(|s| s.content.width()).sum();
    let pad = width.saturating_sub(used + help.width());
    spans.push(Span::styled(" ".repeat(pad), cx.theme.status));
    spans.push(Span::styled(
        help,
        cx.theme.status.add_modifier(Modifier::BOLD),
    ));
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(cx.theme.status),
        area,
    );
}

/// The input formats sources were read in, by how many sources (each
/// counted under the format most of its lines had): ` (claude-code ×12,
/// native)`. Empty before any line.
pub(super) fn source_formats(stats: &crate::ingest::IngestStats) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for index in 0..stats.sources.len() {
        if let Some(format) = stats.formats_of(index).first() {
            match counts.iter_mut().find(|(f, _)| f == format) {
                Some((_, n)) => *n += 1,
                None => counts.push((format, 1)),
            }
        }
    }
    if counts.is_empty() {
        return String::new();
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let listed: Vec<String> = counts
        .iter()
        .map(|(f, n)| {
            if *n > 1 {
                format!("{f} ×{n}")
            } else {
                (*f).to_owned()
            }
        })
        .collect();
    format!(" ({})", listed.join(", "))
}

#[cfg(test)]
mod tests {
    use crate::ingest::IngestStats;

    #[test]
    fn the_status_bar_names_the_formats_sources_were_read_in() {
        let mut stats = IngestStats::default();
        assert_eq!(super::source_formats(&stats), "");
        for (name, formats) in [
            ("a", &[("claude-code", 90), ("native", 1)][..]),
            ("b", &[("claude-code", 5)][..]),
            ("c", &[("native", 3)][..]),
            ("d", &[][..]),
        ] {
            let index = stats.add_source(name.into(), name.into());
            for (format, lines) in formats {
                stats.sources[index].formats.insert(format, *lines);
            }
        }
        assert_eq!(super::source_formats(&stats), " (claude-code ×2, native)");
    }
}
