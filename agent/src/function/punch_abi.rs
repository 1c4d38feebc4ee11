//! Punch's FaaS ABI (`punch_api` 1.0), so functions written for Punch run unchanged.
//!
//! What the crate's glue does, which is what the host must match:
//!
//! - `allocate(size) -> ptr` leaks a `Vec<u8>` of capacity `size`; `deallocate(ptr,
//!   capacity)` rebuilds that `Vec` and drops it. The host owns everything it allocates.
//! - `apply(ptr) -> ptr` reads a NUL-terminated UTF-8 JSON string at `ptr` and leaves it
//!   in place (the host frees it). It answers a NUL-terminated string `'0' + output JSON`
//!   or `'1' + {"_ppf_error_message": "…"}`, leaked from a `CString`, whose allocation is
//!   exactly its bytes and the NUL, so the host frees it with `deallocate(ptr, strlen + 1)`.
//!   In place of a pointer it may answer 1 (input not UTF-8), 2 (input does not
//!   deserialise), 3 (output does not serialise), or 0 (it was handed a null pointer).
//! - There is no `init` and no parameters.
//!
//! The window goes in as `{"air_quality": [...], "timestamp": ["RFC 3339 UTC", ...]}` and
//! only the output's `is_anomaly` list is read, one boolean per sample.

use edge_function::{Verdict, Verdicts, Window};
use serde::{Deserialize, Serialize};
use wasmi::{Instance, Memory, Store, TypedFunc};

use super::error::guest_text;
use super::guest_call::{GuestCall, HostState};
use super::guest_memory::{checked_range, export, memory};
use super::limits::MAX_ANSWER_OVERHEAD_BYTES;
use super::{FunctionError, PunchGlueError};

/// The most result bytes read per sample of the window. A verdict list with the window
/// echoed back takes about 50 bytes per sample; the bound, with
/// [`MAX_ANSWER_OVERHEAD_BYTES`], keeps a result with no NUL from costing more than a
/// short scan, and what JSON decodes from it to a few times the window.
const MAX_RESULT_BYTES_PER_SAMPLE: usize = 256;

fn max_result_bytes(samples: usize) -> usize {
    samples
        .saturating_mul(MAX_RESULT_BYTES_PER_SAMPLE)
        .saturating_add(MAX_ANSWER_OVERHEAD_BYTES)
}

/// The typed exports of one live instance.
pub(super) struct PunchGuest {
    memory: Memory,
    apply: TypedFunc<u32, u32>,
    allocate: TypedFunc<u32, u32>,
    deallocate: TypedFunc<(u32, u32), ()>,
}

#[derive(Serialize)]
struct Input<'a> {
    air_quality: &'a [f32],
    timestamp: Vec<String>,
}

/// Whatever else the function returns (Punch's example echoes its input) is ignored.
#[derive(Deserialize)]
struct Output {
    is_anomaly: Vec<bool>,
}

/// `punch_api::Error` as it serialises.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "_ppf_error_message")]
    message: String,
}

impl PunchGuest {
    pub(super) fn memory(&self) -> Memory {
        self.memory
    }

    pub(super) fn bind(
        store: &mut Store<HostState>,
        instance: &Instance,
    ) -> Result<Self, FunctionError> {
        Ok(Self {
            memory: memory(store, instance)?,
            apply: export(store, instance, "apply")?,
            allocate: export(store, instance, "allocate")?,
            deallocate: export(store, instance, "deallocate")?,
        })
    }

    pub(super) fn execute(
        &self,
        store: &mut Store<HostState>,
        call: &GuestCall,
        window: &Window,
    ) -> Result<Verdicts, FunctionError> {
        let input = encode(window)?;
        let size = u32::try_from(input.len()).map_err(|_| FunctionError::MemoryLimit {
            limit_bytes: store.data().max_memory_bytes(),
        })?;
        let input_ptr = call.run(store, &self.allocate, size)?;
        checked_range(&self.memory, store, input_ptr, size, "allocate")?;
        self.memory
            .write(&mut *store, input_ptr as usize, &input)
            .map_err(|e| {
                FunctionError::BadOutput(format!("allocate returned unusable memory: {e}"))
            })?;

        let result_ptr = call.run(store, &self.apply, input_ptr)?;
        // Copied out before any further guest code runs, which could change it.
        let result = self.read_result(store, result_ptr, max_result_bytes(window.len()));
        call.run(store, &self.deallocate, (input_ptr, size))?;
        let text = result?;
        let capacity = u32::try_from(text.len() + 1).map_err(|_| {
            FunctionError::BadOutput("the result is longer than 32-bit memory".into())
        })?;
        call.run(store, &self.deallocate, (result_ptr, capacity))?;
        decode(text, window.len())
    }

    /// The bytes of the NUL-terminated result at `ptr`, without the NUL, or what the
    /// pointer means instead.
    fn read_result(
        &self,
        store: &Store<HostState>,
        ptr: u32,
        max_bytes: usize,
    ) -> Result<Vec<u8>, FunctionError> {
        let glue = match ptr {
            0 => {
                return Err(FunctionError::BadOutput(
                    "apply returned a null pointer (punch_api does so only for a null input, which the host never passes)".into(),
                ));
            }
            1 => Some(PunchGlueError::InputNotUtf8),
            2 => Some(PunchGlueError::InputNotDeserialisable),
            3 => Some(PunchGlueError::OutputNotSerialisable),
            _ => None,
        };
        if let Some(glue) = glue {
            return Err(FunctionError::PunchGlue(glue));
        }
        let memory = self.memory.data(store);
        let start = ptr as usize;
        let Some(tail) = memory.get(start..).filter(|tail| !tail.is_empty()) else {
            return Err(FunctionError::BadOutput(format!(
                "the result at {ptr:#x} lies outside the guest's {} bytes of memory",
                memory.len()
            )));
        };
        // One byte past the longest result, for its NUL.
        let scanned = &tail[..tail.len().min(max_bytes.saturating_add(1))];
        match scanned.iter().position(|&byte| byte == 0) {
            Some(len) => Ok(scanned[..len].to_vec()),
            None if scanned.len() == tail.len() => Err(FunctionError::BadOutput(format!(
                "the result at {ptr:#x} has no NUL terminator before the end of the guest's {} bytes of memory",
                memory.len()
            ))),
            None => Err(FunctionError::BadOutput(format!(
                "the result at {ptr:#x} has no NUL terminator within {max_bytes} bytes"
            ))),
        }
    }
}

fn encode(window: &Window) -> Result<Vec<u8>, FunctionError> {
    if window.air_quality.len() != window.timestamps.len() {
        return Err(FunctionError::Encode(format!(
            "the window has {} air_quality values for {} timestamps",
            window.air_quality.len(),
            window.timestamps.len()
        )));
    }
    // serde_json writes NaN and ±inf as `null`, which the function would see as a
    // deserialisation failure (pointer 2) with no hint of the sample at fault.
    if let Some((index, value)) = window
        .air_quality
        .iter()
        .enumerate()
        .find(|(_, value)| !value.is_finite())
    {
        return Err(FunctionError::Encode(format!(
            "air_quality[{index}] is {value}, which JSON cannot carry"
        )));
    }
    let timestamp = window
        .timestamps
        .iter()
        .map(|&millis| rfc3339_utc(millis))
        .collect::<Result<_, _>>()?;
    let mut json = serde_json::to_vec(&Input {
        air_quality: &window.air_quality,
        timestamp,
    })
    .map_err(|e| FunctionError::Encode(e.to_string()))?;
    json.push(0);
    Ok(json)
}

fn rfc3339_utc(unix_millis: i64) -> Result<String, FunctionError> {
    crate::support::timestamp::try_format(unix_millis).ok_or_else(|| {
        FunctionError::Encode(format!(
            "timestamp {unix_millis} ms is outside the years RFC 3339 can write"
        ))
    })
}

fn decode(result: Vec<u8>, samples: usize) -> Result<Verdicts, FunctionError> {
    let text = String::from_utf8(result)
        .map_err(|e| FunctionError::BadOutput(format!("the result is not UTF-8: {e}")))?;
    match text.as_bytes().first() {
        Some(b'0') => {
            let output: Output = serde_json::from_str(&text[1..]).map_err(|e| {
                FunctionError::BadOutput(format!(
                    "the output is not JSON with an `is_anomaly` list of booleans: {e}"
                ))
            })?;
            if output.is_anomaly.len() != samples {
                return Err(FunctionError::BadOutput(format!(
                    "{} verdicts for a window of {samples} samples",
                    output.is_anomaly.len()
                )));
            }
            Ok(output.is_anomaly.into_iter().map(Verdict::flag).collect())
        }
        Some(b'1') => {
            let json = &text[1..];
            match serde_json::from_str::<ErrorBody>(json) {
                Ok(body) => Err(FunctionError::Function(guest_text(&body.message))),
                // Not punch_api's own error shape, but still the function's say.
                Err(_) if serde_json::from_str::<serde_json::Value>(json).is_ok() => {
                    Err(FunctionError::Function(guest_text(json)))
                }
                Err(e) => Err(FunctionError::BadOutput(format!(
                    "the error result is not JSON: {e}"
                ))),
            }
        }
        Some(_) => Err(FunctionError::BadOutput(format!(
            "the result starts with {:?} where punch_api puts '0' (ok) or '1' (error)",
            text.chars().next().unwrap_or_default()
        ))),
        None => Err(FunctionError::BadOutput("the result is empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_goes_in_as_punch_json_with_a_nul() {
        let window = Window::from_air_quality(
            "s",
            vec![1_714_564_800_000, 1_714_564_800_500],
            vec![50.25, 7.0],
        );
        let encoded = encode(&window).unwrap();
        assert_eq!(encoded.last(), Some(&0));
        assert_eq!(
            std::str::from_utf8(&encoded[..encoded.len() - 1]).unwrap(),
            r#"{"air_quality":[50.25,7.0],"timestamp":["2024-05-01T12:00:00Z","2024-05-01T12:00:00.5Z"]}"#
        );
    }

    #[test]
    fn values_json_cannot_carry_are_refused_by_name() {
        let window = Window::from_air_quality("s", vec![0, 1], vec![1.0, f32::NAN]);
        let err = encode(&window).unwrap_err();
        assert_eq!(
            err,
            FunctionError::Encode("air_quality[1] is NaN, which JSON cannot carry".into())
        );
        let window = Window::from_air_quality("s", vec![i64::MAX], vec![1.0]);
        assert!(matches!(encode(&window), Err(FunctionError::Encode(_))));
    }

    #[test]
    fn results_decode_to_verdicts_or_typed_errors() {
        let ok = b"0{\"air_quality\":[1.0,2.0],\"is_anomaly\":[false,true]}".to_vec();
        assert_eq!(
            decode(ok, 2).unwrap(),
            [Verdict::flag(false), Verdict::flag(true)]
        );
        let refused = br#"1{"_ppf_error_message":"too short"}"#.to_vec();
        assert_eq!(
            decode(refused, 2),
            Err(FunctionError::Function("too short".into()))
        );
        let other_error = br#"1{"why":"no"}"#.to_vec();
        assert_eq!(
            decode(other_error, 2),
            Err(FunctionError::Function(r#"{"why":"no"}"#.into()))
        );
        for bad in [&b"0not json"[..], b"1not json", b"2{}", b"", b"\xff{}"] {
            assert!(
                matches!(decode(bad.to_vec(), 2), Err(FunctionError::BadOutput(_))),
                "{bad:?}"
            );
        }
        let long = format!("1{{\"_ppf_error_message\":\"{}\"}}", "é".repeat(2000));
        match decode(long.into_bytes(), 2) {
            Err(FunctionError::Function(message)) => {
                assert!(message.chars().count() <= 1100, "{}", message.len())
            }
            other => panic!("{other:?}"),
        }
    }
}
