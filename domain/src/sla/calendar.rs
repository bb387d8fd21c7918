//! Business-hours calendars and the business-time arithmetic.
//!
//! A [`CalendarDefinition`] is what a tenant configures (and what events carry): an IANA time
//! zone, weekly opening ranges in local wall-clock time (several per day; `end <= start` means
//! the range runs overnight into the next day) and holidays (whole-day or partial closures, by
//! local date). [`BusinessCalendar`] is its validated, precomputed form with the arithmetic:
//! [`BusinessCalendar::add_business`] and [`BusinessCalendar::business_between`], in integer
//! seconds.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveTime, Offset, TimeZone, Utc, Weekday,
};
use chrono_tz::{GapInfo, Tz};
use serde::{Deserialize, Serialize};

/// A local wall-clock time of day, in seconds since midnight (`0..=86_400`; `24:00` is allowed
/// as the end of a range). Serialized as `"HH:MM"` (or `"HH:MM:SS"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTime(pub u32);

/// A day of the week, serialized in lower case (`"monday"` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

impl From<Day> for Weekday {
    fn from(d: Day) -> Self {
        match d {
            Day::Monday => Weekday::Mon,
            Day::Tuesday => Weekday::Tue,
            Day::Wednesday => Weekday::Wed,
            Day::Thursday => Weekday::Thu,
            Day::Friday => Weekday::Fri,
            Day::Saturday => Weekday::Sat,
            Day::Sunday => Weekday::Sun,
        }
    }
}

/// One weekly opening range: on `day`, from `start` to `end` local time. `end <= start` means
/// the range ends on the next day (an overnight shift, e.g. 22:00–06:00).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyRange {
    /// The day the range starts on.
    pub day: Day,
    /// Local start time.
    pub start: LocalTime,
    /// Local end time.
    pub end: LocalTime,
}

/// A closed time range within one local date (partial-day closure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureRange {
    /// Local start time.
    pub start: LocalTime,
    /// Local end time (after `start`, at most `24:00`).
    pub end: LocalTime,
}

/// A holiday: business time whose *local date* is `date` is closed — all of it when `closed`
/// is empty, else only the listed ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    /// The local date.
    pub date: NaiveDate,
    /// A label (e.g. "New Year's Day").
    #[serde(default)]
    pub name: String,
    /// Partial closures; empty = the whole day is closed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed: Vec<ClosureRange>,
}

/// A business-hours calendar as configured by a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDefinition {
    /// IANA time zone name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// Weekly opening ranges.
    pub weekly_hours: Vec<WeeklyRange>,
    /// Holidays.
    #[serde(default)]
    pub holidays: Vec<Holiday>,
}

/// A calendar definition was rejected. `field` is a path such as `weekly_hours[2].end`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct CalendarError {
    /// The offending field (path).
    pub field: String,
    /// What is wrong, phrased to follow the field name ("must …").
    pub message: String,
}

impl LocalTime {
    /// Midnight at the start of the day.
    pub const MIDNIGHT: Self = Self(0);
    /// Midnight at the end of the day (`24:00`).
    pub const END_OF_DAY: Self = Self(86_400);

    /// `hh:mm[:ss]`, with `24:00` allowed.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split(':');
        let num = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let h = num(parts.next())?;
        let m = num(parts.next())?;
        let sec = match parts.next() {
            Some(p) => num(Some(p))?,
            None => 0,
        };
        if parts.next().is_some() || m > 59 || sec > 59 {
            return None;
        }
        let total = h * 3600 + m * 60 + sec;
        (h < 24 || total == 86_400).then_some(Self(total))
    }

    /// Seconds since local midnight.
    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for LocalTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
        if s == 0 {
            write!(f, "{h:02}:{m:02}")
        } else {
            write!(f, "{h:02}:{m:02}:{s:02}")
        }
    }
}

impl Serialize for LocalTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid time {s:?}: expected HH:MM (00:00–24:00)"))
        })
    }
}

/// Seconds in a (nominal) day.
const DAY: u32 = 86_400;
/// Seconds in a (nominal) week.
const WEEK: i64 = 7 * DAY as i64;
/// Days `add_business` walks without meeting any business time before giving up (~10 years).
const SEARCH_DAYS: u32 = 3_660;
/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

const ALL_DAYS: [Day; 7] = [
    Day::Monday,
    Day::Tuesday,
    Day::Wednesday,
    Day::Thursday,
    Day::Friday,
    Day::Saturday,
    Day::Sunday,
];

impl Day {
    /// Monday = 0 … Sunday = 6.
    fn index(self) -> usize {
        Weekday::from(self).num_days_from_monday() as usize
    }

    /// The serialized name (`"monday"` …).
    fn name(self) -> &'static str {
        match self {
            Day::Monday => "monday",
            Day::Tuesday => "tuesday",
            Day::Wednesday => "wednesday",
            Day::Thursday => "thursday",
            Day::Friday => "friday",
            Day::Saturday => "saturday",
            Day::Sunday => "sunday",
        }
    }
}

fn err(field: String, message: impl Into<String>) -> CalendarError {
    CalendarError {
        field,
        message: message.into(),
    }
}

/// `(start, end)` in seconds from the range's day's midnight, `end > start` (an overnight
/// range ends after `86_400`).
fn absolute(r: &WeeklyRange) -> (u32, u32) {
    let (s, e) = (r.start.0, r.end.0);
    if e <= s { (s, e + DAY) } else { (s, e) }
}

/// Sorts and merges overlapping or touching ranges.
fn merge<T: Ord + Copy>(ranges: &mut Vec<(T, T)>) {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for &(s, e) in ranges.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *ranges = out;
}

impl CalendarDefinition {
    /// The built-in 24x7 calendar (UTC, every day 00:00–24:00, no holidays).
    pub fn twenty_four_seven() -> Self {
        Self {
            time_zone: "UTC".into(),
            weekly_hours: ALL_DAYS
                .iter()
                .map(|&day| WeeklyRange {
                    day,
                    start: LocalTime::MIDNIGHT,
                    end: LocalTime::END_OF_DAY,
                })
                .collect(),
            holidays: Vec::new(),
        }
    }

    /// Validates the definition: `time_zone` is a known IANA name; `weekly_hours` is not empty;
    /// each range has `start != end` (`end <= start` runs overnight into the next day;
    /// `00:00–24:00` is a full day) and does not overlap an earlier range once placed on the
    /// week (an overnight range spilling into the next day included; the later range is
    /// reported); holiday closures have `start < end`; holiday dates are unique. The error
    /// names the field path, e.g. `weekly_hours[2].end` or `holidays[0].closed[1].start`.
    pub fn validate(&self) -> Result<(), CalendarError> {
        self.checked_zone().map(|_| ())
    }

    /// Validates and returns the parsed zone.
    fn checked_zone(&self) -> Result<Tz, CalendarError> {
        let tz: Tz = self.time_zone.parse().map_err(|_| {
            err(
                "time_zone".into(),
                format!(
                    "must be a known IANA time zone name (got {:?})",
                    self.time_zone
                ),
            )
        })?;
        if self.weekly_hours.is_empty() {
            return Err(err(
                "weekly_hours".into(),
                "must contain at least one range",
            ));
        }
        let mut placed: Vec<(i64, i64)> = Vec::with_capacity(self.weekly_hours.len());
        for (i, r) in self.weekly_hours.iter().enumerate() {
            if r.start.0 >= DAY {
                return Err(err(
                    format!("weekly_hours[{i}].start"),
                    "must be before 24:00",
                ));
            }
            if r.end.0 > DAY {
                return Err(err(
                    format!("weekly_hours[{i}].end"),
                    "must be at most 24:00",
                ));
            }
            if r.start == r.end {
                return Err(err(
                    format!("weekly_hours[{i}].end"),
                    format!("must differ from start ({})", r.start),
                ));
            }
            let (s, e) = absolute(r);
            let base = r.day.index() as i64 * i64::from(DAY);
            let (s, e) = (base + i64::from(s), base + i64::from(e));
            for (j, &(ps, pe)) in placed.iter().enumerate() {
                let overlaps = [-WEEK, 0, WEEK]
                    .iter()
                    .any(|&shift| s < pe + shift && ps + shift < e);
                if overlaps {
                    let other = &self.weekly_hours[j];
                    return Err(err(
                        format!("weekly_hours[{i}]"),
                        format!(
                            "must not overlap weekly_hours[{j}] ({} {}–{})",
                            other.day.name(),
                            other.start,
                            other.end
                        ),
                    ));
                }
            }
            placed.push((s, e));
        }
        let mut seen: HashMap<NaiveDate, usize> = HashMap::with_capacity(self.holidays.len());
        for (k, h) in self.holidays.iter().enumerate() {
            for (m, c) in h.closed.iter().enumerate() {
                if c.end.0 > DAY {
                    return Err(err(
                        format!("holidays[{k}].closed[{m}].end"),
                        "must be at most 24:00",
                    ));
                }
                if c.start >= c.end {
                    return Err(err(
                        format!("holidays[{k}].closed[{m}].start"),
                        format!("must be before end ({})", c.end),
                    ));
                }
            }
            if let Some(j) = seen.insert(h.date, k) {
                return Err(err(
                    format!("holidays[{k}].date"),
                    format!("must not repeat holidays[{j}].date ({})", h.date),
                ));
            }
        }
        Ok(tz)
    }
}

/// A validated, precomputed business-hours calendar with the business-time arithmetic.
///
/// Instants are counted in whole seconds: a second `[s, s + 1)` is business time when `s` is,
/// and the sub-second part of an argument is ignored (truncated) by
/// [`business_between`](Self::business_between). Cheap to clone (the tables are shared).
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tz: Tz,
    /// Per weekday (Monday first): merged local ranges, seconds from that day's midnight;
    /// `end` exceeds `86_400` for a range running overnight.
    week: [Vec<(u32, u32)>; 7],
    /// Per weekday: some range ends at or after the next midnight.
    spills: [bool; 7],
    /// Closures by local date: merged local ranges, empty = the whole date.
    holidays: HashMap<NaiveDate, Vec<(u32, u32)>>,
    /// Every instant is business time (the week is fully covered, no holidays).
    always_open: bool,
}

impl BusinessCalendar {
    /// Validates `def` (see [`CalendarDefinition::validate`]) and precomputes its tables.
    pub fn new(def: &CalendarDefinition) -> Result<Self, CalendarError> {
        let tz = def.checked_zone()?;
        let mut week: [Vec<(u32, u32)>; 7] = Default::default();
        for r in &def.weekly_hours {
            week[r.day.index()].push(absolute(r));
        }
        let mut cover: Vec<(i64, i64)> = Vec::new();
        for (i, ranges) in week.iter_mut().enumerate() {
            merge(ranges);
            let base = i as i64 * i64::from(DAY);
            for &(s, e) in ranges.iter() {
                let (s, e) = (base + i64::from(s), base + i64::from(e));
                if e > WEEK {
                    cover.push((s, WEEK));
                    cover.push((0, e - WEEK));
                } else {
                    cover.push((s, e));
                }
            }
        }
        merge(&mut cover);
        let covered: i64 = cover.iter().map(|(s, e)| e - s).sum();
        let spills = std::array::from_fn(|i| week[i].iter().any(|&(_, e)| e >= DAY));
        let holidays: HashMap<NaiveDate, Vec<(u32, u32)>> = def
            .holidays
            .iter()
            .map(|h| {
                let mut closed: Vec<(u32, u32)> =
                    h.closed.iter().map(|c| (c.start.0, c.end.0)).collect();
                merge(&mut closed);
                (h.date, closed)
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                tz,
                week,
                spills,
                always_open: covered >= WEEK && holidays.is_empty(),
                holidays,
            }),
        })
    }

    /// The built-in 24x7 calendar (UTC, always open).
    pub fn twenty_four_seven() -> Self {
        Self {
            inner: Arc::new(Inner {
                tz: Tz::UTC,
                week: std::array::from_fn(|_| vec![(0, DAY)]),
                spills: [true; 7],
                holidays: HashMap::new(),
                always_open: true,
            }),
        }
    }

    /// The calendar's time zone.
    pub fn time_zone(&self) -> Tz {
        self.inner.tz
    }

    /// The instant at which `secs` business seconds have elapsed after `start` (negative
    /// `secs` count as 0). With `secs == 0` this is the first business instant at or after
    /// `start` (opened on a Saturday → the clock starts on Monday morning), and
    /// `business_between(start, add_business(start, 0)) == 0`. When the count ends exactly at a
    /// closing time, that closing time is returned. If no business time is found within about
    /// ten years of searching, returns [`DateTime::<Utc>::MAX_UTC`].
    pub fn add_business(&self, start: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
        let secs = secs.max(0);
        let (t0, nanos) = (start.timestamp(), start.timestamp_subsec_nanos());
        let end = if self.inner.always_open {
            t0.checked_add(secs).map(|t| (t, nanos))
        } else {
            self.inner.add(t0, nanos, secs)
        };
        end.and_then(|(t, n)| DateTime::from_timestamp(t, n))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Business seconds in `[a, b)` (both truncated to whole seconds). If `b < a`, the
    /// negation of `business_between(b, a)`.
    pub fn business_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
        if b < a {
            return -self.business_between(b, a);
        }
        let (ta, tb) = (a.timestamp(), b.timestamp());
        if ta >= tb {
            0
        } else if self.inner.always_open {
            tb - ta
        } else {
            self.inner.between(ta, tb)
        }
    }

    /// Whether `t` is inside business time.
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        if self.inner.always_open {
            return true;
        }
        let ts = t.timestamp();
        let mut buf = Vec::new();
        let mut lo = None;
        self.inner
            .local_date(ts)
            .and_then(|d| self.inner.date_intervals(d, &mut lo, &mut buf))
            .is_some()
            && buf.iter().any(|&(s, e)| s <= ts && ts < e)
    }
}

impl Inner {
    /// The local date of the instant `ts` (Unix seconds).
    fn local_date(&self, ts: i64) -> Option<NaiveDate> {
        let utc = DateTime::from_timestamp(ts, 0)?.naive_utc();
        let offset = i64::from(
            self.tz
                .offset_from_utc_datetime(&utc)
                .fix()
                .local_minus_utc(),
        );
        let days = ts.checked_add(offset)?.div_euclid(i64::from(DAY));
        NaiveDate::from_num_days_from_ce_opt(
            i32::try_from(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?).ok()?,
        )
    }

    /// The instant (Unix seconds) of local time `secs` after midnight of `date` (`secs` may
    /// exceed a day). A time in a gap maps to the first instant after the gap; an ambiguous
    /// time to the earliest instant, or the latest when `latest`.
    fn instant(&self, date: NaiveDate, secs: u32, latest: bool) -> Option<i64> {
        let (date, secs) = if secs >= DAY {
            (
                date.checked_add_days(chrono::Days::new(u64::from(secs / DAY)))?,
                secs % DAY,
            )
        } else {
            (date, secs)
        };
        let naive = date.and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0)?);
        let local = naive.and_utc().timestamp();
        let at = |o: <Tz as TimeZone>::Offset| local - i64::from(o.fix().local_minus_utc());
        Some(match self.tz.offset_from_local_datetime(&naive) {
            MappedLocalTime::Single(o) => at(o),
            MappedLocalTime::Ambiguous(x, y) => {
                let (x, y) = (at(x), at(y));
                if latest { x.max(y) } else { x.min(y) }
            }
            MappedLocalTime::None => match GapInfo::new(&naive, &self.tz).and_then(|g| g.end) {
                Some(after) => after.timestamp(),
                None => at(self.tz.offset_from_utc_datetime(&naive)),
            },
        })
    }

    /// The business intervals (Unix seconds, sorted, disjoint, half-open) of the instants whose
    /// local date is `d`, into `out`. `lo` is the start of `d` if known; on return it is the
    /// start of the next date, if it was computed. `None` if the dates run out.
    fn date_intervals(
        &self,
        d: NaiveDate,
        lo: &mut Option<i64>,
        out: &mut Vec<(i64, i64)>,
    ) -> Option<()> {
        out.clear();
        let wd = d.weekday().num_days_from_monday() as usize;
        let prev_wd = (wd + 6) % 7;
        let closures = self.holidays.get(&d);
        let today = &self.week[wd];
        let from_prev = self.spills[prev_wd];
        if closures.is_some_and(Vec::is_empty) || (today.is_empty() && !from_prev) {
            *lo = None;
            return Some(());
        }
        let start = match *lo {
            Some(t) => t,
            None => self.instant(d, 0, false)?,
        };
        let next = d.succ_opt()?;
        let end = self.instant(next, 0, false)?;
        *lo = Some(end);
        if from_prev {
            let prev = d.pred_opt()?;
            for &(s, e) in self.week[prev_wd].iter().filter(|r| r.1 >= DAY) {
                out.push((self.instant(prev, s, false)?, self.instant(prev, e, true)?));
            }
        }
        for &(s, e) in today {
            out.push((self.instant(d, s, false)?, self.instant(d, e, true)?));
        }
        out.retain_mut(|r| {
            r.0 = r.0.max(start);
            r.1 = r.1.min(end);
            r.0 < r.1
        });
        merge(out);
        for &(cs, ce) in closures.into_iter().flatten() {
            let (cs, ce) = (self.instant(d, cs, false)?, self.instant(d, ce, true)?);
            let mut i = 0;
            while i < out.len() {
                let (s, e) = out[i];
                if e <= cs || s >= ce {
                    i += 1;
                } else if s < cs && e > ce {
                    out[i] = (s, cs);
                    out.insert(i + 1, (ce, e));
                    i += 2;
                } else if s < cs {
                    out[i].1 = cs;
                    i += 1;
                } else if e > ce {
                    out[i].0 = ce;
                    i += 1;
                } else {
                    out.remove(i);
                }
            }
        }
        Some(())
    }

    /// See [`BusinessCalendar::add_business`]; `None` = not found / out of range.
    fn add(&self, t0: i64, nanos: u32, secs: i64) -> Option<(i64, u32)> {
        let mut d = self.local_date(t0)?;
        let mut lo = None;
        let mut buf = Vec::new();
        let mut remaining = secs;
        let mut idle = 0u32;
        loop {
            self.date_intervals(d, &mut lo, &mut buf)?;
            let mut found = false;
            for &(s, e) in buf.iter().filter(|r| r.1 > t0) {
                found = true;
                let from = s.max(t0);
                let available = e - from;
                if remaining <= available {
                    // Counting from `start` itself keeps its sub-second part.
                    let n = if from == t0 { nanos } else { 0 };
                    return Some((from + remaining, n));
                }
                remaining -= available;
            }
            if found {
                idle = 0;
            } else {
                idle += 1;
                if idle > SEARCH_DAYS {
                    return None;
                }
            }
            d = d.succ_opt()?;
        }
    }

    /// See [`BusinessCalendar::business_between`], for `ta < tb`.
    fn between(&self, ta: i64, tb: i64) -> i64 {
        let (Some(mut d), Some(last)) = (self.local_date(ta), self.local_date(tb - 1)) else {
            return 0;
        };
        let mut lo = None;
        let mut buf = Vec::new();
        let mut total = 0;
        while d <= last {
            if self.date_intervals(d, &mut lo, &mut buf).is_none() {
                break;
            }
            total += buf
                .iter()
                .map(|&(s, e)| (e.min(tb) - s.max(ta)).max(0))
                .sum::<i64>();
            match d.succ_opt() {
                Some(n) => d = n,
                None => break,
            }
        }
        total
    }
}

#[cfg(test)]
#[path = "calendar_tests.rs"]
mod tests;
