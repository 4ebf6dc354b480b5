//! Chart helpers shared by screens: figure lines that wrap between values
//! (never through one), horizontal bars with their values, bars over time
//! with event markers, and a histogram with its scale. Values are never
//! cut: what does not fit is left out whole; only labels are shortened (`…`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, Block, Paragraph};

use super::ViewCx;
use crate::ui::format::fit;

/// One figure: a muted label and its value, never split across lines.
pub(super) fn figure<'a>(label: &str, value: String, style: Style, cx: &ViewCx) -> Vec<Span<'a>> {
    if label.is_empty() {
        return vec![Span::styled(value, style)];
    }
    vec![
        Span::styled(format!("{label} "), cx.theme.muted),
        Span::styled(value, style),
    ]
}

fn spans_width(spans: &[Span]) -> usize {
    spans.iter().map(Span::width).sum()
}

/// Lays out groups of figures in `width` columns: each group starts a line,
/// its figures follow one another (three spaces apart) and wrap between
/// figures onto indented lines.
pub(super) fn flow<'a>(groups: Vec<Vec<Vec<Span<'a>>>>, width: u16) -> Vec<Line<'a>> {
    const GAP: usize = 3;
    const INDENT: usize = 2;
    let width = usize::from(width);
    let mut lines = Vec::new();
    for group in groups {
        let mut line: Vec<Span<'a>> = Vec::new();
        let mut used = 0;
        for item in group {
            let w = spans_width(&item);
            if used > 0 && used + GAP + w > width {
                lines.push(Line::from(std::mem::take(&mut line)));
                line.push(Span::raw(" ".repeat(INDENT)));
                used = INDENT;
            } else if used > 0 {
                line.push(Span::raw(" ".repeat(GAP)));
                used += GAP;
            }
            used += w;
            line.extend(item);
        }
        if !line.is_empty() {
            lines.push(Line::from(line));
        }
    }
    lines
}

/// One row of [`hbars`].
pub(super) struct BarRow {
    /// Untrusted text must be sanitized by the caller.
    pub label: String,
    /// Bar length, relative to the largest row.
    pub value: u64,
    /// The value as shown, whole, right of the bar.
    pub text: String,
    pub style: Style,
}

/// Horizontal bars: label (shortened with `…` if need be), bar in eighths
/// of a cell, value text whole. Rows that do not fit are counted in a last
/// `… N more` line.
pub(super) fn hbars(frame: &mut Frame, area: Rect, rows: &[BarRow], cx: &ViewCx) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    if rows.is_empty() {
        frame.render_widget(Paragraph::new(Line::styled("none", cx.theme.muted)), area);
        return;
    }
    let width = usize::from(area.width);
    let text_w = rows
        .iter()
        .map(|r| r.text.chars().count())
        .max()
        .unwrap_or(0);
    let label_max = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0);
    let room = width.saturating_sub(text_w + 2);
    // labels as wide as they are while the bars keep two fifths of the room
    let label_w = label_max.min((room * 3 / 5).max(8)).min(room);
    let bar_w = room.saturating_sub(label_w);
    let bar_w = if bar_w < 3 { 0 } else { bar_w };
    let label_w = room - bar_w;
    let max = rows.iter().map(|r| r.value).max().unwrap_or(0).max(1);
    let height = usize::from(area.height);
    let shown = if rows.len() > height {
        height.saturating_sub(1)
    } else {
        rows.len()
    };
    let mut lines: Vec<Line> = rows[..shown]
        .iter()
        .map(|r| {
            let eighths =
                usize::try_from(u128::from(r.value) * (bar_w as u128) * 8 / u128::from(max))
                    .unwrap_or(0);
            let mut bar = "█".repeat(eighths / 8);
            if eighths % 8 > 0 {
                bar.push([' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8]);
            }
            let pad = bar_w.saturating_sub(bar.chars().count());
            Line::from(vec![
                Span::styled(
                    format!("{:<label_w$}", fit(&r.label, label_w)),
                    cx.theme.text,
                ),
                Span::raw(" "),
                Span::styled(bar, r.style),
                Span::raw(" ".repeat(pad)),
                Span::raw(" "),
                Span::styled(format!("{:>text_w$}", r.text), cx.theme.text),
            ])
        })
        .collect();
    if shown < rows.len() {
        lines.push(Line::styled(
            format!("… {} more", rows.len() - shown),
            cx.theme.muted,
        ));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// Events marked under [`time_bars`]: a symbol, its legend and the buckets
/// (indexes into the values) where they happened. Where kinds share a
/// bucket, the one given first is drawn; a kind left without a bucket is
/// left out of the legend.
pub(super) struct Markers<'a> {
    pub symbol: char,
    pub name: &'a str,
    pub at: Vec<usize>,
    pub style: Style,
}

/// What [`time_bars`] draws: bars over time, one column per bucket (oldest
/// first, the last one now); the y scale at the left (`y_top` at the top,
/// `$0` at the bottom); a dotted line and a symbol under the bars where a
/// marker falls, the markers' legend on top; `x_labels` (left, middle,
/// right) below.
pub(super) struct TimeBars<'a> {
    pub values: Vec<u64>,
    pub markers: Vec<Markers<'a>>,
    pub y_top: String,
    pub x_labels: [String; 3],
}

pub(super) fn time_bars(frame: &mut Frame, area: Rect, block: Block, chart: TimeBars, cx: &ViewCx) {
    let TimeBars {
        values,
        markers,
        y_top,
        x_labels,
    } = chart;
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // one symbol per column: an earlier marker kind wins a shared column
    let n_cols = values.len();
    let mut taken = vec![false; n_cols];
    let shown: Vec<(&Markers, Vec<usize>)> = markers
        .iter()
        .map(|m| {
            let mut at = Vec::new();
            for &i in &m.at {
                if i < n_cols && !taken[i] {
                    taken[i] = true;
                    at.push(i);
                }
            }
            (m, at)
        })
        .filter(|(_, at)| !at.is_empty())
        .collect();
    let legend_h = u16::from(!shown.is_empty());
    let gutter = u16::try_from(y_top.chars().count().max(2) + 1).unwrap_or(u16::MAX);
    let n = u16::try_from(values.len()).unwrap_or(u16::MAX);
    if inner.height < 3 + legend_h || inner.width < gutter + n || n == 0 {
        return;
    }
    let [legend, plot, marks, axis] = Layout::vertical([
        Constraint::Length(legend_h),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    if !shown.is_empty() {
        let mut spans = Vec::new();
        for (m, _) in &shown {
            spans.push(Span::styled(format!("{} ", m.symbol), m.style));
            spans.push(Span::styled(format!("{}   ", m.name), cx.theme.muted));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), legend);
    }
    // the last bar (now) at the right edge
    let bars = Rect {
        x: plot.x + plot.width - n,
        width: n,
        ..plot
    };
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let data: Vec<Bar> = values
        .iter()
        .map(|v| Bar::default().value(*v).text_value(String::new()))
        .collect();
    frame.render_widget(
        BarChart::vertical(data)
            .bar_width(1)
            .bar_gap(0)
            .max(max)
            .bar_style(cx.theme.chart),
        bars,
    );
    // the y scale
    let scale = Rect {
        width: gutter - 1,
        ..plot
    };
    let mut scale_lines = vec![Line::styled(y_top, cx.theme.muted)];
    scale_lines.extend((2..plot.height).map(|_| Line::raw("")));
    if plot.height > 1 {
        scale_lines.push(Line::styled("$0", cx.theme.muted));
    }
    frame.render_widget(
        Paragraph::new(scale_lines).alignment(ratatui::layout::Alignment::Right),
        scale,
    );
    // markers: a symbol under the bars, a dotted line through empty cells
    let buf = frame.buffer_mut();
    for (m, at) in &shown {
        for &i in at {
            let Ok(col) = u16::try_from(i) else { continue };
            let x = bars.x + col;
            for y in bars.y..bars.y + bars.height {
                if let Some(cell) = buf.cell_mut((x, y))
                    && cell.symbol() == " "
                {
                    cell.set_symbol("┊").set_style(m.style);
                }
            }
            if let Some(cell) = buf.cell_mut((x, marks.y)) {
                cell.set_char(m.symbol).set_style(m.style);
            }
        }
    }
    let axis = Rect {
        x: bars.x,
        width: n,
        ..axis
    };
    frame.render_widget(
        Paragraph::new(Line::styled(spread_labels(x_labels, n), cx.theme.muted)),
        axis,
    );
}

/// Left, middle and right labels on a line `width` wide: each whole or left
/// out (the middle one first).
fn spread_labels(labels: [String; 3], width: u16) -> String {
    let [left, middle, right] = labels;
    let w = usize::from(width);
    let (lw, mw, rw) = (
        left.chars().count(),
        middle.chars().count(),
        right.chars().count(),
    );
    let mut line = vec![' '; w];
    let mut put = |at: usize, text: &str| {
        for (i, ch) in text.chars().enumerate() {
            if let Some(cell) = line.get_mut(at + i) {
                *cell = ch;
            }
        }
    };
    if lw + rw < w {
        put(0, &left);
        put(w - rw, &right);
        let mid = (w.saturating_sub(mw)) / 2;
        if mid > lw && mid + mw < w - rw {
            put(mid, &middle);
        }
    } else if rw <= w {
        put(w - rw, &right);
    }
    line.into_iter().collect()
}

/// A histogram: one bar per bucket (as wide as the area allows), the scale
/// below (`scale`: left, middle and right edge labels), the largest count
/// above.
pub(super) fn histogram(
    frame: &mut Frame,
    area: Rect,
    block: Block,
    counts: &[u64],
    scale: [String; 3],
    cx: &ViewCx,
) {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 3 || inner.width < 8 || counts.is_empty() {
        return;
    }
    let [top, bars, axis] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let n = u16::try_from(counts.len()).unwrap_or(u16::MAX).max(1);
    let bar_width = (inner.width / n).max(1);
    let used = bar_width.saturating_mul(n).min(inner.width);
    let bars = Rect {
        width: used,
        ..bars
    };
    let max = counts.iter().copied().max().unwrap_or(0);
    let data: Vec<Bar> = counts
        .iter()
        .map(|c| Bar::default().value(*c).text_value(String::new()))
        .collect();
    frame.render_widget(
        BarChart::vertical(data)
            .bar_width(bar_width)
            .bar_gap(0)
            .max(max.max(1))
            .bar_style(cx.theme.chart),
        bars,
    );
    frame.render_widget(
        Paragraph::new(Line::styled(
            format!("tallest bar: {max} runs"),
            cx.theme.muted,
        )),
        top,
    );
    // the scale: left edge, middle, right edge, each whole or left out
    let axis = Rect {
        width: used,
        ..axis
    };
    frame.render_widget(
        Paragraph::new(Line::styled(spread_labels(scale, used), cx.theme.muted)),
        axis,
    );
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::config::keys::{Bindings, Keymap};
    use crate::ui::budgets::BudgetBoard;
    use crate::ui::data::{Published, Rows};
    use crate::ui::state::ViewState;
    use crate::ui::theme::Theme;

    fn draw(width: u16, height: u16, f: impl FnOnce(&mut Frame, Rect, &ViewCx)) -> String {
        let data = Published::default();
        let view = ViewState::default();
        let theme = Theme::builtin("dark").unwrap();
        let keymap = Keymap::new(&Bindings::default()).unwrap();
        let rows = Rows::default();
        let budgets = BudgetBoard::default();
        let cx = ViewCx {
            data: &data,
            view: &view,
            theme: &theme,
            keymap: &keymap,
            rows: &rows,
            now_ms: 0,
            budgets: &budgets,
        };
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| f(frame, frame.area(), &cx)).unwrap();
        terminal.backend().to_string()
    }

    #[test]
    fn figures_wrap_between_values_never_through_one() {
        let text = draw(24, 4, |frame, area, cx| {
            let group = vec![
                figure("spend", "$1,234.56".into(), cx.theme.cost, cx),
                figure("tokens", "12.34M".into(), cx.theme.text, cx),
                figure("runs", "1234567".into(), cx.theme.text, cx),
            ];
            let lines = flow(vec![group], area.width);
            assert_eq!(lines.len(), 3);
            frame.render_widget(Paragraph::new(lines), area);
        });
        assert!(text.contains("spend $1,234.56"), "{text}");
        assert!(text.contains("  tokens 12.34M"), "{text}");
        assert!(text.contains("  runs 1234567"), "{text}");
    }

    #[test]
    fn bars_shorten_labels_never_values_and_count_what_does_not_fit() {
        let text = draw(30, 3, |frame, area, cx| {
            let rows: Vec<BarRow> = (1..=4_u64)
                .map(|i| BarRow {
                    label: format!("a-very-long-agent-name-{i}"),
                    value: i,
                    text: format!("$12,345.6{i} 25%"),
                    style: cx.theme.chart,
                })
                .collect();
            hbars(frame, area, &rows, cx);
        });
        assert!(text.contains("$12,345.61 25%"), "{text}");
        assert!(text.contains("$12,345.62 25%"), "{text}");
        assert!(text.contains("a-very-… "), "{text}");
        assert!(text.contains("… 2 more"), "{text}");
    }

    #[test]
    fn labels_are_whole_while_the_bars_keep_room() {
        // the Overview's spend-by-segment panel at 200 columns
        let text = draw(46, 3, |frame, area, cx| {
            let rows: Vec<BarRow> = [("naive/enterprise", 9), ("lean/enterprise", 1)]
                .into_iter()
                .map(|(label, value)| BarRow {
                    label: label.into(),
                    value,
                    text: "$11.21  31%".into(),
                    style: cx.theme.chart,
                })
                .collect();
            hbars(frame, area, &rows, cx);
        });
        assert!(text.contains("naive/enterprise █"), "{text}");
        assert!(text.contains("lean/enterprise  █"), "{text}");
        // the bar still has two fifths of the room: 33 × 2 / 5 = 13 cells
        assert!(text.contains(&"█".repeat(13)), "{text}");
    }

    #[test]
    fn markers_sharing_a_bar_show_the_first_kind_and_the_legend_only_what_is_drawn() {
        let text = draw(40, 10, |frame, area, cx| {
            let markers = vec![
                Markers {
                    symbol: '▲',
                    name: "budget set here",
                    at: vec![5],
                    style: cx.theme.warning,
                },
                Markers {
                    symbol: '△',
                    name: "limit first enforced",
                    at: vec![5],
                    style: cx.theme.good,
                },
            ];
            time_bars(
                frame,
                area,
                Block::bordered(),
                TimeBars {
                    values: vec![1, 2, 3, 4, 5, 0, 0, 0, 0, 9],
                    markers,
                    y_top: "$9.00/min".into(),
                    x_labels: ["-10s".into(), "-5s".into(), "now".into()],
                },
                cx,
            );
        });
        assert!(
            text.contains('▲') && text.contains("budget set here"),
            "{text}"
        );
        assert!(
            !text.contains('△') && !text.contains("limit first"),
            "{text}"
        );
        assert!(
            text.contains('┊'),
            "the marker's line through empty cells:\n{text}"
        );
        assert!(text.contains("$9.00/min") && text.contains("now"), "{text}");
    }
}
