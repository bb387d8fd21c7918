//! Tests of the business-time arithmetic and of the iCalendar holiday import.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::sla::ics::{IcsError, parse_holidays};
use chrono::NaiveDateTime;
use proptest::prelude::*;

const H: i64 = 3_600;
const WEEKDAYS: [Day; 5] = [
    Day::Monday,
    Day::Tuesday,
    Day::Wednesday,
    Day::Thursday,
    Day::Friday,
];

fn t(s: &str) -> LocalTime {
    LocalTime::parse(s).expect("local time")
}

fn date(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339 instant")
}

/// An unambiguous local wall-clock time (`YYYY-MM-DD HH:MM`) in `zone`.
fn loc(zone: &str, s: &str) -> DateTime<Utc> {
    let tz: Tz = zone.parse().expect("zone");
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("local date-time");
    tz.from_local_datetime(&naive)
        .single()
        .expect("unambiguous local time")
        .with_timezone(&Utc)
}

fn holiday(d: &str, closed: &[(&str, &str)]) -> Holiday {
    Holiday {
        date: date(d),
        name: String::new(),
        closed: closed
            .iter()
            .map(|(s, e)| ClosureRange {
                start: t(s),
                end: t(e),
            })
            .collect(),
    }
}

fn def(
    zone: &str,
    days: &[Day],
    ranges: &[(&str, &str)],
    holidays: Vec<Holiday>,
) -> CalendarDefinition {
    CalendarDefinition {
        time_zone: zone.into(),
        weekly_hours: days
            .iter()
            .flat_map(|&day| {
                ranges.iter().map(move |(s, e)| WeeklyRange {
                    day,
                    start: t(s),
                    end: t(e),
                })
            })
            .collect(),
        holidays,
    }
}

fn cal(
    zone: &str,
    days: &[Day],
    ranges: &[(&str, &str)],
    holidays: Vec<Holiday>,
) -> BusinessCalendar {
    BusinessCalendar::new(&def(zone, days, ranges, holidays)).expect("valid calendar")
}

/// Berlin, 08:00–18:00 Monday to Friday, German-ish holidays around the year end.
fn berlin_office() -> BusinessCalendar {
    cal(
        "Europe/Berlin",
        &WEEKDAYS,
        &[("08:00", "18:00")],
        vec![
            holiday("2025-12-24", &[("12:00", "24:00")]),
            holiday("2025-12-25", &[]),
            holiday("2025-12-26", &[]),
            holiday("2026-01-01", &[]),
            holiday("2026-03-10", &[]),
        ],
    )
}

/// Berlin, 08:00–18:00 Monday to Friday, Monday 2026-03-09 a holiday.
fn berlin_monday_holiday() -> BusinessCalendar {
    cal(
        "Europe/Berlin",
        &WEEKDAYS,
        &[("08:00", "18:00")],
        vec![holiday("2026-03-09", &[])],
    )
}

/// New York, 09:00–12:00 and 13:00–17:00 Monday to Friday.
fn ny_split() -> BusinessCalendar {
    cal(
        "America/New_York",
        &WEEKDAYS,
        &[("09:00", "12:00"), ("13:00", "17:00")],
        vec![],
    )
}

/// UTC, night shifts 22:00–06:00 starting Monday to Friday.
fn night_shift() -> BusinessCalendar {
    cal("UTC", &WEEKDAYS, &[("22:00", "06:00")], vec![])
}

/// Every day 00:00–24:00 in `zone`; with a (far away) holiday the general path is used.
fn all_day(zone: &str, with_holiday: bool) -> BusinessCalendar {
    let holidays = if with_holiday {
        vec![holiday("2040-06-01", &[])]
    } else {
        vec![]
    };
    cal(zone, &ALL_DAYS, &[("00:00", "24:00")], holidays)
}

/// Every day 09:00–17:00 in `zone`.
fn nine_to_five(zone: &str) -> BusinessCalendar {
    cal(zone, &ALL_DAYS, &[("09:00", "17:00")], vec![])
}

/// `(name, calendar, start, business seconds, expected instant)`.
type AddCase = (
    &'static str,
    BusinessCalendar,
    DateTime<Utc>,
    i64,
    DateTime<Utc>,
);
/// `(name, calendar, a, b, expected business seconds)`.
type BetweenCase = (
    &'static str,
    BusinessCalendar,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
);

#[test]
fn add_business_lands_on_exact_instants() {
    let berlin = "Europe/Berlin";
    let ny = "America/New_York";
    #[rustfmt::skip]
    let cases: Vec<AddCase> = vec![
        // 1. 4 business hours opened Friday 16:00 → Monday 10:00.
        ("friday afternoon", berlin_office(), loc(berlin, "2026-03-06 16:00"), 4 * H, loc(berlin, "2026-03-09 10:00")),
        ("friday afternoon UTC", cal("UTC", &WEEKDAYS, &[("08:00", "18:00")], vec![]),
            utc("2026-03-06T16:00:00Z"), 4 * H, utc("2026-03-09T10:00:00Z")),
        ("inside one day", berlin_office(), loc(berlin, "2026-03-04 09:15"), 4 * H, loc(berlin, "2026-03-04 13:15")),
        ("ends exactly at closing", berlin_office(), loc(berlin, "2026-03-06 14:00"), 4 * H, loc(berlin, "2026-03-06 18:00")),
        ("opened before opening", berlin_office(), loc(berlin, "2026-03-04 06:00"), H, loc(berlin, "2026-03-04 09:00")),
        // 2. Opened on a Saturday: the clock starts on Monday 08:00.
        ("saturday, 0", berlin_office(), loc(berlin, "2026-03-07 11:23"), 0, loc(berlin, "2026-03-09 08:00")),
        ("saturday, 1h", berlin_office(), loc(berlin, "2026-03-07 11:23"), H, loc(berlin, "2026-03-09 09:00")),
        ("negative = 0", berlin_office(), loc(berlin, "2026-03-07 11:23"), -5, loc(berlin, "2026-03-09 08:00")),
        ("open, 0 = itself", berlin_office(), loc(berlin, "2026-03-04 09:15"), 0, loc(berlin, "2026-03-04 09:15")),
        // 3. Monday is a holiday → Tuesday 10:00.
        ("monday holiday", berlin_monday_holiday(), loc(berlin, "2026-03-06 16:00"), 4 * H, loc(berlin, "2026-03-10 10:00")),
        // Tuesday 2026-03-10 is a holiday in berlin_office: Monday 16:00 + 4h → Wednesday 10:00.
        ("tuesday holiday", berlin_office(), loc(berlin, "2026-03-09 16:00"), 4 * H, loc(berlin, "2026-03-11 10:00")),
        // 4. DST. 24x7 in the zone: business time is wall time.
        ("berlin spring, all day", all_day(berlin, true), utc("2026-03-28T21:00:00Z"), 6 * H, utc("2026-03-29T03:00:00Z")),
        ("berlin fall, all day", all_day(berlin, true), loc(berlin, "2026-10-25 00:00"), 25 * H, loc(berlin, "2026-10-26 00:00")),
        ("ny spring, all day", all_day(ny, true), loc(ny, "2026-03-08 00:00"), 23 * H, loc(ny, "2026-03-09 00:00")),
        // 09:00–17:00 across the DST weekend: Saturday 16:00 + 2h → Sunday 10:00 (new offset).
        ("berlin spring 9-17", nine_to_five(berlin), loc(berlin, "2026-03-28 16:00"), 2 * H, utc("2026-03-29T08:00:00Z")),
        ("berlin fall 9-17", nine_to_five(berlin), loc(berlin, "2026-10-24 16:00"), 2 * H, utc("2026-10-25T09:00:00Z")),
        ("ny spring 9-17", nine_to_five(ny), loc(ny, "2026-03-07 16:00"), 2 * H, utc("2026-03-08T14:00:00Z")),
        ("ny fall 9-17", nine_to_five(ny), loc(ny, "2026-10-31 16:00"), 2 * H, utc("2026-11-01T15:00:00Z")),
        // 5. Split day: 10:00 + 4h → 15:00, lunch excluded.
        ("split day", ny_split(), loc(ny, "2026-03-02 10:00"), 4 * H, loc(ny, "2026-03-02 15:00")),
        ("split day, at lunch", ny_split(), loc(ny, "2026-03-02 12:30"), 0, loc(ny, "2026-03-02 13:00")),
        ("split day, to next day", ny_split(), loc(ny, "2026-03-02 16:00"), 2 * H, loc(ny, "2026-03-03 10:00")),
        // 6. Overnight shift 22:00–06:00 starting Monday to Friday.
        ("night, monday 23:00", night_shift(), utc("2026-03-02T23:00:00Z"), 4 * H, utc("2026-03-03T03:00:00Z")),
        ("night, tuesday 07:00", night_shift(), utc("2026-03-03T07:00:00Z"), H, utc("2026-03-03T23:00:00Z")),
        ("night, friday shift", night_shift(), utc("2026-03-06T22:00:00Z"), 8 * H, utc("2026-03-07T06:00:00Z")),
        ("night, after friday", night_shift(), utc("2026-03-06T22:00:00Z"), 8 * H + 1, utc("2026-03-09T22:00:01Z")),
        ("night, monday early", night_shift(), utc("2026-03-09T03:00:00Z"), 0, utc("2026-03-09T22:00:00Z")),
        // 7. Year end: 31 Dec 16:00 + 4h → 2 Jan 10:00 (1 Jan a holiday).
        ("year end", berlin_office(), loc(berlin, "2025-12-31 16:00"), 4 * H, loc(berlin, "2026-01-02 10:00")),
        // 24 Dec closed from 12:00, 25/26 Dec holidays: 10:00 + 4h → Monday 29 Dec 10:00.
        ("christmas eve", berlin_office(), loc(berlin, "2025-12-24 10:00"), 4 * H, loc(berlin, "2025-12-29 10:00")),
        ("christmas eve, morning", berlin_office(), loc(berlin, "2025-12-24 10:00"), 2 * H, loc(berlin, "2025-12-24 12:00")),
        // The built-in 24x7.
        ("24x7", BusinessCalendar::twenty_four_seven(), utc("2026-03-07T11:23:45Z"), 100_000, utc("2026-03-08T15:10:25Z")),
    ];
    for (name, cal, start, secs, expected) in cases {
        let due = cal.add_business(start, secs);
        assert_eq!(due, expected, "{name}: add_business({start}, {secs})");
        assert_eq!(
            cal.business_between(start, due),
            secs.max(0),
            "{name}: between"
        );
    }
}

#[test]
fn business_between_counts_exact_seconds() {
    let berlin = "Europe/Berlin";
    let ny = "America/New_York";
    let ny_range = |day: Day, s: &str, e: &str| cal(ny, &[day], &[(s, e)], vec![]);
    #[rustfmt::skip]
    let cases: Vec<BetweenCase> = vec![
        ("office week", berlin_office(), loc(berlin, "2026-03-02 00:00"), loc(berlin, "2026-03-09 00:00"), 50 * H),
        ("week with tuesday holiday", berlin_office(), loc(berlin, "2026-03-09 00:00"), loc(berlin, "2026-03-16 00:00"), 50 * H - 10 * H),
        ("weekend", berlin_office(), loc(berlin, "2026-03-06 18:00"), loc(berlin, "2026-03-09 08:00"), 0),
        ("christmas eve", berlin_office(), loc(berlin, "2025-12-24 00:00"), loc(berlin, "2025-12-25 00:00"), 4 * H),
        ("christmas week", berlin_office(), loc(berlin, "2025-12-22 00:00"), loc(berlin, "2025-12-29 00:00"), 10 * H * 2 + 4 * H),
        // 4. DST days of a 24x7-in-zone calendar: 23 h / 25 h, general path and fast path.
        ("berlin spring day", all_day(berlin, true), loc(berlin, "2026-03-29 00:00"), loc(berlin, "2026-03-30 00:00"), 23 * H),
        ("berlin fall day", all_day(berlin, true), loc(berlin, "2026-10-25 00:00"), loc(berlin, "2026-10-26 00:00"), 25 * H),
        ("ny spring day", all_day(ny, true), loc(ny, "2026-03-08 00:00"), loc(ny, "2026-03-09 00:00"), 23 * H),
        ("ny fall day", all_day(ny, true), loc(ny, "2026-11-01 00:00"), loc(ny, "2026-11-02 00:00"), 25 * H),
        ("berlin spring day, fast", all_day(berlin, false), loc(berlin, "2026-03-29 00:00"), loc(berlin, "2026-03-30 00:00"), 23 * H),
        ("ny fall day, fast", all_day(ny, false), loc(ny, "2026-11-01 00:00"), loc(ny, "2026-11-02 00:00"), 25 * H),
        // NY 01:00–04:00 on the spring-forward Sunday (02:00 → 03:00): 06:00Z–08:00Z.
        ("ny 01-04 spring", ny_range(Day::Sunday, "01:00", "04:00"), utc("2026-03-08T00:00:00Z"), utc("2026-03-09T00:00:00Z"), 2 * H),
        ("ny 01-04 spring, in part", ny_range(Day::Sunday, "01:00", "04:00"), utc("2026-03-08T06:30:00Z"), utc("2026-03-08T07:30:00Z"), H),
        // A start inside the gap maps to the first instant after it (03:00 EDT = 07:00Z).
        ("ny 02:30-05 spring", ny_range(Day::Sunday, "02:30", "05:00"), utc("2026-03-08T00:00:00Z"), utc("2026-03-09T00:00:00Z"), 2 * H),
        // Fall back: 01:00 is ambiguous → earliest as a start (05:00Z), 04:00 EST = 09:00Z.
        ("ny 01-04 fall", ny_range(Day::Sunday, "01:00", "04:00"), utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z"), 4 * H),
        // …and latest as an end: 00:00–01:30 runs to 01:30 EST = 06:30Z.
        ("ny 00-01:30 fall", ny_range(Day::Sunday, "00:00", "01:30"), utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z"), 2 * H + 1800),
        // Overnight into the fall-back day: Saturday 22:00 EDT (02:00Z) → Sunday 06:00 EST (11:00Z).
        ("ny overnight fall", ny_range(Day::Saturday, "22:00", "06:00"), utc("2026-10-31T00:00:00Z"), utc("2026-11-02T00:00:00Z"), 9 * H),
        // 09:00–17:00 across the DST weekends: exactly 8 h a day.
        ("berlin spring 9-17", nine_to_five(berlin), loc(berlin, "2026-03-28 00:00"), loc(berlin, "2026-03-31 00:00"), 24 * H),
        ("berlin fall 9-17", nine_to_five(berlin), loc(berlin, "2026-10-24 00:00"), loc(berlin, "2026-10-27 00:00"), 24 * H),
        ("ny spring 9-17", nine_to_five(ny), loc(ny, "2026-03-07 00:00"), loc(ny, "2026-03-10 00:00"), 24 * H),
        ("ny fall 9-17", nine_to_five(ny), loc(ny, "2026-10-31 00:00"), loc(ny, "2026-11-03 00:00"), 24 * H),
        ("berlin sunday 9-17", nine_to_five(berlin), loc(berlin, "2026-03-29 00:00"), loc(berlin, "2026-03-30 00:00"), 8 * H),
        // 5. Lunch excluded.
        ("split day", ny_split(), loc(ny, "2026-03-02 10:00"), loc(ny, "2026-03-02 15:00"), 4 * H),
        ("split week", ny_split(), loc(ny, "2026-03-02 00:00"), loc(ny, "2026-03-09 00:00"), 35 * H),
        // 6. Night shift: Friday's shift runs into Saturday; none starts on Saturday/Sunday.
        ("night weekend", night_shift(), utc("2026-03-07T00:00:00Z"), utc("2026-03-09T22:00:00Z"), 6 * H),
        ("night week", night_shift(), utc("2026-03-02T00:00:00Z"), utc("2026-03-09T00:00:00Z"), 40 * H),
        // 8. Orientation and the 24x7 calendar.
        ("reversed", berlin_office(), loc(berlin, "2026-03-09 00:00"), loc(berlin, "2026-03-02 00:00"), -50 * H),
        ("same instant", berlin_office(), loc(berlin, "2026-03-04 10:00"), loc(berlin, "2026-03-04 10:00"), 0),
        ("24x7", BusinessCalendar::twenty_four_seven(), utc("2025-12-31T23:59:59Z"), utc("2027-01-01T00:00:01Z"), 365 * 86_400 + 2),
        ("24x7 reversed", BusinessCalendar::twenty_four_seven(), utc("2026-01-02T00:00:00Z"), utc("2026-01-01T00:00:00Z"), -86_400),
        ("24x7 sub-second", BusinessCalendar::twenty_four_seven(), utc("2026-01-01T00:00:00.9Z"), utc("2026-01-01T00:00:10.2Z"), 10),
    ];
    for (name, cal, a, b, expected) in cases {
        assert_eq!(
            cal.business_between(a, b),
            expected,
            "{name}: business_between({a}, {b})"
        );
    }
}

#[test]
fn one_year_of_office_hours() {
    // 2026: 261 weekdays; holidays in berlin_office on weekdays: 01 Jan, 10 Mar.
    let cal = berlin_office();
    let (a, b) = (
        loc("Europe/Berlin", "2026-01-01 00:00"),
        loc("Europe/Berlin", "2027-01-01 00:00"),
    );
    assert_eq!(cal.business_between(a, b), (261 - 2) * 10 * H);
    assert_eq!(
        cal.add_business(a, (261 - 2) * 10 * H),
        loc("Europe/Berlin", "2026-12-31 18:00")
    );
}

#[test]
fn is_open_follows_the_ranges() {
    let berlin = "Europe/Berlin";
    #[rustfmt::skip]
    let cases: Vec<(&str, BusinessCalendar, DateTime<Utc>, bool)> = vec![
        ("monday 08:00", berlin_office(), loc(berlin, "2026-03-02 08:00"), true),
        ("monday 07:59", berlin_office(), loc(berlin, "2026-03-02 07:59"), false),
        ("monday 18:00", berlin_office(), loc(berlin, "2026-03-02 18:00"), false),
        ("saturday", berlin_office(), loc(berlin, "2026-03-07 10:00"), false),
        ("holiday", berlin_office(), loc(berlin, "2026-03-10 10:00"), false),
        ("christmas eve 11:59", berlin_office(), loc(berlin, "2025-12-24 11:59"), true),
        ("christmas eve 12:00", berlin_office(), loc(berlin, "2025-12-24 12:00"), false),
        ("lunch", ny_split(), loc("America/New_York", "2026-03-02 12:30"), false),
        ("night saturday 05:59", night_shift(), utc("2026-03-07T05:59:59Z"), true),
        ("night monday 03:00", night_shift(), utc("2026-03-09T03:00:00Z"), false),
        ("24x7", BusinessCalendar::twenty_four_seven(), utc("2026-03-07T05:59:59Z"), true),
    ];
    for (name, cal, at, expected) in cases {
        assert_eq!(cal.is_open(at), expected, "{name}: is_open({at})");
    }
}

#[test]
fn holidays_close_by_local_date() {
    // Night shift Monday 22:00 → Tuesday 06:00 with Tuesday a holiday: open until midnight.
    let cal = cal(
        "UTC",
        &[Day::Monday],
        &[("22:00", "06:00")],
        vec![holiday("2026-03-03", &[])],
    );
    let a = utc("2026-03-02T00:00:00Z");
    assert_eq!(cal.business_between(a, utc("2026-03-04T00:00:00Z")), 2 * H);
    assert_eq!(
        cal.add_business(utc("2026-03-02T23:00:00Z"), 2 * H),
        utc("2026-03-09T23:00:00Z")
    );
    // A holiday's partial closure removes only its ranges.
    let cal = berlin_office();
    let eve = loc("Europe/Berlin", "2025-12-24 08:00");
    assert_eq!(
        cal.business_between(eve, loc("Europe/Berlin", "2025-12-24 18:00")),
        4 * H
    );
}

#[test]
fn no_business_time_is_the_far_future() {
    let holidays = (0..4000)
        .map(|i| Holiday {
            date: date("2026-01-05") + chrono::Days::new(i),
            name: String::new(),
            closed: vec![],
        })
        .collect();
    let cal = cal("UTC", &WEEKDAYS, &[("08:00", "18:00")], holidays);
    assert_eq!(
        cal.add_business(utc("2026-01-05T00:00:00Z"), H),
        DateTime::<Utc>::MAX_UTC
    );
    assert_eq!(
        cal.add_business(utc("2026-01-02T17:00:00Z"), H),
        utc("2026-01-02T18:00:00Z")
    );
}

#[test]
fn sub_second_starts_are_kept_when_counting_from_them() {
    let cal = berlin_office();
    let start = utc("2026-03-04T09:00:00.250Z");
    assert_eq!(cal.add_business(start, 0), start);
    assert_eq!(cal.add_business(start, 60), utc("2026-03-04T09:01:00.250Z"));
    let sat = utc("2026-03-07T09:00:00.250Z");
    assert_eq!(
        cal.add_business(sat, 0),
        loc("Europe/Berlin", "2026-03-09 08:00")
    );
}

#[test]
fn built_in_24x7() {
    fn send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    send_sync::<BusinessCalendar>();
    let def = CalendarDefinition::twenty_four_seven();
    assert_eq!(def.validate(), Ok(()));
    assert_eq!(def.time_zone, "UTC");
    assert_eq!(def.weekly_hours.len(), 7);
    let json = serde_json::to_value(&def).expect("serialize");
    assert_eq!(
        json["weekly_hours"][0],
        serde_json::json!({"day": "monday", "start": "00:00", "end": "24:00"})
    );
    let back: CalendarDefinition = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, def);
    let built = BusinessCalendar::new(&def).expect("valid");
    assert_eq!(built.time_zone(), Tz::UTC);
    assert_eq!(BusinessCalendar::twenty_four_seven().time_zone(), Tz::UTC);
    let (a, b) = (utc("2026-01-01T00:00:00Z"), utc("2026-07-01T12:34:56Z"));
    assert_eq!(built.business_between(a, b), (b - a).num_seconds());
    assert_eq!(built.add_business(a, (b - a).num_seconds()), b);
}

#[test]
fn validation_names_the_field() {
    let ok = || def("Europe/Berlin", &WEEKDAYS, &[("08:00", "18:00")], vec![]);
    let range = |day: Day, s: &str, e: &str| WeeklyRange {
        day,
        start: t(s),
        end: t(e),
    };
    type Mutation = Box<dyn Fn(&mut CalendarDefinition)>;
    #[rustfmt::skip]
    let cases: Vec<(&str, Mutation, &str)> = vec![
        ("bad zone", Box::new(|d| d.time_zone = "Mars/Olympus".into()), "time_zone"),
        ("empty week", Box::new(|d| d.weekly_hours.clear()), "weekly_hours"),
        ("start == end", Box::new(|d| d.weekly_hours[2].end = t("08:00")), "weekly_hours[2].end"),
        ("start 24:00", Box::new(|d| d.weekly_hours[1].start = t("24:00")), "weekly_hours[1].start"),
        ("end past 24:00", Box::new(|d| d.weekly_hours[0].end = LocalTime(90_000)), "weekly_hours[0].end"),
        ("overlap same day", Box::new(move |d| d.weekly_hours.push(range(Day::Wednesday, "17:00", "19:00"))), "weekly_hours[5]"),
        ("enclosing", Box::new(move |d| d.weekly_hours.push(range(Day::Monday, "07:00", "19:00"))), "weekly_hours[5]"),
        ("overnight spill", Box::new(move |d| d.weekly_hours.push(range(Day::Monday, "22:00", "08:30"))), "weekly_hours[5]"),
        ("sunday spill into monday", Box::new(move |d| d.weekly_hours.push(range(Day::Sunday, "23:00", "09:00"))), "weekly_hours[5]"),
        ("closure start == end", Box::new(|d| d.holidays = vec![holiday("2026-12-24", &[("08:00", "09:00"), ("12:00", "12:00")])]), "holidays[0].closed[1].start"),
        ("closure reversed", Box::new(|d| d.holidays = vec![holiday("2026-12-24", &[("14:00", "12:00")])]), "holidays[0].closed[0].start"),
        ("closure past 24:00", Box::new(|d| d.holidays = vec![ Holiday { date: date("2026-12-24"), name: String::new(),
            closed: vec![ClosureRange { start: t("12:00"), end: LocalTime(90_000) }] }]), "holidays[0].closed[0].end"),
        ("duplicate holiday", Box::new(|d| d.holidays = vec![holiday("2026-12-25", &[]), holiday("2026-12-26", &[]), holiday("2026-12-25", &[("08:00", "09:00")])]), "holidays[2].date"),
    ];
    for (name, mutate, field) in cases {
        let mut d = ok();
        mutate(&mut d);
        let e = d.validate().expect_err(name);
        assert_eq!(e.field, field, "{name}: {e}");
        assert!(e.message.starts_with("must"), "{name}: {e}");
        assert_eq!(BusinessCalendar::new(&d).map(|_| ()), Err(e), "{name}");
    }
    let overlap = {
        let mut d = ok();
        d.weekly_hours.push(range(Day::Wednesday, "17:00", "19:00"));
        d.validate().expect_err("overlap")
    };
    assert_eq!(
        overlap.to_string(),
        "weekly_hours[5] must not overlap weekly_hours[2] (wednesday 08:00–18:00)"
    );

    #[rustfmt::skip]
    let valid: Vec<(&str, Vec<WeeklyRange>)> = vec![
        ("touching", vec![range(Day::Monday, "08:00", "12:00"), range(Day::Monday, "12:00", "18:00")]),
        ("overnight then day", vec![range(Day::Monday, "22:00", "06:00"), range(Day::Tuesday, "06:00", "10:00")]),
        ("sunday night", vec![range(Day::Sunday, "22:00", "06:00"), range(Day::Monday, "06:00", "22:00")]),
        ("full day", vec![range(Day::Monday, "00:00", "24:00"), range(Day::Tuesday, "00:00", "24:00")]),
        ("until midnight as 00:00", vec![range(Day::Monday, "18:00", "00:00"), range(Day::Tuesday, "00:00", "01:00")]),
    ];
    for (name, weekly_hours) in valid {
        let d = CalendarDefinition {
            weekly_hours,
            ..ok()
        };
        assert_eq!(d.validate(), Ok(()), "{name}");
    }
}

#[test]
fn overnight_to_midnight_and_full_week_coverage() {
    // 18:00–00:00 runs to midnight; a 24x7 made of overnight shifts is always open.
    let evening = cal("UTC", &[Day::Monday], &[("18:00", "00:00")], vec![]);
    assert_eq!(
        evening.business_between(utc("2026-03-02T00:00:00Z"), utc("2026-03-09T00:00:00Z")),
        6 * H
    );
    let shifts = cal(
        "America/New_York",
        &ALL_DAYS,
        &[("06:00", "18:00"), ("18:00", "06:00")],
        vec![],
    );
    assert!(shifts.inner.always_open);
    let (a, b) = (utc("2026-03-01T00:00:00Z"), utc("2026-12-01T00:00:00Z"));
    assert_eq!(shifts.business_between(a, b), (b - a).num_seconds());
}

/// Calendars for the properties: Berlin office with holidays, NY split day, night shifts,
/// 24x7 (built-in and in Berlin through the general path).
fn property_calendars() -> Vec<BusinessCalendar> {
    let mut berlin_holidays = Vec::new();
    for year in 2020..=2036 {
        for (m, d) in [(1, 1), (5, 1), (10, 3), (12, 25), (12, 26)] {
            berlin_holidays.push(holiday(&format!("{year}-{m:02}-{d:02}"), &[]));
        }
        berlin_holidays.push(holiday(&format!("{year}-12-24"), &[("12:00", "24:00")]));
    }
    vec![
        cal(
            "Europe/Berlin",
            &WEEKDAYS,
            &[("08:00", "18:00")],
            berlin_holidays,
        ),
        ny_split(),
        cal(
            "America/New_York",
            &WEEKDAYS,
            &[("22:00", "06:00")],
            vec![holiday("2026-07-03", &[])],
        ),
        BusinessCalendar::twenty_four_seven(),
        all_day("Europe/Berlin", true),
    ]
}

const MIN_TS: i64 = 1_577_836_800; // 2020-01-01T00:00:00Z
const MAX_TS: i64 = 2_082_758_399; // 2035-12-31T23:59:59Z
const SIXTY_DAYS: i64 = 60 * 86_400;

fn instant(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).expect("in range")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn add_then_between_round_trips(c in 0usize..5, a in MIN_TS..=MAX_TS, d in 0i64..=SIXTY_DAYS) {
        let cal = &property_calendars()[c];
        let a = instant(a);
        let due = cal.add_business(a, d);
        prop_assert_eq!(cal.business_between(a, due), d);
        prop_assert!(due >= a);
        if d > 0 {
            // The earliest such instant: one second earlier is one business second short.
            prop_assert_eq!(cal.business_between(a, due - chrono::TimeDelta::seconds(1)), d - 1);
        } else {
            prop_assert!(cal.is_open(due));
        }
    }

    #[test]
    fn add_is_monotonic(c in 0usize..5, a in MIN_TS..=MAX_TS, d1 in 0i64..=SIXTY_DAYS, d2 in 0i64..=SIXTY_DAYS) {
        let cal = &property_calendars()[c];
        let a = instant(a);
        let (lo, hi) = (d1.min(d2), d1.max(d2));
        prop_assert!(cal.add_business(a, lo) <= cal.add_business(a, hi));
    }

    #[test]
    fn between_is_bounded_and_additive(
        c in 0usize..5,
        a in MIN_TS..=MAX_TS,
        x in 0i64..=SIXTY_DAYS,
        y in 0i64..=SIXTY_DAYS,
    ) {
        let cal = &property_calendars()[c];
        let (a, b, c2) = (instant(a), instant(a + x), instant(a + x + y));
        let ab = cal.business_between(a, b);
        let bc = cal.business_between(b, c2);
        prop_assert!((0..=x).contains(&ab));
        prop_assert!((0..=y).contains(&bc));
        prop_assert_eq!(ab + bc, cal.business_between(a, c2));
        prop_assert_eq!(cal.business_between(c2, a), -(ab + bc));
        prop_assert_eq!(cal.business_between(a, a + chrono::TimeDelta::seconds(1)), i64::from(cal.is_open(a)));
    }
}

#[test]
fn ics_import_reads_a_holiday_feed() {
    // Physical lines are numbered in the comments; CRLF line ends.
    let text = [
        "BEGIN:VCALENDAR",                               // 1
        "VERSION:2.0",                                   // 2
        "PRODID:-//eventdesk//test//EN",                 // 3
        "BEGIN:VTIMEZONE",                               // 4
        "TZID:Europe/Berlin",                            // 5
        "BEGIN:STANDARD",                                // 6
        "DTSTART:19701025T030000",                       // 7
        "TZOFFSETFROM:+0200",                            // 8
        "TZOFFSETTO:+0100",                              // 9
        "END:STANDARD",                                  // 10
        "END:VTIMEZONE",                                 // 11
        "BEGIN:VEVENT",                                  // 12
        "UID:new-year@example",                          // 13
        "DTSTART;VALUE=DATE:20250101",                   // 14
        "RRULE:FREQ=YEARLY",                             // 15
        "SUMMARY:Neujahr",                               // 16
        "END:VEVENT",                                    // 17
        "BEGIN:VEVENT",                                  // 18
        "DTSTART;VALUE=DATE:20261225",                   // 19
        "DTEND;VALUE=DATE:20261227",                     // 20
        "SUMMARY:Weihnachten\\, 1. und 2. Feiertag \\;", // 21
        "  (folded)",                                    // 22
        "END:VEVENT",                                    // 23
        "BEGIN:VEVENT",                                  // 24
        "DTSTART;TZID=Europe/Berlin:20261224T120000",    // 25
        "DTEND;TZID=\"Europe/Berlin\":20261225T000000",  // 26
        "SUMMARY:Heilig\\nabend",                        // 27
        "BEGIN:VALARM",                                  // 28
        "ACTION:DISPLAY",                                // 29
        "SUMMARY:ignored",                               // 30
        "TRIGGER:-PT15M",                                // 31
        "END:VALARM",                                    // 32
        "END:VEVENT",                                    // 33
        "BEGIN:VEVENT",                                  // 34
        "DTSTART:20261231T110000Z",                      // 35
        "DURATION:PT6H",                                 // 36
        "SUMMARY:Silvester",                             // 37
        "END:VEVENT",                                    // 38
        "BEGIN:VEVENT",                                  // 39
        "DTSTART;TZID=America/New_York:20261126T120000", // 40
        "DTEND;TZID=America/New_York:20261126T200000",   // 41
        "SUMMARY:Thanksgiving call",                     // 42
        "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",        // 43
        "END:VEVENT",                                    // 44
        "BEGIN:VEVENT",                                  // 45
        "DTSTART:20260501",                              // 46
        "RRULE:FREQ=YEARLY;COUNT=5",                     // 47
        "EXDATE;VALUE=DATE:20270501",                    // 48
        "SUMMARY:Tag der Arbeit",                        // 49
        "END:VEVENT",                                    // 50
        "BEGIN:VEVENT",                                  // 51
        "DTSTART;VALUE=DATE:20261231",                   // 52
        "SUMMARY:Bank closed",                           // 53
        "STATUS:CANCELLED",                              // 54
        "END:VEVENT",                                    // 55
        "END:VCALENDAR",                                 // 56
    ]
    .join("\r\n");
    let full = |d: &str, name: &str| Holiday {
        name: name.into(),
        ..holiday(d, &[])
    };
    let part = |d: &str, name: &str, closed: &[(&str, &str)]| Holiday {
        name: name.into(),
        ..holiday(d, closed)
    };
    let zone: Tz = "Europe/Berlin".parse().expect("zone");
    let got = parse_holidays(&text, zone, 2026, 2027).expect("parses");
    let expected = vec![
        full("2026-01-01", "Neujahr"),
        full("2026-05-01", "Tag der Arbeit"),
        // 12:00–20:00 New York = 18:00–02:00 Berlin.
        part("2026-11-26", "Thanksgiving call", &[("18:00", "24:00")]),
        part("2026-11-27", "Thanksgiving call", &[("00:00", "02:00")]),
        part("2026-12-24", "Heilig\nabend", &[("12:00", "24:00")]),
        full("2026-12-25", "Weihnachten, 1. und 2. Feiertag ; (folded)"),
        full("2026-12-26", "Weihnachten, 1. und 2. Feiertag ; (folded)"),
        part("2026-12-31", "Silvester", &[("12:00", "18:00")]),
        full("2027-01-01", "Neujahr"),
        // 2027-11-25 is the fourth Thursday.
        part("2027-11-25", "Thanksgiving call", &[("18:00", "24:00")]),
        part("2027-11-26", "Thanksgiving call", &[("00:00", "02:00")]),
    ];
    assert_eq!(got, expected);
    let def = CalendarDefinition {
        holidays: got,
        ..def("Europe/Berlin", &WEEKDAYS, &[("08:00", "18:00")], vec![])
    };
    assert_eq!(def.validate(), Ok(()));

    // LF line ends, merged closures of one date, a multi-day DURATION.
    let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261224T080000\nDTEND:20261224T100000\n\
        SUMMARY:A\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART:20261224T093000\nDTEND:20261224T110000\n\
        SUMMARY:B\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART:20261224T150000\nDTEND:20261224T160000\n\
        SUMMARY:A\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20270102\nDURATION:P2D\n\
        SUMMARY:C\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20270103\nSUMMARY:D\nEND:VEVENT\n\
        END:VCALENDAR\n";
    let got = parse_holidays(text, zone, 2026, 2027).expect("parses");
    assert_eq!(
        got,
        vec![
            part(
                "2026-12-24",
                "A, B",
                &[("08:00", "11:00"), ("15:00", "16:00")]
            ),
            full("2027-01-02", "C"),
            full("2027-01-03", "C, D"),
        ]
    );
}

#[test]
fn ics_errors_name_the_line() {
    let zone: Tz = "Europe/Berlin".parse().expect("zone");
    let err = |text: &str| parse_holidays(text, zone, 2026, 2026).expect_err("rejected");
    let malformed = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Folded\r\n  more\r\nDTSTART;VALUE=DATE:20261225\r\nthis line has no colon\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    assert_eq!(err(malformed).line, 6);
    assert!(err(malformed).message.starts_with("malformed content line"));
    let weekly = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\nRRULE:FREQ=WEEKLY\nEND:VEVENT\nEND:VCALENDAR\n";
    assert_eq!(err(weekly).line, 4);
    assert!(
        err(weekly).message.contains("FREQ=YEARLY"),
        "{}",
        err(weekly)
    );
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, usize)> = vec![
        ("bad date", "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20261332\nEND:VEVENT\n", 2),
        ("unknown TZID", "BEGIN:VEVENT\nDTSTART;TZID=Nowhere/City:20261225T100000\nEND:VEVENT\n", 2),
        ("no DTSTART", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n", 2),
        ("unclosed", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261225\n", 2),
        ("mismatched END", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261225\nEND:VCALENDAR\n", 4),
        ("unterminated quote", "BEGIN:VEVENT\nDTSTART;TZID=\"Europe/Berlin:20261225T100000\nEND:VEVENT\n", 2),
        ("bad DURATION", "BEGIN:VEVENT\nDTSTART:20261225T100000\nDURATION:PT\nEND:VEVENT\n", 3),
        ("BYDAY without BYMONTH", "BEGIN:VEVENT\nDTSTART:20261225\nRRULE:FREQ=YEARLY;BYDAY=MO\nEND:VEVENT\n", 3),
        ("BYSETPOS", "BEGIN:VEVENT\nDTSTART:20261225\nRRULE:FREQ=YEARLY;BYSETPOS=1\nEND:VEVENT\n", 3),
    ];
    for (name, text, line) in cases {
        let e = err(text);
        assert_eq!(e.line, line, "{name}: {e}");
        assert_eq!(
            e,
            IcsError {
                line,
                message: e.message.clone()
            }
        );
    }
}

/// Timing check (run with `cargo test --release -p eventdesk-domain -- --ignored timing`):
/// a year of `business_between` and a quarter of `add_business` should take well under 1 ms.
#[test]
#[ignore = "timing; meaningful in release builds only"]
fn timing_one_year() {
    let cals = property_calendars();
    let a = loc("Europe/Berlin", "2026-01-01 00:00");
    let b = loc("Europe/Berlin", "2027-01-01 00:00");
    for (i, cal) in cals.iter().enumerate() {
        let started = std::time::Instant::now();
        let rounds = 100u32;
        let mut sum = 0;
        for _ in 0..rounds {
            sum += cal.business_between(a, b);
        }
        let per_between = started.elapsed() / rounds;
        let started = std::time::Instant::now();
        let mut last = a;
        for _ in 0..rounds {
            last = cal.add_business(a, 90 * 8 * H);
        }
        let per_add = started.elapsed() / rounds;
        println!("calendar {i}: between 1y {per_between:?}, add 720h {per_add:?} ({sum}, {last})");
    }
}
