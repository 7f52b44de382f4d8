//+------------------------------------------------------------------+
//| Mt5Bridge.mq5: the terminal side of the mt5bot MT5 bridge.       |
//| Protocol: docs/mt5-bridge.md (JSON lines over TCP). Install:     |
//| copy to MQL5/Experts, compile, allow the address under           |
//| Tools > Options > Expert Advisors, attach to one chart.          |
//+------------------------------------------------------------------+
#property copyright "mt5bot"
#property version   "1.00"
#property strict

#include <Trade\Trade.mqh>

input string Host    = "127.0.0.1";  // mt5bot's venue.mt5.listen address
input uint   Port    = 7788;         // mt5bot's venue.mt5.listen port
input string Secret  = "";           // CONTROLLER_SHARED_SECRET
input long   Magic   = 5550001;      // must equal venue.mt5.magic
input string Symbols = "";           // comma-separated; empty: the symbols mt5bot names in welcome
input uint   Silence = 60;           // seconds without a byte from mt5bot (it pings when idle) before reconnecting
input bool   Tls = false;            // mt5bot's venue.mt5.tls is set: speak TLS
input string TlsThumbprint = "";     // the SHA-1 thumbprint mt5bot logs at start; the EA refuses any other certificate

CTrade  trade;
int     sock = INVALID_HANDLE;
bool    authed = false;
uchar   inraw[];                      // bytes read and not yet a whole line (decoded per line, so a
                                      // UTF-8 character split between reads stays whole)
ulong   last_recv = 0;
bool    send_failed = false;
#define MAX_INBUF (16 * 1024 * 1024)
#define PAGE_DEALS 200
#define ERR_NETSOCKET_IO_ERROR_CODE 5273
string  streamed[];
long    last_msc[];
string  executed[];                   // ids executed since start: never execute one twice
string  results[];                    // the result line sent for each of them, sent again if asked
ulong   tickets[];                    // the order ticket each got (ResultOrder): its deals' id
ulong   map_tickets[];                // the same, kept across restarts in MQL5/Files (MapFile):
string  map_ids[];                    // brokers may cut or rewrite comments
#define MAP_KEEP 20000
bool    hedging = false;              // ACCOUNT_MARGIN_MODE_RETAIL_HEDGING: positions closed by ticket
ulong   net_after = 0;                // NetHedges waits until then after a refused close-by
uint    backoff_ms = 500;
ulong   next_try = 0;

//--- plumbing -------------------------------------------------------
bool Send(const string line)
  {
   uchar buf[];
   int n = StringToCharArray(line + "\n", buf, 0, WHOLE_ARRAY, CP_UTF8) - 1;
   bool ok = sock != INVALID_HANDLE && (Tls ? SocketTlsSend(sock, buf, n) : SocketSend(sock, buf, n)) == n;
   // A failed send means a broken connection: the next timer reconnects (and the snapshot after
   // it tells mt5bot what happened meanwhile).
   if(!ok && sock != INVALID_HANDLE) send_failed = true;
   return ok;
  }

string Hex(const uchar &b[])
  {
   string s = "";
   for(int i = 0; i < ArraySize(b); i++) s += StringFormat("%02x", b[i]);
   return s;
  }

void Sha256(const uchar &data[], uchar &out[])
  {
   uchar nokey[];
   CryptEncode(CRYPT_HASH_SHA256, data, nokey, out);
  }

string HmacSha256Hex(const string key, const string msg)
  {
   uchar k[], m[], block[64], inner[], outer[], ih[], oh[];
   int kl = StringToCharArray(key, k, 0, WHOLE_ARRAY, CP_UTF8) - 1;
   ArrayResize(k, kl);
   if(kl > 64) { uchar d[]; Sha256(k, d); ArrayCopy(k, d); ArrayResize(k, 32); kl = 32; }
   ArrayInitialize(block, 0);
   for(int i = 0; i < kl; i++) block[i] = k[i];
   int ml = StringToCharArray(msg, m, 0, WHOLE_ARRAY, CP_UTF8) - 1;
   ArrayResize(inner, 64 + ml);
   for(int i = 0; i < 64; i++) inner[i] = (uchar)(block[i] ^ 0x36);
   for(int i = 0; i < ml; i++) inner[64 + i] = m[i];
   Sha256(inner, ih);
   ArrayResize(outer, 64 + 32);
   for(int i = 0; i < 64; i++) outer[i] = (uchar)(block[i] ^ 0x5c);
   for(int i = 0; i < 32; i++) outer[64 + i] = ih[i];
   Sha256(outer, oh);
   return Hex(oh);
  }

// `s` as the inside of a JSON string: quotes, backslashes and control characters escaped (a
// server's comment may hold any of them).
string Esc(const string s)
  {
   string out = "";
   for(int i = 0; i < StringLen(s); i++)
     {
      ushort c = StringGetCharacter(s, i);
      if(c == '"') out += "\\\"";
      else if(c == '\\') out += "\\\\";
      else if(c < 32) out += StringFormat("\\u%04x", c);
      else out += ShortToString(c);
     }
   return out;
  }

bool IsSpace(const ushort c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// The JSON string whose opening quote is at `p`, its escapes decoded (\uXXXX as the UTF-16 unit
// it names, surrogate pairs as two units, as MQL5 strings hold them); `p` ends after the closing
// quote.
string JsonString(const string s, int &p)
  {
   string out = "";
   int n = StringLen(s);
   for(p++; p < n; p++)
     {
      ushort c = StringGetCharacter(s, p);
      if(c == '"') { p++; return out; }
      if(c != '\\') { out += ShortToString(c); continue; }
      if(++p >= n) break;
      c = StringGetCharacter(s, p);
      if(c == 'u' && p + 4 < n)
        {
         ushort v = 0;
         for(int k = 1; k <= 4; k++)
           {
            ushort h = StringGetCharacter(s, p + k);
            v = (ushort)(v * 16 + (h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                   : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 0));
           }
         out += ShortToString(v);
         p += 4;
        }
      else if(c == 'n') out += "\n";
      else if(c == 't') out += "\t";
      else if(c == 'r') out += "\r";
      else if(c == 'b') out += ShortToString(8);
      else if(c == 'f') out += ShortToString(12);
      else out += ShortToString(c);   // \" \\ \/
     }
   return out;
  }

// Moves `p` past the JSON value at `p`: a string, a number or literal, an array or an object.
void JsonSkip(const string s, int &p)
  {
   int n = StringLen(s), depth = 0;
   while(p < n)
     {
      ushort c = StringGetCharacter(s, p);
      if(c == '"') { JsonString(s, p); if(depth == 0) return; continue; }
      if(c == '[' || c == '{') depth++;
      else if(c == ']' || c == '}')
        {
         if(depth == 0) return;
         if(--depth == 0) { p++; return; }
        }
      else if(depth == 0 && (c == ',' || IsSpace(c))) return;
      p++;
     }
  }

// The value of top-level `key` in the JSON object `json`: a string decoded, anything else (a
// number, true, an array) as its text; "" when the key is missing. Any whitespace and key order
// mt5bot or a proxy writes is read; a key's text inside a string value is never taken for a key.
string Field(const string json, const string key)
  {
   int n = StringLen(json), p = StringFind(json, "{");
   if(p < 0) return "";
   for(p++; p < n; )
     {
      ushort c = StringGetCharacter(json, p);
      if(IsSpace(c) || c == ',') { p++; continue; }
      if(c != '"') return "";                        // the closing brace, or not an object
      string k = JsonString(json, p);
      while(p < n && StringGetCharacter(json, p) != ':') p++;
      for(p++; p < n && IsSpace(StringGetCharacter(json, p)); p++) {}
      int from = p;
      bool str = p < n && StringGetCharacter(json, p) == '"';
      string v = str ? JsonString(json, p) : "";
      if(!str) JsonSkip(json, p);
      if(k == key) return str ? v : StringSubstr(json, from, p - from);
     }
   return "";
  }

// The strings of the array under top-level `key` (welcome's "symbols"); their count.
int FieldStrings(const string json, const string key, string &out[])
  {
   ArrayResize(out, 0);
   string raw = Field(json, key);
   for(int p = 0; p < StringLen(raw); )
     {
      if(StringGetCharacter(raw, p) != '"') { p++; continue; }
      int k = ArraySize(out);
      ArrayResize(out, k + 1);
      out[k] = JsonString(raw, p);
     }
   return ArraySize(out);
  }

string Num(const double v) { return DoubleToString(v, 8); }

//--- connection -----------------------------------------------------
void Disconnect(const string why)
  {
   if(sock != INVALID_HANDLE) SocketClose(sock);
   sock = INVALID_HANDLE;
   authed = false;
   ArrayResize(inraw, 0);
   send_failed = false;
   next_try = GetTickCount64() + backoff_ms;
   PrintFormat("mt5bot bridge: disconnected (%s); retrying in %u ms", why, backoff_ms);
   backoff_ms = MathMin(backoff_ms * 2, 30000);
  }

// The certificate's thumbprint as compared: hex digits only, upper case.
string Thumb(const string s)
  {
   string out = "";
   for(int i = 0; i < StringLen(s); i++)
     {
      ushort c = StringGetCharacter(s, i);
      if(c >= 'a' && c <= 'f') c = (ushort)(c - 32);
      if((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')) out += ShortToString(c);
     }
   return out;
  }

void TryConnect()
  {
   if(GetTickCount64() < next_try) return;
   sock = SocketCreate();
   if(sock == INVALID_HANDLE || !SocketConnect(sock, Host, Port, 2000))
     { Disconnect("cannot connect, error " + IntegerToString(GetLastError())); return; }
   if(Tls)
     {
      // The terminal may also check the certificate's chain; the thumbprint pins the one
      // certificate mt5bot serves, whoever signed it.
      if(!SocketTlsHandshake(sock, Host))
        { Disconnect("TLS handshake failed, error " + IntegerToString(GetLastError())); return; }
      string subject, issuer, serial, thumbprint;
      datetime expiration;
      if(!SocketTlsCertificate(sock, subject, issuer, serial, thumbprint, expiration))
        { Disconnect("no TLS certificate, error " + IntegerToString(GetLastError())); return; }
      if(TlsThumbprint != "" && Thumb(thumbprint) != Thumb(TlsThumbprint))
        { Disconnect("the certificate's thumbprint " + thumbprint + " is not TlsThumbprint"); return; }
     }
   last_recv = GetTickCount64();   // the silence clock starts at the connect
   Print("mt5bot bridge: connected to ", Host, ":", Port);
  }

// The account's margin mode, as the protocol names it.
string MarginMode()
  {
   long m = AccountInfoInteger(ACCOUNT_MARGIN_MODE);
   return m == ACCOUNT_MARGIN_MODE_RETAIL_HEDGING ? "hedging" : m == ACCOUNT_MARGIN_MODE_EXCHANGE ? "exchange" : "netting";
  }

// The file of order tickets and mt5bot's ids, one "ticket,id" line each, under MQL5/Files.
string MapFile() { return StringFormat("mt5bot-%I64d.map", Magic); }

// Reads the ticket map kept by earlier runs (the newest MAP_KEEP lines).
void LoadMap()
  {
   int h = FileOpen(MapFile(), FILE_READ | FILE_TXT | FILE_ANSI | FILE_SHARE_READ);
   if(h == INVALID_HANDLE) return;
   while(!FileIsEnding(h))
     {
      string line = FileReadString(h);
      int comma = StringFind(line, ",");
      if(comma <= 0) continue;
      int n = ArraySize(map_ids);
      ArrayResize(map_tickets, n + 1); ArrayResize(map_ids, n + 1);
      map_tickets[n] = (ulong)StringToInteger(StringSubstr(line, 0, comma));
      map_ids[n] = StringSubstr(line, comma + 1);
     }
   FileClose(h);
   int extra = ArraySize(map_ids) - MAP_KEEP;
   if(extra > 0) { ArrayRemove(map_tickets, 0, extra); ArrayRemove(map_ids, 0, extra); }
  }

// Keeps `ticket` -> `id` in memory and appends it to the file, before anything is reported.
void Remember(const ulong ticket, const string id)
  {
   if(ticket == 0) return;
   int n = ArraySize(map_ids);
   ArrayResize(map_tickets, n + 1); ArrayResize(map_ids, n + 1);
   map_tickets[n] = ticket; map_ids[n] = id;
   int h = FileOpen(MapFile(), FILE_READ | FILE_WRITE | FILE_TXT | FILE_ANSI | FILE_SHARE_READ);
   if(h == INVALID_HANDLE) { Print("mt5bot bridge: cannot write ", MapFile(), ": ", GetLastError()); return; }
   FileSeek(h, 0, SEEK_END);
   FileWriteString(h, StringFormat("%I64u,%s\r\n", ticket, id));
   FileFlush(h);
   FileClose(h);
  }

// The order's comment as the server keeps it (active, then in history).
string CommentOfOrder(const ulong o)
  {
   if(OrderSelect(o)) return OrderGetString(ORDER_COMMENT);
   if(HistoryOrderSelect(o)) return HistoryOrderGetString(o, ORDER_COMMENT);
   return "";
  }

// mt5bot's id of an order ticket: from the tickets the EA's own orders got (this run, then the
// map file), else the comment of the order (active, then in history); "" when none.
string IdOfOrder(const ulong o)
  {
   for(int k = ArraySize(tickets) - 1; k >= 0; k--)
      if(tickets[k] == o && o != 0) return executed[k];
   for(int k = ArraySize(map_tickets) - 1; k >= 0; k--)
      if(map_tickets[k] == o && o != 0) return map_ids[k];
   if(OrderSelect(o)) return OrderGetString(ORDER_COMMENT);
   if(HistoryOrderSelect(o)) return HistoryOrderGetString(o, ORDER_COMMENT);
   return "";
  }

// How an order in history ended when it did not fill whole: "canceled", "expired", "rejected";
// "" for any other state (filled, or still being placed).
string EndedState(const ulong o)
  {
   long st = HistoryOrderGetInteger(o, ORDER_STATE);
   return st == ORDER_STATE_CANCELED ? "canceled" : st == ORDER_STATE_EXPIRED ? "expired"
        : st == ORDER_STATE_REJECTED ? "rejected" : "";
  }

// The order_closed line (or a snapshot's history entry) of an order in history.
string ClosedJson(const ulong o, const string state)
  {
   double filled = HistoryOrderGetDouble(o, ORDER_VOLUME_INITIAL) - HistoryOrderGetDouble(o, ORDER_VOLUME_CURRENT);
   return StringFormat("{\"order\":%I64u,\"id\":\"%s\",\"comment\":\"%s\",\"state\":\"%s\",\"volume_filled\":%s}",
                       o, Esc(IdOfOrder(o)), Esc(CommentOfOrder(o)), state, Num(filled));
  }

// "sl" or "tp" for a deal a broker-held stop made, else "".
string StopReason(const ulong deal)
  {
   long r = HistoryDealGetInteger(deal, DEAL_REASON);
   return r == DEAL_REASON_SL ? "sl" : r == DEAL_REASON_TP ? "tp" : "";
  }

string ResultJson(const string id, const uint rc, const ulong deal, const ulong order, const double volume,
                  const double price, const double commission, const string filling, const string comment)
  {
   string mode = filling == "" ? "" : ",\"type_filling\":\"" + filling + "\"";   // which went out, when one did
   return StringFormat("{\"type\":\"result\",\"id\":\"%s\",\"retcode\":%u,\"deal\":%I64u,\"order\":%I64u,\"volume\":%s,\"price\":%s,\"commission\":%s%s,\"comment\":\"%s\"}",
                       Esc(id), rc, deal, order, Num(volume), Num(price), Num(commission), mode, Esc(comment));
  }

// The `deal` line of deal `t` (in history) of mt5bot's order `id`.
string DealJson(const string id, const ulong t)
  {
   return StringFormat("{\"type\":\"deal\",\"id\":\"%s\",\"deal\":%I64u,\"volume\":%s,\"price\":%s,\"commission\":%s}",
                       Esc(id), t, Num(HistoryDealGetDouble(t, DEAL_VOLUME)), Num(HistoryDealGetDouble(t, DEAL_PRICE)),
                       Num(HistoryDealGetDouble(t, DEAL_COMMISSION)));
  }

// A deal that closed two opposite positions against each other (Close By): it trades nothing at
// market, so it is no fill of mt5bot's and is never reported.
bool IsCloseBy(const ulong deal) { return HistoryDealGetInteger(deal, DEAL_ENTRY) == DEAL_ENTRY_OUT_BY; }

// mt5bot's open positions on `sym` of `ptype` (POSITION_TYPE_BUY or _SELL), oldest first.
int OurPositions(const string sym, const long ptype, ulong &out[])
  {
   ArrayResize(out, 0);
   long at[];
   for(int i = 0; i < PositionsTotal(); i++)
     {
      ulong t = PositionGetTicket(i);
      if(t == 0 || PositionGetInteger(POSITION_MAGIC) != Magic || PositionGetString(POSITION_SYMBOL) != sym
         || PositionGetInteger(POSITION_TYPE) != ptype) continue;
      long when = PositionGetInteger(POSITION_TIME_MSC);
      int k = ArraySize(out);
      ArrayResize(out, k + 1); ArrayResize(at, k + 1);
      for(; k > 0 && at[k - 1] > when; k--) { out[k] = out[k - 1]; at[k] = at[k - 1]; }
      out[k] = t; at[k] = when;
     }
   return ArraySize(out);
  }

// The account's balance, for mt5bot's equity breakers.
void SendAccount()
  {
   // trade_allowed: the terminal's Algo Trading button, this EA's "Allow Algo Trading" and the
   // account's own permission; false means every order would be refused (10027 and kin).
   bool allowed = TerminalInfoInteger(TERMINAL_TRADE_ALLOWED) && MQLInfoInteger(MQL_TRADE_ALLOWED)
                  && AccountInfoInteger(ACCOUNT_TRADE_ALLOWED) && AccountInfoInteger(ACCOUNT_TRADE_EXPERT);
   Send(StringFormat("{\"type\":\"account\",\"balance\":%s,\"equity\":%s,\"margin\":%s,\"margin_free\":%s,\"currency\":\"%s\",\"trade_allowed\":%s}",
        Num(AccountInfoDouble(ACCOUNT_BALANCE)), Num(AccountInfoDouble(ACCOUNT_EQUITY)), Num(AccountInfoDouble(ACCOUNT_MARGIN)),
        Num(AccountInfoDouble(ACCOUNT_MARGIN_FREE)), Esc(AccountInfoString(ACCOUNT_CURRENCY)), allowed ? "true" : "false"));
  }

// The trading sessions of the streamed symbols as the terminal has them, in server time, and the
// server's offset from UTC: mt5bot compares them with its calendars (sessions:).
string SessionsJson()
  {
   string out = "";
   for(int i = 0; i < ArraySize(streamed); i++)
     {
      string days = "";
      for(int d = 0; d < 7; d++)
         for(uint k = 0; ; k++)
           {
            datetime from, to;
            if(!SymbolInfoSessionTrade(streamed[i], (ENUM_DAY_OF_WEEK)d, k, from, to)) break;
            days += (days == "" ? "" : ",") + StringFormat("[%d,%I64d,%I64d]", d, (long)from, (long)to);
           }
      out += (out == "" ? "" : ",") + "\"" + streamed[i] + "\":[" + days + "]";
     }
   return StringFormat("\"server_offset\":%I64d,\"sessions\":{%s}", (long)(TimeTradeServer() - TimeGMT()), out);
  }

// SYMBOL_TRADE_MODE as the protocol names it.
string TradeModeName(const string sym)
  {
   long m = SymbolInfoInteger(sym, SYMBOL_TRADE_MODE);
   return m == SYMBOL_TRADE_MODE_DISABLED ? "disabled" : m == SYMBOL_TRADE_MODE_LONGONLY ? "long_only"
        : m == SYMBOL_TRADE_MODE_SHORTONLY ? "short_only" : m == SYMBOL_TRADE_MODE_CLOSEONLY ? "close_only" : "full";
  }

// SYMBOL_FILLING_MODE's flags as a JSON list of names.
string FillingNames(const string sym)
  {
   long f = SymbolInfoInteger(sym, SYMBOL_FILLING_MODE);
   string out = (f & SYMBOL_FILLING_FOK) != 0 ? "\"fok\"" : "";
   if((f & SYMBOL_FILLING_IOC) != 0) out += (out == "" ? "" : ",") + "\"ioc\"";
   return "[" + out + "]";
  }

// The trading rules of the streamed symbols: mt5bot puts prices on the tick grid, checks volumes
// and refuses what the symbol's trade mode does not let through, before sending.
string SpecsJson()
  {
   string out = "";
   for(int i = 0; i < ArraySize(streamed); i++)
      out += (out == "" ? "" : ",") + StringFormat("\"%s\":{\"digits\":%d,\"tick_size\":%s,\"volume_min\":%s,\"volume_max\":%s,\"volume_step\":%s,\"trade_mode\":\"%s\",\"filling\":%s}",
             Esc(streamed[i]), (int)SymbolInfoInteger(streamed[i], SYMBOL_DIGITS), Num(SymbolInfoDouble(streamed[i], SYMBOL_TRADE_TICK_SIZE)),
             Num(SymbolInfoDouble(streamed[i], SYMBOL_VOLUME_MIN)), Num(SymbolInfoDouble(streamed[i], SYMBOL_VOLUME_MAX)),
             Num(SymbolInfoDouble(streamed[i], SYMBOL_VOLUME_STEP)), TradeModeName(streamed[i]), FillingNames(streamed[i]));
   return "\"specs\":{" + out + "}";
  }

void SendSnapshot()
  {
   // A day of deals can outgrow one line: they go in pages of PAGE_DEALS (about 110 bytes each,
   // well inside mt5bot's 64 KiB line), "more":true on all but the last page.
   string deals = "", orders = "", positions = "", history = "";
   int in_page = 0;
   HistorySelect(TimeCurrent() - 86400, TimeCurrent() + 60);
   // Positions mt5bot opened: a stop's closing deal may not carry the magic, its position does.
   long ours[];
   for(int i = 0; i < HistoryDealsTotal(); i++)
     {
      ulong t = HistoryDealGetTicket(i);
      if(HistoryDealGetInteger(t, DEAL_MAGIC) != Magic) continue;
      int n = ArraySize(ours); ArrayResize(ours, n + 1); ours[n] = HistoryDealGetInteger(t, DEAL_POSITION_ID);
     }
   for(int i = 0; i < HistoryDealsTotal(); i++)
     {
      ulong t = HistoryDealGetTicket(i);
      if(IsCloseBy(t)) continue;   // two of mt5bot's positions closed against each other: no fill
      string stop = StopReason(t);
      bool mine = HistoryDealGetInteger(t, DEAL_MAGIC) == Magic;
      if(!mine && stop != "")
         for(int k = 0; k < ArraySize(ours) && !mine; k++) mine = ours[k] == HistoryDealGetInteger(t, DEAL_POSITION_ID);
      if(!mine) continue;
      ulong o = HistoryDealGetInteger(t, DEAL_ORDER);
      string comment = HistoryOrderSelect(o) ? HistoryOrderGetString(o, ORDER_COMMENT) : HistoryDealGetString(t, DEAL_COMMENT);
      string id = stop == "" ? IdOfOrder(o) : "";
      string side = HistoryDealGetInteger(t, DEAL_TYPE) == DEAL_TYPE_BUY ? "buy" : "sell";
      deals += (deals == "" ? "" : ",") + StringFormat("{\"deal\":%I64u,\"id\":\"%s\",\"comment\":\"%s\",\"volume\":%s,\"price\":%s,\"symbol\":\"%s\",\"type\":\"%s\"%s}",
               t, Esc(id), stop == "" ? Esc(comment) : "", Num(HistoryDealGetDouble(t, DEAL_VOLUME)), Num(HistoryDealGetDouble(t, DEAL_PRICE)), HistoryDealGetString(t, DEAL_SYMBOL), side,
               stop == "" ? "" : ",\"reason\":\"" + stop + "\"");
      if(++in_page == PAGE_DEALS)
        {
         Send("{\"type\":\"snapshot\",\"more\":true,\"deals\":[" + deals + "],\"orders\":[],\"positions\":[]}");
         deals = "";
         in_page = 0;
        }
     }
   // Orders that ended without filling whole (cancelled, expired, rejected): mt5bot settles an
   // order in flight from these instead of taking it for one the terminal never saw.
   for(int i = 0; i < HistoryOrdersTotal(); i++)
     {
      ulong o = HistoryOrderGetTicket(i);
      if(HistoryOrderGetInteger(o, ORDER_MAGIC) != Magic) continue;
      string state = EndedState(o);
      if(state == "") continue;
      history += (history == "" ? "" : ",") + ClosedJson(o, state);
      if(++in_page == PAGE_DEALS)
        {
         Send("{\"type\":\"snapshot\",\"more\":true,\"deals\":[" + deals + "],\"history\":[" + history + "],\"orders\":[],\"positions\":[]}");
         deals = "";
         history = "";
         in_page = 0;
        }
     }
   for(int i = 0; i < OrdersTotal(); i++)
     {
      ulong t = OrderGetTicket(i);
      if(OrderGetInteger(ORDER_MAGIC) != Magic) continue;
      orders += (orders == "" ? "" : ",") + StringFormat("{\"order\":%I64u,\"id\":\"%s\",\"comment\":\"%s\",\"symbol\":\"%s\"}",
                t, Esc(IdOfOrder(t)), Esc(OrderGetString(ORDER_COMMENT)), OrderGetString(ORDER_SYMBOL));
     }
   for(int i = 0; i < PositionsTotal(); i++)
     {
      ulong t = PositionGetTicket(i);
      if(PositionGetInteger(POSITION_MAGIC) != Magic) continue;
      positions += (positions == "" ? "" : ",") + StringFormat("{\"ticket\":%I64u,\"symbol\":\"%s\",\"volume\":%s,\"type\":\"%s\"}",
                   t, PositionGetString(POSITION_SYMBOL), Num(PositionGetDouble(POSITION_VOLUME)),
                   PositionGetInteger(POSITION_TYPE) == POSITION_TYPE_BUY ? "buy" : "sell");
     }
   Send("{\"type\":\"snapshot\",\"deals\":[" + deals + "],\"history\":[" + history + "],\"orders\":[" + orders + "],\"positions\":[" + positions + "]," + SessionsJson() + "," + SpecsJson() + "}");
  }

//--- orders ---------------------------------------------------------
// If the terminal already has an order with this id (of `volume` lots), answers with its outcome
// and returns true.
bool ReportExisting(const string id, const double volume)
  {
   for(int i = 0; i < OrdersTotal(); i++)
     {
      ulong t = OrderGetTicket(i);
      if(t > 0 && OrderGetInteger(ORDER_MAGIC) == Magic && IdOfOrder(t) == id)
        { Send(StringFormat("{\"type\":\"result\",\"id\":\"%s\",\"retcode\":10008,\"order\":%I64u}", Esc(id), t)); return true; }
     }
   HistorySelect(TimeCurrent() - 86400, TimeCurrent() + 60);
   // Every deal of the order (on a hedging account, of the closes it made too): the first as its
   // result, the others as deals (mt5bot books each ticket once, so one it has already booked
   // books nothing).
   ulong order = 0, first = 0;
   double got = 0, first_vol = 0, first_px = 0;
   for(int i = 0; i < HistoryDealsTotal(); i++)
     {
      ulong t = HistoryDealGetTicket(i);
      ulong o = HistoryDealGetInteger(t, DEAL_ORDER);
      if(HistoryDealGetInteger(t, DEAL_MAGIC) != Magic || IsCloseBy(t) || IdOfOrder(o) != id) continue;
      double vol = HistoryDealGetDouble(t, DEAL_VOLUME), px = HistoryDealGetDouble(t, DEAL_PRICE);
      got += vol;
      if(first == 0)
        {
         first = t; first_vol = vol; first_px = px;
         Send(ResultJson(id, TRADE_RETCODE_DONE, t, o, vol, px, HistoryDealGetDouble(t, DEAL_COMMISSION), "", "executed before"));
        }
      else
         Send(DealJson(id, t));
      order = o;
     }
   // An order that ended at the server (cancelled, expired, rejected after placing), with or
   // without deals: its end, so mt5bot stops counting the rest in flight.
   for(int i = 0; i < HistoryOrdersTotal(); i++)
     {
      ulong o = HistoryOrderGetTicket(i);
      if(HistoryOrderGetInteger(o, ORDER_MAGIC) != Magic || IdOfOrder(o) != id) continue;
      string state = EndedState(o);
      if(state != "") { Send("{\"type\":\"order_closed\"," + StringSubstr(ClosedJson(o, state), 1)); return true; }
     }
   if(order != 0)
     {
      // Deals for less than the order, nothing working: it was cut short (a partial fill, or a
      // run of closes on a hedging account that stopped), and the rest will not come: 10010, so
      // mt5bot cancels it instead of waiting.
      if(got < volume - 0.00000001)
         Send(ResultJson(id, TRADE_RETCODE_DONE_PARTIAL, first, order, first_vol, first_px, 0, "", "the rest was not executed"));
      return true;
     }
   // Executed since start but no trace at the server (a requote, a reject): the same result again,
   // so mt5bot settles the order instead of keeping it in flight.
   for(int i = 0; i < ArraySize(executed); i++)
      if(executed[i] == id)
        { Send(results[i]); return true; }
   return false;
  }

// Sends the result line of the order just executed (index `n` of executed[]) and keeps it.
void SendResult(const int n, const string line)
  {
   if(n >= 0 && n < ArraySize(results)) results[n] = line;
   Send(line);
  }

void Execute(const string msg)
  {
   string id = Field(msg, "id"), sym = Field(msg, "symbol"), type = Field(msg, "type_order");
   double vol = StringToDouble(Field(msg, "volume")), price = StringToDouble(Field(msg, "price"));
   // The position's stop-loss and take-profit (0: none); the broker holds them.
   double sl = StringToDouble(Field(msg, "sl")), tp = StringToDouble(Field(msg, "tp"));
   if(ReportExisting(id, vol)) return;   // never twice
   int n = ArraySize(executed); ArrayResize(executed, n + 1); executed[n] = id;
   ArrayResize(results, n + 1);
   ArrayResize(tickets, n + 1);
   tickets[n] = 0;
   results[n] = ResultJson(id, 10013, 0, 0, 0, 0, 0, "", "no result was recorded");
   bool market = type == "buy" || type == "sell";
   if(!market && type != "buy_limit" && type != "sell_limit")
     {
      // Not an order type this bridge knows: refused (10013), never the previous order's result.
      SendResult(n, ResultJson(id, 10013, 0, 0, 0, 0, 0, "", "unknown type_order"));
      return;
     }
   trade.SetDeviationInPoints((ulong)StringToInteger(Field(msg, "deviation")));
   // mt5bot's filling mode when the symbol allows it, else the symbol's own (an IOC on a FOK-only
   // symbol is refused with 10030); the result says which went out.
   string f = Field(msg, "type_filling");
   ENUM_ORDER_TYPE_FILLING want = f == "fok" ? ORDER_FILLING_FOK : f == "return" ? ORDER_FILLING_RETURN : ORDER_FILLING_IOC;
   long modes = SymbolInfoInteger(sym, SYMBOL_FILLING_MODE);
   bool allowed = want == ORDER_FILLING_FOK ? (modes & SYMBOL_FILLING_FOK) != 0
                : want == ORDER_FILLING_IOC ? (modes & SYMBOL_FILLING_IOC) != 0 : true;
   if(allowed) trade.SetTypeFilling(want); else trade.SetTypeFillingBySymbol(sym);
   // mt5bot rounds to the specs of the snapshot; the EA makes sure (the server refuses a price off
   // the tick grid with 10015).
   double tick = SymbolInfoDouble(sym, SYMBOL_TRADE_TICK_SIZE);
   int digits = (int)SymbolInfoInteger(sym, SYMBOL_DIGITS);
   if(tick > 0)
     {
      if(price > 0) price = NormalizeDouble(MathRound(price / tick) * tick, digits);
      if(sl > 0) sl = NormalizeDouble(MathRound(sl / tick) * tick, digits);
      if(tp > 0) tp = NormalizeDouble(MathRound(tp / tick) * tick, digits);
     }
   // A hedging account opens a new position with every deal, so an order against mt5bot's
   // positions closes them by ticket instead, oldest first (the FIFO rule some brokers enforce),
   // and opens only what is left: the account stays net, as mt5bot's books are. Each close is a
   // deal of this id, reported as a `deal` line at once; the `result` comes last.
   ulong closed_deal = 0, closed_order = 0;
   double closed_vol = 0, closed_px = 0;
   if(hedging && market)
     {
      double step = SymbolInfoDouble(sym, SYMBOL_VOLUME_STEP);
      if(step <= 0) step = 0.00000001;
      double left = vol;
      uint stop_rc = 0;
      string stopped = "";
      ulong pos[];
      OurPositions(sym, type == "buy" ? POSITION_TYPE_SELL : POSITION_TYPE_BUY, pos);
      for(int k = 0; k < ArraySize(pos) && left >= step / 2; k++)
        {
         if(!PositionSelectByTicket(pos[k])) continue;
         double have = PositionGetDouble(POSITION_VOLUME);
         double take = MathMin(have, NormalizeDouble(MathRound(left / step) * step, 8));
         bool ok = take >= have - step / 2 ? trade.PositionClose(pos[k]) : trade.PositionClosePartial(pos[k], take);
         uint rc = trade.ResultRetcode();
         if(!ok || (rc != TRADE_RETCODE_DONE && rc != TRADE_RETCODE_DONE_PARTIAL))
           {
            // CTrade's own checks may refuse with no retcode: still a stop, never an open below.
            stop_rc = rc != 0 ? rc : TRADE_RETCODE_ERROR;
            stopped = trade.ResultComment() != "" ? trade.ResultComment() : "the close was refused before it went out";
            break;
           }
         tickets[n] = trade.ResultOrder();
         Remember(trade.ResultOrder(), id);
         double done = trade.ResultVolume() > 0 ? trade.ResultVolume() : take;
         left -= done;
         closed_order = trade.ResultOrder();
         if(trade.ResultDeal() > 0)
           {
            closed_deal = trade.ResultDeal(); closed_vol = done; closed_px = trade.ResultPrice();
            if(HistoryDealSelect(closed_deal)) Send(DealJson(id, closed_deal));
           }
         if(rc == TRADE_RETCODE_DONE_PARTIAL) { stop_rc = rc; stopped = "a close filled in part"; break; }
        }
      if(left < step / 2)
        { SendResult(n, ResultJson(id, TRADE_RETCODE_DONE, closed_deal, closed_order, closed_vol, closed_px, 0, "", "closed by ticket")); return; }
      if(stop_rc != 0)
        {
         // Nothing closed: refused with the close's retcode. Some closed: what closed stands and
         // the rest is not sent (10010: mt5bot cancels it).
         if(closed_order == 0) SendResult(n, ResultJson(id, stop_rc, 0, 0, 0, 0, 0, "", stopped));
         else SendResult(n, ResultJson(id, TRADE_RETCODE_DONE_PARTIAL, closed_deal, closed_order, closed_vol, closed_px, 0, "", "closing stopped: " + stopped));
         return;
        }
      vol = NormalizeDouble(MathRound(left / step) * step, 8);
     }
   if(type == "buy")             trade.Buy(vol, sym, 0, sl, tp, id);
   else if(type == "sell")       trade.Sell(vol, sym, 0, sl, tp, id);
   else if(type == "buy_limit")  trade.BuyLimit(vol, price, sym, sl, tp, ORDER_TIME_GTC, 0, id);
   else                          trade.SellLimit(vol, price, sym, sl, tp, ORDER_TIME_GTC, 0, id);
   uint rc = trade.ResultRetcode();
   if(trade.ResultOrder() > 0) tickets[n] = trade.ResultOrder();
   Remember(trade.ResultOrder(), id);
   ENUM_ORDER_TYPE_FILLING used = trade.RequestTypeFilling();   // what went out, after CTrade's choice
   string filling = used == ORDER_FILLING_FOK ? "fok" : used == ORDER_FILLING_IOC ? "ioc" : "return";
   if(closed_order != 0 && rc != TRADE_RETCODE_DONE && rc != TRADE_RETCODE_DONE_PARTIAL)
     {
      // Positions were closed for this order, opening the rest was refused: a partial execution.
      SendResult(n, ResultJson(id, TRADE_RETCODE_DONE_PARTIAL, closed_deal, closed_order, closed_vol, closed_px, 0, filling,
                               StringFormat("opening the rest refused: %u %s", rc, trade.ResultComment())));
      return;
     }
   // DEAL_COMMISSION of the execution (negative for a charge), for mt5bot's balance.
   double commission = trade.ResultDeal() > 0 && HistoryDealSelect(trade.ResultDeal()) ? HistoryDealGetDouble(trade.ResultDeal(), DEAL_COMMISSION) : 0;
   SendResult(n, ResultJson(id, rc, trade.ResultDeal(), trade.ResultOrder(), trade.ResultVolume(), trade.ResultPrice(),
                            commission, filling, trade.ResultComment()));
  }

// On a hedging account a filled limit order of mt5bot's opens a position even against an opposite
// one of mt5bot's. Such a pair is net, as mt5bot's books are, but holds margin and pays swaps
// twice: close them against each other (Close By, the oldest of each side first). A close-by
// trades nothing at market; its deals are never reported.
void NetHedges()
  {
   if(GetTickCount64() < net_after) return;
   for(int i = 0; i < ArraySize(streamed); i++)
     {
      if((SymbolInfoInteger(streamed[i], SYMBOL_ORDER_MODE) & SYMBOL_ORDER_CLOSEBY) == 0) continue;
      ulong buys[], sells[];
      for(int round = 0; round < 64; round++)
        {
         if(OurPositions(streamed[i], POSITION_TYPE_BUY, buys) == 0 || OurPositions(streamed[i], POSITION_TYPE_SELL, sells) == 0) break;
         if(!trade.PositionCloseBy(buys[0], sells[0]))
           {
            PrintFormat("mt5bot bridge: cannot close position %I64u by %I64u: retcode %u %s; trying again in 10 s",
                        buys[0], sells[0], trade.ResultRetcode(), trade.ResultComment());
            net_after = GetTickCount64() + 10000;
            return;
           }
        }
     }
  }

void Handle(const string msg)
  {
   string type = Field(msg, "type");
   if(type == "hello")
     {
      // On a hedging account this EA keeps mt5bot's positions net (see Execute and NetHedges)
      // and says so: closes_by_ticket.
      hedging = MarginMode() == "hedging";
      Send("{\"type\":\"auth\",\"hmac\":\"" + HmacSha256Hex(Secret, Field(msg, "challenge")) + "\",\"login\":" +
           IntegerToString(AccountInfoInteger(ACCOUNT_LOGIN)) + ",\"terminal\":\"" + Esc(AccountInfoString(ACCOUNT_SERVER)) +
           "\",\"margin_mode\":\"" + MarginMode() + "\",\"closes_by_ticket\":true}");
     }
   else if(type == "welcome")
     {
      // Orders and deals are told apart by magic: both sides must use the same.
      if(Field(msg, "magic") != "" && StringToInteger(Field(msg, "magic")) != Magic)
        {
         PrintFormat("mt5bot bridge: mt5bot's venue.mt5.magic is %s but this EA's Magic input is %I64d; set them equal", Field(msg, "magic"), Magic);
         ExpertRemove();
         return;
        }
      authed = true;
      backoff_ms = 500;
      if(Symbols == "") FieldStrings(msg, "symbols", streamed);
      else
        {
         StringSplit(Symbols, ',', streamed);
         for(int i = 0; i < ArraySize(streamed); i++) { StringTrimLeft(streamed[i]); StringTrimRight(streamed[i]); }
        }
      ArrayResize(last_msc, ArraySize(streamed)); ArrayInitialize(last_msc, 0);
      for(int i = 0; i < ArraySize(streamed); i++) SymbolSelect(streamed[i], true);
      SendSnapshot();
      SendAccount();
     }
   else if(type == "order" && authed) Execute(msg);
   else if(type == "ping") Send("{\"type\":\"pong\"}");
   else if(type == "error") Print("mt5bot bridge: mt5bot reports: ", Field(msg, "error"));
  }

void StreamTicks()
  {
   for(int i = 0; i < ArraySize(streamed); i++)
     {
      MqlTick t;
      if(!SymbolInfoTick(streamed[i], t) || t.time_msc == last_msc[i]) continue;
      last_msc[i] = t.time_msc;
      Send(StringFormat("{\"type\":\"tick\",\"symbol\":\"%s\",\"bid\":%s,\"ask\":%s,\"time_msc\":%I64d}",
           streamed[i], Num(t.bid), Num(t.ask), t.time_msc));
     }
  }

//--- events ---------------------------------------------------------
int OnInit()
  {
   if(Secret == "") { Print("mt5bot bridge: set the Secret input (CONTROLLER_SHARED_SECRET)"); return INIT_PARAMETERS_INCORRECT; }
   trade.SetExpertMagicNumber(Magic);
   LoadMap();
   // The finest timer the terminal takes: an order waits at most one tick of it before the EA
   // reads it (Windows timers run at about 10-16 ms whatever is asked).
   EventSetMillisecondTimer(1);
   return INIT_SUCCEEDED;
  }

void OnDeinit(const int reason) { EventKillTimer(); if(sock != INVALID_HANDLE) SocketClose(sock); }

void OnTick() { if(authed) StreamTicks(); }

void OnTimer()
  {
   if(sock == INVALID_HANDLE) { TryConnect(); return; }
   if(!SocketIsConnected(sock)) { Disconnect("connection lost"); return; }
   if(send_failed) { Disconnect("send failed"); return; }
   // Drain what is readable now, not one chunk per timer.
   for(uint n = Tls ? 65536 : SocketIsReadable(sock); n > 0; n = Tls ? 65536 : SocketIsReadable(sock))
     {
      uchar buf[];
      ResetLastError();
      // TLS: what has been decrypted so far, 0 when nothing (never waits).
      int got = Tls ? SocketTlsReadAvailable(sock, buf, n) : SocketRead(sock, buf, n, 100);
      if(got < 0)
        {
         // Readable may say so with nothing to read: a timeout is not a broken connection.
         if(GetLastError() == ERR_NETSOCKET_IO_ERROR_CODE) { Disconnect("read failed"); return; }
         break;
        }
      if(got == 0) break;
      last_recv = GetTickCount64();
      int have = ArraySize(inraw);
      if(have + got > MAX_INBUF) { Disconnect("a line from mt5bot longer than 16 MiB"); return; }
      ArrayResize(inraw, have + got);
      ArrayCopy(inraw, buf, have, 0, got);
      int start = 0;
      for(int i = 0; i < ArraySize(inraw); i++)
        {
         if(inraw[i] != 10) continue;
         int end = i > start && inraw[i - 1] == 13 ? i - 1 : i;   // \r\n as \n
         Handle(CharArrayToString(inraw, start, end - start, CP_UTF8));
         if(sock == INVALID_HANDLE) return;                      // Handle disconnected
         start = i + 1;
        }
      if(start > 0)
        {
         int rest = ArraySize(inraw) - start;
         uchar tail[];
         if(rest > 0) ArrayCopy(tail, inraw, 0, start, rest);
         ArrayFree(inraw);
         if(rest > 0) ArrayCopy(inraw, tail, 0, 0, rest);
        }
     }
   if(last_recv > 0 && GetTickCount64() - last_recv > (ulong)Silence * 1000)
     { Disconnect(StringFormat("nothing from mt5bot for %u s", Silence)); return; }
   if(authed) StreamTicks();
   if(authed && hedging) NetHedges();
  }

void OnTradeTransaction(const MqlTradeTransaction &tx, const MqlTradeRequest &req, const MqlTradeResult &res)
  {
   if(!authed) return;
   // An order of mt5bot's left the working list without filling whole (the broker expired or
   // cancelled it, the user cancelled it in the terminal, the server rejected it after placing it).
   if(tx.type == TRADE_TRANSACTION_HISTORY_ADD && HistoryOrderSelect(tx.order)
      && HistoryOrderGetInteger(tx.order, ORDER_MAGIC) == Magic)
     {
      string state = EndedState(tx.order);
      if(state != "")
        {
         string entry = ClosedJson(tx.order, state);
         Send("{\"type\":\"order_closed\"," + StringSubstr(entry, 1));   // entry names the id
        }
      return;
     }
   if(tx.type != TRADE_TRANSACTION_DEAL_ADD || !HistoryDealSelect(tx.deal)) return;
   if(IsCloseBy(tx.deal)) { SendAccount(); return; }
   string stop = StopReason(tx.deal);
   if(stop != "")
     {
      // A stop the broker holds closed a position; reported by ticket, with symbol and side.
      string sym = HistoryDealGetString(tx.deal, DEAL_SYMBOL);
      string side = HistoryDealGetInteger(tx.deal, DEAL_TYPE) == DEAL_TYPE_BUY ? "buy" : "sell";
      double vol = HistoryDealGetDouble(tx.deal, DEAL_VOLUME), px = HistoryDealGetDouble(tx.deal, DEAL_PRICE);
      double fee = HistoryDealGetDouble(tx.deal, DEAL_COMMISSION);
      bool mine = HistoryDealGetInteger(tx.deal, DEAL_MAGIC) == Magic;
      if(!mine && HistorySelectByPosition(HistoryDealGetInteger(tx.deal, DEAL_POSITION_ID)))
         for(int i = 0; i < HistoryDealsTotal() && !mine; i++)
            mine = HistoryDealGetInteger(HistoryDealGetTicket(i), DEAL_MAGIC) == Magic;
      if(!mine) return;
      Send(StringFormat("{\"type\":\"deal\",\"reason\":\"%s\",\"deal\":%I64u,\"symbol\":\"%s\",\"deal_type\":\"%s\",\"volume\":%s,\"price\":%s,\"commission\":%s}",
           stop, tx.deal, sym, side, Num(vol), Num(px), Num(fee)));
      SendAccount();
      return;
     }
   if(HistoryDealGetInteger(tx.deal, DEAL_MAGIC) != Magic) return;
   // Every deal of mt5bot's orders, market and limit: mt5bot books each ticket once, so one its
   // result carried already books nothing more, and a limit order's deals are reported while the
   // order is still active (not yet in history).
   string id = IdOfOrder(HistoryDealGetInteger(tx.deal, DEAL_ORDER));
   if(id != "") Send(DealJson(id, tx.deal));
   // After the deal it follows (its result was sent when the order went out): the balance
   // includes it.
   SendAccount();
  }
//+------------------------------------------------------------------+
