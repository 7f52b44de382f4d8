//! When the FIX session runs (`venue.fix44.schedule`), read as QuickFIX reads its StartTime,
//! EndTime, StartDay and EndDay: a session period starts at each start (daily, or on the start
//! day), ends at the first end after it, and a new period means new sequence numbers on both
//! sides. Times are on the zone's own clock (jiff and the tz database do daylight saving).
//!
//! Closed dates (`closed`, holidays; QuickFIX has no such setting) take the session out from the
//! date's midnight to the next in the schedule's zone. They do not make a new period: a weekly
//! session closed on a Wednesday goes on on Thursday with the same sequence numbers.

use jiff::civil::Date;
use jiff::Timestamp;

use crate::config::FixSchedule;

/// One session period: when it starts and when it ends (Unix nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: i128,
    pub end: i128,
}

impl Period {
    pub fn contains(&self, unix_ns: i128) -> bool {
        self.start <= unix_ns && unix_ns < self.end
    }
}

fn instant(s: &FixSchedule, date: Date, secs: u32) -> Option<i128> {
    let dt = date.at((secs / 3600) as i8, (secs / 60 % 60) as i8, (secs % 60) as i8, 0);
    s.tz.to_ambiguous_timestamp(dt).compatible().ok().map(|t| t.as_nanosecond())
}

fn weekday(date: Date) -> u8 {
    date.weekday().to_monday_zero_offset() as u8
}

fn days(date: Date, n: i64) -> Option<Date> {
    date.checked_add(jiff::Span::new().days(n)).ok()
}

impl FixSchedule {
    /// The period that started last at or before `unix_ns` (it may have ended already).
    pub fn period(&self, unix_ns: i128) -> Option<Period> {
        let local = Timestamp::from_nanosecond(unix_ns).ok()?.to_zoned(self.tz.clone()).date();
        // The latest start date on or before today whose start is not after `unix_ns`.
        let (step, mut date) = match self.days {
            None => (1, local),
            Some((start_day, _)) => (7, days(local, -i64::from((weekday(local) + 7 - start_day) % 7))?),
        };
        let mut start = instant(self, date, self.start)?;
        if start > unix_ns {
            date = days(date, -step)?;
            start = instant(self, date, self.start)?;
        }
        // The first end after the start: the same day when it is later, else the next day (or
        // the end day of the week; a week when it is the start day and not later).
        let end_date = match self.days {
            None if self.end > self.start => date,
            None => days(date, 1)?,
            Some((start_day, end_day)) => {
                let ahead = i64::from((end_day + 7 - start_day) % 7);
                if ahead == 0 && self.end <= self.start {
                    days(date, 7)?
                } else {
                    days(date, ahead)?
                }
            }
        };
        Some(Period { start, end: instant(self, end_date, self.end)? })
    }

    /// The period in force at `unix_ns`, if the session runs then; its `end` is brought forward
    /// to the next closed date's midnight, when the session is out from then.
    pub fn current(&self, unix_ns: i128) -> Option<Period> {
        let date = self.local_date(unix_ns)?;
        if self.closed.binary_search(&date).is_ok() {
            return None;
        }
        let mut p = self.period(unix_ns).filter(|p| p.contains(unix_ns))?;
        let next = self.closed.partition_point(|d| *d <= date);
        if let Some(midnight) = self.closed.get(next).and_then(|d| instant(self, *d, 0)) {
            p.end = p.end.min(midnight);
        }
        Some(p)
    }

    /// Whether `unix_ns` falls on a closed date.
    pub fn is_closed(&self, unix_ns: i128) -> bool {
        self.local_date(unix_ns).is_some_and(|d| self.closed.binary_search(&d).is_ok())
    }

    /// When the session is next on after `unix_ns` (at which it is not): the next period's start
    /// or the end of the closed dates, whichever comes with a period in force.
    pub fn next_on(&self, unix_ns: i128) -> Option<i128> {
        let mut t = unix_ns;
        // Each step passes a run of closed dates or a period's start; a year of holidays ends it.
        for _ in 0..400 {
            let next = if self.is_closed(t) {
                let mut date = self.local_date(t)?;
                while self.closed.binary_search(&date).is_ok() {
                    date = days(date, 1)?;
                }
                instant(self, date, 0)?
            } else {
                self.next_start(t)?
            };
            if next <= t {
                return None;
            }
            if self.current(next).is_some() {
                return Some(next);
            }
            t = next;
        }
        None
    }

    fn local_date(&self, unix_ns: i128) -> Option<Date> {
        Some(Timestamp::from_nanosecond(unix_ns).ok()?.to_zoned(self.tz.clone()).date())
    }

    /// When the next period starts after `unix_ns`.
    pub fn next_start(&self, unix_ns: i128) -> Option<i128> {
        let last = self.period(unix_ns)?;
        let step = if self.days.is_some() { 7 } else { 1 };
        let date = Timestamp::from_nanosecond(last.start).ok()?.to_zoned(self.tz.clone()).date();
        // A zone's change of offset can move a start by an hour: look one step and two ahead.
        [step, 2 * step].into_iter().filter_map(|n| instant(self, days(date, n)?, self.start)).find(|&t| t > unix_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn at(s: &str) -> i128 {
        crate::support::timefmt::parse_timestamp(s).expect("timestamp")
    }

    fn iso(ns: i128) -> String {
        crate::support::timefmt::rfc3339_micros(ns)
    }

    fn schedule(yaml: &str) -> FixSchedule {
        let text = format!("venue:\n  fix44:\n    schedule:\n{yaml}");
        Config::parse(&text, "f.yaml").unwrap_or_else(|e| panic!("{e}")).venue.fix44.schedule.expect("a schedule")
    }

    fn period(s: &FixSchedule, t: &str) -> (String, String) {
        let p = s.period(at(t)).expect("period");
        (iso(p.start), iso(p.end))
    }

    #[test]
    fn a_daily_session_in_new_york_follows_its_clocks_across_both_changes() {
        let s = schedule("      start_time: '08:00:00'\n      end_time: '17:00:00'\n      tz: America/New_York\n");
        // Winter: 13:00-22:00 UTC; summer: 12:00-21:00 UTC.
        assert_eq!(
            period(&s, "2026-03-06T15:00:00Z"),
            ("2026-03-06T13:00:00.000000Z".into(), "2026-03-06T22:00:00.000000Z".into())
        );
        assert_eq!(
            period(&s, "2026-03-09T15:00:00Z"),
            ("2026-03-09T12:00:00.000000Z".into(), "2026-03-09T21:00:00.000000Z".into())
        );
        assert_eq!(
            period(&s, "2026-11-02T15:00:00Z"),
            ("2026-11-02T13:00:00.000000Z".into(), "2026-11-02T22:00:00.000000Z".into())
        );
        assert!(s.current(at("2026-03-06T22:00:00Z")).is_none(), "the end is not in the session");
        assert!(s.current(at("2026-03-06T12:59:59Z")).is_none());
        // Friday evening to Monday: the next start is Saturday 08:00 (a daily session runs daily).
        assert_eq!(s.next_start(at("2026-03-06T23:00:00Z")).map(iso).as_deref(), Some("2026-03-07T13:00:00.000000Z"));
        // The night the clocks go forward, the next start is an hour earlier in UTC.
        assert_eq!(s.next_start(at("2026-03-07T23:00:00Z")).map(iso).as_deref(), Some("2026-03-08T12:00:00.000000Z"));
    }

    #[test]
    fn the_fx_week_from_sunday_17_05_to_friday_17_00_new_york() {
        let s = schedule(
            "      start_time: '17:05:00'\n      end_time: '17:00:00'\n      start_day: sun\n      end_day: friday\n      tz: America/New_York\n",
        );
        let week = ("2026-01-11T22:05:00.000000Z".to_owned(), "2026-01-16T22:00:00.000000Z".to_owned());
        assert_eq!(period(&s, "2026-01-14T12:00:00Z"), week, "midweek");
        assert_eq!(period(&s, "2026-01-11T22:05:00Z"), week, "at the start");
        assert_eq!(period(&s, "2026-01-17T12:00:00Z"), week, "Saturday: the last period, ended");
        assert!(s.current(at("2026-01-17T12:00:00Z")).is_none());
        assert!(s.current(at("2026-01-11T22:04:59Z")).is_none(), "Sunday 17:04:59");
        assert_eq!(s.next_start(at("2026-01-17T12:00:00Z")).map(iso).as_deref(), Some("2026-01-18T22:05:00.000000Z"));
        // The week the US clocks go forward (Sunday 2026-03-08): it opens at 17:05 EDT.
        assert_eq!(period(&s, "2026-03-10T12:00:00Z").0, "2026-03-08T21:05:00.000000Z");
        // ... and back (Sunday 2026-11-01): 17:05 EST; the Friday before closed at 17:00 EDT.
        assert_eq!(period(&s, "2026-11-03T12:00:00Z").0, "2026-11-01T22:05:00.000000Z");
        assert_eq!(period(&s, "2026-10-28T12:00:00Z").1, "2026-10-30T21:00:00.000000Z");
    }

    #[test]
    fn a_session_over_midnight_and_one_that_runs_all_day() {
        let s = schedule("      start_time: '22:00'\n      end_time: '06:00'\n");
        assert_eq!(
            period(&s, "2026-01-14T23:00:00Z"),
            ("2026-01-14T22:00:00.000000Z".into(), "2026-01-15T06:00:00.000000Z".into())
        );
        assert_eq!(
            period(&s, "2026-01-15T03:00:00Z"),
            ("2026-01-14T22:00:00.000000Z".into(), "2026-01-15T06:00:00.000000Z".into())
        );
        assert!(s.current(at("2026-01-15T12:00:00Z")).is_none());
        // Start and end the same: always on, a new period (and new sequence numbers) each day.
        let s = schedule("      start_time: '00:00'\n      end_time: '00:00'\n");
        let p = s.current(at("2026-01-15T12:00:00Z")).expect("on");
        assert_eq!(
            (iso(p.start), iso(p.end)),
            ("2026-01-15T00:00:00.000000Z".into(), "2026-01-16T00:00:00.000000Z".into())
        );
        // A Madrid open and a New York close are one zone's times: a schedule has one tz.
        let s = schedule("      start_time: '09:00'\n      end_time: '23:00'\n      tz: Europe/Madrid\n");
        assert_eq!(
            period(&s, "2026-07-01T12:00:00Z"),
            ("2026-07-01T07:00:00.000000Z".into(), "2026-07-01T21:00:00.000000Z".into())
        );
    }

    #[test]
    fn schedule_keys_are_checked() {
        let err = |y: &str| Config::parse(&format!("venue:\n  fix44:\n    schedule:\n{y}"), "f.yaml").expect_err(y);
        assert_eq!(err("      start_time: '25:00'\n      end_time: '17:00'\n").key, "venue.fix44.schedule.start_time");
        assert_eq!(
            err("      start_time: '08:00'\n      end_time: '17:00'\n      start_day: mon\n").key,
            "venue.fix44.schedule.start_day"
        );
        assert_eq!(
            err("      start_time: '08:00'\n      end_time: '17:00'\n      start_day: mon\n      end_day: funday\n")
                .key,
            "venue.fix44.schedule.end_day"
        );
        assert_eq!(err("      start_day: mon\n").key, "venue.fix44.schedule.start_day");
        assert_eq!(
            err("      start_time: '08:00'\n      end_time: '17:00'\n      tz: Nowhere/At_All\n").key,
            "venue.fix44.schedule.tz"
        );
        assert!(Config::embedded().venue.fix44.schedule.is_none(), "no schedule by default: always on");
        let e = err("      start_time: '08:00'\n      end_time: '17:00'\n      closed: ['2026-12-25', '25.12.2026']\n");
        assert_eq!(e.key, "venue.fix44.schedule.closed", "{e}");
        assert!(e.to_string().contains("25.12.2026"), "{e}");
    }

    #[test]
    fn a_closed_date_takes_a_daily_session_out_for_the_day() {
        let s = schedule(
            "      start_time: '08:00'\n      end_time: '17:00'\n      tz: America/New_York\n      closed: ['2026-12-25']\n",
        );
        // Christmas Eve runs as usual (its end comes before the closed date's midnight).
        let eve = s.current(at("2026-12-24T15:00:00Z")).expect("on");
        assert_eq!(iso(eve.end), "2026-12-24T22:00:00.000000Z");
        assert!(s.current(at("2026-12-25T15:00:00Z")).is_none(), "in the hours of a session, but closed");
        assert!(s.is_closed(at("2026-12-25T15:00:00Z")));
        assert!(!s.is_closed(at("2026-12-25T04:59:59Z")), "still the 24th in New York");
        // Out until the 26th's session.
        assert_eq!(s.next_on(at("2026-12-25T15:00:00Z")).map(iso).as_deref(), Some("2026-12-26T13:00:00.000000Z"));
        // Without the closed date the 25th runs.
        let open = schedule("      start_time: '08:00'\n      end_time: '17:00'\n      tz: America/New_York\n");
        assert!(open.current(at("2026-12-25T15:00:00Z")).is_some());
    }

    #[test]
    fn a_closed_date_inside_a_weekly_session_pauses_it_without_a_new_period() {
        let s = schedule(
            "      start_time: '17:05:00'\n      end_time: '17:00:00'\n      start_day: sun\n      end_day: fri\n      tz: America/New_York\n      closed: ['2026-01-14']\n",
        );
        // Tuesday: on, until Wednesday's midnight in New York (05:00 UTC in winter).
        let tue = s.current(at("2026-01-13T12:00:00Z")).expect("on");
        assert_eq!(
            (iso(tue.start), iso(tue.end)),
            ("2026-01-11T22:05:00.000000Z".into(), "2026-01-14T05:00:00.000000Z".into())
        );
        assert!(s.current(at("2026-01-14T12:00:00Z")).is_none(), "Wednesday is closed");
        let back = s.next_on(at("2026-01-14T12:00:00Z")).expect("back");
        assert_eq!(iso(back), "2026-01-15T05:00:00.000000Z", "Thursday's midnight");
        // The same period: the sequence numbers go on.
        let thu = s.current(back).expect("on");
        assert_eq!((thu.start, iso(thu.end)), (tue.start, "2026-01-16T22:00:00.000000Z".into()));
        // Two closed dates in a row, then the weekend: out until the next week's start.
        let s = schedule(
            "      start_time: '17:05:00'\n      end_time: '17:00:00'\n      start_day: sun\n      end_day: fri\n      tz: America/New_York\n      closed: ['2026-01-16', '2026-01-15']\n",
        );
        assert_eq!(s.next_on(at("2026-01-15T12:00:00Z")).map(iso).as_deref(), Some("2026-01-18T22:05:00.000000Z"));
    }

    #[test]
    fn a_session_past_midnight_stops_at_a_closed_date_and_takes_up_after_it() {
        let s = schedule("      start_time: '22:00'\n      end_time: '06:00'\n      closed: ['2026-12-25']\n");
        let p = s.current(at("2026-12-24T23:00:00Z")).expect("on");
        assert_eq!(iso(p.end), "2026-12-25T00:00:00.000000Z", "out at the closed date's midnight");
        assert!(s.current(at("2026-12-25T03:00:00Z")).is_none());
        assert!(s.current(at("2026-12-25T23:00:00Z")).is_none());
        // On the 26th the period that started on the 25th at 22:00 runs to 06:00.
        assert_eq!(s.next_on(at("2026-12-25T03:00:00Z")).map(iso).as_deref(), Some("2026-12-26T00:00:00.000000Z"));
        let after = s.current(at("2026-12-26T01:00:00Z")).expect("on");
        assert_eq!(
            (iso(after.start), iso(after.end)),
            ("2026-12-25T22:00:00.000000Z".into(), "2026-12-26T06:00:00.000000Z".into())
        );
    }
}
