//! Time on the controller, as Ansible's templates see it: the `now()` function (a Python
//! `datetime`: `.year`, `.strftime(fmt)`, `.isoformat()`, printed as `str(datetime)`) and the
//! `strftime` filter (`'%Y-%m-%d' | strftime(second=None, utc=False)`).
//!
//! Formats are C/Python `strftime` formats: `%f` is microseconds in a datetime's `strftime`
//! and printed as it is by the filter, as in Python. A directive neither knows (`%Q`) is an
//! error, where C's strftime would print it as it is.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Datelike, Local, NaiveDateTime, TimeZone, Timelike, Utc};
use minijinja::value::{from_args, Kwargs, Object, ObjectRepr, Rest, Value};
use minijinja::{Environment, Error, ErrorKind, State};

use super::filters::text;

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function("now", now);
    env.add_filter("strftime", strftime);
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// A Python `datetime` without a time zone (what `datetime.now()` and `utcnow()` give).
#[derive(Debug)]
struct PyDateTime(NaiveDateTime);

impl fmt::Display for PyDateTime {
    /// `str(datetime)`: microseconds only when there are some.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.and_utc().timestamp_subsec_micros() == 0 {
            write!(f, "{}", self.0.format("%Y-%m-%d %H:%M:%S"))
        } else {
            write!(f, "{}", self.0.format("%Y-%m-%d %H:%M:%S%.6f"))
        }
    }
}

impl Object for PyDateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let t = &self.0;
        let n = match key.as_str()? {
            "year" => t.year(),
            "month" => t.month() as i32,
            "day" => t.day() as i32,
            "hour" => t.hour() as i32,
            "minute" => t.minute() as i32,
            "second" => t.second() as i32,
            "microsecond" => (t.and_utc().timestamp_subsec_micros()) as i32,
            _ => return None,
        };
        Some(Value::from(n))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let (format,): (String,) = from_args(args)?;
                Ok(Value::from(format_naive(&self.0, &format)?))
            }
            "isoformat" => {
                let (sep,): (Option<String>,) = from_args(args)?;
                let text = self.to_string();
                Ok(Value::from(text.replacen(
                    ' ',
                    sep.as_deref().unwrap_or("T"),
                    1,
                )))
            }
            "weekday" => Ok(Value::from(self.0.weekday().num_days_from_monday())),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("'datetime.datetime' object has no attribute '{method}'"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A strftime `format` applied by `write` (a naive or a zoned time's `format_with_items`).
fn format_time(
    format: &str,
    write: impl FnOnce(&mut String, std::slice::Iter<'_, Item<'_>>) -> fmt::Result,
) -> Result<String, Error> {
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(invalid(format!("invalid strftime format: {format:?}")));
    }
    let mut out = String::new();
    write(&mut out, items.iter())
        .map_err(|_| invalid(format!("cannot format the time with {format:?}")))?;
    Ok(out)
}

/// `format` with each `%<directive>` (not a `%%<directive>`) written as `with` instead.
fn with_directive(format: &str, directive: char, with: &str) -> String {
    let mut out = String::with_capacity(format.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(d) if d == directive => out.push_str(with),
            Some(d) => {
                out.push('%');
                out.push(d);
            }
            None => out.push('%'),
        }
    }
    out
}

/// `datetime.strftime`: `%f` is microseconds (chrono's `%f` would be nanoseconds).
fn format_naive(time: &NaiveDateTime, format: &str) -> Result<String, Error> {
    let format = with_directive(format, 'f', "%6f");
    format_time(&format, |out, items| {
        write!(out, "{}", time.format_with_items(items))
    })
}

/// `time.strftime`: C's strftime, which has no `%f` and prints it as it is.
fn format_zoned<Tz: TimeZone>(time: &DateTime<Tz>, format: &str) -> Result<String, Error>
where
    Tz::Offset: fmt::Display,
{
    let format = with_directive(format, 'f', "%%f");
    format_time(&format, |out, items| {
        write!(out, "{}", time.format_with_items(items))
    })
}

/// `now(utc=False, fmt=None)`: the controller's time, local or UTC; a `datetime`, or text
/// when `fmt` is given.
fn now(args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let mut positional = args.iter();
    let utc = match kwargs.get::<Option<Value>>("utc")? {
        Some(v) => v.is_true(),
        None => positional.next().is_some_and(Value::is_true),
    };
    let fmt = match kwargs.get::<Option<Value>>("fmt")? {
        Some(v) => Some(v),
        None => positional.next().cloned(),
    }
    .filter(|v| !v.is_none());
    kwargs.assert_all_used()?;
    let time = if utc {
        Utc::now().naive_utc()
    } else {
        Local::now().naive_local()
    };
    match fmt {
        Some(f) => Ok(Value::from(format_naive(&time, &text(&f)?)?)),
        None => Ok(Value::from_object(PyDateTime(time))),
    }
}

/// `strftime(format, second=None, utc=False)`: `time.strftime(format, localtime(second))`
/// (or `gmtime` with `utc`), for now when no epoch second is given.
fn strftime(format: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let format = text(&format)?;
    let mut positional = args.iter();
    let second = match kwargs.get::<Option<Value>>("second")? {
        Some(v) => Some(v),
        None => positional.next().cloned(),
    }
    .filter(|v| !v.is_none());
    let utc = match kwargs.get::<Option<Value>>("utc")? {
        Some(v) => v.is_true(),
        None => positional.next().is_some_and(Value::is_true),
    };
    kwargs.assert_all_used()?;
    let instant = match second {
        None => Utc::now(),
        Some(s) => {
            let epoch = text(&s)?
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|e| e.is_finite())
                .ok_or_else(|| invalid(format!("Invalid value for epoch value ({s})")))?;
            // Python's localtime() drops the fraction of a second.
            DateTime::from_timestamp(epoch.floor() as i64, 0)
                .ok_or_else(|| invalid(format!("Invalid value for epoch value ({s})")))?
        }
    };
    let out = if utc {
        format_zoned(&instant, &format)?
    } else {
        format_zoned(&instant.with_timezone(&Local), &format)?
    };
    Ok(Value::from(out))
}
