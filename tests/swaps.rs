//! Swaps on the paper venue, on history: a position held across the nights' rollovers (17:00 New
//! York, three nights on Wednesday, none at the weekend) is charged or credited per lot, each in
//! the balance at its rollover and not before. (A restart keeps them: the journal's `Swap`
//! entries and the checkpoint's `swaps`, unit-tested in `engine::journal` and `engine::checkpoint`.)

mod support;

use mt5bot::domain::types::Side;
use support::replay::Script;

/// A tick every ten minutes from Tuesday 2026-01-06 20:00 UTC (15:00 in New York) for four days.
fn week() -> Vec<(u64, f64)> {
    (0..4 * 144).map(|i| (i * 600, 1.1000)).collect()
}

const HOUR: u64 = 3600;

#[test]
fn a_held_position_pays_each_nights_swap_at_its_rollover() {
    let mut s = Script::with_symbol_keys(
        "swaps-nights",
        "2026-01-06T20:00:00Z",
        &week(),
        "      swap_long: -2.5\n      swap_short: 1.25\n",
        "protection:\n  starting_balance: 10000\n",
        0.0,
    );
    let swaps = |s: &Script| s.metrics.swaps_booked.get();
    s.to(60).market(Side::Buy, 2.0).expect("buy 2 lots");
    // Tuesday's rollover is 22:00 UTC (17:00 EST): two hours in.
    s.to(2 * HOUR - 60);
    assert_eq!(swaps(&s), 0.0, "not before the rollover");
    s.to(2 * HOUR + 600);
    assert_eq!(swaps(&s), -5.0, "Tuesday: one night, 2 lots x -2.5");
    // Wednesday's books the weekend: three nights.
    s.to(26 * HOUR + 600);
    assert_eq!(swaps(&s), -5.0 - 15.0);
    // Short 1 lot from Thursday afternoon: Thursday's credits 1.25.
    s.to(48 * HOUR).market(Side::Sell, 3.0).expect("sell 3 lots");
    assert_eq!(s.qty(), -1.0);
    s.to(50 * HOUR + 600);
    assert_eq!(swaps(&s), -20.0 + 1.25);
    // A flat book pays nothing on Friday.
    s.to(60 * HOUR).market(Side::Buy, 1.0).expect("flat");
    s.to(74 * HOUR + 600);
    assert_eq!(swaps(&s), -18.75, "flat on Friday");
    // The balance holds them (prices flat, no spread cost beyond the fills').
    let e = s.replay.core().status().equity;
    assert!(
        (e.balance - 10_000.0 - s.replay.core().executor().position(0).realized_pnl * 100_000.0 + 18.75).abs() < 1e-6,
        "{e:?}"
    );
    // `realized_pnl{symbol}` is money too: the book's price x lots times the contract size.
    let gauge = s.metrics.realized_pnl.with_label_values(&["EURUSD"]).get();
    let book = s.replay.core().executor().position(0).realized_pnl;
    assert!(book != 0.0 && (gauge - book * 100_000.0).abs() < 1e-6, "{gauge} vs {book}");
}

/// A commission per million of notional: each paper fill pays quantity x contract size x price
/// x the rate / 1,000,000, beside any per-lot commission.
#[test]
fn a_commission_per_million_of_notional_is_paid_on_each_fill() {
    let mut s = Script::with_symbol_keys(
        "commission-notional",
        "2026-01-06T20:00:00Z",
        &week(),
        "      commission_per_million: 30\n      commission_per_lot: 1\n",
        "protection:\n  starting_balance: 10000\n",
        0.0,
    );
    s.to(60).market(Side::Buy, 2.0).expect("buy 2 lots");
    // Bought at the ask, 1.1001: 2 x 100,000 x 1.1001 = 220,020 of notional, 6.6006 at 30 a million, and 2 per lot.
    let paid = s.metrics.commissions_paid.get();
    assert!((paid - (6.6006 + 2.0)).abs() < 1e-9, "{paid}");
    s.to(120).market(Side::Sell, 2.0).expect("sell");
    let paid = s.metrics.commissions_paid.get();
    assert!((paid - (6.6006 + 6.6 + 4.0)).abs() < 1e-9, "the sale at 1.1000 pays 6.6: {paid}");
}
