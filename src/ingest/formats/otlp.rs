//! Stub.

use super::{Context, Decoded, Emit, FormatDecoder};

#[derive(Debug, Default)]
pub struct Otlp;

impl FormatDecoder for Otlp {
    fn decode(
        &mut self,
        _line: &[u8],
        _line_no: u64,
        _cx: Context<'_>,
        _out: &mut dyn Emit,
    ) -> Result<Decoded, String> {
        Err("not supported yet".into())
    }
}
