//! {name}: flags every sample whose air quality falls below `limit`.

use edge_function::{Error, Function, Params, Verdict, Verdicts, Window, log, register};

pub struct Threshold {
    limit: f32,
}

impl Function for Threshold {
    fn from_params(params: &Params) -> Result<Self, Error> {
        params.only(&["limit"])?; // a misspelt parameter is an error, not ignored
        Ok(Self {
            limit: params.get("limit")?.unwrap_or(40.0),
        })
    }

    fn execute(&self, window: Window) -> Result<Verdicts, Error> {
        let verdicts: Verdicts = window
            .air_quality
            .iter()
            .map(|&value| Verdict::flag(value < self.limit))
            .collect();
        let flagged = verdicts.iter().filter(|v| v.is_anomaly).count();
        if flagged > 0 {
            log!("{flagged} of {} samples below {}", window.len(), self.limit);
        }
        Ok(verdicts)
    }
}

register!(Threshold);
