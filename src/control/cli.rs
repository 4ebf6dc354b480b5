//! `tokwatch budget set|list|get`: exit 0 only when every runtime
//! acknowledged; 1 with a clear message when one refused, was unreachable or
//! timed out; 2 for bad arguments or a bad budgets file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::ControlAddr;
use super::client::{Connection, ControlError, Outcome};
use super::protocol::VersionedBudget;
use super::store::{self, DesiredState};
use crate::cli::{BudgetAction, BudgetArgs, ControlArgs, ScopeArgs};
use crate::model::budget::{BreachAction, Limits, Scope};
use crate::sanitize::sanitize;

fn scope_of(args: &ScopeArgs) -> Scope {
    match (&args.agent, &args.segment) {
        (Some(agent), _) => Scope::Agent(agent.clone()),
        (None, Some(segment)) => Scope::Segment(segment.clone()),
        (None, None) => Scope::Global,
    }
}

fn addresses(args: &ControlArgs) -> anyhow::Result<Vec<ControlAddr>> {
    args.control
        .iter()
        .map(|a| a.parse::<ControlAddr>().map_err(anyhow::Error::msg))
        .collect()
}

fn store_path(args: &ControlArgs) -> anyhow::Result<PathBuf> {
    args.budgets
        .clone()
        .or_else(store::default_path)
        .context("no place for the budgets file: set --budgets FILE or XDG_STATE_HOME")
}

/// Runs a `tokwatch budget` command.
///
/// # Errors
/// Bad arguments or an unreadable budgets file (exit status 2).
pub fn run(args: BudgetArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match args.action {
            BudgetAction::Set {
                scope,
                control,
                per_hop_limit,
                run_limit,
                run_cost_limit,
                on_breach,
            } => {
                let limits = Limits {
                    per_hop_limit,
                    total_run_limit: run_limit,
                    run_cost_limit_usd: run_cost_limit,
                    on_hop_breach: on_breach.filter(|_| per_hop_limit.is_some()),
                    on_run_breach: on_breach
                        .filter(|_| run_limit.is_some() || per_hop_limit.is_none()),
                };
                set(scope_of(&scope), limits, &control).await
            }
            BudgetAction::List { control } => show(None, &control).await,
            BudgetAction::Get { scope, control } => show(Some(scope_of(&scope)), &control).await,
        }
    })
}

async fn set(scope: Scope, limits: Limits, control: &ControlArgs) -> anyhow::Result<ExitCode> {
    limits.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    if limits.on_hop_breach == Some(BreachAction::Trim) && limits.per_hop_limit.is_none() {
        anyhow::bail!("--on-breach trim applies to --per-hop-limit only");
    }
    let addresses = addresses(control)?;
    let path = store_path(control)?;
    let mut desired = DesiredState::load(&path)?;
    // Greet every runtime first: the change is based on the newest version
    // in force (a runtime where another controller sets a newer one before
    // it arrives refuses it as a conflict).
    let mut connections = Vec::new();
    let mut failures = Vec::new();
    for addr in &addresses {
        match Connection::open(addr, control.control_token.as_deref(), control.timeout).await {
            Ok(connection) => connections.push(connection),
            Err(e) => failures.push((addr.to_string(), e)),
        }
    }
    let seen = connections
        .iter()
        .filter_map(|c| c.applied.get(&scope))
        .copied()
        .max()
        .unwrap_or(0);
    let before = desired.budgets.get(&scope).map(|b| b.limits.clone());
    let budget = desired.try_set(scope.clone(), limits, seen)?;
    desired.save(&path)?;
    store::audit_change(&path, &budget, before.as_ref())?;
    let mut all_acked = failures.is_empty();
    for mut connection in connections {
        let result = connection.set(&budget, control.timeout).await;
        let text = match &result {
            Ok(Outcome::Ack) => format!("applied v{}", budget.version),
            Ok(Outcome::Nack {
                reason,
                applied_version,
            }) => format!(
                "rejected v{}: {reason} (v{applied_version} stays in force)",
                budget.version
            ),
            Ok(Outcome::Conflict {
                reason,
                applied_version,
                limits,
            }) => format!(
                "refused v{}: {reason}; v{applied_version} stays in force{}",
                budget.version,
                limits
                    .as_ref()
                    .map_or(String::new(), |l| format!(" ({})", l.describe()))
            ),
            Err(e) => format!("failed: {e}"),
        };
        all_acked &= matches!(result, Ok(Outcome::Ack));
        let audit_result = match &result {
            Ok(outcome) => outcome.audit(),
            Err(ControlError::Timeout(_)) => "timeout".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        store::audit_result(
            &path,
            &budget.scope,
            budget.version,
            budget.idempotency_key.as_deref(),
            connection.addr(),
            &audit_result,
        )?;
        report(
            connection.addr(),
            &scope,
            &text,
            matches!(result, Ok(Outcome::Ack)),
        );
    }
    for (addr, error) in &failures {
        store::audit_result(
            &path,
            &budget.scope,
            budget.version,
            budget.idempotency_key.as_deref(),
            addr,
            &format!("unreachable: {error}"),
        )?;
        report(
            addr,
            &scope,
            &format!(
                "pending v{}: {error}; the change is saved and sent when tokwatch next connects",
                budget.version
            ),
            false,
        );
    }
    Ok(if all_acked {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report(addr: &str, scope: &Scope, text: &str, ok: bool) {
    let line = format!(
        "{}: {}: {}",
        sanitize(addr),
        sanitize(&scope.to_string()),
        sanitize(text)
    );
    if ok {
        println!("{line}");
    } else {
        eprintln!("tokwatch: {line}");
    }
}

async fn show(only: Option<Scope>, control: &ControlArgs) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for addr in addresses(control)? {
        let listed = async {
            let mut connection =
                Connection::open(&addr, control.control_token.as_deref(), control.timeout).await?;
            let budgets = connection.list(control.timeout).await?;
            Ok::<_, ControlError>((connection.runtime, connection.runtime_id, budgets))
        };
        match listed.await {
            Ok((runtime, runtime_id, budgets)) => {
                println!(
                    "{addr} ({}, {}):",
                    sanitize(&runtime),
                    sanitize(&runtime_id)
                );
                let shown: Vec<&VersionedBudget> = budgets
                    .iter()
                    .filter(|b| only.as_ref().is_none_or(|s| *s == b.scope))
                    .collect();
                if shown.is_empty() {
                    println!(
                        "  no budget{}",
                        only.as_ref().map_or(String::new(), |s| format!(" for {s}"))
                    );
                }
                for budget in shown {
                    println!(
                        "  {:<24} v{:<4} {}",
                        sanitize(&budget.scope.to_string()),
                        budget.version,
                        budget.limits.describe()
                    );
                }
            }
            Err(e) => {
                ok = false;
                eprintln!("tokwatch: {e}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
