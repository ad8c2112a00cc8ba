//! `search_jobs_by_start_date`: the background jobs that started within `from_date..=to_date`
//! (ISO 8601 dates, or epoch milliseconds), oldest first, as `get_job` shows them without
//! `result` and with `start_datetime_converted` / `end_datetime_converted` ISO strings.
//! `from_date` after `to_date` → `[]`.
//!
//! Request: `{"operation": "search_jobs_by_start_date", "from_date": "2026-11-26",
//! "to_date": "2026-11-28T00:00:00.000Z"}`. Capabilities: `jobs`.

use opshost_harper::jobs;
use opshost_guest::prelude::*;

pub struct SearchJobsByStartDate;

#[derive(Deserialize)]
pub struct Request {
    from_date: Option<Value>,
    to_date: Option<Value>,
}

impl Operation for SearchJobsByStartDate {
    const NAME: &'static str = "search_jobs_by_start_date";
    type Request = Request;
    type Response = Vec<Value>;

    fn handle(_ctx: &Context, req: Request) -> Result<Vec<Value>, Error> {
        let (from, to) = range(&req)?;
        if from > to || to < 0 {
            return Ok(Vec::new());
        }
        let found = jobs::search_by_start(from.max(0) as u64, to as u64)?;
        Ok(found.iter().map(jobs::to_search_json).collect())
    }
}

opshost_guest::export_operation!(SearchJobsByStartDate);

const PREFIX: &str = "There was an error searching jobs by date: Error: ";

/// Both dates as epoch ms, with HarperDB's texts (the `from` one ends with a period, the `to`
/// one does not).
fn range(req: &Request) -> Result<(i64, i64), Error> {
    let from = date(req.from_date.as_ref())
        .ok_or_else(|| Error::BadRequest(format!("{PREFIX}Invalid 'from' date, must be in ISO-8601 format (YYYY-MM-DD).")))?;
    let to = date(req.to_date.as_ref())
        .ok_or_else(|| Error::BadRequest(format!("{PREFIX}Invalid 'to' date, must be in ISO-8601 format (YYYY-MM-DD)")))?;
    Ok((from, to))
}

fn date(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => jobs::parse_iso8601(s),
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> Request {
        opshost_guest::decode_request(body).expect("valid")
    }

    #[test]
    fn dates_are_iso_or_epoch_ms() {
        let r = range(&req(r#"{"from_date":"2026-11-26","to_date":1795736127053}"#)).expect("ok");
        assert_eq!(r, (1_795_651_200_000, 1_795_736_127_053));
    }

    #[test]
    fn harper_error_texts() {
        let e = range(&req(r#"{"to_date":"2026-11-26"}"#)).expect_err("from");
        assert!(matches!(e, Error::BadRequest(m) if m == "There was an error searching jobs by date: Error: Invalid 'from' date, must be in ISO-8601 format (YYYY-MM-DD)."));
        let e = range(&req(r#"{"from_date":"2026-11-26","to_date":"tomorrow"}"#)).expect_err("to");
        assert!(matches!(e, Error::BadRequest(m) if m == "There was an error searching jobs by date: Error: Invalid 'to' date, must be in ISO-8601 format (YYYY-MM-DD)"));
    }
}
