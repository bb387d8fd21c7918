//! Holidays imported from an iCalendar (`.ics`, RFC 5545) file.
//!
//! Only what a holiday feed needs is read: each `VEVENT`'s `SUMMARY`, `DTSTART`, `DTEND` or
//! `DURATION`, `RRULE` (yearly only), `EXDATE` and `STATUS:CANCELLED`. Other properties and
//! components (`VTIMEZONE`, `VALARM`, …) are ignored; `TZID` parameters must name an IANA zone
//! (a prefix such as `/mozilla.org/…/Europe/Berlin` is tolerated).

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
    Utc, Weekday,
};
use chrono_tz::{GapInfo, Tz};

use crate::sla::calendar::{ClosureRange, Holiday, LocalTime};

/// An iCalendar text could not be read. `line` is the 1-based physical line where the
/// offending (unfolded) content line or component starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct IcsError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Seconds in a (nominal) day.
const DAY: u32 = 86_400;
/// Longest event accepted, in days (guards against absurd expansions).
const MAX_EVENT_DAYS: i64 = 366;

/// Holidays from an iCalendar text (RFC 5545): each `VEVENT` becomes a [`Holiday`] named by
/// its `SUMMARY`.
///
/// - All-day events (`DTSTART;VALUE=DATE:20261225`, optional exclusive `DTEND;VALUE=DATE` or a
///   `DURATION` → several days, one holiday per date) close the whole date.
/// - Timed events (`DTSTART;TZID=Europe/Berlin:20261224T120000`, the UTC form with `Z`, or
///   floating = in `zone`) become partial closures of their local date(s) in `zone`.
/// - `RRULE:FREQ=YEARLY` (with optional `INTERVAL`, `COUNT`, `UNTIL`, `BYMONTH`,
///   `BYMONTHDAY`, or `BYMONTH` with one ordinal `BYDAY` such as `4TH`) is expanded over the
///   years `from_year..=to_year`; `EXDATE` removes occurrences. Other rules are an error naming
///   their line. Events without a rule are kept whatever their year.
/// - Handles line unfolding, CRLF or LF, and text escapes (`\,` `\;` `\n` `\\`).
///
/// Closures of the same date are merged (names joined with `", "`); the result is sorted by
/// date and passes [`crate::sla::calendar::CalendarDefinition::validate`].
pub fn parse_holidays(
    text: &str,
    zone: Tz,
    from_year: i32,
    to_year: i32,
) -> Result<Vec<Holiday>, IcsError> {
    let years = from_year.max(1)..=to_year.min(9999);
    let mut acc: BTreeMap<NaiveDate, Acc> = BTreeMap::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut event: Option<Event> = None;
    for (line, raw) in unfold(text) {
        let cl = parse_line(line, &raw)?;
        match cl.name.as_str() {
            "BEGIN" => {
                let name = cl.value.trim().to_ascii_uppercase();
                if name == "VEVENT" {
                    if event.is_some() {
                        return Err(at(line, "a VEVENT cannot contain another VEVENT"));
                    }
                    event = Some(Event::new(line));
                }
                stack.push((name, line));
            }
            "END" => {
                let name = cl.value.trim().to_ascii_uppercase();
                match stack.pop() {
                    Some((open, _)) if open == name => {}
                    Some((open, open_line)) => {
                        return Err(at(
                            line,
                            format!("END:{name} does not close BEGIN:{open} (line {open_line})"),
                        ));
                    }
                    None => return Err(at(line, format!("END:{name} without BEGIN"))),
                }
                if name == "VEVENT"
                    && let Some(ev) = event.take()
                {
                    ev.expand(zone, &years, &mut acc)?;
                }
            }
            _ => {
                let in_event = stack.last().is_some_and(|(n, _)| n == "VEVENT");
                if let (true, Some(ev)) = (in_event, event.as_mut()) {
                    ev.set(cl);
                }
            }
        }
    }
    if let Some((name, line)) = stack.pop() {
        return Err(at(line, format!("BEGIN:{name} is never closed")));
    }
    Ok(acc
        .into_iter()
        .map(|(date, a)| a.into_holiday(date))
        .collect())
}

fn at(line: usize, message: impl Into<String>) -> IcsError {
    IcsError {
        line,
        message: message.into(),
    }
}

/// Logical lines with the physical line number they start on: CRLF or LF, continuation lines
/// (starting with a space or a tab) appended to the previous one, blank lines dropped.
fn unfold(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push_str(rest);
            continue;
        }
        if !raw.trim().is_empty() {
            out.push((i + 1, raw.to_owned()));
        }
    }
    out
}

/// One content line: `NAME *(;PARAM=VALUE) : VALUE`; names upper-cased.
#[derive(Debug, Clone)]
struct ContentLine {
    line: usize,
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

impl ContentLine {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_line(line: usize, s: &str) -> Result<ContentLine, IcsError> {
    let malformed = || {
        at(
            line,
            format!("malformed content line {s:?} (expected NAME:VALUE)"),
        )
    };
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let name_end = s.find(|c: char| !is_name(c)).ok_or_else(malformed)?;
    if name_end == 0 {
        return Err(malformed());
    }
    let name = s[..name_end].to_ascii_uppercase();
    let mut rest = &s[name_end..];
    let mut params = Vec::new();
    while let Some(p) = rest.strip_prefix(';') {
        let eq = p.find('=').ok_or_else(malformed)?;
        let key = &p[..eq];
        if key.is_empty() || !key.chars().all(is_name) {
            return Err(malformed());
        }
        let after = &p[eq + 1..];
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let close = q.find('"').ok_or_else(malformed)?;
            (&q[..close], &q[close + 1..])
        } else {
            let end = after.find([';', ':']).ok_or_else(malformed)?;
            (&after[..end], &after[end..])
        };
        params.push((key.to_ascii_uppercase(), value.to_owned()));
        rest = tail;
    }
    let value = rest.strip_prefix(':').ok_or_else(malformed)?;
    Ok(ContentLine {
        line,
        name,
        params,
        value: value.to_owned(),
    })
}

/// `\\`, `\;`, `\,`, `\n` / `\N`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(e @ ('\\' | ';' | ',' | ':' | '"')) => out.push(e),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A `DATE` or `DATE-TIME` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// An all-day date.
    Date(NaiveDate),
    /// A wall-clock time in a zone (`TZID`, floating = the calendar's zone, `Z` = UTC).
    Time(NaiveDateTime, Tz),
}

/// An IANA zone named by a `TZID`, tolerating a `/vendor/version/` prefix.
fn find_zone(id: &str) -> Option<Tz> {
    let id = id.trim();
    id.parse().ok().or_else(|| {
        id.match_indices('/')
            .find_map(|(i, _)| id[i + 1..].parse().ok())
    })
}

fn parse_when_value(
    line: usize,
    value: &str,
    date_only: bool,
    tzid: Option<&str>,
    zone: Tz,
) -> Result<When, IcsError> {
    let v = value.trim();
    let bad = || at(line, format!("invalid date or date-time {v:?}"));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if date_only || (v.len() == 8 && digits(v)) {
        if v.len() != 8 || !digits(v) {
            return Err(bad());
        }
        return NaiveDate::parse_from_str(v, "%Y%m%d")
            .map(When::Date)
            .map_err(|_| bad());
    }
    let (body, utc) = match v.strip_suffix(['Z', 'z']) {
        Some(b) => (b, true),
        None => (v, false),
    };
    if body.len() != 15 || !digits(&body[..8]) || !digits(&body[9..]) {
        return Err(bad());
    }
    let naive = NaiveDateTime::parse_from_str(body, "%Y%m%dT%H%M%S").map_err(|_| bad())?;
    let tz = match (utc, tzid) {
        (true, _) => Tz::UTC,
        (false, Some(id)) => {
            find_zone(id).ok_or_else(|| at(line, format!("unknown TZID {id:?}")))?
        }
        (false, None) => zone,
    };
    Ok(When::Time(naive, tz))
}

fn parse_when(cl: &ContentLine, zone: Tz) -> Result<When, IcsError> {
    let date_only = cl
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    parse_when_value(cl.line, &cl.value, date_only, cl.param("TZID"), zone)
}

/// The instant of a wall-clock time (gap → first instant after it; ambiguous → earliest).
fn resolve(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        MappedLocalTime::Single(t) | MappedLocalTime::Ambiguous(t, _) => {
            Some(t.with_timezone(&Utc))
        }
        MappedLocalTime::None => GapInfo::new(&naive, &tz)
            .and_then(|g| g.end)
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// `[+]P…` → seconds.
fn parse_duration(line: usize, v: &str) -> Result<i64, IcsError> {
    let bad = || at(line, format!("invalid DURATION {v:?}"));
    let s = v.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let s = s.strip_prefix('P').ok_or_else(bad)?;
    let (mut total, mut num, mut in_time, mut any) = (0i64, None::<i64>, false, false);
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            let n = num.unwrap_or(0);
            num = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(d)))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        if c == 'T' && num.is_none() && !in_time {
            in_time = true;
            continue;
        }
        let unit = match (c, in_time) {
            ('W', false) => 7 * 86_400,
            ('D', false) => 86_400,
            ('H', true) => 3_600,
            ('M', true) => 60,
            ('S', true) => 1,
            _ => return Err(bad()),
        };
        let n = num.take().ok_or_else(bad)?;
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        any = true;
    }
    if !any || num.is_some() {
        return Err(bad());
    }
    Ok(total)
}

/// A supported `RRULE`.
#[derive(Debug, Clone)]
struct Rule {
    interval: i32,
    count: Option<u32>,
    until: Option<When>,
    month: Option<u32>,
    month_day: Option<i32>,
    /// `(ordinal, weekday)`, e.g. `(4, Thu)` or `(-1, Mon)`.
    by_day: Option<(i32, Weekday)>,
}

fn parse_rule(cl: &ContentLine, zone: Tz) -> Result<Rule, IcsError> {
    let line = cl.line;
    let unsupported = |what: &str| {
        at(
            line,
            format!(
                "unsupported RRULE {:?}: {what} (only FREQ=YEARLY on one date a year is supported)",
                cl.value
            ),
        )
    };
    let mut freq = None;
    let mut rule = Rule {
        interval: 1,
        count: None,
        until: None,
        month: None,
        month_day: None,
        by_day: None,
    };
    for part in cl.value.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| unsupported("malformed part"))?;
        let number = |v: &str| v.parse::<i32>().map_err(|_| unsupported(part));
        match k.to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(v.to_ascii_uppercase()),
            "INTERVAL" => rule.interval = number(v)?.max(1),
            "COUNT" => {
                rule.count = Some(u32::try_from(number(v)?).map_err(|_| unsupported(part))?);
            }
            "UNTIL" => rule.until = Some(parse_when_value(line, v, false, None, zone)?),
            "BYMONTH" => {
                let m = number(v)?;
                if !(1..=12).contains(&m) {
                    return Err(unsupported(part));
                }
                rule.month = Some(m.unsigned_abs());
            }
            "BYMONTHDAY" => {
                let d = number(v)?;
                if d == 0 || d.abs() > 31 {
                    return Err(unsupported(part));
                }
                rule.month_day = Some(d);
            }
            "BYDAY" => {
                let v = v.to_ascii_uppercase();
                let split = v.len().saturating_sub(2);
                let wd = match v.get(split..) {
                    Some("MO") => Weekday::Mon,
                    Some("TU") => Weekday::Tue,
                    Some("WE") => Weekday::Wed,
                    Some("TH") => Weekday::Thu,
                    Some("FR") => Weekday::Fri,
                    Some("SA") => Weekday::Sat,
                    Some("SU") => Weekday::Sun,
                    _ => return Err(unsupported(part)),
                };
                let ord = v[..split].trim_start_matches('+');
                let n = ord.parse::<i32>().map_err(|_| unsupported(part))?;
                if n == 0 || n.abs() > 5 {
                    return Err(unsupported(part));
                }
                rule.by_day = Some((n, wd));
            }
            "WKST" => {}
            _ => return Err(unsupported(part)),
        }
    }
    match freq.as_deref() {
        Some("YEARLY") => {}
        Some(_) => return Err(unsupported("FREQ must be YEARLY")),
        None => return Err(unsupported("FREQ is missing")),
    }
    if rule.by_day.is_some() && (rule.month.is_none() || rule.month_day.is_some()) {
        return Err(unsupported("BYDAY needs BYMONTH (and no BYMONTHDAY)"));
    }
    Ok(rule)
}

impl Rule {
    /// The date of the occurrence in `year`, if that date exists; `first` is `DTSTART`'s date.
    fn date_in(&self, year: i32, first: NaiveDate) -> Option<NaiveDate> {
        let month = self.month.unwrap_or(first.month());
        if let Some((ordinal, wd)) = self.by_day {
            let n = u8::try_from(ordinal.unsigned_abs()).ok()?;
            if ordinal < 0 {
                let last = NaiveDate::from_ymd_opt(year, month, 1)?
                    .checked_add_months(chrono::Months::new(1))?
                    .pred_opt()?;
                let back =
                    (7 + last.weekday().num_days_from_monday() - wd.num_days_from_monday()) % 7;
                let day = i64::from(last.day()) - i64::from(back) - 7 * (i64::from(n) - 1);
                return NaiveDate::from_ymd_opt(year, month, u32::try_from(day).ok()?);
            }
            return NaiveDate::from_weekday_of_month_opt(year, month, wd, n);
        }
        match self.month_day {
            Some(d) if d < 0 => {
                let last = NaiveDate::from_ymd_opt(year, month, 1)?
                    .checked_add_months(chrono::Months::new(1))?
                    .pred_opt()?;
                let day = i64::from(last.day()) + 1 + i64::from(d);
                NaiveDate::from_ymd_opt(year, month, u32::try_from(day).ok()?)
            }
            Some(d) => NaiveDate::from_ymd_opt(year, month, d.unsigned_abs()),
            None => NaiveDate::from_ymd_opt(year, month, first.day()),
        }
    }
}

/// The properties of a `VEVENT` collected so far.
#[derive(Debug)]
struct Event {
    begin_line: usize,
    summary: String,
    start: Option<ContentLine>,
    end: Option<ContentLine>,
    duration: Option<ContentLine>,
    rule: Option<ContentLine>,
    exdates: Vec<ContentLine>,
    cancelled: bool,
}

/// Closures gathered for one date.
#[derive(Debug, Default)]
struct Acc {
    names: Vec<String>,
    full: bool,
    closed: Vec<(u32, u32)>,
}

impl Acc {
    fn add(&mut self, name: &str, range: Option<(u32, u32)>) {
        if !name.is_empty() && !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_owned());
        }
        match range {
            Some(r) => self.closed.push(r),
            None => self.full = true,
        }
    }

    fn into_holiday(mut self, date: NaiveDate) -> Holiday {
        self.closed.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.closed.len());
        for (s, e) in self.closed {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        if self.full || merged == [(0, DAY)] {
            merged.clear();
        }
        Holiday {
            date,
            name: self.names.join(", "),
            closed: merged
                .into_iter()
                .map(|(s, e)| ClosureRange {
                    start: LocalTime(s),
                    end: LocalTime(e),
                })
                .collect(),
        }
    }
}

impl Event {
    fn new(begin_line: usize) -> Self {
        Self {
            begin_line,
            summary: String::new(),
            start: None,
            end: None,
            duration: None,
            rule: None,
            exdates: Vec::new(),
            cancelled: false,
        }
    }

    fn set(&mut self, cl: ContentLine) {
        match cl.name.as_str() {
            "SUMMARY" => self.summary = unescape(&cl.value).trim().to_owned(),
            "DTSTART" => self.start = Some(cl),
            "DTEND" => self.end = Some(cl),
            "DURATION" => self.duration = Some(cl),
            "RRULE" => self.rule = Some(cl),
            "EXDATE" => self.exdates.push(cl),
            "STATUS" => self.cancelled = cl.value.trim().eq_ignore_ascii_case("CANCELLED"),
            _ => {}
        }
    }

    /// Adds the closures of every occurrence to `acc`.
    fn expand(
        self,
        zone: Tz,
        years: &std::ops::RangeInclusive<i32>,
        acc: &mut BTreeMap<NaiveDate, Acc>,
    ) -> Result<(), IcsError> {
        let start_cl = self
            .start
            .as_ref()
            .ok_or_else(|| at(self.begin_line, "VEVENT has no DTSTART"))?;
        let start = parse_when(start_cl, zone)?;
        let out_of_range = |line: usize| at(line, "date out of range");
        // The event's length: whole days for an all-day event, seconds for a timed one.
        let length = match (start, &self.end, &self.duration) {
            (When::Date(d0), Some(cl), _) => match parse_when(cl, zone)? {
                When::Date(d1) => (d1 - d0).num_days().max(1),
                When::Time(..) => {
                    return Err(at(cl.line, "DTEND must be a DATE when DTSTART is one"));
                }
            },
            (When::Date(_), None, Some(cl)) => {
                let secs = parse_duration(cl.line, &cl.value)?;
                ((secs + i64::from(DAY) - 1) / i64::from(DAY)).max(1)
            }
            (When::Date(_), None, None) => 1,
            (When::Time(n0, tz0), Some(cl), _) => {
                let t0 = resolve(n0, tz0).ok_or_else(|| out_of_range(start_cl.line))?;
                let t1 = match parse_when(cl, zone)? {
                    When::Time(n1, tz1) => resolve(n1, tz1),
                    When::Date(d1) => resolve(d1.and_time(NaiveTime::MIN), tz0),
                }
                .ok_or_else(|| out_of_range(cl.line))?;
                (t1 - t0).num_seconds()
            }
            (When::Time(..), None, Some(cl)) => parse_duration(cl.line, &cl.value)?,
            (When::Time(..), None, None) => 0,
        };
        let max_len = match start {
            When::Date(_) => MAX_EVENT_DAYS,
            When::Time(..) => MAX_EVENT_DAYS * i64::from(DAY),
        };
        if length > max_len {
            return Err(at(
                self.begin_line,
                format!("VEVENT lasts more than {MAX_EVENT_DAYS} days"),
            ));
        }
        let rule = self
            .rule
            .as_ref()
            .map(|cl| parse_rule(cl, zone))
            .transpose()?;
        let mut excluded = Vec::new();
        for cl in &self.exdates {
            let date_only = cl
                .param("VALUE")
                .is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
            for v in cl.value.split(',').filter(|v| !v.trim().is_empty()) {
                excluded.push(parse_when_value(
                    cl.line,
                    v,
                    date_only,
                    cl.param("TZID"),
                    zone,
                )?);
            }
        }
        if self.cancelled {
            return Ok(());
        }
        let Some(rule) = rule else {
            return self.close(start, length, zone, acc, start_cl.line);
        };
        let first = d_of(start);
        let mut emitted = 0u32;
        let mut year = first.year();
        while year <= *years.end() {
            if rule.count.is_some_and(|c| emitted >= c) {
                break;
            }
            let date = if year == first.year() {
                Some(first)
            } else {
                rule.date_in(year, first)
            };
            if let Some(date) = date {
                let occurrence = match start {
                    When::Date(_) => When::Date(date),
                    When::Time(n, tz) => When::Time(date.and_time(n.time()), tz),
                };
                if rule.until.is_some_and(|until| after(occurrence, until)) {
                    break;
                }
                emitted += 1;
                let skip = excluded.iter().any(|&x| same(x, occurrence));
                if years.contains(&year) && !skip {
                    self.close(occurrence, length, zone, acc, start_cl.line)?;
                }
            }
            year = match year.checked_add(rule.interval) {
                Some(y) => y,
                None => break,
            };
        }
        Ok(())
    }

    /// Adds the closures of one occurrence starting at `start` and lasting `length` (days for
    /// an all-day event, seconds for a timed one).
    fn close(
        &self,
        start: When,
        length: i64,
        zone: Tz,
        acc: &mut BTreeMap<NaiveDate, Acc>,
        line: usize,
    ) -> Result<(), IcsError> {
        let out_of_range = || at(line, "date out of range");
        match start {
            When::Date(d0) => {
                for i in 0..length {
                    let d = d0
                        .checked_add_days(chrono::Days::new(i.unsigned_abs()))
                        .ok_or_else(out_of_range)?;
                    acc.entry(d).or_default().add(&self.summary, None);
                }
            }
            When::Time(n0, tz0) => {
                if length <= 0 {
                    return Ok(());
                }
                let t0 = resolve(n0, tz0).ok_or_else(out_of_range)?;
                let t1 = t0
                    .checked_add_signed(chrono::TimeDelta::seconds(length))
                    .ok_or_else(out_of_range)?;
                let local = |t: DateTime<Utc>| t.with_timezone(&zone).naive_local();
                let (l0, l1) = (local(t0), local(t1));
                let mut d = l0.date();
                while d <= l1.date() {
                    let from = if d == l0.date() { secs_of(l0) } else { 0 };
                    let to = if d == l1.date() { secs_of(l1) } else { DAY };
                    if from < to {
                        acc.entry(d)
                            .or_default()
                            .add(&self.summary, Some((from, to)));
                    }
                    d = d.succ_opt().ok_or_else(out_of_range)?;
                }
            }
        }
        Ok(())
    }
}

fn d_of(w: When) -> NaiveDate {
    match w {
        When::Date(d) => d,
        When::Time(n, _) => n.date(),
    }
}

fn secs_of(n: NaiveDateTime) -> u32 {
    n.time().num_seconds_from_midnight()
}

/// The instant (or date) of a value, for comparisons.
fn key(w: When) -> Option<DateTime<Utc>> {
    match w {
        When::Date(d) => Some(d.and_time(NaiveTime::MIN).and_utc()),
        When::Time(n, tz) => resolve(n, tz),
    }
}

/// Whether `occurrence` starts after `until` (dates compare as dates).
fn after(occurrence: When, until: When) -> bool {
    match (occurrence, until) {
        (_, When::Date(u)) => d_of(occurrence) > u,
        (When::Date(d), When::Time(u, _)) => d > u.date(),
        _ => key(occurrence) > key(until),
    }
}

/// Whether an `EXDATE` value names `occurrence`.
fn same(ex: When, occurrence: When) -> bool {
    match (ex, occurrence) {
        (When::Date(x), o) => x == d_of(o),
        (When::Time(..), When::Date(_)) => false,
        _ => key(ex) == key(occurrence),
    }
}
