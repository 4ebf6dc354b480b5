//! The one table every list screen is drawn with.
//!
//! A screen declares its columns — a header, a [`Kind`], a priority and a
//! width range — and pushes rows of ready-made cells; [`DataTable::render`]
//! lays them out for the width it gets:
//!
//! - widths follow content: a column is as wide as its widest cell (or its
//!   header), text columns within `min..=max`;
//! - **numbers are never cut**: a [`Kind::Number`] column is always as wide as
//!   its widest value, right-aligned, units included;
//! - when the columns do not fit, whole columns are **dropped by priority**
//!   (the highest `priority` first; `0` is never dropped), and only then is
//!   **text shortened with `…`** down to its `min`;
//! - a text column may claim more room than its `min` ([`Column::wants`]):
//!   columns that claim none are dropped first, so that it shows up to that
//!   many cells (an essential state, say, rather than a usage figure);
//! - text cut short runs on over the cells to its right that are empty in
//!   its row (a budget event has no tokens to show: its breach takes their
//!   room);
//! - a [`Kind::Bar`] column takes the width that is left (within
//!   `min..=max`) and draws its stacked bars to that scale;
//! - the sorted column's header carries the sort arrow (`cost↓`).
//!
//! ```ignore
//! let mut table = DataTable::new(vec![
//!     Column::text("run", 0, 8, 24).sorts(SortKey::Name),
//!     Column::number("cost", 0).sorts(SortKey::Cost),
//!     Column::text("status", 2, 6, 12),
//! ])
//! .sorted(cx.view.sort(ListKind::Runs), ListKind::Runs);
//! table.row(vec![TableCell::text(id), TableCell::number(cost), TableCell::text(status)], style);
//! table.render(frame, area, block);
//! ```

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row, Table};
use unicode_width::UnicodeWidthStr;

use crate::ui::format::fit;
use crate::ui::state::{ListKind, Sort, SortKey};

/// Cells between columns.
const SPACING: u16 = 1;

/// How a column's cells are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Never cut, right-aligned; the column is as wide as its widest value.
    Number,
    /// Shortened with `…` when the width runs out, left-aligned.
    Text,
    /// Stacked bars, drawn to the width the column gets.
    Bar,
}

/// One column: what it shows and how much room it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub header: String,
    pub kind: Kind,
    /// `0`: always shown; otherwise the highest priority is dropped first
    /// when the columns do not fit.
    pub priority: u8,
    /// Text: the narrowest it is shortened to before the column is dropped
    /// instead; bars: the narrowest bar. Unused for numbers.
    pub min: u16,
    /// Text and bars: the widest it grows. Unused for numbers.
    pub max: u16,
    /// Text: the cells (or its whole content, if shorter) worth dropping
    /// the columns that claim none for, before it is shortened below them;
    /// `0`: no claim. See [`Column::wants`].
    pub wants: u16,
    /// The sort key this column shows (its header gets the arrow).
    pub sort: Option<SortKey>,
}

impl Column {
    /// A number column (never cut).
    #[must_use]
    pub fn number(header: &str, priority: u8) -> Column {
        Column {
            header: header.to_owned(),
            kind: Kind::Number,
            priority,
            min: 0,
            max: u16::MAX,
            wants: 0,
            sort: None,
        }
    }

    /// A text column, between `min` and `max` cells wide.
    #[must_use]
    pub fn text(header: &str, priority: u8, min: u16, max: u16) -> Column {
        Column {
            header: header.to_owned(),
            kind: Kind::Text,
            priority,
            min,
            max: max.max(min),
            wants: 0,
            sort: None,
        }
    }

    /// A bar column, between `min` and `max` cells wide, taking what is left.
    #[must_use]
    pub fn bar(header: &str, priority: u8, min: u16, max: u16) -> Column {
        Column {
            header: header.to_owned(),
            kind: Kind::Bar,
            priority,
            min,
            max: max.max(min),
            wants: 0,
            sort: None,
        }
    }

    /// Claims `cells` for this text column: while the row does not fit,
    /// columns that claim nothing are dropped (by priority, as ever) before
    /// it is given fewer than `cells` (or its whole content, if shorter).
    /// When the claiming columns do not fit even then, they are shortened
    /// down to their `min`, then dropped by priority, like any text.
    #[must_use]
    pub fn wants(mut self, cells: u16) -> Column {
        self.wants = cells;
        self
    }

    /// Marks the column as the one `key` sorts.
    #[must_use]
    pub fn sorts(mut self, key: SortKey) -> Column {
        self.sort = Some(key);
        self
    }
}

/// What a cell holds.
#[derive(Debug, Clone, PartialEq)]
enum Content {
    Plain(String),
    /// Parts joined with ` · `, shortened by whole parts (a number among
    /// them is never cut).
    Parts(Vec<String>),
    /// Stacked parts `(value, glyph, style)` scaled so that `scale` fills the column.
    Bar {
        parts: Vec<(u64, char, Style)>,
        scale: u64,
    },
}

/// One cell: text (fitted by its column's kind) or a bar, with an optional
/// style of its own (else the row's).
#[derive(Debug, Clone, PartialEq)]
pub struct TableCell {
    content: Content,
    style: Option<Style>,
}

impl TableCell {
    /// A text cell (its column decides whether it may be shortened).
    #[must_use]
    pub fn text(text: impl Into<String>) -> TableCell {
        TableCell {
            content: Content::Plain(text.into()),
            style: None,
        }
    }

    /// Text made of parts joined with ` · `; when it does not fit, whole
    /// parts are left out from the end (shown by `…`), so a value in a part
    /// is never cut. Only a first part that does not fit alone is
    /// shortened, at a word boundary ([`fit_words`]).
    #[must_use]
    pub fn parts(parts: Vec<String>) -> TableCell {
        TableCell {
            content: Content::Parts(parts),
            style: None,
        }
    }

    /// A number cell; same as [`TableCell::text`], named for the reader.
    #[must_use]
    pub fn number(text: impl Into<String>) -> TableCell {
        TableCell::text(text)
    }

    /// A stacked bar: each part `(value, glyph, style)` takes
    /// `value × width ÷ scale` cells; a non-zero last part at least one.
    #[must_use]
    pub fn bar(parts: Vec<(u64, char, Style)>, scale: u64) -> TableCell {
        TableCell {
            content: Content::Bar {
                parts,
                scale: scale.max(1),
            },
            style: None,
        }
    }

    /// The cell's own style.
    #[must_use]
    pub fn styled(mut self, style: Style) -> TableCell {
        self.style = Some(style);
        self
    }

    fn width(&self) -> usize {
        match &self.content {
            Content::Plain(text) => text.width(),
            Content::Parts(parts) => {
                parts.iter().map(|p| p.width()).sum::<usize>() + 3 * parts.len().saturating_sub(1)
            }
            Content::Bar { .. } => 0,
        }
    }
}

/// A table being built: columns, then rows, then [`DataTable::render`].
#[derive(Debug, Clone)]
pub struct DataTable {
    columns: Vec<Column>,
    rows: Vec<(Vec<TableCell>, Style)>,
    header_style: Style,
    /// The sorted key and its arrow.
    sort: Option<(SortKey, &'static str)>,
}

impl DataTable {
    #[must_use]
    pub fn new(columns: Vec<Column>) -> DataTable {
        DataTable {
            columns,
            rows: Vec::new(),
            header_style: Style::default(),
            sort: None,
        }
    }

    /// Puts the sort arrow of `sort` (on `list`) on the column that shows its key.
    #[must_use]
    pub fn sorted(mut self, sort: Sort, list: ListKind) -> DataTable {
        self.sort = Some((sort.key, sort.arrow(list)));
        self
    }

    #[must_use]
    pub fn header_style(mut self, style: Style) -> DataTable {
        self.header_style = style;
        self
    }

    /// Adds a row: one cell per column (missing cells are blank).
    pub fn row(&mut self, cells: Vec<TableCell>, style: Style) {
        self.rows.push((cells, style));
    }

    fn header(&self, column: &Column) -> String {
        match (self.sort, column.sort) {
            (Some((key, arrow)), Some(shown)) if key == shown => {
                format!("{}{arrow}", column.header)
            }
            _ => column.header.clone(),
        }
    }

    /// The width of each column in `width` cells, `None` when it is dropped.
    #[must_use]
    pub fn layout(&self, width: u16) -> Vec<Option<u16>> {
        let n = self.columns.len();
        // (narrowest, natural, whole content) per column
        let bounds: Vec<(u16, u16, u16)> = self
            .columns
            .iter()
            .enumerate()
            .map(|(c, column)| {
                let header = self.header(column).width();
                let content = self
                    .rows
                    .iter()
                    .filter_map(|(cells, _)| cells.get(c))
                    .map(TableCell::width)
                    .max()
                    .unwrap_or(0);
                let wanted = to_u16(header.max(content));
                match column.kind {
                    Kind::Number => (wanted, wanted, wanted),
                    Kind::Text => {
                        let natural = wanted.min(column.max);
                        (column.min.min(natural), natural, wanted)
                    }
                    Kind::Bar => (column.min, column.max, column.max),
                }
            })
            .collect();
        // what a column claims (`wants`), else its narrowest
        let claimed: Vec<u16> = self
            .columns
            .iter()
            .zip(&bounds)
            .map(|(column, &(min, natural, _))| column.wants.min(natural).max(min))
            .collect();
        let mut shown = vec![true; n];
        let sum = |shown: &[bool], cells: &dyn Fn(usize) -> u16| -> u32 {
            let visible = shown.iter().filter(|s| **s).count();
            let total: u32 = (0..n)
                .filter(|&c| shown[c])
                .map(|c| u32::from(cells(c)))
                .sum();
            total + u32::from(SPACING) * u32::try_from(visible.saturating_sub(1)).unwrap_or(0)
        };
        let needed = |shown: &[bool]| sum(shown, &|c| bounds[c].0);
        // columns that claim nothing go first, so that claims are met
        while sum(&shown, &|c| claimed[c]) > u32::from(width) {
            let Some(drop) = (0..n)
                .filter(|&c| shown[c] && self.columns[c].priority > 0 && self.columns[c].wants == 0)
                .max_by_key(|&c| (self.columns[c].priority, c))
            else {
                break;
            };
            shown[drop] = false;
        }
        while needed(&shown) > u32::from(width) {
            // the highest priority number goes first; among equals, the rightmost
            let Some(drop) = (0..n)
                .filter(|&c| shown[c] && self.columns[c].priority > 0)
                .max_by_key(|&c| (self.columns[c].priority, c))
            else {
                break;
            };
            shown[drop] = false;
        }
        let mut widths: Vec<Option<u16>> =
            (0..n).map(|c| shown[c].then_some(bounds[c].0)).collect();
        let mut spare = u32::from(width).saturating_sub(needed(&shown));
        // Text grows toward its claim, then its natural width (within
        // `max`), most important columns first; then bars take what is left;
        // then text still cut grows past `max` toward its whole content.
        let mut order: Vec<usize> = (0..n).filter(|&c| shown[c]).collect();
        order.sort_by_key(|&c| {
            (
                self.columns[c].kind == Kind::Bar,
                self.columns[c].priority,
                c,
            )
        });
        for target in [
            |claim: u16, _: (u16, u16, u16)| claim,
            |_: u16, b: (u16, u16, u16)| b.1,
            |_: u16, b: (u16, u16, u16)| b.2,
        ] {
            for &c in &order {
                let Some(current) = widths[c] else { continue };
                let wanted = target(claimed[c], bounds[c]);
                let grow = u32::from(wanted.saturating_sub(current)).min(spare);
                spare -= grow;
                widths[c] = Some(current + to_u16(usize::try_from(grow).unwrap_or(0)));
            }
        }
        widths
    }

    /// Draws the table in `area` inside `block`.
    pub fn render(self, frame: &mut Frame, area: Rect, block: Block) {
        let inner = block.inner(area);
        let widths = self.layout(inner.width);
        let visible: Vec<(usize, u16)> = widths
            .iter()
            .enumerate()
            .filter_map(|(c, w)| w.map(|w| (c, w)))
            .collect();
        let header = Row::new(visible.iter().map(|&(c, w)| {
            let column = &self.columns[c];
            let text = self.header(column);
            cell_line(&column.kind, fit(&text, usize::from(w)), None)
        }))
        .style(self.header_style);
        let rows: Vec<Row> = self
            .rows
            .iter()
            .map(|(cells, style)| {
                Row::new(visible.iter().map(|&(c, w)| {
                    let column = &self.columns[c];
                    match cells.get(c) {
                        None => Cell::from(""),
                        Some(cell) => render_cell(column.kind, cell, usize::from(w)),
                    }
                }))
                .style(*style)
            })
            .collect();
        let constraints: Vec<Constraint> = visible
            .iter()
            .map(|&(_, w)| Constraint::Length(w))
            .collect();
        frame.render_widget(
            Table::new(rows, constraints)
                .header(header)
                .block(block)
                .column_spacing(SPACING),
            area,
        );
        // text too long for its column runs on over the row's empty cells
        // to its right (a budget event has no tokens of its own to show)
        let used: u32 = visible
            .iter()
            .map(|&(_, w)| u32::from(w) + u32::from(SPACING))
            .sum();
        if used > u32::from(inner.width) + u32::from(SPACING) {
            return;
        }
        let buffer = frame.buffer_mut();
        let rows_shown = usize::from(inner.height.saturating_sub(1));
        for (r, (cells, style)) in self.rows.iter().enumerate().take(rows_shown) {
            let y = inner.y + 1 + to_u16(r);
            for (x, width, text, cell_style) in self.run_ons(cells, &visible) {
                let style = cell_style.map_or(*style, |s| style.patch(s));
                buffer.set_stringn(inner.x + x, y, text, usize::from(width), style);
            }
        }
    }

    /// The text cells of a row that run on over empty cells to their right:
    /// `(x, width, text, style)`, x from the table's left edge.
    fn run_ons(
        &self,
        cells: &[TableCell],
        visible: &[(usize, u16)],
    ) -> Vec<(u16, u16, String, Option<Style>)> {
        let blank = |c: usize| {
            cells
                .get(c)
                .is_none_or(|cell| matches!(&cell.content, Content::Plain(t) if t.is_empty()))
        };
        let mut out = Vec::new();
        let mut x = 0;
        for (k, &(c, w)) in visible.iter().enumerate() {
            let start = x;
            x += w + SPACING;
            let Some(cell) = cells.get(c) else { continue };
            if self.columns[c].kind != Kind::Text
                || matches!(cell.content, Content::Bar { .. })
                || cell.width() <= usize::from(w)
            {
                continue;
            }
            let room: u16 = visible[k + 1..]
                .iter()
                .take_while(|&&(next, _)| blank(next))
                .map(|&(_, next_w)| next_w + SPACING)
                .sum();
            if room == 0 {
                continue;
            }
            let width = w + room;
            let text = match &cell.content {
                Content::Plain(text) => fit(text, usize::from(width)),
                Content::Parts(parts) => fit_parts(parts, usize::from(width)),
                Content::Bar { .. } => continue,
            };
            let pad = usize::from(width).saturating_sub(text.width());
            out.push((start, width, text + &" ".repeat(pad), cell.style));
        }
        out
    }
}

fn to_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn cell_line<'a>(kind: &Kind, text: String, style: Option<Style>) -> Cell<'a> {
    let span = match style {
        Some(style) => Span::styled(text, style),
        None => Span::raw(text),
    };
    let line = Line::from(span);
    Cell::from(if *kind == Kind::Number {
        line.alignment(Alignment::Right)
    } else {
        line
    })
}

fn render_cell<'a>(kind: Kind, cell: &TableCell, width: usize) -> Cell<'a> {
    match &cell.content {
        Content::Plain(text) => {
            let text = match kind {
                // never cut: the layout made room (below the narrowest
                // terminal the table can hold, ratatui clips)
                Kind::Number => text.clone(),
                Kind::Text | Kind::Bar => fit(text, width),
            };
            cell_line(&kind, text, cell.style)
        }
        Content::Parts(parts) => cell_line(&kind, fit_parts(parts, width), cell.style),
        Content::Bar { parts, scale } => Cell::from(bar_line(parts, *scale, width)),
    }
}

/// Joins `parts` with ` · ` within `width` cells, leaving out whole parts
/// from the end (`a · b …`).
#[must_use]
pub fn fit_parts(parts: &[String], width: usize) -> String {
    let joined = parts.join(" · ");
    if joined.width() <= width {
        return joined;
    }
    let mut out = String::new();
    for part in parts {
        let candidate = if out.is_empty() {
            part.clone()
        } else {
            format!("{out} · {part}")
        };
        // room for the ` …` that says more was left out
        if candidate.width() + 2 > width {
            break;
        }
        out = candidate;
    }
    match parts {
        [] => String::new(),
        // not even the first part with ` …`: cut inside it, so that the
        // `…` still says more was left out
        [only] if out.is_empty() => fit_words(only, width),
        [first, ..] if out.is_empty() => fit_words(&format!("{first} …"), width),
        _ => out + " …",
    }
}

/// Shortens `text` to `width` cells at a word boundary (`v1 run 120000…`),
/// so that a number in it is shown whole or not at all; a first word too
/// wide alone (a name) is cut with `…`.
#[must_use]
pub fn fit_words(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut words = String::new();
    for word in text.split(' ') {
        let candidate = if words.is_empty() {
            word.to_owned()
        } else {
            format!("{words} {word}")
        };
        // room for the `…`
        if candidate.width() + 1 > width {
            break;
        }
        words = candidate;
    }
    if words.is_empty() {
        fit(text, width)
    } else {
        words + "…"
    }
}

/// Stacked bar parts scaled so that `scale` is `width` cells.
fn bar_line<'a>(parts: &[(u64, char, Style)], scale: u64, width: usize) -> Line<'a> {
    let cells = |n: u64| -> usize {
        let cells = u128::from(n) * width as u128 / u128::from(scale.max(1));
        usize::try_from(cells).unwrap_or(width).min(width)
    };
    let last = parts.len().saturating_sub(1);
    Line::from(
        parts
            .iter()
            .enumerate()
            .map(|(i, (value, glyph, style))| {
                let n = cells(*value).max(usize::from(i == last && *value > 0));
                (n, glyph, style)
            })
            .filter(|(n, _, _)| *n > 0)
            .map(|(n, glyph, style)| Span::styled(glyph.to_string().repeat(n), *style))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::widgets::Borders;

    fn table() -> DataTable {
        let mut table = DataTable::new(vec![
            Column::text("run", 0, 10, 30).sorts(SortKey::Name),
            Column::text("segment", 2, 6, 20),
            Column::number("tokens", 1).sorts(SortKey::Tokens),
            Column::number("cost", 0).sorts(SortKey::Cost),
            Column::text("status", 3, 7, 10),
        ]);
        for (run, segment, tokens, cost, status) in [
            (
                "naive-0001",
                "naive/enterprise",
                "259.6k",
                "$1.50",
                "running",
            ),
            ("lean-0002", "lean/free", "51.2k", "$0.0072", "ok"),
        ] {
            table.row(
                vec![
                    TableCell::text(run),
                    TableCell::text(segment),
                    TableCell::number(tokens),
                    TableCell::number(cost),
                    TableCell::text(status),
                ],
                Style::default(),
            );
        }
        table
    }

    fn draw(table: DataTable, width: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, 4)).unwrap();
        terminal
            .draw(|frame| {
                table.render(frame, frame.area(), Block::default().borders(Borders::NONE));
            })
            .unwrap();
        terminal.backend().to_string()
    }

    #[test]
    fn widths_follow_content_when_everything_fits() {
        // run 10, segment 16, tokens 6, cost 7, status 7 + 4 spaces
        assert_eq!(
            table().layout(80),
            vec![Some(10), Some(16), Some(6), Some(7), Some(7)]
        );
    }

    #[test]
    fn text_is_shortened_before_any_column_goes_and_columns_go_by_priority() {
        // 50 = everything at its natural width
        assert_eq!(
            table().layout(46),
            vec![Some(10), Some(12), Some(6), Some(7), Some(7)]
        );
        // minimums: 10 + 6 + 6 + 7 + 7 + 4 = 40; below that status (3) goes first
        assert_eq!(
            table().layout(34),
            vec![Some(10), Some(8), Some(6), Some(7), None]
        );
        // then segment (2), then tokens (1); run and cost (0) stay
        assert_eq!(
            table().layout(27),
            vec![Some(10), None, Some(6), Some(7), None]
        );
        assert_eq!(
            table().layout(18),
            vec![Some(10), None, None, Some(7), None]
        );
    }

    #[test]
    fn numbers_are_never_cut_and_text_ends_with_an_ellipsis() {
        let text = draw(table(), 38);
        assert!(text.contains("$0.0072"), "{text}");
        assert!(text.contains("259.6k"), "{text}");
        assert!(text.contains("naive/enter…"), "{text}");
        // the status column was dropped whole, not cut to `runni`
        assert!(!text.contains("runni"), "{text}");
        // numbers are right-aligned under their header
        assert!(text.contains("  $1.50"), "{text}");
    }

    #[test]
    fn the_sorted_column_carries_the_arrow() {
        let sorted = table().sorted(
            Sort {
                key: SortKey::Name,
                reversed: false,
            },
            ListKind::Runs,
        );
        let text = draw(sorted, 80);
        assert!(text.contains("run↑"), "{text}");
        let sorted = table().sorted(
            Sort {
                key: SortKey::Cost,
                reversed: false,
            },
            ListKind::Runs,
        );
        let text = draw(sorted, 80);
        assert!(text.contains("cost↓"), "{text}");
        assert!(!text.contains("run↑"), "{text}");
    }

    #[test]
    fn bars_take_the_width_left_and_scale_to_it() {
        let mut table =
            DataTable::new(vec![Column::number("hop", 0), Column::bar("bar", 1, 4, 20)]);
        table.row(
            vec![
                TableCell::number("1"),
                TableCell::bar(
                    vec![(50, '█', Style::default()), (50, '▓', Style::default())],
                    100,
                ),
            ],
            Style::default(),
        );
        assert_eq!(table.layout(15), vec![Some(3), Some(11)]);
        let text = draw(table, 15);
        assert!(text.contains("█████▓▓▓▓▓"), "{text}");
    }

    #[test]
    fn parts_are_left_out_whole_so_no_value_is_cut() {
        let parts: Vec<String> = ["ok", "8 hops", "259.6k tokens", "$1.50"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(fit_parts(&parts, 80), "ok · 8 hops · 259.6k tokens · $1.50");
        assert_eq!(fit_parts(&parts, 30), "ok · 8 hops · 259.6k tokens …");
        assert_eq!(fit_parts(&parts, 20), "ok · 8 hops …");
        // a first part alone too wide is text: shortened
        assert_eq!(fit_parts(&["researcher".to_owned()], 8), "researc…");
        // at a word boundary, so that a number in it is never cut
        let limits: Vec<String> = ["v1 run 120000 tokens (abort)", "run $0.50 (abort)"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            fit_parts(&limits, 50),
            "v1 run 120000 tokens (abort) · run $0.50 (abort)"
        );
        assert_eq!(fit_parts(&limits, 32), "v1 run 120000 tokens (abort) …");
        // the first part fits, but not with ` …`: the `…` still shows
        assert_eq!(fit_parts(&limits, 29), "v1 run 120000 tokens (abort)…");
        assert_eq!(fit_parts(&limits, 28), "v1 run 120000 tokens…");
        assert_eq!(fit_parts(&limits, 20), "v1 run 120000…");
        assert_eq!(fit_parts(&limits, 12), "v1 run…");
    }

    #[test]
    fn columns_that_claim_nothing_go_before_a_claim_is_cut() {
        let columns = || {
            vec![
                Column::text("scope", 0, 6, 20),
                Column::text("state", 1, 8, 40),
                Column::number("largest hop", 3),
                Column::number("worst run", 4),
            ]
        };
        let rows = |table: &mut DataTable| {
            table.row(
                vec![
                    TableCell::text("agent writer"),
                    TableCell::text("v3 set by another controller"),
                    TableCell::number("50.0k / 9.0k"),
                    TableCell::number("259.6k"),
                ],
                Style::default(),
            );
        };
        // without a claim, the state is shortened to keep both numbers
        let mut plain = DataTable::new(columns());
        rows(&mut plain);
        assert_eq!(
            plain.layout(60),
            vec![Some(12), Some(24), Some(12), Some(9)]
        );
        // claimed: the numbers go, the lowest first, until scope and state
        // show whole
        let mut claimed = DataTable::new({
            let mut c = columns();
            c[0] = c[0].clone().wants(20);
            c[1] = c[1].clone().wants(30);
            c
        });
        rows(&mut claimed);
        assert_eq!(claimed.layout(60), vec![Some(12), Some(28), Some(12), None]);
        assert_eq!(claimed.layout(50), vec![Some(12), Some(28), None, None]);
        // too narrow for the claim even alone: shortened down to its minimum
        assert_eq!(claimed.layout(30), vec![Some(12), Some(17), None, None]);
        assert_eq!(claimed.layout(18), vec![Some(9), Some(8), None, None]);
        // wide enough: everything, as without a claim
        assert_eq!(claimed.layout(80), plain.layout(80));
    }

    #[test]
    fn text_cut_short_runs_on_over_the_empty_cells_of_its_row() {
        let mut table = DataTable::new(vec![
            Column::text("what", 0, 6, 40),
            Column::number("in", 1),
            Column::number("cost", 0),
        ]);
        let parts = |p: &[&str]| TableCell::parts(p.iter().map(|s| (*s).to_owned()).collect());
        table.row(
            vec![
                parts(&["researcher", "claude-opus-4-6"]),
                TableCell::number("49.2k"),
                TableCell::number("$0.170"),
            ],
            Style::default(),
        );
        // a budget event: no tokens or cost of its own
        table.row(
            vec![
                parts(&["researcher", "per_hop limit 7.0k", "saw 34.4k", "→ trim"]),
                TableCell::number(""),
                TableCell::number(""),
            ],
            Style::default(),
        );
        // what: 40 - 2 spaces - 5 - 6 = 27 cells
        assert_eq!(table.layout(40), vec![Some(27), Some(5), Some(6)]);
        let text = draw(table, 40);
        // a row with values in its cells keeps to its column
        assert!(
            text.contains("researcher …                49.2k $0.170"),
            "{text}"
        );
        assert!(
            text.contains("researcher · per_hop limit 7.0k …       "),
            "the row's own data uses its empty cells:\n{text}"
        );
    }

    #[test]
    fn fit_counts_terminal_cells() {
        assert_eq!(fit("researcher", 6), "resea…");
        assert_eq!(fit("abc", 6), "abc");
        assert_eq!(fit("日本語テキスト", 5), "日本…");
        assert_eq!(fit("abc", 0), "");
    }
}
