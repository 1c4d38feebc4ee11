//! A module's shape, read from its bytes before wasmi sees them: the checks wasmi's
//! validation does not make (locals per function, the number of memories and tables)
//! and the `start` function moved out of the instantiation, where no deadline reaches
//! it, into an export the host calls like any other (under fuel and the clock).
//!
//! Only the section framing and the code section's local declarations are read here;
//! everything else (types, instructions) is left to wasmi's validation. A module this
//! reader cannot frame is refused as not WebAssembly. A new load-time check goes here.

use super::FunctionError;
use super::guest_call::MAX_TABLES;
use super::limits::{MAX_GROWS_PER_FUNCTION, MAX_LOCALS_PER_FUNCTION};

/// The export the `start` function is moved to. The NUL keeps it out of any name a
/// toolchain emits; a module exporting it itself is refused by validation (duplicate).
pub(super) const START_EXPORT: &str = "\0edge-agent:start";

const MAGIC: &[u8; 8] = b"\0asm\x01\0\0\0";

const SECTION_TABLE: u8 = 4;
const SECTION_MEMORY: u8 = 5;
const SECTION_EXPORT: u8 = 7;
const SECTION_START: u8 = 8;
const SECTION_CODE: u8 = 10;

/// What the load-time checks found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Shape {
    /// The `start` function's index, if the module has one.
    pub(super) start: Option<u32>,
}

/// Checks `bytes`' shape; with a `start` function, also answers the bytes wasmi is given
/// instead: the same module with the start section removed and [`START_EXPORT`] added.
pub(super) fn inspect(bytes: &[u8]) -> Result<(Shape, Option<Vec<u8>>), FunctionError> {
    let sections = sections(bytes)?;
    let mut shape = Shape::default();
    for section in &sections {
        let mut reader = Reader::new(section.payload);
        match section.id {
            SECTION_MEMORY => {
                let count = reader.u32()?;
                if count > 1 {
                    return Err(FunctionError::Shape(format!(
                        "it declares {count} linear memories; a function gets one"
                    )));
                }
            }
            SECTION_TABLE => {
                let count = reader.u32()?;
                if count as usize > MAX_TABLES {
                    return Err(FunctionError::Shape(format!(
                        "it declares {count} tables; a function gets at most {MAX_TABLES}"
                    )));
                }
            }
            SECTION_START => shape.start = Some(reader.u32()?),
            SECTION_CODE => check_locals(&mut reader)?,
            _ => {}
        }
    }
    let rewritten = match shape.start {
        Some(start) => Some(move_start_to_export(bytes, &sections, start)?),
        None => None,
    };
    Ok((shape, rewritten))
}

fn check_locals(reader: &mut Reader<'_>) -> Result<(), FunctionError> {
    let functions = reader.u32()?;
    for index in 0..functions {
        let size = reader.u32()? as usize;
        let mut body = Reader::new(reader.take(size)?);
        let groups = body.u32()?;
        let mut locals: u32 = 0;
        for _ in 0..groups {
            let count = body.u32()?;
            locals = locals.saturating_add(count);
            if locals > MAX_LOCALS_PER_FUNCTION {
                return Err(FunctionError::Shape(format!(
                    "function {index} of the code section declares more than {MAX_LOCALS_PER_FUNCTION} locals; every call zeroes them all, which fuel does not meter"
                )));
            }
            body.value_type()?;
        }
        let code = &body.bytes[body.pos..];
        let grows = code
            .windows(2)
            .filter(|pair| matches!(pair, [0x40, 0x00] | [0xfc, 0x0f]))
            .count();
        if grows > MAX_GROWS_PER_FUNCTION {
            return Err(FunctionError::Shape(format!(
                "function {index} of the code section holds about {grows} memory.grow or table.grow instructions; the most is {MAX_GROWS_PER_FUNCTION}"
            )));
        }
    }
    Ok(())
}

struct Section<'a> {
    id: u8,
    /// The whole section, id and size included.
    raw: &'a [u8],
    payload: &'a [u8],
}

fn sections(bytes: &[u8]) -> Result<Vec<Section<'_>>, FunctionError> {
    let mut reader = Reader::new(bytes);
    if reader.take(MAGIC.len()).ok() != Some(&MAGIC[..]) {
        return Err(FunctionError::NotWasm(
            "it does not start with the WebAssembly 1.0 header".into(),
        ));
    }
    let mut sections = Vec::new();
    while !reader.is_empty() {
        let start = reader.pos;
        let id = reader.u8()?;
        let size = reader.u32()? as usize;
        let payload = reader.take(size)?;
        let raw = bytes.get(start..reader.pos).ok_or_else(truncated)?;
        sections.push(Section { id, raw, payload });
    }
    Ok(sections)
}

/// The module with its start section dropped and an export of the start function
/// appended to its export section.
fn move_start_to_export(
    bytes: &[u8],
    sections: &[Section<'_>],
    start: u32,
) -> Result<Vec<u8>, FunctionError> {
    let mut out = Vec::with_capacity(bytes.len().saturating_add(32));
    out.extend_from_slice(MAGIC);
    let mut exported = false;
    for section in sections {
        match section.id {
            SECTION_START => {}
            SECTION_EXPORT => {
                let mut reader = Reader::new(section.payload);
                let count = reader.u32()?;
                let rest = &section.payload[reader.pos..];
                let mut payload = Vec::with_capacity(section.payload.len().saturating_add(32));
                write_u32(&mut payload, count.checked_add(1).ok_or_else(truncated)?);
                payload.extend_from_slice(rest);
                write_u32(&mut payload, START_EXPORT.len() as u32);
                payload.extend_from_slice(START_EXPORT.as_bytes());
                payload.push(0x00); // a function
                write_u32(&mut payload, start);
                out.push(SECTION_EXPORT);
                write_u32(
                    &mut out,
                    u32::try_from(payload.len()).map_err(|_| truncated())?,
                );
                out.extend_from_slice(&payload);
                exported = true;
            }
            _ => out.extend_from_slice(section.raw),
        }
    }
    if !exported {
        // No exports at all: the module is refused for its missing `memory` anyway.
        return Err(FunctionError::MissingExport {
            name: "memory",
            expected: "a linear memory",
        });
    }
    Ok(out)
}

fn truncated() -> FunctionError {
    FunctionError::NotWasm("a section or an entry runs past the end of the module".into())
}

fn write_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn u8(&mut self) -> Result<u8, FunctionError> {
        let byte = *self.bytes.get(self.pos).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], FunctionError> {
        let end = self.pos.checked_add(len).ok_or_else(truncated)?;
        let taken = self.bytes.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(taken)
    }

    /// An unsigned LEB128 of at most 32 bits, as the binary format allows.
    fn u32(&mut self) -> Result<u32, FunctionError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.u8()?;
            let bits = u32::from(byte & 0x7f);
            if shift == 28 && bits > 0x0f {
                return Err(FunctionError::NotWasm(
                    "an integer is longer than 32 bits".into(),
                ));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(FunctionError::NotWasm(
            "an integer is longer than 32 bits".into(),
        ))
    }

    /// A value type: one byte, or a reference type with its heap type (a signed LEB).
    fn value_type(&mut self) -> Result<(), FunctionError> {
        match self.u8()? {
            0x63 | 0x64 => {
                while self.u8()? & 0x80 != 0 {}
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_round_trips_and_overlong_is_refused() {
        for value in [0, 1, 127, 128, 300, 16_384, u32::MAX] {
            let mut bytes = Vec::new();
            write_u32(&mut bytes, value);
            assert_eq!(Reader::new(&bytes).u32().unwrap(), value);
        }
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x7f]).u32().is_err());
        assert!(Reader::new(&[0x80]).u32().is_err());
    }

    #[test]
    fn a_start_function_becomes_an_export() {
        let bytes = wat::parse_str(r#"(module (memory (export "memory") 1) (func $s) (start $s))"#)
            .unwrap();
        let (shape, rewritten) = inspect(&bytes).unwrap();
        assert_eq!(shape.start, Some(0));
        let rewritten = rewritten.unwrap();
        let (again, none) = inspect(&rewritten).unwrap();
        assert_eq!((again.start, none), (None, None));
        let engine = wasmi::Engine::default();
        let module = wasmi::Module::new(&engine, &rewritten).unwrap();
        assert!(module.get_export(START_EXPORT).is_some());
    }

    #[test]
    fn too_many_locals_memories_or_tables_are_refused() {
        let locals = wat::parse_str(format!(
            "(module (func {}))",
            "(local i64)".repeat(MAX_LOCALS_PER_FUNCTION as usize + 1)
        ))
        .unwrap();
        assert!(matches!(inspect(&locals), Err(FunctionError::Shape(_))));
        let two_memories = wat::parse_str("(module (memory 1) (memory 1))").unwrap();
        assert!(matches!(
            inspect(&two_memories),
            Err(FunctionError::Shape(_))
        ));
        let tables = wat::parse_str("(module (table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref))").unwrap();
        assert!(matches!(inspect(&tables), Err(FunctionError::Shape(_))));
    }
}
