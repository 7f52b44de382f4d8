//! The orders in flight at the FIX counterparty: what was sent on which connection, what the
//! execution reports said, the completed orders whose repeats book nothing, and the status
//! requests that settle an order whose receipt the counterparty cannot confirm.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Sent on the session of this connection number.
    Sent { conn: u64 },
    /// Asked about with an OrderStatusRequest.
    StatusAsked,
    /// The counterparty asked again for the message that carried it (a ResendRequest from an
    /// earlier connection's range). That does not prove it never got the order (a venue killed
    /// between taking an order and storing its sequence number asks again for one it has), so
    /// it is asked about before anything is sent again.
    Missed,
    /// [`Delivery::Missed`], and asked about: the venue saying it does not know the order, or
    /// that it answers no OrderStatusRequest, sends it again.
    MissedAsked,
    /// The counterparty said it never received it.
    Undelivered,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct FixOrder {
    pub(super) req: OrderRequest,
    /// MsgSeqNum of the NewOrderSingle that carried it last.
    pub(super) seq: u64,
    pub(super) created: Nanos,
    pub(super) cum: f64,
    /// Sum of qty * price booked so far, to price fills known only by AvgPx.
    pub(super) notional: f64,
    pub(super) acked: bool,
    pub(super) delivery: Delivery,
    /// An OrderCancelRequest is out for it.
    pub(super) cancel_pending: bool,
    /// Sent by an earlier process (restored).
    pub(super) restored: bool,
    /// For a restored order, how long before this process started it was sent; `None` when the
    /// checkpoint did not say, and then it is never sent again.
    pub(super) restored_age: Option<Nanos>,
    /// Sent before the sequence numbers started again at 1 (a new session period, a reset): the
    /// venue cannot resend what it said of it then, so only an OrderStatusRequest can settle it.
    pub(super) across_reset: bool,
}

impl FixOrder {
    /// How long ago it was sent; `None` when unknown.
    pub(super) fn age(&self, now: Nanos) -> Option<Nanos> {
        if self.restored {
            self.restored_age.map(|a| a.saturating_add(now))
        } else {
            Some(now.saturating_sub(self.created))
        }
    }
}

/// The orders in flight and what the session tells about them.
#[derive(Debug)]
pub(super) struct Book {
    pub(super) orders: Vec<FixOrder>,
    pub(super) capacity: usize,
    pub(super) next_exec_id: u64,
    pub(super) events: Vec<VenueEvent>,
    pub(super) symbols: Vec<String>,
    pub(super) reconcile_due: bool,
    pub(super) status_unsupported: bool,
    /// Orders that left the book (done) or were adopted, with their last CumQty, newest last: a
    /// late or repeated report for one of them books nothing.
    pub(super) completed: std::collections::HashMap<crate::domain::types::SignalId, f64>,
    pub(super) completed_order: std::collections::VecDeque<crate::domain::types::SignalId>,
}

/// Completed orders remembered against late or repeated reports.
pub(super) const COMPLETED: usize = 4096;

/// Completed orders a checkpoint keeps (the newest), so a report the venue resends after a restart
/// (with 43=Y or not) books nothing again.
pub(super) const CHECKPOINT_COMPLETED: usize = 1024;

impl Book {
    /// The sequence numbers start again at 1: the numbers the orders in flight went out under
    /// belong to the session before, so a ResendRequest of the new one must not take them for
    /// its own (they are asked about with an OrderStatusRequest instead, once in sync).
    pub(super) fn forget_sequence_numbers(&mut self) {
        for o in &mut self.orders {
            o.seq = 0;
            o.across_reset = true;
        }
        self.reconcile_due = !self.orders.is_empty();
    }

    /// The newest completed orders and what was booked of each, for a checkpoint.
    pub(super) fn completed_state(&self) -> serde_json::Value {
        let skip = self.completed_order.len().saturating_sub(CHECKPOINT_COMPLETED);
        let list: Vec<serde_json::Value> = self
            .completed_order
            .iter()
            .skip(skip)
            .filter_map(|id| Some(serde_json::json!([id.as_str(), self.completed.get(id)?])))
            .collect();
        serde_json::Value::Array(list)
    }

    /// Takes back the completed orders of a checkpoint.
    pub(super) fn restore_completed(&mut self, state: &serde_json::Value) {
        for entry in state.as_array().into_iter().flatten() {
            let id = entry.get(0).and_then(serde_json::Value::as_str).and_then(crate::domain::types::SignalId::parse);
            let cum = entry.get(1).and_then(serde_json::Value::as_f64);
            if let (Some(id), Some(cum)) = (id, cum) {
                self.remember(id, cum);
            }
        }
    }

    pub(super) fn remember(&mut self, id: crate::domain::types::SignalId, cum: f64) {
        if let Some(c) = self.completed.get_mut(&id) {
            *c = c.max(cum);
            return;
        }
        if self.completed_order.len() == COMPLETED {
            if let Some(old) = self.completed_order.pop_front() {
                self.completed.remove(&old);
            }
        }
        self.completed_order.push_back(id);
        self.completed.insert(id, cum);
    }

    /// A report for an order not in flight here: a late repeat (ignored), or a fill of an order
    /// sent by this process's predecessor after its last checkpoint (booked, once).
    pub(super) fn adopt(&mut self, m: &Message<'_>, cum: f64, exec_type: u8) {
        let id_text = m.get_str(tag::CL_ORD_ID).unwrap_or("?");
        let Some(id) = crate::domain::types::SignalId::parse(id_text) else {
            log::warn!("FIX: execution report for an order id mt5bot never uses ({id_text}); ignored");
            return;
        };
        let booked = self.completed.get(&id).copied().unwrap_or(0.0);
        let symbol = m.get_str(tag::SYMBOL).and_then(|s| self.symbols.iter().position(|n| n == s));
        let side = match m.get_char(tag::SIDE) {
            Some(b'1') => Some(Side::Buy),
            Some(b'2') => Some(Side::Sell),
            _ => None,
        };
        let price = m.get_f64(tag::LAST_PX).filter(|p| *p > 0.0).or(m.get_f64(tag::AVG_PX).filter(|p| *p > 0.0));
        match (cum > booked + QTY_EPSILON, symbol, side, price) {
            (false, Some(sym), Some(side), _) if exec_type == b'0' && !self.completed.contains_key(&id) => {
                // The venue took an order this process does not hold (sent before a crash, its
                // journal entry lost): a signal still queued with its id must not go out again.
                log::warn!(
                    "FIX: the venue holds order {id} (sent before a restart); it is not sent again, and mt5bot does not follow it: manage it at the venue"
                );
                self.events.push(VenueEvent::Adopted {
                    client_id: id,
                    symbol: sym as SymbolId,
                    side,
                    qty: 0.0,
                    price: 0.0,
                    only_if_unknown: false,
                });
            }
            (false, ..) => {}
            (true, Some(sym), Some(side), Some(price)) if exec_type == b'F' || exec_type == b'I' => {
                let qty = cum - booked;
                log::warn!(
                    "FIX: booking {qty} {} of order {id} (not in flight here: sent before a restart, reported by the venue)",
                    self.symbols[sym]
                );
                self.remember(id, cum);
                self.events.push(VenueEvent::Adopted {
                    client_id: id,
                    symbol: sym as SymbolId,
                    side,
                    qty,
                    price,
                    only_if_unknown: false,
                });
            }
            _ => log::warn!(
                "FIX: execution report for an order not in flight here (ClOrdID {id}, ExecType {}); ignored",
                exec_type as char
            ),
        }
    }

    pub(super) fn find(&self, client_id: &[u8]) -> Option<usize> {
        self.orders.iter().position(|o| o.req.client_id.as_str().as_bytes() == client_id)
    }

    pub(super) fn remove(&mut self, i: usize) {
        let o = self.orders.swap_remove(i);
        self.remember(o.req.client_id, o.cum);
    }

    pub(super) fn on_execution_report(&mut self, m: &Message<'_>) -> Result<(), RejectReason> {
        const REQUIRED: [u32; 9] = [
            tag::ORDER_ID,
            tag::EXEC_ID,
            tag::EXEC_TYPE,
            tag::ORD_STATUS,
            tag::SYMBOL,
            tag::SIDE,
            tag::LEAVES_QTY,
            tag::CUM_QTY,
            tag::AVG_PX,
        ];
        if let Some(&missing) = REQUIRED.iter().find(|&&t| !m.has(t)) {
            return Err(RejectReason { code: 1, tag: Some(missing), text: "required tag missing" });
        }
        let (Some(cum), Some(exec_type), Some(status)) =
            (m.get_f64(tag::CUM_QTY), m.get_char(tag::EXEC_TYPE), m.get_char(tag::ORD_STATUS))
        else {
            return Err(RejectReason { code: 6, tag: Some(tag::CUM_QTY), text: "incorrect data format for value" });
        };
        // A report about a cancel carries the cancel's ClOrdID and the order's as OrigClOrdID.
        let found = m
            .get(tag::CL_ORD_ID)
            .and_then(|id| self.find(id))
            .or_else(|| m.get(tag::ORIG_CL_ORD_ID).and_then(|id| self.find(id)));
        let Some(i) = found else {
            self.adopt(m, cum, exec_type);
            return Ok(());
        };
        let key = self.orders[i].req.key;
        if exec_type == b'I'
            && status == b'8'
            && matches!(self.orders[i].delivery, Delivery::StatusAsked | Delivery::MissedAsked)
            && self.orders[i].cum == 0.0
        {
            // The answer to our OrderStatusRequest: the venue does not know the order.
            log::warn!(
                "FIX: the venue does not know order {} ({})",
                self.orders[i].req.client_id,
                m.get_str(tag::TEXT).unwrap_or("no reason given")
            );
            self.orders[i].delivery = Delivery::Undelivered;
            self.reconcile_due = true;
            return Ok(());
        }
        if !self.orders[i].acked && exec_type != b'8' {
            self.orders[i].acked = true;
            self.events.push(VenueEvent::Accepted { key });
        }
        let o = &mut self.orders[i];
        if cum > o.cum + QTY_EPSILON {
            let qty = cum - o.cum;
            let price = match (exec_type, m.get_f64(tag::LAST_PX), m.get_f64(tag::AVG_PX)) {
                (b'F', Some(px), _) if px > 0.0 => px,
                (_, _, Some(avg)) if avg > 0.0 => ((avg * cum - o.notional) / qty).max(f64::MIN_POSITIVE),
                _ => o.req.price,
            };
            o.cum = cum;
            o.notional += qty * price;
            self.next_exec_id += 1;
            self.events.push(VenueEvent::Fill { key, exec_id: self.next_exec_id, qty, price });
            // Commission (12) of this execution, by CommType (13): 1 per unit, 2 a fraction of
            // the notional, 3 (and the rest) an amount.
            if let Some(c) = m.get_f64(tag::COMMISSION).filter(|c| c.is_finite() && *c != 0.0) {
                let amount = match m.get_str(tag::COMM_TYPE) {
                    Some("1") => c * qty,
                    Some("2") => c * qty * price,
                    _ => c,
                };
                self.events.push(VenueEvent::Commission { symbol: o.req.symbol, amount });
            }
        }
        let done = o.cum + QTY_EPSILON >= o.req.qty;
        match status {
            b'2' => self.remove(i),
            b'4' | b'C' | b'3' if !done => {
                self.events.push(VenueEvent::Cancelled { key });
                self.remove(i);
            }
            b'8' => {
                log::warn!(
                    "FIX: order {} rejected by the venue: {}",
                    self.orders[i].req.client_id,
                    m.get_str(tag::TEXT).unwrap_or("(no reason given)")
                );
                self.events.push(VenueEvent::Rejected { key, reason: "rejected by the venue" });
                self.remove(i);
            }
            _ if done => self.remove(i),
            _ => {}
        }
        Ok(())
    }

    pub(super) fn reject_order(&mut self, i: usize, reason: &'static str) {
        let key = self.orders[i].req.key;
        self.events.push(VenueEvent::Rejected { key, reason });
        self.remove(i);
    }
}

impl Application for Book {
    fn on_logon(&mut self, _now: Nanos) {}

    fn on_message(&mut self, m: &Message<'_>, _now: Nanos) -> Result<(), RejectReason> {
        match m.msg_type() {
            b"8" => self.on_execution_report(m),
            b"9" => {
                const REQUIRED: [u32; 5] =
                    [tag::ORDER_ID, tag::CL_ORD_ID, tag::ORIG_CL_ORD_ID, tag::ORD_STATUS, tag::CXL_REJ_RESPONSE_TO];
                if let Some(&missing) = REQUIRED.iter().find(|&&t| !m.has(t)) {
                    return Err(RejectReason { code: 1, tag: Some(missing), text: "required tag missing" });
                }
                log::warn!(
                    "FIX: cancel of order {} refused by the venue: {}",
                    m.get_str(tag::ORIG_CL_ORD_ID).unwrap_or("?"),
                    m.get_str(tag::TEXT).unwrap_or("(no reason given)")
                );
                if let Some(i) = m.get(tag::ORIG_CL_ORD_ID).and_then(|id| self.find(id)) {
                    self.orders[i].cancel_pending = false;
                }
                Ok(())
            }
            b"j" => {
                if let Some(&missing) = [tag::REF_MSG_TYPE, tag::BUSINESS_REJECT_REASON].iter().find(|&&t| !m.has(t)) {
                    return Err(RejectReason { code: 1, tag: Some(missing), text: "required tag missing" });
                }
                let ref_type = m.get(tag::REF_MSG_TYPE).unwrap_or_default();
                let text = m.get_str(tag::TEXT).unwrap_or("(no reason given)");
                if ref_type == b"F" {
                    log::warn!("FIX: the venue does not take OrderCancelRequest ({text}); the order stays working");
                    for o in &mut self.orders {
                        o.cancel_pending = false;
                    }
                } else if ref_type == b"H" {
                    if !self.status_unsupported {
                        log::warn!(
                            "FIX: the venue does not answer OrderStatusRequest ({text}); orders of unknown outcome stay in flight until an execution report arrives"
                        );
                    }
                    self.status_unsupported = true;
                    // Orders the venue asked for again cannot be asked about: its ResendRequest is
                    // all there is to go by, so they go out again (same ClOrdID, which a venue
                    // that keeps ClOrdIDs refuses as a duplicate).
                    for o in &mut self.orders {
                        if o.delivery == Delivery::MissedAsked {
                            log::warn!(
                                "FIX: order {} goes out again: the venue asked again for its message and \
                                 answers no OrderStatusRequest (same ClOrdID)",
                                o.req.client_id
                            );
                            o.delivery = Delivery::Undelivered;
                            self.reconcile_due = true;
                        }
                        // Asked about across a reset: the venue cannot be asked, nor resend.
                        if o.delivery == Delivery::StatusAsked && o.across_reset && !o.acked {
                            self.reconcile_due = true;
                        }
                    }
                } else if let Some(i) = m.get(tag::BUSINESS_REJECT_REF_ID).and_then(|id| self.find(id)) {
                    log::warn!("FIX: order {} refused by the venue: {text}", self.orders[i].req.client_id);
                    self.reject_order(i, "refused by the venue");
                } else {
                    log::warn!("FIX: business reject from the venue: {text}");
                }
                Ok(())
            }
            _ => Err(RejectReason { code: 11, tag: Some(tag::MSG_TYPE), text: "unsupported MsgType" }),
        }
    }

    fn on_session_reject(&mut self, ref_seq: u64, _text: &str, _now: Nanos) {
        if let Some(i) = self.orders.iter().position(|o| o.seq == ref_seq && !o.acked) {
            self.reject_order(i, "refused by the venue's session layer");
        }
    }

    fn on_peer_missed(&mut self, begin: u64, end: u64, _now: Nanos) {
        for o in &mut self.orders {
            if (begin..end).contains(&o.seq) && !o.acked && o.cum == 0.0 {
                o.delivery = Delivery::Missed;
            }
        }
        self.reconcile_due = true;
    }

    fn on_in_sync(&mut self, _now: Nanos) {
        self.reconcile_due = true;
    }

    fn on_reset(&mut self, _now: Nanos) {
        self.forget_sequence_numbers();
    }
}
