// The peer for the FIX round trip: QuickFIX's own C++ initiator (Debian's libquickfix-dev) sending
// the same limit NewOrderSingle mt5bot's bench sends to the same QuickFIX executor, one at a time,
// and waiting for its ExecutionReport. Prints the round trips' p50 and p99 in nanoseconds.
//
// Build: g++ -std=c++14 -O2 quickfix_initiator.cpp -lquickfix -lpthread (QuickFIX 1.15's headers
// use dynamic exception specifications, which C++17 removed).
// Run:   quickfix_initiator SETTINGS_FILE ORDERS

#include <quickfix/Application.h>
#include <quickfix/MessageCracker.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketInitiator.h>
#include <quickfix/FileStore.h>
#include <quickfix/fix44/ExecutionReport.h>
#include <quickfix/fix44/NewOrderSingle.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

class Peer : public FIX::Application, public FIX::MessageCracker {
 public:
  std::mutex mu;
  std::condition_variable cv;
  bool logged_on = false;
  std::string last_filled;
  FIX::SessionID session;

  void onCreate(const FIX::SessionID&) override {}
  void onLogon(const FIX::SessionID& s) override {
    std::lock_guard<std::mutex> g(mu);
    session = s;
    logged_on = true;
    cv.notify_all();
  }
  void onLogout(const FIX::SessionID&) override {}
  void toAdmin(FIX::Message&, const FIX::SessionID&) override {}
  void toApp(FIX::Message&, const FIX::SessionID&) throw(FIX::DoNotSend) override {}
  void fromAdmin(const FIX::Message&, const FIX::SessionID&)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::RejectLogon) override {}
  void fromApp(const FIX::Message& m, const FIX::SessionID& s)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::UnsupportedMessageType) override {
    crack(m, s);
  }
  void onMessage(const FIX44::ExecutionReport& r, const FIX::SessionID&) override {
    FIX::OrdStatus status;
    r.get(status);
    if (status != FIX::OrdStatus_FILLED) return;
    FIX::ClOrdID id;
    r.get(id);
    std::lock_guard<std::mutex> g(mu);
    last_filled = id.getValue();
    cv.notify_all();
  }
};

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SETTINGS_FILE ORDERS\n", argv[0]);
    return 2;
  }
  const long orders = std::stol(argv[2]);
  try {
    FIX::SessionSettings settings(argv[1]);
    Peer peer;
    FIX::FileStoreFactory store(settings);
    FIX::SocketInitiator initiator(peer, store, settings);
    initiator.start();
    {
      std::unique_lock<std::mutex> l(peer.mu);
      if (!peer.cv.wait_for(l, std::chrono::seconds(10), [&] { return peer.logged_on; })) {
        std::fprintf(stderr, "no logon to the executor\n");
        return 1;
      }
    }
    std::vector<long long> samples;
    samples.reserve(orders);
    for (long n = 1; n <= orders; n++) {
      const std::string id = "Q" + std::to_string(n);
      FIX44::NewOrderSingle nos(FIX::ClOrdID(id), FIX::Side(FIX::Side_BUY), FIX::TransactTime(),
                                FIX::OrdType(FIX::OrdType_LIMIT));
      nos.set(FIX::Symbol("EURUSD"));
      nos.set(FIX::OrderQty(1));
      nos.set(FIX::Price(1.085));
      nos.set(FIX::TimeInForce(FIX::TimeInForce_DAY));
      const auto t0 = std::chrono::steady_clock::now();
      FIX::Session::sendToTarget(nos, peer.session);
      std::unique_lock<std::mutex> l(peer.mu);
      if (!peer.cv.wait_for(l, std::chrono::seconds(5), [&] { return peer.last_filled == id; })) {
        std::fprintf(stderr, "order %s not filled\n", id.c_str());
        return 1;
      }
      samples.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    }
    initiator.stop();
    std::sort(samples.begin(), samples.end());
    auto at = [&](double p) { return samples[static_cast<size_t>((samples.size() - 1) * p + 0.5)]; };
    std::printf("quickfix_initiator p50_ns=%lld p99_ns=%lld orders=%ld\n", at(0.5), at(0.99), orders);
    return 0;
  } catch (std::exception& e) {
    std::fprintf(stderr, "quickfix_initiator: %s\n", e.what());
    return 1;
  }
}
