//! Line mutations shared by the decoders' property tests.

use proptest::sample::Index;

/// Replaces the JSON value after one of `line`'s `:` (picked by `at`) with
/// `value`; the old value ends before the first of `ends` (or at the end of
/// the line). Returns false when the line has no `:`.
pub(crate) fn replace_value(line: &mut Vec<u8>, at: Index, value: &[u8], ends: &[u8]) -> bool {
    let colons: Vec<usize> = line
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b':')
        .map(|(i, _)| i)
        .collect();
    if colons.is_empty() {
        return false;
    }
    let start = colons[at.index(colons.len())] + 1;
    let end = line[start..]
        .iter()
        .position(|b| ends.contains(b))
        .map_or(line.len(), |p| start + p);
    line.splice(start..end, value.iter().copied());
    true
}
