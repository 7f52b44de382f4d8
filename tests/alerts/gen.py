import sys
# Generates alert.rules.test.yml: each alert's condition steps from false to true at a known time
# t0, so "for - 1m" and "for + 1m" are exact; a second series sits just below the threshold.
RB="file:///usr/local/share/doc/mt5bot/runbook.md#"
# The values the annotations render, worked out from the input series above them.
V=dict(growth="3940", reconnects="10", dropped="6", drift="1", stalled="150", logdrop="4", fwddrop="3", notifydrop="3")
def L(**kw): return kw
cases=[
 ("Mt5botHighCpu",[('cpu_usage_pct{job="mt5bot", instance="bot:9898"}','50x9 95x20'),('cpu_usage_pct{job="mt5bot", instance="calm:9898"}','90x30')],
  "14m","16m",L(instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot on bot:9898 uses 95% CPU",
  "mt5bot on bot:9898 has used more than 90% of a core for 5 minutes (now 95.0%). Check the tick rate (feed.tick_rate), ingress clients flooding signals, and log volume; see the runbook before restarting."),
 ("Mt5botMemoryHigh",[('rss_usage_mb{job="mt5bot", instance="bot:9898"}','100x9 600x20'),('rss_usage_mb{job="mt5bot", instance="calm:9898"}','512x30')],
  "19m","21m",L(instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot on bot:9898 uses 600 MiB",
  "mt5bot on bot:9898 has held more than 512 MiB resident for 10 minutes (now 600 MiB; it normally runs in under 32 MiB). Capture /metrics and the log, then restart it in a quiet market (systemctl restart mt5bot)."),
 # Growth of 10 MiB/min is true from the second sample (t0 = 1m); a flat series never projects past 1 GiB.
 ("Mt5botMemoryGrowth",[('rss_usage_mb{job="mt5bot", instance="bot:9898"}','20+10x60'),('rss_usage_mb{job="mt5bot", instance="calm:9898"}','1000x60')],
  "30m","32m",L(instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot memory on bot:9898 is growing",
  "At the rate of the last hour, mt5bot on bot:9898 will pass 1 GiB within 6 hours (projected %s MiB). A leak or an unbounded backlog: check log_forward_buffered and ingress_connections, then plan a restart." % V.get("growth","?")),
 ("Mt5botTargetDown",[('up{job="mt5bot", instance="bot:9898"}','1x9 0x10'),('up{job="mt5bot", instance="calm:9898"}','1x20')],
  "10m","12m",L(instance="bot:9898",job="mt5bot",severity="critical"),
  "mt5bot on bot:9898 is down or not answering scrapes",
  "Prometheus has failed to scrape mt5bot at bot:9898 for 1 minute. Trading may have stopped. Run `systemctl status mt5bot` and `journalctl -u mt5bot -n 100`."),
 # A bot of a fleet is named by its identity labels (deploy/prometheus-fleet.yml's target files).
 ("Mt5botTargetDown",[('up{job="mt5bot", instance="h:9901", account="acct2", strategy="ewma", venue="mt5"}','1x9 0x10'),('up{job="mt5bot", instance="h:9902", account="acct3", strategy="ewma", venue="mt5"}','1x20')],
  "10m","12m",L(instance="h:9901",job="mt5bot",severity="critical",account="acct2",strategy="ewma",venue="mt5"),
  "mt5bot acct2/ewma on h:9901 is down or not answering scrapes",
  "Prometheus has failed to scrape mt5bot at h:9901 for 1 minute. Trading may have stopped. Run `systemctl status mt5bot` and `journalctl -u mt5bot -n 100`."),
 # absent() is true from t0 = 0 when only another job exists.
 ("Mt5botTargetAbsent",[('up{job="other", instance="x:1"}','1x10')],
  "4m","6m",L(job="mt5bot",severity="critical"),
  "Prometheus has no mt5bot target",
  "No scrape target with job=\"mt5bot\" has existed for 5 minutes: the scrape config lost it. Check scrape_configs in prometheus.yml (promtool check config) and reload Prometheus."),
 # 10 reconnects at t0 = 10m; 2 in the window stays under the threshold of 3.
 ("Mt5botBrokerReconnects",[('broker_reconnects_total{job="mt5bot", instance="bot:9898", venue="fix44"}','0x9 10x20'),('broker_reconnects_total{job="mt5bot", instance="calm:9898", venue="fix44"}','0x9 2x20')],
  "10m","12m",L(instance="bot:9898",job="mt5bot",venue="fix44",severity="warning"),
  "mt5bot reconnected to fix44 %s times in 15m" % V.get("reconnects","?"),
  "mt5bot on bot:9898 reconnected to the fix44 venue %s times in 15 minutes. Orders wait in the queue while the session is down. Check the network path and the broker's status page; the log names each disconnect." % V.get("reconnects","?")),
 ("Mt5botVenueDown",[('broker_connected{job="mt5bot", instance="bot:9898", venue="fix44"}','1x9 0x10'),('broker_connected{job="mt5bot", instance="calm:9898", venue="fix44"}','1x20')],
  "11m","13m",L(instance="bot:9898",job="mt5bot",venue="fix44",severity="critical"),
  "mt5bot's fix44 session on bot:9898 is down",
  "The fix44 session of mt5bot on bot:9898 has been down for 2 minutes: no orders can be sent. Check the broker connection, credentials and the log."),
 # 900/1024 is over 80%; 819/1024 (79.98%) is just under.
 ("Mt5botQueueNearCapacity",[('queue_depth{job="mt5bot", instance="bot:9898"}','100x9 900x10'),('queue_capacity{job="mt5bot", instance="bot:9898"}','1024x20'),
   ('queue_depth{job="mt5bot", instance="calm:9898"}','819x20'),('queue_capacity{job="mt5bot", instance="calm:9898"}','1024x20')],
  "11m","13m",L(instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot's signal queue on bot:9898 is 87.89% full",
  "The signal queue of mt5bot on bot:9898 has been over 80% full for 2 minutes (87.89%); new signals will be refused when it fills. The venue or the risk limits are not keeping up: check broker_connected and signals_dropped_total."),
 # Risk refusals (max_position) are normal operation and never alert.
 ("Mt5botSignalsDropped",[('signals_dropped_total{job="mt5bot", instance="bot:9898", reason="queue_full"}','0x9 6x10'),
   ('signals_dropped_total{job="mt5bot", instance="bot:9898", reason="max_position"}','0+50x20')],
  "9m","11m",L(instance="bot:9898",reason="queue_full",severity="warning"),
  "mt5bot on bot:9898 dropped signals (queue_full)",
  "mt5bot on bot:9898 dropped %s signals in 10 minutes for reason queue_full. queue_full: raise queue.capacity or find what slows the venue; venue_rejected: read the venue's reasons in the log; stopping: a stop was in progress." % V.get("dropped","?")),
 # Two bots of a fleet behind one address (a Pushgateway, a proxy): each keeps its own alert.
 ("Mt5botSignalsDropped",[('signals_dropped_total{job="mt5bot", instance="h:9898", account="acct1", strategy="ewma", reason="queue_full"}','0x9 6x10'),
   ('signals_dropped_total{job="mt5bot", instance="h:9898", account="acct2", strategy="ewma", reason="queue_full"}','0x20')],
  "9m","11m",L(instance="h:9898",account="acct1",strategy="ewma",reason="queue_full",severity="warning"),
  "mt5bot on h:9898 dropped signals (queue_full)",
  "mt5bot on h:9898 dropped %s signals in 10 minutes for reason queue_full. queue_full: raise queue.capacity or find what slows the venue; venue_rejected: read the venue's reasons in the log; stopping: a stop was in progress." % V.get("dropped","?")),
 ("Mt5botDriftDetected",[('drift_events{job="mt5bot", instance="bot:9898"}','0x9 1x10'),('drift_events{job="mt5bot", instance="calm:9898"}','3x20')],
  "9m","11m",L(instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot's model drifted on bot:9898",
  "The Page-Hinkley detector raised %s drift events in 30 minutes on bot:9898: the model's prediction error has risen. Review recent PnL per symbol; with drift.action: pause, new signals are refused for drift.pause_for." % V.get("drift","?")),
 # Signals keep coming, trades stay flat: true from t0 = 1m. The busy instance trades and never alerts;
 # the halted one refuses every signal on purpose (trading_state active 0) and never alerts either.
 ("Mt5botTradingStalled",[('signals_received_total{job="mt5bot", instance="bot:9898", source="model"}','0+10x30'),
   ('trade_count{job="mt5bot", instance="bot:9898"}','5x30'),
   ('trading_state{job="mt5bot", instance="bot:9898", state="active"}','1x30'),
   ('signals_received_total{job="mt5bot", instance="busy:9898", source="model"}','0+10x30'),
   ('trade_count{job="mt5bot", instance="busy:9898"}','0+1x30'),
   ('signals_received_total{job="mt5bot", instance="halted:9898", source="model"}','0+10x30'),
   ('trade_count{job="mt5bot", instance="halted:9898"}','5x30'),
   ('trading_state{job="mt5bot", instance="halted:9898", state="active"}','0x30'),
   # Every signal refused because its market is closed: not a stall.
   ('signals_received_total{job="mt5bot", instance="weekend:9898", source="model"}','0+10x30'),
   ('signals_dropped_total{job="mt5bot", instance="weekend:9898", reason="market_closed"}','0+10x30'),
   ('trade_count{job="mt5bot", instance="weekend:9898"}','5x30'),
   ('trading_state{job="mt5bot", instance="weekend:9898", state="active"}','1x30'),
   ('signals_dropped_total{job="mt5bot", instance="bot:9898", reason="market_closed"}','0x30'),
   ('signals_dropped_total{job="mt5bot", instance="busy:9898", reason="market_closed"}','0x30'),
   ('signals_dropped_total{job="mt5bot", instance="halted:9898", reason="market_closed"}','0x30')],
  "15m","17m",L(instance="bot:9898",severity="critical"),
  "mt5bot on bot:9898 gets signals but makes no trades",
  "mt5bot on bot:9898 received %s signals in the last 15 minutes for markets that were open but filled none, for 15 minutes. Check signals_dropped_total by reason (risk limits? paused?), broker_connected and open_orders." % V.get("stalled","?")),
 # A refusal that needs the operator at 10m; requotes, however many, never alert.
 ("Mt5botVenueNeedsOperator",[('venue_refusals_total{job="mt5bot", instance="bot:9898", venue="mt5", reason="autotrading_disabled_by_client"}','0x9 1x20'),
   ('venue_refusals_total{job="mt5bot", instance="bot:9898", venue="mt5", reason="requote"}','0+5x30')],
  "9m","11m",L(instance="bot:9898",job="mt5bot",reason="autotrading_disabled_by_client",severity="critical",venue="mt5"),
  "the mt5 venue of mt5bot on bot:9898 refuses orders: autotrading_disabled_by_client",
  "The mt5 venue of mt5bot on bot:9898 refused orders in the last 10 minutes with autotrading_disabled_by_client, which retrying will not mend: switch Algo Trading on in the terminal (autotrading_disabled_by_client), ask the broker (autotrading_disabled_by_server, trade_disabled), or free margin (no_money). The log names the orders."),
 # An order given up at 10m alerts at once; an instance whose counter stays at zero never does.
 ("Mt5botOrderOutcomeUnknown",[('orders_outcome_unknown_total{job="mt5bot", instance="bot:9898", venue="fix44"}','0x9 1x20'),
   ('orders_outcome_unknown_total{job="mt5bot", instance="calm:9898", venue="fix44"}','0x30')],
  "9m","11m",L(instance="bot:9898",job="mt5bot",severity="critical",venue="fix44"),
  "mt5bot on bot:9898 has orders of unknown outcome at the fix44 venue",
  "In the last hour mt5bot on bot:9898 gave up orders at the fix44 venue whose outcome it cannot learn: in flight when the sequence numbers started again at 1, with no report since, at a venue that answers no OrderStatusRequest. Its positions may differ from the broker's: check each order the log names at the broker."),
 # Trading not allowed from 10m, for 2m; an instance that allows it never alerts.
 ("Mt5botVenueTradingNotAllowed",[('venue_trade_allowed{job="mt5bot", instance="bot:9898", venue="mt5"}','1x9 0x10'),
   ('venue_trade_allowed{job="mt5bot", instance="calm:9898", venue="mt5"}','1x20')],
  "11m","13m",L(instance="bot:9898",job="mt5bot",severity="critical",venue="mt5"),
  "the mt5 venue of mt5bot on bot:9898 does not allow trading",
  "For 2 minutes the mt5 venue of mt5bot on bot:9898 has said that it would refuse every order: for MT5, Algo Trading is off in the terminal or in the Expert Advisor's settings, or the account may not trade. Switch Algo Trading on; signals are refused by the venue meanwhile."),
 # The last tick at 9m (540 s): more than 300 s old from 15m, for 5m; a closed market and a symbol
 # without a calendar (no market_next_change_seconds) never alert.
 ("Mt5botNoTicksWhileMarketOpen",[('last_tick_timestamp_seconds{job="mt5bot", instance="bot:9898", symbol="EURUSD"}','0+60x9 540x30'),
   ('market_open{job="mt5bot", instance="bot:9898", symbol="EURUSD"}','1x40'),
   ('market_next_change_seconds{job="mt5bot", instance="bot:9898", symbol="EURUSD"}','100000x40'),
   ('last_tick_timestamp_seconds{job="mt5bot", instance="bot:9898", symbol="XAUUSD"}','0+60x9 540x30'),
   ('market_open{job="mt5bot", instance="bot:9898", symbol="XAUUSD"}','0x40'),
   ('market_next_change_seconds{job="mt5bot", instance="bot:9898", symbol="XAUUSD"}','100000x40'),
   ('last_tick_timestamp_seconds{job="mt5bot", instance="bot:9898", symbol="BTCUSD"}','0+60x9 540x30'),
   ('market_open{job="mt5bot", instance="bot:9898", symbol="BTCUSD"}','1x40')],
  "19m","21m",L(instance="bot:9898",job="mt5bot",severity="warning",symbol="EURUSD"),
  "mt5bot on bot:9898 gets no ticks for EURUSD while its market is open",
  "mt5bot on bot:9898 has had no tick for EURUSD for 12m 0s although its calendar (sessions:) says the market is open. Check broker_connected and the venue's feed, then whether the calendar matches the broker's hours (a holiday missing from closed:?)."),
 # A trip at 10m: increase over 10 minutes is above 0 from then on; a count that stays put never alerts.
 ("Mt5botBreakerTripped",[('breaker_trips_total{job="mt5bot", instance="bot:9898", breaker="max_daily_loss"}','0x9 1x20'),
   ('breaker_trips_total{job="mt5bot", instance="calm:9898", breaker="max_daily_loss"}','3x30')],
  "9m","11m",L(breaker="max_daily_loss",instance="bot:9898",job="mt5bot",severity="critical"),
  "mt5bot's breaker max_daily_loss tripped on bot:9898",
  "The equity breaker max_daily_loss of mt5bot on bot:9898 reached its limit and set the trading state to its action (reducing, halted, or a flatten). It stays so through restarts until `mt5bot ctl resume` (or its resume_after). Read why with `mt5bot ctl status`."),
 # Headroom under 25% from t0 = 10m; exactly 25% never alerts.
 ("Mt5botBreakerNearLimit",[('breaker_headroom{job="mt5bot", instance="bot:9898", breaker="max_drawdown"}','0.9x9 0.2x10'),
   ('breaker_headroom{job="mt5bot", instance="calm:9898", breaker="max_drawdown"}','0.25x20')],
  "11m","13m",L(breaker="max_drawdown",instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot's breaker max_drawdown on bot:9898 is near its limit",
  "The equity breaker max_drawdown of mt5bot on bot:9898 has had less than 25% of its room left for 2 minutes (20%). Look at the open positions and equity before it trips."),
 # A refused exit at 10m; a count that stays put never alerts.
 ("Mt5botProtectiveExitRefused",[('protective_exits_refused_total{job="mt5bot", instance="bot:9898", kind="sl"}','0x9 1x20'),
   ('protective_exits_refused_total{job="mt5bot", instance="calm:9898", kind="sl"}','2x30')],
  "9m","11m",L(instance="bot:9898",job="mt5bot",kind="sl",severity="critical"),
  "mt5bot on bot:9898 could not close a position at its sl",
  "A stop-loss or take-profit of mt5bot on bot:9898 was crossed but the closing order was refused (kind=sl): the position is still open and unprotected. It is tried again with a growing wait, and the third refusal in a row halts trading. The log line says why; `mt5bot ctl status` shows the positions."),
 # Drops from 10m; a count that stays put never alerts.
 ("Mt5botNotificationsDropped",[('notify_dropped_total{job="mt5bot", instance="bot:9898", sink="telegram"}','0x9 3x20'),
   ('notify_dropped_total{job="mt5bot", instance="calm:9898", sink="telegram"}','5x30')],
  "9m","11m",L(instance="bot:9898",job="mt5bot",sink="telegram",severity="warning"),
  "mt5bot on bot:9898 dropped notifications to telegram",
  "mt5bot on bot:9898 dropped %s notifications to the sink telegram in 15 minutes: its service refused them, was down while its queue (notify.queue_capacity) filled, or was down at a stop. Trading is not affected; the log says why." % V.get("notifydrop","?")),
 # Halted from t0 = 10m; an active instance never alerts.
 ("Mt5botNotTrading",[('trading_state{job="mt5bot", instance="bot:9898", state="halted"}','0x9 1x40'),
   ('trading_state{job="mt5bot", instance="bot:9898", state="active"}','1x9 0x40'),
   ('trading_state{job="mt5bot", instance="calm:9898", state="halted"}','0x50'),
   ('trading_state{job="mt5bot", instance="calm:9898", state="active"}','1x50')],
  "39m","41m",L(instance="bot:9898",job="mt5bot",severity="warning",state="halted"),
  "mt5bot on bot:9898 has been halted for 30 minutes",
  "The trading state of mt5bot on bot:9898 has been halted for over 30 minutes. `mt5bot ctl status` says who set it and why; `mt5bot ctl resume` trades again."),
 # A checkpoint at time 0 becomes stale after 600 s (t0 = 11m); one refreshed every minute never does.
 ("Mt5botCheckpointStale",[('checkpoint_last_success_timestamp_seconds{job="mt5bot", instance="bot:9898"}','0x30'),
   ('checkpoint_last_success_timestamp_seconds{job="mt5bot", instance="calm:9898"}','0+60x30')],
  "15m","17m",L(instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot on bot:9898 has not checkpointed for 17m 0s",
  "The last successful checkpoint of mt5bot on bot:9898 is 17m 0s old: a crash now would lose the state since then. Check checkpoint_failures_total, the state folder's free space and permissions, and the log."),
 ("Mt5botLogRecordsDropped",[('log_records_dropped_total{job="mt5bot", instance="bot:9898"}','0x9 4x10'),('log_records_dropped_total{job="mt5bot", instance="calm:9898"}','7x20')],
  "9m","11m",L(instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot on bot:9898 dropped log records",
  "The log writer of mt5bot on bot:9898 fell behind and %s records were dropped in 10 minutes. Check the disk holding logging.file (full? slow?) and raise logging.channel_capacity if bursts are expected." % V.get("logdrop","?")),
 ("Mt5botLogForwardingDropping",[('log_forward_dropped_total{job="mt5bot", instance="bot:9898"}','0x9 3x10'),('log_forward_dropped_total{job="mt5bot", instance="calm:9898"}','9x20')],
  "9m","11m",L(instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot on bot:9898 is dropping forwarded log lines",
  "Log forwarding of mt5bot on bot:9898 dropped %s lines in 10 minutes: the sink has been unreachable long enough to fill the buffer and spool. Fix the sink at log_forward.url; the local file logs/mt5bot.log still has every line." % V.get("fwddrop","?")),
 ("Mt5botLogForwardingFallback",[('log_forward_connected{job="mt5bot", instance="bot:9898"}','1x9 0x10'),('log_forward_connected{job="mt5bot", instance="calm:9898"}','1x20')],
  "14m","16m",L(instance="bot:9898",job="mt5bot",severity="warning"),
  "mt5bot on bot:9898 cannot reach its log sink",
  "mt5bot on bot:9898 has not reached the sink at log_forward.url for 5 minutes and is logging to its local file, buffering and spooling the lines to send later. Check the sink's health and the network path."),
 ("Mt5botDiagnosticsMismatch",[('diagnostics_mismatch{job="pushgateway", instance="bot", kind="data"}','0x9 1x10'),('diagnostics_mismatch{job="pushgateway", instance="bot", kind="binary"}','0x20')],
  "9m","11m",L(instance="bot",kind="data",severity="warning"),
  "mt5bot diagnostics on bot found a data mismatch",
  "The nightly diagnostics of bot found a data mismatch. A dataset is missing, changed or unlisted: run `mt5bot check-data-versions` and sync the data, or record the new hashes with `mt5bot check-data-versions --write`."),
 # Last run at time 0: more than 26 h (93600 s) old from 1561m; a job that keeps running never alerts.
 ("Mt5botDiagnosticsNotRun",[('diagnostics_last_run_timestamp_seconds{job="pushgateway", instance="bot"}','0x1600'),
   ('diagnostics_last_run_timestamp_seconds{job="pushgateway", instance="fresh"}','0+60x1600')],
  "1560m","1562m",L(instance="bot",severity="warning"),
  "mt5bot diagnostics on bot have not run for 1d 2h 2m 0s",
  "The nightly diagnostics of bot last ran 1d 2h 2m 0s ago (expected daily). Check `systemctl list-timers mt5bot-diagnostics.timer` (or the cron line), then run scripts/diagnostics.sh by hand and read its output."),
]
def q(s): return '"' + s.replace('\\','\\\\').replace('"','\\"') + '"'
out=["# promtool test rules for deploy/alert.rules.yml (generated by gen.py beside it; edit that).",
     "# Each alert's condition steps from false to true at a known time t0: the first evaluation is",
     "# at t0 + for - 1m (no alert yet), the second at t0 + for + 1m (the alert, with its labels and",
     "# annotations); a second series sits just at or under the threshold and never fires.",
     "# Run: promtool test rules tests/alerts/alert.rules.test.yml",
     "rule_files:", "  - ../../deploy/alert.rules.yml", "evaluation_interval: 1m", "tests:"]
for name, series, below, above, labels, summ, desc in cases:
    out += [f"  # {name}", "  - interval: 1m", "    input_series:"]
    for s,v in series:
        out += [f"      - series: {q(s)}", f"        values: {q(v)}"]
    out += ["    alert_rule_test:", f"      - eval_time: {below}", f"        alertname: {name}", "        exp_alerts: []",
            f"      - eval_time: {above}", f"        alertname: {name}", "        exp_alerts:", "          - exp_labels:"]
    out += [f"              {k}: {q(v)}" for k,v in labels.items()]
    out += ["            exp_annotations:", f"              summary: {q(summ)}", f"              description: {q(desc)}",
            f"              runbook_url: {q(RB+name.lower())}"]
open('alert.rules.test.yml','w').write("\n".join(out)+"\n")
