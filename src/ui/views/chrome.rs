//! The frame around every screen: the tab bar and the status bar.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::config::keys::Action;
use crate::sanitize::sanitize;

use super::ViewCx;
use crate::ui::format::age;
use crate::ui::format::fit;
use crate::ui::state::Tab;
use unicode_width::UnicodeWidthStr;

pub(super) fn render_tabs(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let current = cx.view.screen().tab(cx.view.root);
    // Wider terminals get more air; on narrow ones the name goes first,
    // then tab titles are shortened: every tab and FROZEN always show.
    let pad = if area.width >= 100 { " " } else { "" };
    let line = |brand: bool, short: bool| {
        let mut spans = Vec::new();
        if brand {
            spans.push(Span::styled(
                " tokwatch ",
                cx.theme.accent.add_modifier(Modifier::BOLD),
            ));
        }
        for (i, tab) in Tab::ALL.iter().enumerate() {
            let title = if short {
                tab.short_title()
            } else {
                tab.title()
            };
            let label = format!("{pad}{} {title} ", i + 1);
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
        }
        spans
    };
    let fits = |spans: &Vec<Span>| {
        spans.iter().map(|s| s.content.width()).sum::<usize>() <= usize::from(area.width)
    };
    let spans = [(true, false), (false, false), (false, true)]
        .into_iter()
        .map(|(brand, short)| line(brand, short))
        .find(fits)
        .unwrap_or_else(|| line(false, true));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A part of the status bar: its text, a shorter form to use before it is
/// left out, and how soon it goes when the bar is too narrow (the highest
/// `drop` first; `0` stays).
struct Part {
    text: String,
    short: Option<String>,
    drop: u8,
}

impl Part {
    fn new(text: String, drop: u8) -> Part {
        Part {
            text,
            short: None,
            drop,
        }
    }

    fn or_short(mut self, short: String) -> Part {
        self.short = Some(short);
        self
    }
}

/// `n thing` or `n things`.
pub(super) fn count(n: impl Into<u64>, thing: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// The parts joined with ` · ` in at most `width` cells. Level by level,
/// the highest `drop` first, parts are shortened, then left out whole (the
/// rightmost first), so no part is ever cut — a number keeps its unit.
fn fit_status(mut parts: Vec<Part>, width: usize) -> String {
    let joined = |parts: &[Part]| -> String {
        let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
        format!(" {}", texts.join(" · "))
    };
    let levels = parts.iter().map(|p| p.drop).max().unwrap_or(0);
    for level in (1..=levels).rev() {
        for shorten in [true, false] {
            while joined(&parts).width() > width {
                let at_level = |p: &Part| p.drop == level && (!shorten || p.short.is_some());
                let Some(i) = parts.iter().rposition(at_level) else {
                    break;
                };
                match parts[i].short.take() {
                    Some(short) if shorten => parts[i].text = short,
                    _ => {
                        parts.remove(i);
                    }
                }
            }
        }
    }
    // only what must stay, and still too wide: shortened with `…`
    fit(&joined(&parts), width)
}

pub(super) fn render_status(frame: &mut Frame, area: Rect, cx: &ViewCx) {
    let data = cx.data;
    let stats = &data.stats;
    let live = stats.live_totals();
    let sources = count(
        u64::try_from(data.sources.len().max(stats.sources.len())).unwrap_or(u64::MAX),
        "source",
    );
    let mut parts =
        vec![Part::new(format!("{sources}{}", source_formats(stats)), 6).or_short(sources)];
    if !stats.waiting_for.is_empty() {
        let targets = stats.waiting_for.join(", ");
        parts.push(
            Part::new(format!("waiting for {} to appear", sanitize(&targets)), 2).or_short(
                format!(
                    "waiting for {}",
                    count(u64::try_from(stats.waiting_for.len()).unwrap_or(0), "path")
                ),
            ),
        );
    }
    if data.reading_backlog {
        parts.push(Part::new("reading backlog…".to_owned(), 5));
    }
    // While frozen, the clock, the rate and the line count come from
    // ingest as it goes on, not from the held view. The clock here is when
    // a line was last read (not the events' own time stamps).
    let (last_read_ms, lines_per_sec) = match (&data.live, cx.view.frozen) {
        (Some(live), true) => (live.last_event_ms, live.lines_per_sec),
        _ => (data.last_event_ms, data.lines_per_sec),
    };
    // The rate is measured while lines arrive; quiet for 2 s means 0.
    let quiet = last_read_ms.is_none_or(|ms| cx.now_ms - ms > 2_000);
    let rate = format!("{:.0} lines/s", if quiet { 0.0 } else { lines_per_sec });
    if cx.view.frozen {
        // what goes on behind the held view (the tab bar says FROZEN)
        let since = data
            .live
            .map_or(0, |live| live.lines.saturating_sub(stats.lines));
        parts.push(Part::new(format!("+{since} lines since freeze"), 1));
    } else {
        match last_read_ms {
            Some(ms) => parts.push(Part::new(
                format!("last line read {} ago", age(cx.now_ms - ms)),
                3,
            )),
            None => parts.push(Part::new("no events yet".to_owned(), 3)),
        }
    }
    parts.push(Part::new(rate, 4));
    if stats.malformed > 0 {
        let malformed = format!("{} malformed", stats.malformed);
        parts.push(
            Part::new(
                format!(
                    "{malformed} ({}: Events)",
                    cx.keymap.describe(Action::ScreenEvents)
                ),
                2,
            )
            .or_short(malformed),
        );
    }
    if live.errors > 0 {
        // a directory that cannot be listed, a file that cannot be opened:
        // never silent (the latest one says where)
        let errors = count(live.errors, "error");
        let text = match &live.last_error {
            Some(last) => format!("{errors}, last: {}", sanitize(last)),
            None => errors.clone(),
        };
        parts.push(Part::new(text, 1).or_short(errors));
    }
    if live.dropped > 0 {
        parts.push(Part::new(format!("{} DROPPED", live.dropped), 0));
    }
    if cx.view.filter_editing || !cx.view.filter.is_empty() {
        let cursor = if cx.view.filter_editing { "▏" } else { "" };
        parts.push(Part::new(
            format!("filter: {}{cursor}", sanitize(&cx.view.filter)),
            0,
        ));
    }
    // The mark goes first, and the rest of the bar fits beside it.
    let (mark, spike) = anomaly_mark(cx);
    let mark_width = mark.as_ref().map_or(0, |m| m.width());
    let width = usize::from(area.width).saturating_sub(mark_width);
    let mut help = format!("  {} help ", cx.keymap.describe(Action::Help));
    // A key's answer first; else a spike raised in the last seconds.
    let toast = cx.view.toast.as_ref().map(|toast| {
        let style = if toast.error {
            cx.theme.error
        } else {
            cx.theme.accent
        };
        (format!("  {}", sanitize(&toast.text)), style)
    });
    let toast = toast.or(spike);
    // a message (the answer to a key just pressed) goes before the status
    // parts, which leave it room — all but a few cells
    let reserved = toast.as_ref().map_or(help.width(), |(text, _)| {
        text.width().min(width.saturating_sub(12))
    });
    let status = fit_status(parts, width.saturating_sub(reserved));
    let mut spans = Vec::new();
    if let Some(mark) = mark {
        spans.push(Span::styled(
            mark,
            cx.theme
                .warning
                .add_modifier(Modifier::REVERSED | Modifier::BOLD),
        ));
    }
    spans.push(Span::styled(status.clone(), cx.theme.status));
    if let Some((text, style)) = toast {
        // before the help hint, shortened with `…` if need be
        let mut room = width.saturating_sub(status.width());
        if room < text.width() + help.width() {
            help.clear();
        } else {
            room -= help.width();
        }
        spans.push(Span::styled(fit(&text, room), style));
    }
    let used: usize = spans.iter().map(|s| s.content.width()).sum::<usize>() - mark_width;
    if used + help.width() > width {
        help.clear();
    }
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

/// How long a spike shows as a toast, and as a mark in the status bar.
pub const SPIKE_TOAST_MS: i64 = 10_000;
pub const SPIKE_MARK_MS: i64 = 5 * 60_000;

/// The status bar's mark while anomalies are recent (` SPIKE ×2 `: text,
/// not colour alone), and the newest one as a toast for its first seconds.
fn anomaly_mark(cx: &ViewCx) -> (Option<String>, Option<(String, ratatui::style::Style)>) {
    let recent = |within: i64| {
        let now = cx.now_ms;
        move |a: &&crate::model::anomaly::Anomaly| (0..within).contains(&(now - a.at_ms))
    };
    let marked = cx
        .data
        .anomalies
        .iter()
        .filter(recent(SPIKE_MARK_MS))
        .count();
    let mark = match marked {
        0 => None,
        1 => Some(" SPIKE ".to_owned()),
        n => Some(format!(" SPIKE ×{n} ")),
    };
    let toast = cx
        .data
        .anomalies
        .iter()
        .rfind(recent(SPIKE_TOAST_MS))
        .map(|a| (format!("  ! {}", sanitize(&a.message)), cx.theme.warning));
    (mark, toast)
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
    fn status_parts_are_shortened_then_left_out_whole() {
        use super::{Part, fit_status};
        let parts = || {
            vec![
                Part::new("4 sources (native ×4)".into(), 6).or_short("4 sources".into()),
                Part::new("last line read 4s ago".into(), 3),
                Part::new("0 lines/s".into(), 4),
                Part::new("3 malformed (6: Events)".into(), 2).or_short("3 malformed".into()),
                Part::new("2 DROPPED".into(), 0),
            ]
        };
        let all = " 4 sources (native ×4) · last line read 4s ago · 0 lines/s · 3 malformed (6: Events) · 2 DROPPED";
        assert_eq!(fit_status(parts(), 200), all);
        assert_eq!(
            fit_status(parts(), 90),
            " 4 sources · last line read 4s ago · 0 lines/s · 3 malformed (6: Events) · 2 DROPPED"
        );
        assert_eq!(
            fit_status(parts(), 72),
            " last line read 4s ago · 0 lines/s · 3 malformed (6: Events) · 2 DROPPED"
        );
        assert_eq!(
            fit_status(parts(), 60),
            " last line read 4s ago · 3 malformed (6: Events) · 2 DROPPED"
        );
        assert_eq!(
            fit_status(parts(), 40),
            " 3 malformed (6: Events) · 2 DROPPED"
        );
        assert_eq!(fit_status(parts(), 30), " 3 malformed · 2 DROPPED");
        assert_eq!(fit_status(parts(), 12), " 2 DROPPED");
    }

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
