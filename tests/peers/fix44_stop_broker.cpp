// A FIX 4.4 broker that holds stop orders, for tests/fix44_stops.rs: QuickFIX's own acceptor
// (Debian's libquickfix-dev) validating every message with the FIX 4.4 data dictionary, and a
// small book of its own. The QuickFIX executor example takes only limit orders and fills each at
// once, so it cannot stand for a broker whose stop orders rest; this program does what such a
// broker does, and nothing more:
//
// - NewOrderSingle: a market order (OrdType 1) fills at the last price; a limit (2) fills at once
//   when marketable, else rests; a stop (3) rests until the price trades through StopPx, then
//   fills at that price. Each gets an ExecutionReport New (ExecType 0) first.
// - OrderCancelRequest: a resting order is cancelled (ExecType 4, OrdStatus 4, the cancel's
//   ClOrdID with the order's as OrigClOrdID); any other gets an OrderCancelReject (unknown order).
// - OrderStatusRequest: the order's state (ExecType I), or OrdStatus 8 for an order it never had.
// - The price moves when a line "PRICE" on standard input says so: each resting order whose
//   level it reaches fills.
//
// Every order, cancel, fill and status answer is printed on standard output, one line each, for
// the test to read: "ORDER id type side qty price stop tif", "CANCEL id ok|unknown",
// "FILL id qty price", "STATUS id state".
//
// Build: g++ -std=c++14 fix44_stop_broker.cpp -lquickfix -lpthread (QuickFIX 1.15's headers use
// dynamic exception specifications, which C++17 removed).
// Run:   fix44_stop_broker SETTINGS_FILE FIRST_PRICE

#include <quickfix/Application.h>
#include <quickfix/FileLog.h>
#include <quickfix/FileStore.h>
#include <quickfix/MessageCracker.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketAcceptor.h>
#include <quickfix/fix44/ExecutionReport.h>
#include <quickfix/fix44/NewOrderSingle.h>
#include <quickfix/fix44/OrderCancelReject.h>
#include <quickfix/fix44/OrderCancelRequest.h>
#include <quickfix/fix44/OrderStatusRequest.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <string>

struct Order {
  std::string id, symbol;
  char side, type, tif;
  double qty, price, stop, cum = 0, avg = 0;
  bool open = true, cancelled = false;
  int number = 0;
};

class Broker : public FIX::Application, public FIX::MessageCracker {
 public:
  explicit Broker(double first) : last(first) {}

  std::mutex mu;
  std::map<std::string, Order> orders;
  double last;
  int next_order = 0, next_exec = 0;

  void onCreate(const FIX::SessionID&) override {}
  void onLogon(const FIX::SessionID&) override {}
  void onLogout(const FIX::SessionID&) override {}
  void toAdmin(FIX::Message&, const FIX::SessionID&) override {}
  void toApp(FIX::Message&, const FIX::SessionID&) throw(FIX::DoNotSend) override {}
  void fromAdmin(const FIX::Message&, const FIX::SessionID&)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::RejectLogon) override {}
  void fromApp(const FIX::Message& m, const FIX::SessionID& s)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::UnsupportedMessageType) override {
    crack(m, s);
  }

  // An ExecutionReport about `o`; `exec_type` 0 new, F fill, 4 cancelled, I status.
  FIX44::ExecutionReport report(const Order& o, char exec_type, char status, double last_qty, double last_px) {
    FIX44::ExecutionReport r(FIX::OrderID(std::to_string(o.number)), FIX::ExecID(std::to_string(++next_exec)),
                             FIX::ExecType(exec_type), FIX::OrdStatus(status), FIX::Side(o.side),
                             FIX::LeavesQty(o.open ? o.qty - o.cum : 0), FIX::CumQty(o.cum), FIX::AvgPx(o.avg));
    r.set(FIX::ClOrdID(o.id));
    r.set(FIX::Symbol(o.symbol));
    r.set(FIX::OrderQty(o.qty));
    r.set(FIX::OrdType(o.type));
    if (o.type == FIX::OrdType_LIMIT) r.set(FIX::Price(o.price));
    if (o.type == FIX::OrdType_STOP) r.set(FIX::StopPx(o.stop));
    if (exec_type == FIX::ExecType_TRADE) {
      r.set(FIX::LastQty(last_qty));
      r.set(FIX::LastPx(last_px));
    }
    return r;
  }

  void fill(Order& o, double px, const FIX::SessionID& s) {
    double qty = o.qty - o.cum;
    o.avg = (o.avg * o.cum + px * qty) / o.qty;
    o.cum = o.qty;
    o.open = false;
    std::printf("FILL %s %g %.5f\n", o.id.c_str(), qty, px);
    std::fflush(stdout);
    FIX44::ExecutionReport r = report(o, FIX::ExecType_TRADE, FIX::OrdStatus_FILLED, qty, px);
    FIX::Session::sendToTarget(r, s);
  }

  // The price a resting order fills at now, or 0 while it rests.
  double reached(const Order& o) const {
    bool buy = o.side == FIX::Side_BUY;
    switch (o.type) {
      case FIX::OrdType_MARKET: return last;
      case FIX::OrdType_LIMIT: return (buy ? last <= o.price : last >= o.price) ? o.price : 0;
      case FIX::OrdType_STOP: return (buy ? last >= o.stop : last <= o.stop) ? last : 0;
    }
    return 0;
  }

  void sweep(const FIX::SessionID& s) {
    for (auto& kv : orders) {
      Order& o = kv.second;
      double px = o.open ? reached(o) : 0;
      if (px > 0) fill(o, px, s);
    }
  }

  FIX::SessionID session;
  bool have_session = false;

  void onMessage(const FIX44::NewOrderSingle& m, const FIX::SessionID& s) override {
    std::lock_guard<std::mutex> g(mu);
    session = s;
    have_session = true;
    Order o;
    FIX::ClOrdID id; FIX::Symbol sym; FIX::Side side; FIX::OrderQty qty; FIX::OrdType type;
    m.get(id); m.get(sym); m.get(side); m.get(qty); m.get(type);
    o.id = id.getValue(); o.symbol = sym.getValue(); o.side = side.getValue(); o.qty = qty.getValue();
    o.type = type.getValue();
    FIX::Price price; FIX::StopPx stop; FIX::TimeInForce tif;
    o.price = m.isSet(price) ? m.get(price).getValue() : 0;
    o.stop = m.isSet(stop) ? m.get(stop).getValue() : 0;
    o.tif = m.isSet(tif) ? m.get(tif).getValue() : FIX::TimeInForce_DAY;
    if ((o.type == FIX::OrdType_LIMIT && o.price <= 0) || (o.type == FIX::OrdType_STOP && o.stop <= 0))
      throw FIX::IncorrectTagValue(o.type == FIX::OrdType_STOP ? FIX::FIELD::StopPx : FIX::FIELD::Price);
    if (orders.count(o.id)) {
      std::printf("DUPLICATE %s\n", o.id.c_str());
      std::fflush(stdout);
      return;
    }
    o.number = ++next_order;
    std::printf("ORDER %s %c %c %g %.5f %.5f %c\n", o.id.c_str(), o.type, o.side, o.qty, o.price, o.stop, o.tif);
    std::fflush(stdout);
    Order& kept = orders[o.id] = o;
    FIX44::ExecutionReport r = report(kept, FIX::ExecType_NEW, FIX::OrdStatus_NEW, 0, 0);
    FIX::Session::sendToTarget(r, s);
    double px = reached(kept);
    if (px > 0) fill(kept, px, s);
  }

  void onMessage(const FIX44::OrderCancelRequest& m, const FIX::SessionID& s) override {
    std::lock_guard<std::mutex> g(mu);
    FIX::OrigClOrdID orig; FIX::ClOrdID id;
    m.get(orig); m.get(id);
    auto it = orders.find(orig.getValue());
    if (it == orders.end() || !it->second.open) {
      std::printf("CANCEL %s unknown\n", orig.getValue().c_str());
      std::fflush(stdout);
      FIX44::OrderCancelReject r(FIX::OrderID(it == orders.end() ? "NONE" : std::to_string(it->second.number)), id, orig,
                                 FIX::OrdStatus(it == orders.end() ? FIX::OrdStatus_REJECTED : FIX::OrdStatus_FILLED),
                                 FIX::CxlRejResponseTo(FIX::CxlRejResponseTo_ORDER_CANCEL_REQUEST));
      r.set(FIX::CxlRejReason(it == orders.end() ? FIX::CxlRejReason_UNKNOWN_ORDER : FIX::CxlRejReason_TOO_LATE_TO_CANCEL));
      FIX::Session::sendToTarget(r, s);
      return;
    }
    Order& o = it->second;
    o.open = false;
    o.cancelled = true;
    std::printf("CANCEL %s ok\n", o.id.c_str());
    std::fflush(stdout);
    FIX44::ExecutionReport r = report(o, FIX::ExecType_CANCELED, FIX::OrdStatus_CANCELED, 0, 0);
    r.set(id);
    r.set(orig);
    FIX::Session::sendToTarget(r, s);
  }

  void onMessage(const FIX44::OrderStatusRequest& m, const FIX::SessionID& s) override {
    std::lock_guard<std::mutex> g(mu);
    FIX::ClOrdID id; FIX::Side side; FIX::Symbol sym;
    m.get(id); m.get(side); m.get(sym);
    auto it = orders.find(id.getValue());
    if (it == orders.end()) {
      std::printf("STATUS %s unknown\n", id.getValue().c_str());
      std::fflush(stdout);
      Order o; o.id = id.getValue(); o.symbol = sym.getValue(); o.side = side.getValue(); o.type = FIX::OrdType_MARKET;
      o.qty = 0; o.open = false;
      FIX44::ExecutionReport r = report(o, FIX::ExecType_ORDER_STATUS, FIX::OrdStatus_REJECTED, 0, 0);
      r.set(FIX::Text("unknown order"));
      FIX::Session::sendToTarget(r, s);
      return;
    }
    const Order& o = it->second;
    char status = o.cancelled ? FIX::OrdStatus_CANCELED : o.open ? FIX::OrdStatus_NEW : FIX::OrdStatus_FILLED;
    std::printf("STATUS %s %c\n", o.id.c_str(), status);
    std::fflush(stdout);
    FIX44::ExecutionReport r = report(o, FIX::ExecType_ORDER_STATUS, status, 0, 0);
    FIX::Session::sendToTarget(r, s);
  }

  // A new last price: every resting order it reaches fills.
  void price(double p) {
    std::lock_guard<std::mutex> g(mu);
    last = p;
    std::printf("PRICE %.5f\n", p);
    std::fflush(stdout);
    if (have_session) sweep(session);
  }
};

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SETTINGS_FILE FIRST_PRICE\n", argv[0]);
    return 2;
  }
  try {
    FIX::SessionSettings settings(argv[1]);
    Broker broker(std::atof(argv[2]));
    FIX::FileStoreFactory store(settings);
    FIX::FileLogFactory log(settings);
    FIX::SocketAcceptor acceptor(broker, store, settings, log);
    acceptor.start();
    std::printf("LISTENING\n");
    std::fflush(stdout);
    std::string word;
    double p;
    while (std::cin >> word >> p) {
      if (word == "PRICE") broker.price(p);
    }
    acceptor.stop();
  } catch (std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
