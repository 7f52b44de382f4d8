//! Each equity breaker on history: a CSV file drives the engine on the paper venue through a
//! manual clock moved by the file's own timestamps (`engine::replay`), the way `mt5bot run` would
//! trade it, and the trip is checked at the row that crosses the limit, not before.
//!
//! Prices (`support::replay`): EURUSD with a 1 pip spread and 100,000 units a lot, so one pip on one lot is 10 in
//! account currency; `slippage_bps: 10` makes a market fill about 110 worse than the touch, which
//! is how a fill alone can cross a limit the mark never reached.

mod support;

use mt5bot::domain::types::{DropReason, Level, Side, Stops, TradingState};
use support::replay::Script;

/// A replay with a protection section (a starting balance of 10,000 and `protection`).
fn script(name: &str, start: &str, rows: &[(u64, f64)], protection: &str, slippage_bps: f64) -> Script {
    let sections = format!("protection:\n  starting_balance: 10000\n{protection}");
    Script::new(&format!("breakers-{name}"), start, rows, &sections, slippage_bps)
}

impl Script {
    fn state(&self) -> (TradingState, String) {
        let t = self.replay.core().trading();
        (t.state, t.by.clone())
    }

    /// Realized PnL in account currency, and the open PnL at the mark.
    fn pnl(&self) -> (f64, f64) {
        let e = self.replay.core().status().equity;
        (e.balance - 10_000.0, e.equity - e.balance)
    }

    fn assert_active(&self, when: &str) {
        assert_eq!(self.state().0, TradingState::Active, "{when}: {:?} with pnl {:?}", self.state(), self.pnl());
    }

    fn assert_tripped(&self, breaker: &str, state: TradingState) {
        assert_eq!(self.state(), (state, breaker.to_owned()), "pnl {:?}", self.pnl());
    }
}

fn daily_loss(amount: f64) -> String {
    format!("  max_daily_loss:\n    amount: {amount}\n")
}

fn drawdown(fraction: f64) -> String {
    format!("  max_drawdown:\n    fraction: {fraction}\n")
}

/// Flat at 1.1000 for a minute, then 5 pips (50 a lot) down each second.
fn falling() -> Vec<(u64, f64)> {
    let mut rows: Vec<(u64, f64)> = (0..60).map(|s| (s, 1.1000)).collect();
    rows.extend((1..=10).map(|i| (60 + i, 1.1000 - 0.0005 * i as f64)));
    rows
}

/// The three ways to cross a loss limit of 200 (daily loss in money, drawdown as 2% of 10,000):
/// open PnL alone, realized alone, and both when neither alone would.
fn three_crossings(breaker: &str, limits: impl Fn(f64) -> String) {
    // Open alone: one lot bought at about 1.1012; each pip down is 10 more.
    let mut s = script(&format!("{breaker}-open"), "2026-03-02T10:00:00Z", &falling(), &limits(200.0), 10.0);
    s.to(1).market(Side::Buy, 1.0).expect("buy");
    s.to(61);
    s.assert_active("about 170 open loss at 1.0995");
    let (realized, open) = s.pnl();
    assert!(realized == 0.0 && open < 0.0 && open > -200.0, "{:?}", s.pnl());
    s.to(62);
    s.assert_tripped(breaker, TradingState::Halted);
    let (realized, open) = s.pnl();
    assert!(realized == 0.0 && open <= -200.0, "tripped on the open loss alone: {:?}", s.pnl());
    assert_eq!(s.qty(), 1.0, "halted keeps the position");

    // Realized alone: the mark says -120; selling at the bid less 10 bps realizes about -230.
    let mut s = script(&format!("{breaker}-realized"), "2026-03-02T10:00:00Z", &falling(), &limits(200.0), 10.0);
    s.to(1).market(Side::Buy, 1.0).expect("buy");
    s.assert_active("the open loss of about 120");
    s.to(2).market(Side::Sell, 1.0).expect("sell");
    s.assert_tripped(breaker, TradingState::Halted);
    let (realized, open) = s.pnl();
    assert!(s.qty() == 0.0 && open == 0.0 && realized <= -200.0, "flat, tripped by the fill: {:?}", s.pnl());

    // Both: realize about -230 under a limit of 300, then an open loss of about 120.
    let mut s = script(&format!("{breaker}-both"), "2026-03-02T10:00:00Z", &falling(), &limits(300.0), 10.0);
    s.to(1).market(Side::Buy, 1.0).expect("buy");
    s.to(2).market(Side::Sell, 1.0).expect("sell");
    s.assert_active("about 230 realized, under 300");
    s.to(3).market(Side::Buy, 1.0).expect("buy again");
    s.assert_tripped(breaker, TradingState::Halted);
    let (realized, open) = s.pnl();
    assert!(realized > -300.0 && open > -300.0 && realized + open <= -300.0, "both parts: {:?}", s.pnl());
}

#[test]
fn max_daily_loss_trips_on_open_pnl_realized_pnl_and_both() {
    three_crossings("max_daily_loss", daily_loss);
}

#[test]
fn max_drawdown_trips_on_open_pnl_realized_pnl_and_both() {
    three_crossings("max_drawdown", |limit| drawdown(limit / 10_000.0));
}

#[test]
fn max_drawdown_is_measured_from_the_peak_not_the_start() {
    // Up 50 pips and sold (about +490 without slippage), then a new position loses 5 pips a
    // second: 1.9% of the peak is about 199.
    let mut rows: Vec<(u64, f64)> = (0..10).map(|s| (s, 1.1000)).collect();
    rows.extend((10..=20).map(|s| (s, 1.1050)));
    rows.extend((1..=10).map(|i| (20 + i, 1.1050 - 0.0005 * i as f64)));
    let mut s = script("drawdown-peak", "2026-03-02T10:00:00Z", &rows, &drawdown(0.019), 0.0);
    s.to(1).market(Side::Buy, 1.0).expect("buy");
    s.to(10).market(Side::Sell, 1.0).expect("sell at the top");
    let peak = s.replay.core().status().equity.peak_equity;
    assert!(peak > 10_450.0, "the profit raised the peak: {peak}");
    s.to(11).market(Side::Buy, 1.0).expect("buy at the top");
    s.to(23);
    s.assert_active("about 160 under the peak, at 1.1035");
    s.to(24);
    s.assert_tripped("max_drawdown", TradingState::Halted);
    let e = s.replay.core().status().equity;
    assert!(e.equity > 10_200.0, "still above the start: a drawdown from the start would not trip: {e:?}");
}

#[test]
fn max_consecutive_losses_counts_closed_round_trips_in_a_row() {
    let rows: Vec<(u64, f64)> = (0..30).map(|s| (s, 1.1000)).collect();
    let mut s = script(
        "streak",
        "2026-03-02T10:00:00Z",
        &rows,
        "  max_consecutive_losses:\n    count: 3\n    action: reducing\n",
        10.0,
    );
    for (n, at) in [1u64, 3, 5].into_iter().enumerate() {
        s.assert_active(&format!("after {n} losing round trips"));
        s.to(at).market(Side::Buy, 1.0).expect("buy");
        s.to(at + 1).market(Side::Sell, 1.0).expect("sell");
    }
    s.assert_tripped("max_consecutive_losses", TradingState::Reducing);
    assert_eq!(s.replay.core().status().equity.losses_in_a_row, 3);
}

#[test]
fn max_position_loss_trips_on_one_positions_open_loss() {
    let mut s = script(
        "position",
        "2026-03-02T10:00:00Z",
        &falling(),
        "  max_position_loss:\n    amount: 250\n    action: flatten\n",
        10.0,
    );
    s.to(1).market(Side::Buy, 1.0).expect("buy");
    s.to(62);
    s.assert_active("about 220 open loss");
    s.to(63);
    s.assert_tripped("max_position_loss", TradingState::Halted);
    s.replay.run_until(s.now() + 1_000_000_000);
    assert_eq!(s.qty(), 0.0, "flatten closed the position");
}

#[test]
fn the_trading_day_starts_at_midnight_in_its_own_zone() {
    // 23:30 and 00:30 New York time in winter are 04:30 and 05:30 UTC: one trading day in UTC,
    // two in New York. Two round trips realize about 230 each against a limit of 300.
    let rows: Vec<(u64, f64)> = (0..=7200).step_by(60).map(|s| (s, 1.1000)).collect();
    let mut trips = Vec::new();
    for zone in ["UTC", "America/New_York"] {
        let zone_cfg = format!("  timezone: {zone}\n{}", daily_loss(300.0));
        let mut s = script(&format!("day-{zone}").replace('/', "-"), "2026-01-15T04:30:00Z", &rows, &zone_cfg, 10.0);
        s.to(60).market(Side::Buy, 1.0).expect("buy");
        s.to(120).market(Side::Sell, 1.0).expect("sell");
        s.assert_active("one losing round trip");
        s.to(3600 + 60).market(Side::Buy, 1.0).expect("buy after 05:30 UTC");
        // Refused when the buy tripped the breaker (halted).
        let _ = s.to(3600 + 120).market(Side::Sell, 1.0);
        trips.push((zone, s.state().0));
    }
    assert_eq!(
        trips,
        [("UTC", TradingState::Halted), ("America/New_York", TradingState::Active)],
        "New York's day began at 05:00 UTC and forgot the first loss"
    );

    // The other side: 18:30 and 19:30 New York time are 23:30 and 00:30 UTC, one New York day.
    let mut trips = Vec::new();
    for zone in ["UTC", "America/New_York"] {
        let zone_cfg = format!("  timezone: {zone}\n{}", daily_loss(300.0));
        let mut s = script(&format!("night-{zone}").replace('/', "-"), "2026-01-15T23:30:00Z", &rows, &zone_cfg, 10.0);
        s.to(60).market(Side::Buy, 1.0).expect("buy");
        s.to(120).market(Side::Sell, 1.0).expect("sell");
        s.to(3600 + 60).market(Side::Buy, 1.0).expect("buy after 00:30 UTC");
        let _ = s.to(3600 + 120).market(Side::Sell, 1.0);
        trips.push((zone, s.state().0));
    }
    assert_eq!(trips, [("UTC", TradingState::Active), ("America/New_York", TradingState::Halted)]);
}

#[test]
fn reducing_refuses_a_new_position_and_lets_a_closing_order_through_and_resume_clears_it() {
    let mut s = script(
        "reducing",
        "2026-03-02T10:00:00Z",
        &falling(),
        "  max_position_loss:\n    amount: 300\n    action: reducing\n",
        10.0,
    );
    s.to(1).market(Side::Buy, 2.0).expect("buy two lots");
    s.to(60);
    s.assert_active("about 240 open loss");
    s.to(61);
    s.assert_tripped("max_position_loss", TradingState::Reducing);
    assert_eq!(s.market(Side::Buy, 1.0), Err(DropReason::Reducing), "adding is refused");
    assert_eq!(s.market(Side::Sell, 3.0), Err(DropReason::Reducing), "a flip opens a new position: refused");
    s.market(Side::Sell, 1.0).expect("reducing is allowed");
    assert_eq!(s.qty(), 1.0);
    // A trip without resume_after stays until an operator resumes.
    s.to(70);
    s.assert_tripped("max_position_loss", TradingState::Reducing);
    s.replay.core_mut().set_trading_state(TradingState::Active, "operator", "checked the account");
    s.assert_active("resumed");
    s.market(Side::Buy, 1.0).expect("buying again after resume");
    assert_eq!(s.qty(), 2.0);
}

#[test]
fn stop_loss_and_take_profit_close_once_on_paper_at_the_crossing_row() {
    // Long 1 lot with a stop 30 pips under 1.1000 and a target 40 pips over.
    let mut rows: Vec<(u64, f64)> = (0..10).map(|s| (s, 1.1000)).collect();
    rows.extend((1..=6).map(|i| (10 + i, 1.1000 - 0.0010 * i as f64)));
    rows.extend((20..30).map(|s| (s, 1.1000)));
    rows.extend((1..=6).map(|i| (30 + i, 1.1000 + 0.0010 * i as f64)));
    let mut s = script("stops", "2026-03-02T10:00:00Z", &rows, "", 0.0);
    let stops = Stops { sl: Level::Price(1.0970), tp: Level::Price(1.1040) };
    s.to(1).order(Side::Buy, 1.0, stops).expect("buy with levels");
    s.to(12);
    assert_eq!(s.qty(), 1.0, "1.0980 is above the stop");
    s.to(13);
    assert_eq!(s.qty(), 0.0, "the stop closed it at 1.0970");
    s.to(16);
    assert_eq!(s.replay.core().executor().trades(), 2, "one exit, not one per row past the stop");
    s.to(21).order(Side::Buy, 1.0, stops).expect("buy again");
    s.to(33);
    assert_eq!(s.qty(), 1.0, "1.1030 is under the target");
    s.to(34);
    assert_eq!(s.qty(), 0.0, "the target closed it");
    s.to(36);
    assert_eq!(s.replay.core().executor().trades(), 4);
}

/// When a trading day ends, the notification sinks get its summary: the day's PnL from its
/// start-of-day equity, the fills in it, the open positions, the state.
#[test]
fn the_end_of_a_trading_day_sends_its_summary_to_the_sinks() {
    use mt5bot::domain::notice::{Notice, NoticeKind, NoticeOutlet, NoticeOutlets};
    // 23:58 New York time: the day ends two minutes in.
    let rows: Vec<(u64, f64)> = (0..=600).step_by(30).map(|s| (s, 1.1000)).collect();
    let mut s =
        script("summary", "2026-01-16T04:58:00Z", &rows, "  timezone: America/New_York\n  day_start: \"00:00\"\n", 0.0);
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    let kinds = NoticeKind::Summary.bit() | NoticeKind::Fill.bit();
    s.replay.core_mut().set_notices(NoticeOutlets::new(vec![NoticeOutlet {
        tx,
        kinds,
        on_drop: std::sync::Arc::new(|| panic!("room for every notice")),
    }]));
    s.to(30).market(Side::Buy, 1.0).expect("buy");
    s.to(60).market(Side::Sell, 1.0).expect("sell: a round trip that pays the spread");
    s.to(90).market(Side::Buy, 2.0).expect("buy, open at the day's end");
    s.to(400);
    let notices: Vec<Notice> = rx.try_iter().collect();
    let fills = notices.iter().filter(|n| matches!(n, Notice::Fill(_))).count();
    let summaries: Vec<_> = notices
        .iter()
        .filter_map(|n| match n {
            Notice::Summary(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!((fills, summaries.len()), (3, 1), "{notices:?}");
    let d = summaries[0];
    assert_eq!(d.end_unix_ns, 1_768_539_600_000_000_000, "05:00 UTC, New York's midnight");
    assert_eq!((d.fills, d.open_positions, d.state), (3, 1, TradingState::Active));
    assert_eq!(d.start_equity, 10_000.0);
    assert!(d.end_equity < 10_000.0 && d.end_equity > 9_900.0, "the spreads paid: {d:?}");
}
