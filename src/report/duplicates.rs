//! The duplicate-prompt part of a report (`docs/report-schema.md`
//! § Duplicates, `docs/insights.md` § Duplicate prompts): present only when
//! some call carried a prompt fingerprint.

use std::fmt::Write as _;

use serde::Serialize;

use super::{align_numbers, cell, dollars, new_table, section, tokens};
use crate::model::Usd;
use crate::model::duplicates::{DuplicateAgent, DuplicateGroup, DuplicateSummary};

/// `duplicates` in the JSON report.
#[derive(Debug, Serialize)]
pub(super) struct JsonDuplicates<'a> {
    max_hamming: u32,
    capacity: usize,
    prompts: u64,
    first_seen: u64,
    exact_duplicates: u64,
    near_duplicates: u64,
    unpriced_exact_duplicates: u64,
    unpriced_near_duplicates: u64,
    avoidable_cost_usd: Option<Usd>,
    avoidable_exact_cost_usd: Option<Usd>,
    avoidable_near_cost_usd: Option<Usd>,
    forgotten_prints: u64,
    top_groups: Vec<JsonGroup<'a>>,
    by_agent: Vec<JsonAgent<'a>>,
}

#[derive(Debug, Serialize)]
struct JsonGroup<'a> {
    print: &'a str,
    calls: u64,
    repeats: u64,
    exact: u64,
    near: u64,
    unpriced_repeats: u64,
    avoidable_cost_usd: Option<Usd>,
    agents: Vec<&'a str>,
    first_run_id: Option<&'a str>,
    first_hop: Option<u32>,
}

#[derive(Debug, Serialize)]
struct JsonAgent<'a> {
    agent: &'a str,
    repeats: u64,
    unpriced_repeats: u64,
    avoidable_cost_usd: Option<Usd>,
}

/// An amount over `hits` of which `unpriced` had none: `null` when hits
/// there were and none was priced (absent money is never `0`).
fn amount(sum: Usd, hits: u64, unpriced: u64) -> Option<Usd> {
    (hits == 0 || unpriced < hits).then_some(sum)
}

pub(super) fn json(s: &DuplicateSummary) -> JsonDuplicates<'_> {
    JsonDuplicates {
        max_hamming: s.max_hamming,
        capacity: s.capacity,
        prompts: s.prompts,
        first_seen: s.first,
        exact_duplicates: s.exact,
        near_duplicates: s.near,
        unpriced_exact_duplicates: s.unpriced_exact,
        unpriced_near_duplicates: s.unpriced_near,
        avoidable_cost_usd: amount(s.avoidable(), s.exact + s.near, s.unpriced()),
        avoidable_exact_cost_usd: amount(s.avoidable_exact, s.exact, s.unpriced_exact),
        avoidable_near_cost_usd: amount(s.avoidable_near, s.near, s.unpriced_near),
        forgotten_prints: s.forgotten,
        top_groups: s.top_groups.iter().map(json_group).collect(),
        by_agent: s
            .by_agent
            .iter()
            .map(|a: &DuplicateAgent| JsonAgent {
                agent: &a.agent,
                repeats: a.repeats,
                unpriced_repeats: a.unpriced,
                avoidable_cost_usd: amount(a.avoidable, a.repeats, a.unpriced),
            })
            .collect(),
    }
}

fn json_group(g: &DuplicateGroup) -> JsonGroup<'_> {
    JsonGroup {
        print: &g.print,
        calls: g.repeats + 1,
        repeats: g.repeats,
        exact: g.exact,
        near: g.near,
        unpriced_repeats: g.unpriced,
        avoidable_cost_usd: amount(g.avoidable, g.repeats, g.unpriced),
        agents: g.agents.iter().map(|a| &**a).collect(),
        first_run_id: g.first.as_ref().map(|(run, _)| &**run),
        first_hop: g.first.as_ref().map(|(_, hop)| *hop),
    }
}

fn money(sum: Usd, hits: u64, unpriced: u64) -> String {
    match amount(sum, hits, unpriced) {
        None => "unpriced".to_owned(),
        Some(sum) if unpriced > 0 => format!("{}+?", dollars(sum)),
        Some(sum) => dollars(sum),
    }
}

/// The "Duplicate prompts" section of the table and Markdown reports.
pub(super) fn render_text(out: &mut String, s: &DuplicateSummary, markdown: bool) {
    let hits = s.exact + s.near;
    let mut table = new_table(
        markdown,
        &[
            "prompt print",
            "calls",
            "exact",
            "near",
            "avoidable",
            "agents",
            "first seen",
        ],
    );
    for g in &s.top_groups {
        let agents: Vec<String> = g.agents.iter().map(|a| cell(a, markdown)).collect();
        let first = g.first.as_ref().map_or_else(
            || "(forgotten)".to_owned(),
            |(run, hop)| format!("{} hop {hop}", cell(run, markdown)),
        );
        table.add_row(vec![
            g.print.clone(),
            tokens(g.repeats + 1),
            tokens(g.exact),
            tokens(g.near),
            money(g.avoidable, g.repeats, g.unpriced),
            agents.join(", "),
            first,
        ]);
    }
    align_numbers(&mut table, 1);
    if let Some(column) = table.column_mut(5) {
        column.set_cell_alignment(comfy_table::CellAlignment::Left);
    }
    if let Some(column) = table.column_mut(6) {
        column.set_cell_alignment(comfy_table::CellAlignment::Left);
    }
    let title = "Duplicate prompts";
    if markdown {
        let _ = write!(out, "\n## {title}\n\n");
    } else {
        let _ = writeln!(out, "\n{title}");
    }
    let prompts = match s.prompts {
        1 => "1 fingerprinted prompt".to_owned(),
        n => format!("{} fingerprinted prompts", tokens(n)),
    };
    if hits == 0 {
        let _ = writeln!(
            out,
            "{prompts}, no duplicates (SimHash within {} bits)",
            s.max_hamming
        );
        return;
    }
    let _ = writeln!(
        out,
        "{prompts}: {} first seen, {} exact and {} near duplicates \
         (SimHash within {} bits) · a semantic cache would have saved {} \
         (exact {}, near {})",
        tokens(s.first),
        tokens(s.exact),
        tokens(s.near),
        s.max_hamming,
        money(s.avoidable(), hits, s.unpriced()),
        money(s.avoidable_exact, s.exact, s.unpriced_exact),
        money(s.avoidable_near, s.near, s.unpriced_near),
    );
    if markdown {
        out.push('\n');
    }
    let _ = writeln!(out, "{table}");
    if !s.by_agent.is_empty() {
        let mut agents = new_table(markdown, &["agent", "duplicate calls", "avoidable"]);
        for a in &s.by_agent {
            agents.add_row(vec![
                cell(&a.agent, markdown),
                tokens(a.repeats),
                money(a.avoidable, a.repeats, a.unpriced),
            ]);
        }
        align_numbers(&mut agents, 1);
        section(out, markdown, "Duplicate prompts by agent", &agents);
    }
}
