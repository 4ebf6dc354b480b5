//! What the aggregator publishes for the dashboard, and the ordered rows of
//! every list computed from it (once per snapshot or sort/filter change,
//! never per frame).

use std::sync::Arc;

use crate::ingest::IngestStats;
use crate::model::anomaly::Anomaly;
use crate::model::insights::{BleedReason, Insights, trimmed_by_budget};
use crate::model::ledger::{KeyedAgg, RecentKind, RunAgg};
use crate::model::snapshot::NO_SEGMENT;
use crate::model::{Counters, Snapshot};
use crate::pricing::PriceBook;

use super::state::{ListKind, Scope, Screen, Sort, SortKey, ViewState};

/// One published state of the world.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    pub stats: Arc<IngestStats>,
    pub insights: Arc<Insights>,
    /// Lines per second read over the last second (all sources).
    pub lines_per_sec: f64,
    /// Wall-clock time of the newest event received, epoch ms.
    pub last_event_ms: Option<i64>,
    /// Sources in use (files followed, listeners), as named to the user.
    pub sources: Vec<String>,
    /// Followed files are still being read for the first time: the totals
    /// are growing toward what the files already hold.
    pub reading_backlog: bool,
    /// While the view is frozen: ingest as it goes on behind it (the rest
    /// of this state is held as it was when frozen).
    pub live: Option<LiveIngest>,
    /// The prices the ledger uses (what a trimmed hop would have cost);
    /// `None` before the first snapshot.
    pub prices: Option<Arc<PriceBook>>,
    /// The advisor's rules (the what-if overlay re-prices a run with them).
    pub advisor: Option<Arc<crate::model::advisor::AdvisorRules>>,
    /// The latest anomalies, oldest first (`model::anomaly`).
    pub anomalies: Arc<[Anomaly]>,
}

/// The row key of the Segments row of calls without a segment (`(none)`):
/// no segment name from a log starts with a NUL.
pub const NO_SEGMENT_KEY: &str = "\0(none)";

/// The Segments rows: every segment, then — when some calls have none —
/// a `(none)` row, so that the shares add up to 100 %. Row `i` of the
/// Segments list is `segment_rows(snapshot)[i]`.
#[must_use]
pub fn segment_rows(snap: &Snapshot) -> Vec<KeyedAgg> {
    let mut rows = snap.by_segment.clone();
    let rest = snap.unsegmented();
    if rest.events > 0 {
        rows.push(KeyedAgg {
            name: Arc::from(NO_SEGMENT),
            counters: rest,
        });
    }
    rows
}

/// Ingest behind a frozen view.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveIngest {
    /// Lines read in all (compare with the frozen `stats.lines`).
    pub lines: u64,
    pub lines_per_sec: f64,
    pub last_event_ms: Option<i64>,
}

/// A row key: stable under re-sorting (run id, agent, segment, model, or an
/// event's sequence number).
pub type RowKey = Arc<str>;

/// The ordered rows of the current list: indexes into the snapshot's vectors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    pub indexes: Vec<usize>,
}

/// Case-insensitive substring test without allocating (`needle` is
/// lowercase): it runs for every row on every key press.
fn contains(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if haystack.is_ascii() && needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        return h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(needle)
}

fn cmp_counters(a: &Counters, b: &Counters, key: SortKey) -> std::cmp::Ordering {
    match key {
        SortKey::Tokens => b.total_tokens.cmp(&a.total_tokens),
        SortKey::Input => b.input_tokens.cmp(&a.input_tokens),
        SortKey::Calls => b.events.cmp(&a.events),
        _ => b.cost.cmp(&a.cost),
    }
}

fn keyed_rows(rows: &[KeyedAgg], filter: &str, sort: Sort) -> Vec<usize> {
    let mut indexes: Vec<usize> = (0..rows.len())
        .filter(|&i| contains(&rows[i].name, filter))
        .collect();
    indexes.sort_by(|&a, &b| {
        let (ra, rb) = (&rows[a], &rows[b]);
        let order = match sort.key {
            SortKey::Name => ra.name.cmp(&rb.name),
            key => {
                cmp_counters(&ra.counters, &rb.counters, key).then_with(|| ra.name.cmp(&rb.name))
            }
        };
        if sort.reversed {
            order.reverse()
        } else {
            order
        }
    });
    indexes
}

/// `bleeding`: the run's bleeding hops (`Insights::bleeding`).
fn run_matches(
    run: &RunAgg,
    bleeding: &[(usize, BleedReason)],
    scope: Option<&Scope>,
    filter: &str,
) -> bool {
    let in_scope = match scope {
        None => true,
        Some(Scope::Agent(agent)) => run.hops.iter().any(|h| h.agent == *agent),
        Some(Scope::Segment(segment)) => run.segment.as_ref() == Some(segment),
        Some(Scope::NoSegment) => run.segment.is_none(),
        Some(Scope::Model(model)) => run.hops.iter().any(|h| h.model == *model),
        // as the offender was counted: a hop a budget trimmed did not bleed
        Some(Scope::BleedingHop { agent, hop }) => bleeding.iter().any(|(i, _)| {
            run.hops
                .get(*i)
                .is_some_and(|h| h.agent == *agent && h.hop == *hop && !trimmed_by_budget(h))
        }),
    };
    in_scope
        && (filter.is_empty()
            || contains(&run.run_id, filter)
            || run.segment.as_deref().is_some_and(|s| contains(s, filter))
            || run
                .hops
                .iter()
                .any(|h| contains(&h.agent, filter) || contains(&h.model, filter)))
}

impl Rows {
    /// The `visible` rows from display position `offset`: (position, index
    /// into the screen's data). What a list screen draws.
    pub fn window(
        &self,
        offset: usize,
        visible: usize,
    ) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.indexes
            .iter()
            .copied()
            .enumerate()
            .skip(offset)
            .take(visible)
    }

    /// Rows of `screen` in display order.
    #[must_use]
    pub fn compute(data: &Published, screen: &Screen, view: &ViewState) -> Rows {
        let Some(list) = screen.list() else {
            return Rows::default();
        };
        let sort = view.sort(list);
        let filter = view.filter.to_lowercase();
        let snap = &data.snapshot;
        let indexes = match (list, screen) {
            (ListKind::Runs, _) => {
                let scope = match screen {
                    Screen::Runs(scope) => Some(scope),
                    _ => None,
                };
                let bleeding = |i: usize| data.insights.bleeding.get(i).map_or(0, |b| b.len());
                let mut indexes: Vec<usize> = (0..snap.runs.len())
                    .filter(|&i| {
                        let bled = data.insights.bleeding.get(i).map_or(&[][..], |b| &b[..]);
                        run_matches(&snap.runs[i], bled, scope, &filter)
                    })
                    .collect();
                indexes.sort_by(|&a, &b| {
                    let (ra, rb) = (&snap.runs[a], &snap.runs[b]);
                    let order = match sort.key {
                        SortKey::Name => ra.run_id.cmp(&rb.run_id),
                        SortKey::Started => rb.first_ts_ms.cmp(&ra.first_ts_ms),
                        SortKey::Multiplier => rb
                            .multiplier()
                            .unwrap_or(0.0)
                            .total_cmp(&ra.multiplier().unwrap_or(0.0)),
                        SortKey::Bleeding => bleeding(b).cmp(&bleeding(a)),
                        SortKey::Hops => rb.hops.len().cmp(&ra.hops.len()),
                        key => cmp_counters(&ra.counters(), &rb.counters(), key),
                    }
                    .then_with(|| ra.run_id.cmp(&rb.run_id));
                    if sort.reversed {
                        order.reverse()
                    } else {
                        order
                    }
                });
                indexes
            }
            (ListKind::Agents, _) => keyed_rows(&snap.by_agent, &filter, sort),
            (ListKind::Segments, _) => keyed_rows(&segment_rows(snap), &filter, sort),
            (ListKind::Models, _) => {
                let rows: Vec<KeyedAgg> = snap
                    .by_model
                    .iter()
                    .map(|m| KeyedAgg {
                        name: m.name.clone(),
                        counters: m.counters,
                    })
                    .collect();
                keyed_rows(&rows, &filter, sort)
            }
            (ListKind::Events, _) => {
                let recent = &snap.recent;
                let mut indexes: Vec<usize> = (0..recent.len())
                    .rev()
                    .filter(|&i| {
                        let e = &recent[i];
                        filter.is_empty()
                            || contains(&e.run_id, &filter)
                            || contains(&e.agent, &filter)
                            || contains(&e.model, &filter)
                    })
                    .collect();
                match sort.key {
                    SortKey::Position => {
                        // newest event time first, ties latest read first
                        let times = event_times(recent);
                        indexes.sort_by(|&a, &b| times[b].cmp(&times[a]).then(b.cmp(&a)));
                    }
                    SortKey::Cost => indexes.sort_by(|&a, &b| recent[b].cost.cmp(&recent[a].cost)),
                    SortKey::Input => indexes.sort_by(|&a, &b| {
                        recent[b]
                            .usage
                            .input_total()
                            .cmp(&recent[a].usage.input_total())
                    }),
                    _ => {}
                }
                if sort.reversed {
                    indexes.reverse();
                }
                indexes
            }
            (ListKind::Hops, Screen::Run(run_id)) => {
                match snap.runs.iter().find(|r| r.run_id == *run_id) {
                    Some(run) => {
                        let mut indexes: Vec<usize> = (0..run.hops.len()).collect();
                        match sort.key {
                            SortKey::Cost => {
                                indexes.sort_by(|&a, &b| run.hops[b].cost.cmp(&run.hops[a].cost))
                            }
                            SortKey::Input => indexes.sort_by(|&a, &b| {
                                run.hops[b]
                                    .usage
                                    .input_total()
                                    .cmp(&run.hops[a].usage.input_total())
                            }),
                            _ => {}
                        }
                        if sort.reversed {
                            indexes.reverse();
                        }
                        indexes
                    }
                    None => Vec::new(),
                }
            }
            (ListKind::Hops, _) => Vec::new(),
        };
        Rows { indexes }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.indexes.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.indexes.is_empty()
    }
}

/// The time each tail event is ordered by: its own timestamp, or — for an
/// event without one — the time of the latest event read before it, so that
/// it keeps its place by arrival.
fn event_times(recent: &[crate::model::ledger::RecentEvent]) -> Vec<i64> {
    let mut last = i64::MIN;
    recent
        .iter()
        .map(|e| {
            if let Some(ts) = e.ts_ms {
                last = ts;
            }
            e.ts_ms.unwrap_or(last)
        })
        .collect()
}

/// The key of row `index` (an index into the snapshot's vector) of `screen`.
#[must_use]
pub fn row_key(data: &Published, screen: &Screen, index: usize) -> Option<RowKey> {
    let snap = &data.snapshot;
    match screen.list()? {
        ListKind::Runs => snap.runs.get(index).map(|r| r.run_id.clone()),
        ListKind::Agents => snap.by_agent.get(index).map(|r| r.name.clone()),
        ListKind::Segments => match snap.by_segment.get(index) {
            Some(row) => Some(row.name.clone()),
            // the row of calls without a segment
            None => (index == snap.by_segment.len()).then(|| Arc::from(NO_SEGMENT_KEY)),
        },
        ListKind::Models => snap.by_model.get(index).map(|r| r.name.clone()),
        ListKind::Events => snap.recent.get(index).map(|e| {
            let kind = match e.kind {
                RecentKind::Hop => "h",
                RecentKind::BudgetExceeded(_) => "b",
                RecentKind::RunEnd(_) => "e",
            };
            Arc::from(format!(
                "{}#{}#{kind}#{}",
                e.run_id,
                e.hop,
                e.ts_ms.unwrap_or(0)
            ))
        }),
        ListKind::Hops => match screen {
            Screen::Run(run_id) => snap
                .runs
                .iter()
                .find(|r| r.run_id == *run_id)
                .and_then(|r| r.hops.get(index))
                .map(|h| Arc::from(h.hop.to_string())),
            _ => None,
        },
    }
}

/// The position of the selected row in `rows` (clamped; the first row when
/// the selected key is gone).
#[must_use]
pub fn selected_position(
    data: &Published,
    screen: &Screen,
    rows: &Rows,
    selected: Option<&RowKey>,
) -> Option<usize> {
    if rows.is_empty() {
        return None;
    }
    let Some(key) = selected else { return Some(0) };
    rows.indexes
        .iter()
        .position(|&i| row_key(data, screen, i).as_ref() == Some(key))
        .or(Some(0))
}

/// What unit tests of the dashboard draw from.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::Published;
    use crate::ingest::sources::files;
    use crate::ingest::{Ingestor, TimeWindow};
    use crate::model::insights::{BleedRules, Insights};
    use crate::model::{Ledger, LedgerConfig};
    use crate::pricing::PriceBook;

    /// The sample workload (`sample_logs/`) as the dashboard would have
    /// published it once read, with the default rules and embedded prices.
    pub(crate) fn sample() -> Published {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_logs");
        let mut ledger = Ledger::new(PriceBook::embedded(), LedgerConfig::default());
        let mut ingestor = Ingestor::new(&mut ledger, TimeWindow::default());
        let found = files::discover(&[root]).unwrap();
        files::read_files(
            &found,
            files::DEFAULT_MAX_LINE_BYTES,
            &Default::default(),
            &mut ingestor,
        )
        .unwrap();
        let stats = ingestor.stats;
        let snapshot = ledger.snapshot();
        let insights = Insights::compute(
            &snapshot,
            &BleedRules::default(),
            &PriceBook::embedded(),
            None,
        );
        Published {
            snapshot: Arc::new(snapshot),
            stats: Arc::new(stats),
            insights: Arc::new(insights),
            sources: vec!["sample_logs".into()],
            prices: Some(Arc::new(PriceBook::embedded())),
            ..Published::default()
        }
    }
}
