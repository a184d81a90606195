// The Redis Streams event bus (see include/ordinaut/redis_bus.hpp for the
// layout, delivery and outage policy).
//
// hiredis: only calls and reply types that are the same in 0.14 and 1.x
// (redisConnectWithTimeout, redisSetTimeout, redisEnableKeepAlive,
// redisAppendFormattedCommand, redisGetReply, REDIS_REPLY_* of RESP2). A redisContext is used by one thread
// at a time; the only cross-thread act is shutdown(2) on the socket of a
// subscription blocked in XREADGROUP, done under its connection mutex.
#include "ordinaut/redis_bus.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <shared_mutex>
#include <thread>
#include <optional>
#include <unordered_set>
#include <variant>
#include <vector>

#include <hiredis/hiredis.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <fmt/format.h>

#include "events/event_payload.hpp"
#include "events/sigpipe.hpp"
#include "core/strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

// ---- URL -----------------------------------------------------------------------

std::string RedisUrl::redacted() const {
  std::string auth;
  if (!password.empty()) auth = fmt::format("{}:***@", username);
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("redis://{}{}{}{}:{}/{}", auth, v6 ? "[" : "", host, v6 ? "]" : "", port, db);
}

namespace {

Error url_error(std::string_view url, std::string message) {
  Error e = make_error("invalid_redis_url", fmt::format("Redis URL \"{}\": {}", url, message));
  return e;
}

// Percent-decodes a userinfo part; nullopt when an escape is malformed.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = detail::hex_value(s[i + 1]), lo = detail::hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::optional<long> parse_decimal(std::string_view s, long min, long max) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  long value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < min || value > max) return std::nullopt;
  return value;
}

}  // namespace

Result<RedisUrl> parse_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) {
    if (url.starts_with("rediss://")) return url_error(url, "TLS (rediss://) is not supported; use redis://");
    return url_error(url, "must start with redis:// (form redis://[:password@]host:port/db)");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return url_error(url, "query strings and fragments are not supported");
  }
  RedisUrl out;
  // userinfo: everything before the last '@' (a password may contain '@' only as %40).
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (rest.find('@') != std::string_view::npos) return url_error(url, "write '@' in the password as %40");
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return url_error(url, "credentials must be \":password@\" or \"user:password@\"");
    }
    auto user = percent_decode(userinfo.substr(0, colon));
    auto pass = percent_decode(userinfo.substr(colon + 1));
    if (!user || !pass) return url_error(url, "malformed percent escape in the credentials");
    if (pass->empty()) return url_error(url, "the password is empty");
    out.username = std::move(*user);
    out.password = std::move(*pass);
  }
  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string_view path = rest.size() > authority.size() ? rest.substr(authority.size() + 1) : std::string_view{};
  std::string_view port_text;
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return url_error(url, "unterminated [IPv6] host");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return url_error(url, fmt::format("unexpected \"{}\" after the host", after));
      port_text = after.substr(1);
      if (port_text.empty()) return url_error(url, "the port after ':' is empty");
    }
  } else {
    auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return url_error(url, "the port after ':' is empty");
    }
  }
  if (out.host.empty()) return url_error(url, "the host is empty");
  for (char c : out.host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == ':')) {
      return url_error(url, fmt::format("the host \"{}\" contains '{}'", out.host, c));
    }
  }
  if (!port_text.empty()) {
    auto port = parse_decimal(port_text, 1, 65535);
    if (!port) return url_error(url, fmt::format("the port \"{}\" is not a number from 1 to 65535", port_text));
    out.port = static_cast<int>(*port);
  }
  if (!path.empty()) {
    auto db = parse_decimal(path, 0, 1000000);
    if (!db) return url_error(url, fmt::format("the database \"{}\" is not a number from 0 to 1000000", path));
    out.db = static_cast<int>(*db);
  }
  return out;
}

// ---- hiredis plumbing ------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* c) const {
    if (c != nullptr) redisFree(c);
  }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

timeval to_timeval(milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::string_view text(const redisReply* r) {
  if (r == nullptr || r->str == nullptr) return {};
  return {r->str, r->len};
}

bool is_error(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_ERROR; }
bool is_array(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_ARRAY; }

// Commands in the Redis protocol (RESP), written straight into one buffer:
// cheaper than hiredis' formatting per command, and a whole pipeline is handed
// to hiredis at once (redisAppendFormattedCommand).
class Wire {
 public:
  void begin(std::size_t argc) {
    out_ += '*';
    number(argc);
    out_ += "\r\n";
    ++commands_;
  }
  Wire& arg(std::string_view a) {
    out_ += '$';
    number(a.size());
    out_ += "\r\n";
    out_.append(a);
    out_ += "\r\n";
    return *this;
  }
  Wire& command(std::initializer_list<std::string_view> args) {
    begin(args.size());
    for (auto a : args) arg(a);
    return *this;
  }
  void reserve(std::size_t bytes) { out_.reserve(bytes); }
  const std::string& bytes() const { return out_; }
  std::size_t commands() const { return commands_; }

 private:
  void number(std::size_t n) {
    char digits[24];
    out_.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
  }
  std::string out_;
  std::size_t commands_ = 0;
};

// One command whose arguments are added one by one.
class Command {
 public:
  Command(std::initializer_list<std::string_view> args) : args_(args) {}
  Command& add(std::string_view a) {
    args_.push_back(a);
    return *this;
  }
  void write_to(Wire& wire) const {
    wire.begin(args_.size());
    for (auto a : args_) wire.arg(a);
  }

 private:
  std::vector<std::string_view> args_;  // borrowed until written
};

// An I/O failure: the connection is unusable afterwards.
struct IoError {
  std::string message;
};

// Queues commands on `c` and reads their replies in order (one round trip).
// Error replies are returned as replies; only I/O failures are errors.
std::variant<std::vector<Reply>, IoError> pipeline(redisContext* c, const Wire& wire) {
  detail::SigpipeGuard no_sigpipe;  // a reset connection must not end the process
  if (redisAppendFormattedCommand(c, wire.bytes().data(), wire.bytes().size()) != REDIS_OK) {
    return IoError{c->errstr[0] ? c->errstr : "cannot queue the command"};
  }
  std::vector<Reply> replies;
  replies.reserve(wire.commands());
  for (std::size_t i = 0; i < wire.commands(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
      return IoError{c->errstr[0] ? c->errstr : "connection closed"};
    }
    replies.emplace_back(static_cast<redisReply*>(raw));
  }
  return replies;
}

std::variant<std::vector<Reply>, IoError> pipeline(redisContext* c, const std::vector<Command>& commands) {
  Wire wire;
  for (const auto& cmd : commands) cmd.write_to(wire);
  return pipeline(c, wire);
}

std::variant<Reply, IoError> run(redisContext* c, const Command& cmd) {
  Wire wire;
  cmd.write_to(wire);
  auto r = pipeline(c, wire);
  if (auto* io = std::get_if<IoError>(&r)) return std::move(*io);
  return std::move(std::get<0>(r)[0]);
}

std::mt19937_64& rng() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return generator;
}

std::string random_hex(int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += fmt::format("{:02x}", static_cast<unsigned>(rng()() & 0xff));
  return out;
}

// A random delay up to initial × 2^failures, capped ("full jitter").
milliseconds backoff_delay(const RedisBusOptions& o, int failures) {
  const auto cap = std::min<std::int64_t>(o.backoff_max.count(),
                                          o.backoff_initial.count() << std::min(failures, 20));
  std::uniform_int_distribution<std::int64_t> pick(std::min<std::int64_t>(1, cap), std::max<std::int64_t>(cap, 1));
  return milliseconds(pick(rng()));
}

// ---- Link: connecting, and the shared connection state ---------------------------

class Link {
 public:
  Link(const RedisBusOptions& options, RedisUrl url) : options_(options), url_(std::move(url)) {}

  const RedisUrl& url() const { return url_; }
  const RedisBusOptions& options() const { return options_; }

  // Connects, authenticates and selects the database. Error codes:
  // "bus_unavailable" (network), "redis_auth_failed", "redis_error".
  Result<Context> connect(milliseconds read_timeout) const {
    Context c(redisConnectWithTimeout(url_.host.c_str(), url_.port, to_timeval(options_.connect_timeout)));
    if (!c) return make_error("bus_unavailable", "cannot allocate a Redis connection");
    if (c->err) {
      return make_error("bus_unavailable",
                        fmt::format("cannot connect to Redis at {}:{}: {}", url_.host, url_.port, c->errstr));
    }
    redisSetTimeout(c.get(), to_timeval(read_timeout));
    redisEnableKeepAlive(c.get());
    if (!url_.password.empty()) {
      Command auth{"AUTH"};
      if (!url_.username.empty()) auth.add(url_.username);
      auth.add(url_.password);
      auto r = run(c.get(), std::move(auth));
      if (auto* io = std::get_if<IoError>(&r)) return make_error("bus_unavailable", "Redis AUTH: " + io->message);
      if (is_error(std::get<0>(r).get())) {
        return make_error("redis_auth_failed",
                          fmt::format("Redis at {} refused the credentials: {}", url_.redacted(),
                                      text(std::get<0>(r).get())));
      }
    }
    if (url_.db != 0) {
      std::string db = std::to_string(url_.db);
      auto r = run(c.get(), Command{"SELECT", db});
      if (auto* io = std::get_if<IoError>(&r)) return make_error("bus_unavailable", "Redis SELECT: " + io->message);
      if (is_error(std::get<0>(r).get())) {
        return make_error("redis_error", fmt::format("Redis SELECT {} failed: {}", db, text(std::get<0>(r).get())));
      }
    }
    return c;
  }

  void success() {
    std::lock_guard lock(mutex_);
    if (!connected_) {
      if (failed_before_) ++reconnects_;
      connected_ = true;
    }
    failures_ = 0;
    retry_at_ = Clock::time_point{};
  }

  void failure(const std::string& error) {
    std::lock_guard lock(mutex_);
    connected_ = false;
    failed_before_ = true;
    last_error_ = error;
    last_error_ms_ = detail::now_ms();
    ++failures_;
    retry_at_ = Clock::now() + backoff_delay(options_, failures_);
    generation_.fetch_add(1);
  }

  // While in backoff after a failure, callers fail fast instead of connecting.
  std::optional<Error> backoff_error() const {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    if (connected_ || now >= retry_at_) return std::nullopt;
    return make_error("bus_unavailable",
                      fmt::format("Redis at {} is unreachable ({}); next attempt in {} ms", url_.redacted(),
                                  last_error_,
                                  std::chrono::duration_cast<milliseconds>(retry_at_ - now).count()));
  }

  std::uint64_t generation() const { return generation_.load(); }

  void describe(Json& doc) const {
    auto& a = doc.GetAllocator();
    std::lock_guard lock(mutex_);
    doc.AddMember("connected", connected_, a);
    doc.AddMember("reconnects", reconnects_, a);
    doc.AddMember("last_error", last_error_.empty() ? JsonValue() : JsonValue(last_error_.c_str(), a), a);
    doc.AddMember("last_error_time",
                  last_error_ms_ == 0 ? JsonValue() : JsonValue(detail::rfc3339(last_error_ms_).c_str(), a), a);
  }

  bool connected() const {
    std::lock_guard lock(mutex_);
    return connected_;
  }

 private:
  const RedisBusOptions options_;
  const RedisUrl url_;
  mutable std::mutex mutex_;
  bool connected_ = false;
  bool failed_before_ = false;
  std::uint64_t reconnects_ = 0;
  std::string last_error_;
  std::int64_t last_error_ms_ = 0;
  int failures_ = 0;
  Clock::time_point retry_at_{};
  std::atomic<std::uint64_t> generation_{0};
};

// ---- Pool of publisher connections -------------------------------------------------

struct Lease {
  Context context;
  std::uint64_t generation = 0;
};

// A pooled connection whose peer closed it (a restarted Redis) is readable
// while idle; it is dropped instead of failing the next command.
bool looks_alive(redisContext* c) {
  if (c->err) return false;
  pollfd p{c->fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

class Pool {
 public:
  explicit Pool(Link& link) : link_(link) {}

  Result<Lease> acquire() {
    {
      std::lock_guard lock(mutex_);
      while (!idle_.empty()) {
        Lease lease = std::move(idle_.back());
        idle_.pop_back();
        if (lease.generation == link_.generation() && looks_alive(lease.context.get())) return lease;
      }
    }
    if (auto e = link_.backoff_error()) return *e;
    const auto generation = link_.generation();
    auto c = link_.connect(link_.options().command_timeout);
    if (!c) {
      link_.failure(c.error().message);
      return c.error();
    }
    link_.success();
    return Lease{std::move(*c), generation};
  }

  void release(Lease lease) {
    std::lock_guard lock(mutex_);
    if (idle_.size() < 64) idle_.push_back(std::move(lease));
  }

  void clear() {
    std::lock_guard lock(mutex_);
    idle_.clear();
  }

 private:
  Link& link_;
  std::mutex mutex_;
  std::vector<Lease> idle_;
};

// ---- Group commit of publishes -----------------------------------------------------

// Concurrent publishers share round trips: the first to arrive becomes the
// leader and sends, on one pooled connection, its commands and those of every
// publisher queued meanwhile, as one pipeline; the others wait for their
// replies. A lone publisher pays one round trip, as with a plain command;
// under concurrency Redis gets fewer, larger reads. A leader serves one round
// and hands over, so nobody waits behind an endless stream of others.
class GroupCommit {
 public:
  GroupCommit(Link& link, Pool& pool) : link_(link), pool_(pool) {}

  struct Outcome {
    std::vector<Reply> replies;  // one per command of the wire, when ok
    std::optional<Error> error;  // "bus_unavailable"
  };

  Outcome send(const Wire& wire) {
    Request request{&wire, {}};
    std::unique_lock lock(mutex_);
    queue_.push_back(&request);
    turn_.wait(lock, [&] { return request.done || !leading_; });
    if (!request.done) {
      leading_ = true;
      std::vector<Request*> batch;
      batch.swap(queue_);
      lock.unlock();
      run(batch);
      lock.lock();
      for (Request* r : batch) r->done = true;
      leading_ = false;
      lock.unlock();
      turn_.notify_all();
    }
    return std::move(request.outcome);
  }

 private:
  struct Request {
    const Wire* wire;
    Outcome outcome;
    bool done = false;
  };

  void run(std::vector<Request*>& batch) {
    auto lease = pool_.acquire();
    if (!lease) {
      for (Request* r : batch) r->outcome.error = lease.error();
      return;
    }
    redisContext* c = lease->context.get();
    std::optional<std::string> io_error;
    detail::SigpipeGuard no_sigpipe;  // a reset connection must not end the process
    for (Request* r : batch) {
      const std::string& bytes = r->wire->bytes();
      if (redisAppendFormattedCommand(c, bytes.data(), bytes.size()) != REDIS_OK) {
        io_error = c->errstr[0] ? c->errstr : "cannot queue the command";
        break;
      }
    }
    for (Request* r : batch) {
      r->outcome.replies.reserve(r->wire->commands());
      for (std::size_t i = 0; !io_error && i < r->wire->commands(); ++i) {
        void* raw = nullptr;
        if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
          io_error = c->errstr[0] ? c->errstr : "connection closed";
          break;
        }
        r->outcome.replies.emplace_back(static_cast<redisReply*>(raw));
      }
      if (io_error) {
        // The outcome of what was sent is unknown: report it as not acknowledged.
        r->outcome.replies.clear();
        r->outcome.error = make_error("bus_unavailable", fmt::format("Redis at {}: publish failed: {}",
                                                                     link_.url().redacted(), *io_error));
      }
    }
    if (io_error) {
      link_.failure("publish: " + *io_error);
      return;  // the connection is dropped with the lease
    }
    pool_.release(std::move(*lease));
  }

  Link& link_;
  Pool& pool_;
  std::mutex mutex_;
  std::condition_variable turn_;
  bool leading_ = false;
  std::vector<Request*> queue_;
};

// ---- Subscriptions ---------------------------------------------------------------

struct StreamStats {
  std::string stream;
  std::string topic;
  std::int64_t pending = 0;
  std::int64_t lag = -1;  // -1: unknown (Redis < 7)
  std::string last_delivered_id;
};

struct Totals {
  std::atomic<std::uint64_t> delivered{0}, failed{0}, retried{0}, reclaimed{0}, dropped{0};
};

struct RedisSubscription {
  std::uint64_t id = 0;
  std::string subscriber;
  std::string pattern;
  std::string group_label;   // as the subscriber named it; "" for a private group
  std::string group;         // the Redis consumer group
  std::string consumer;
  std::string start_id;      // where groups on newly found streams begin
  EventHandler handler;
  std::thread worker;
  std::atomic<bool> stop{false};

  // Worker-only: streams joined (key → topic), keys whose group must be re-made.
  std::map<std::string, std::string> streams;

  // The worker's connection, for stop(): shut down only while blocked reading.
  std::mutex conn_mutex;
  redisContext* active = nullptr;
  bool blocked = false;
  std::condition_variable wake;  // interrupts pauses (backoff, retry, idle)

  Totals totals;
  mutable std::mutex stats_mutex;
  std::vector<StreamStats> stats;
  std::string last_error;
  bool connected = false;
  bool last_connect_failed = false;
  std::uint64_t reconnects = 0;
};

class RedisEventBus final : public EventBus {
 public:
  RedisEventBus(const RedisBusOptions& options, RedisUrl url)
      : options_(options), link_(options, std::move(url)), pool_(link_), commits_(link_, pool_) {
    streams_prefix_ = options_.key_prefix + "events:";
    registry_key_ = options_.key_prefix + "topics";
    max_len_ = std::to_string(options_.max_stream_length);
    if (options_.consumer_name.empty()) {
      char host[256] = {};
      if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "host");
      options_.consumer_name = fmt::format("{}:{}", host, ::getpid());
    }
    monitor_ = std::thread([this] { monitor(); });
  }

  ~RedisEventBus() override { shutdown(); }

  // Connects once so that bad credentials fail creation; an unreachable
  // server does not.
  Result<void> probe() {
    auto c = link_.connect(options_.command_timeout);
    if (!c) {
      if (c.error().code != "bus_unavailable") return c.error();
      link_.failure(c.error().message);
      return {};
    }
    link_.success();
    pool_.release(Lease{std::move(*c), link_.generation()});
    return {};
  }

  Result<std::string> publish(std::string_view topic, std::string_view source, const JsonValue& payload) override {
    EventDraft draft{topic, payload};
    auto ids = publish_drafts(source, &draft, 1);
    if (!ids) return ids.error();
    return std::move((*ids)[0]);
  }

  Result<std::vector<std::string>> publish_batch(std::string_view source,
                                                 const std::vector<EventDraft>& events) override {
    if (events.empty()) return std::vector<std::string>{};
    return publish_drafts(source, events.data(), events.size());
  }

  Result<std::uint64_t> subscribe(std::string_view subscriber, std::string_view pattern, EventHandler handler,
                                  const SubscribeOptions& options) override {
    if (auto v = validate_pattern(pattern); !v) return v.error();
    if (!handler) return make_error("invalid_handler", "event handler is empty");
    if (stopped_.load()) return make_error("bus_stopped", "the event bus is shut down");
    auto sub = std::make_shared<RedisSubscription>();
    sub->subscriber = subscriber;
    sub->pattern = pattern;
    sub->handler = std::move(handler);
    sub->group_label = options.group;
    {
      std::lock_guard lock(mutex_);
      sub->id = next_id_++;
    }
    sub->group = options.group.empty()
                     ? fmt::format("{}sub:{}:{}", options_.key_prefix, subscriber, random_hex(8))
                     : fmt::format("{}group:{}:{}:{}", options_.key_prefix, subscriber, options.group, pattern);
    // Consumer names must differ between buses of one process too: two members
    // under one name would share (and re-read) each other's pending entries.
    static std::atomic<std::uint64_t> consumer_sequence{0};
    sub->consumer = options.consumer.empty()
                        ? fmt::format("{}:{}", options_.consumer_name, consumer_sequence.fetch_add(1) + 1)
                        : options.consumer;
    // The subscription starts now by Redis' clock (which also stamps the ids),
    // and joins its current streams before returning.
    auto lease = pool_.acquire();
    if (!lease) return lease.error();
    auto time = run(lease->context.get(), Command{"TIME"});
    if (auto* io = std::get_if<IoError>(&time)) return io_failure("TIME", io->message);
    const redisReply* t = std::get<0>(time).get();
    if (!is_array(t) || t->elements != 2) return make_error("redis_error", "unexpected reply to TIME");
    const long long ms = std::atoll(t->element[0]->str) * 1000 + std::atoll(t->element[1]->str) / 1000;
    // Streams that match now start at their end ("$"). A topic that is not in
    // the registry yet (read after TIME) gets its first entry after this point:
    // its group starts just before this millisecond (ids greater than the
    // start are delivered, so "<ms>-0" is included).
    sub->start_id = fmt::format("{}-{}", ms - 1, std::numeric_limits<std::uint64_t>::max());
    if (auto err = discover(*sub, lease->context.get(), Discovery::initial)) {
      if (err->code == "bus_unavailable") {
        link_.failure(err->message);
        return *err;
      }
      pool_.release(std::move(*lease));
      return *err;
    }
    pool_.release(std::move(*lease));
    {
      std::lock_guard lock(mutex_);
      if (stopped_.load()) return make_error("bus_stopped", "the event bus is shut down");
      sub->worker = std::thread([this, s = sub.get()] { worker(*s); });
      subs_.emplace(sub->id, sub);
    }
    return sub->id;
  }

  void unsubscribe(std::uint64_t id) override {
    std::shared_ptr<RedisSubscription> sub;
    {
      std::lock_guard lock(mutex_);
      auto it = subs_.find(id);
      if (it == subs_.end()) return;
      sub = it->second;
      subs_.erase(it);
    }
    stop(sub);
  }

  void unsubscribe_all(std::string_view subscriber) override {
    std::vector<std::uint64_t> ids;
    {
      std::lock_guard lock(mutex_);
      for (auto& [id, s] : subs_) {
        if (s->subscriber == subscriber) ids.push_back(id);
      }
    }
    for (auto id : ids) unsubscribe(id);
  }

  Json health() const override {
    Json doc = json::object();
    auto& a = doc.GetAllocator();
    doc.AddMember("kind", "redis", a);
    doc.AddMember("url", JsonValue(link_.url().redacted().c_str(), a), a);
    doc.AddMember("key_prefix", JsonValue(options_.key_prefix.c_str(), a), a);
    link_.describe(doc);
    doc.AddMember("published", published_.load(), a);
    doc.AddMember("publish_errors", publish_errors_.load(), a);
    doc.AddMember("delivered", totals_.delivered.load(), a);
    doc.AddMember("failed", totals_.failed.load(), a);
    doc.AddMember("retried", totals_.retried.load(), a);
    doc.AddMember("reclaimed", totals_.reclaimed.load(), a);
    doc.AddMember("dropped", totals_.dropped.load(), a);
    std::lock_guard lock(mutex_);
    doc.AddMember("subscriptions", static_cast<std::uint64_t>(subs_.size()), a);
    doc.AddMember("max_stream_length", static_cast<std::uint64_t>(options_.max_stream_length), a);
    return doc;
  }

  Json subscriber_health(std::string_view subscriber) const override {
    Json doc;
    doc.SetArray();
    auto& a = doc.GetAllocator();
    std::vector<std::shared_ptr<RedisSubscription>> subs;
    {
      std::lock_guard lock(mutex_);
      for (auto& [id, s] : subs_) {
        if (s->subscriber == subscriber) subs.push_back(s);
      }
    }
    for (const auto& s : subs) {
      JsonValue o(rapidjson::kObjectType);
      o.AddMember("id", s->id, a);
      o.AddMember("pattern", JsonValue(s->pattern.c_str(), a), a);
      o.AddMember("group", JsonValue(s->group_label.c_str(), a), a);
      o.AddMember("consumer", JsonValue(s->consumer.c_str(), a), a);
      o.AddMember("redis_group", JsonValue(s->group.c_str(), a), a);
      JsonValue streams(rapidjson::kArrayType);
      std::int64_t pending = 0, lag = 0;
      bool lag_known = true;
      {
        std::lock_guard lock(s->stats_mutex);
        for (const auto& st : s->stats) {
          JsonValue x(rapidjson::kObjectType);
          x.AddMember("stream", JsonValue(st.stream.c_str(), a), a);
          x.AddMember("topic", JsonValue(st.topic.c_str(), a), a);
          x.AddMember("pending", st.pending, a);
          x.AddMember("lag", st.lag < 0 ? JsonValue() : JsonValue(st.lag), a);
          x.AddMember("last_delivered_id", JsonValue(st.last_delivered_id.c_str(), a), a);
          streams.PushBack(x, a);
          pending += st.pending;
          if (st.lag < 0) lag_known = false;
          lag += std::max<std::int64_t>(st.lag, 0);
        }
        o.AddMember("connected", s->connected, a);
        o.AddMember("reconnects", s->reconnects, a);
        o.AddMember("last_error", s->last_error.empty() ? JsonValue() : JsonValue(s->last_error.c_str(), a), a);
      }
      o.AddMember("streams", streams, a);
      o.AddMember("pending", pending, a);
      o.AddMember("lag", lag_known ? JsonValue(lag) : JsonValue(), a);
      o.AddMember("delivered", s->totals.delivered.load(), a);
      o.AddMember("failed", s->totals.failed.load(), a);
      o.AddMember("retried", s->totals.retried.load(), a);
      o.AddMember("reclaimed", s->totals.reclaimed.load(), a);
      o.AddMember("dropped", s->totals.dropped.load(), a);
      doc.PushBack(o, a);
    }
    return doc;
  }

  void shutdown() override {
    if (stopped_.exchange(true)) return;
    std::map<std::uint64_t, std::shared_ptr<RedisSubscription>> subs;
    {
      std::lock_guard lock(mutex_);
      subs.swap(subs_);
    }
    for (auto& [id, s] : subs) stop(s);
    {
      std::lock_guard lock(monitor_mutex_);
      monitor_stop_ = true;
    }
    monitor_wake_.notify_all();
    if (monitor_.joinable()) monitor_.join();
    std::vector<std::pair<std::thread, std::shared_ptr<RedisSubscription>>> orphans;
    {
      std::lock_guard lock(mutex_);
      orphans.swap(orphans_);
    }
    for (auto& [thread, sub] : orphans) {
      if (thread.get_id() == std::this_thread::get_id()) {
        thread.detach();
      } else {
        thread.join();
      }
    }
    pool_.clear();
  }

 private:
  Error io_failure(std::string_view what, const std::string& message) {
    std::string m = fmt::format("Redis at {}: {} failed: {}", link_.url().redacted(), what, message);
    link_.failure(m);
    return make_error("bus_unavailable", std::move(m));
  }

  Result<std::vector<std::string>> publish_drafts(std::string_view source, const EventDraft* drafts,
                                                  std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      if (auto v = validate_topic(drafts[i].topic); !v) return v.error();
    }
    if (stopped_.load()) return make_error("bus_stopped", "the event bus is shut down");
    char time_digits[24];
    const std::string_view time(time_digits,
                                std::to_chars(time_digits, time_digits + sizeof time_digits, detail::now_ms()).ptr -
                                    time_digits);
    std::vector<std::string> new_topics;
    {
      std::lock_guard lock(registered_mutex_);
      if (registered_generation_ != link_.generation()) {
        registered_.clear();  // Redis may have lost the registry: announce again
        registered_generation_ = link_.generation();
      }
      for (std::size_t i = 0; i < count; ++i) {
        if (i > 0 && drafts[i].topic == drafts[i - 1].topic) continue;
        if (registered_.find(drafts[i].topic) == registered_.end() &&
            std::find(new_topics.begin(), new_topics.end(), drafts[i].topic) == new_topics.end()) {
          new_topics.emplace_back(drafts[i].topic);
        }
      }
    }
    Wire wire;
    wire.reserve(count * 160);
    if (!new_topics.empty()) {
      wire.begin(2 + new_topics.size());
      wire.arg("SADD").arg(registry_key_);
      for (const auto& t : new_topics) wire.arg(t);
    }
    std::string key = streams_prefix_;
    rapidjson::StringBuffer body;
    for (std::size_t i = 0; i < count; ++i) {
      key.resize(streams_prefix_.size());
      key.append(drafts[i].topic);
      body.Clear();
      rapidjson::Writer<rapidjson::StringBuffer> writer(body);
      drafts[i].payload.Accept(writer);
      wire.command({"XADD", key, "MAXLEN", "~", max_len_, "*", "topic", drafts[i].topic, "source", source, "time",
                    time, "payload", std::string_view(body.GetString(), body.GetSize())});
    }
    auto outcome = commits_.send(wire);
    if (outcome.error) {
      publish_errors_.fetch_add(count);
      return *outcome.error;
    }
    auto& replies = outcome.replies;
    std::size_t first = new_topics.empty() ? 0 : 1;
    // A refused SADD leaves the topics unannounced; the next publish tries again.
    if (first == 1 && is_error(replies[0].get())) new_topics.clear();
    std::vector<std::string> ids;
    ids.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      const redisReply* r = replies[first + i].get();
      if (r == nullptr || r->type != REDIS_REPLY_STRING) {
        publish_errors_.fetch_add(count - i);
        published_.fetch_add(i);
        // A server that is loading its data or has lost its master is unavailable
        // for now; anything else (WRONGTYPE, OOM, ...) is an error of this call.
        const bool transient = is_error(r) && (text(r).starts_with("LOADING") || text(r).starts_with("MASTERDOWN") ||
                                               text(r).starts_with("TRYAGAIN") || text(r).starts_with("BUSY"));
        return make_error(transient ? "bus_unavailable" : "redis_error",
                          fmt::format("XADD {}{} failed{}: {}", streams_prefix_, drafts[i].topic,
                                                     i ? fmt::format(" after {} of {} events were published", i, count)
                                                       : "",
                                                     is_error(r) ? text(r) : "unexpected reply"));
      }
      ids.emplace_back(text(r));
    }
    published_.fetch_add(count);
    if (!new_topics.empty()) {
      std::lock_guard lock(registered_mutex_);
      for (auto& t : new_topics) registered_.insert(std::move(t));
    }
    return ids;
  }

  // Joins the streams that match the subscription (creating its group on each);
  // runs on `c`, the caller's connection. Returns an error on I/O failure
  // ("bus_unavailable"); a refusal by Redis is recorded in last_error.
  // initial: in subscribe(); streams that exist now start at their end ("$").
  // later: streams found since start at the subscription's time.
  // rebuild: after a reconnect or NOGROUP; a stream already joined whose group
  // is gone was recreated (Redis restarted empty) and is read from "0".
  enum class Discovery { initial, later, rebuild };

  std::optional<Error> discover(RedisSubscription& s, redisContext* c, Discovery mode) {
    const bool recreate = mode == Discovery::rebuild;
    std::vector<std::string> topics;
    const bool exact = s.pattern != "*" && !s.pattern.ends_with(".*");
    if (exact) {
      topics.push_back(s.pattern);
    } else {
      auto r = run(c, Command{"SMEMBERS", registry_key_});
      if (auto* io = std::get_if<IoError>(&r)) return make_error("bus_unavailable", "SMEMBERS: " + io->message);
      const redisReply* members = std::get<0>(r).get();
      if (is_array(members)) {
        for (std::size_t i = 0; i < members->elements; ++i) {
          std::string_view t = text(members->element[i]);
          if (topic_matches(s.pattern, t)) topics.emplace_back(t);
        }
      }
    }
    std::vector<Command> creates;
    std::vector<std::string> keys;
    keys.reserve(topics.size());
    for (const auto& t : topics) {
      std::string key = streams_prefix_ + t;
      if (!recreate && s.streams.count(key)) continue;
      keys.push_back(std::move(key));
    }
    if (keys.empty()) return std::nullopt;
    for (const auto& key : keys) {
      std::string_view start = mode == Discovery::initial ? std::string_view("$")
                               : s.streams.count(key)     ? std::string_view("0")
                                                          : std::string_view(s.start_id);
      creates.push_back(Command{"XGROUP", "CREATE", key, s.group, start, "MKSTREAM"});
    }
    auto r = pipeline(c, creates);
    if (auto* io = std::get_if<IoError>(&r)) return make_error("bus_unavailable", "XGROUP CREATE: " + io->message);
    auto& replies = std::get<0>(r);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const redisReply* reply = replies[i].get();
      if (is_error(reply) && !text(reply).starts_with("BUSYGROUP")) {
        // E.g. WRONGTYPE: the key is not a stream. Recorded; retried at the next discovery.
        set_error(s, fmt::format("XGROUP CREATE {} {}: {}", keys[i], s.group, text(reply)));
        continue;
      }
      s.streams[keys[i]] = keys[i].substr(streams_prefix_.size());
    }
    {
      std::lock_guard lock(s.stats_mutex);
      for (const auto& [key, topic] : s.streams) {
        if (std::none_of(s.stats.begin(), s.stats.end(), [&](const StreamStats& st) { return st.stream == key; })) {
          s.stats.push_back(StreamStats{key, topic, 0, -1, ""});
        }
      }
    }
    return std::nullopt;
  }

  static void set_error(RedisSubscription& s, std::string message) {
    std::lock_guard lock(s.stats_mutex);
    s.last_error = std::move(message);
  }

  // Sleeps up to `d`, or until the subscription is stopped.
  static void pause(RedisSubscription& s, milliseconds d) {
    std::unique_lock lock(s.conn_mutex);
    s.wake.wait_for(lock, d, [&] { return s.stop.load(); });
  }

  void stop(const std::shared_ptr<RedisSubscription>& s) {
    {
      std::lock_guard lock(s->conn_mutex);
      s->stop.store(true);
      // Unblock XREADGROUP BLOCK at once instead of waiting out its timeout.
      if (s->blocked && s->active != nullptr) ::shutdown(s->active->fd, SHUT_RDWR);
    }
    s->wake.notify_all();
    if (!s->worker.joinable()) return;
    if (s->worker.get_id() == std::this_thread::get_id()) {
      std::lock_guard lock(mutex_);  // a handler cancelled itself; shutdown() joins it
      orphans_.emplace_back(std::move(s->worker), s);
    } else {
      s->worker.join();
    }
  }

  // Delivers one entry (fields: the entry's field array, or nil when the entry
  // was trimmed). Returns true when it may be acknowledged.
  bool deliver(RedisSubscription& s, const std::string& key, std::string_view id, const redisReply* fields,
               long long earlier_deliveries) {
    if (!is_array(fields)) {
      s.totals.dropped.fetch_add(1);
      totals_.dropped.fetch_add(1);
      set_error(s, fmt::format("entry {} of {} was trimmed before it was handled", id, key));
      return true;
    }
    Event event;
    event.id = id;
    std::string_view payload_text;
    bool has_payload = false;
    for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
      std::string_view name = text(fields->element[i]), value = text(fields->element[i + 1]);
      if (name == "topic") {
        event.topic = value;
      } else if (name == "source") {
        event.source = value;
      } else if (name == "time") {
        std::from_chars(value.data(), value.data() + value.size(), event.time_ms);
      } else if (name == "payload") {
        payload_text = value;
        has_payload = true;
      }
    }
    if (event.topic.empty()) event.topic = key.substr(streams_prefix_.size());
    auto payload = has_payload ? detail::parse_payload(payload_text)
                               : Result<std::shared_ptr<const Json>>(make_error("invalid_event", "no payload field"));
    if (!payload) {
      s.totals.failed.fetch_add(1);
      totals_.failed.fetch_add(1);
      set_error(s, fmt::format("entry {} of {} is not an Ordinaut event: {}", id, key, payload.error().message));
      return true;
    }
    event.payload = std::move(*payload);
    if (earlier_deliveries >= options_.max_attempts) {
      s.totals.failed.fetch_add(1);
      totals_.failed.fetch_add(1);
      set_error(s, fmt::format("event {} on {} given up after {} deliveries", id, event.topic, earlier_deliveries));
      return true;
    }
    auto delay = options_.retry_delay;
    for (long long attempt = earlier_deliveries + 1;; ++attempt) {
      std::string error;
      try {
        s.handler(event);
        s.totals.delivered.fetch_add(1, std::memory_order_relaxed);
        totals_.delivered.fetch_add(1, std::memory_order_relaxed);
        return true;
      } catch (const std::exception& e) {
        error = e.what();
      } catch (...) {
        error = "handler threw a non-standard exception";
      }
      set_error(s, fmt::format("event {} on {}: {}", id, event.topic, error));
      if (s.stop.load()) return false;  // stays pending: redelivered to the group later
      if (attempt >= options_.max_attempts) {
        s.totals.failed.fetch_add(1);
        totals_.failed.fetch_add(1);
        return true;
      }
      s.totals.retried.fetch_add(1);
      totals_.retried.fetch_add(1);
      pause(s, delay);
      if (s.stop.load()) return false;
      delay *= 2;
    }
  }

  // Handles an XREADGROUP/XCLAIM reply of entries for `key`; acknowledges what
  // was handled. Returns false on I/O failure.
  bool handle_entries(RedisSubscription& s, redisContext* c, const std::string& key, const redisReply* entries,
                      const std::map<std::string, long long>* deliveries = nullptr) {
    if (!is_array(entries) || entries->elements == 0) return true;
    Command ack{"XACK", key, s.group};
    std::vector<std::string> ids;
    ids.reserve(entries->elements);
    for (std::size_t i = 0; i < entries->elements; ++i) {
      const redisReply* entry = entries->element[i];
      if (!is_array(entry) || entry->elements < 2) continue;  // nil: deleted entry (older XCLAIM)
      std::string id(text(entry->element[0]));
      long long earlier = 0;
      if (deliveries != nullptr) {
        if (auto it = deliveries->find(id); it != deliveries->end()) earlier = it->second;
      }
      if (s.stop.load()) break;
      if (deliver(s, key, id, entry->element[1], earlier)) ids.push_back(std::move(id));
    }
    if (ids.empty()) return true;
    for (const auto& id : ids) ack.add(id);
    auto r = run(c, std::move(ack));
    if (auto* io = std::get_if<IoError>(&r)) {
      set_error(s, "XACK: " + io->message);
      return false;
    }
    return true;
  }

  // Runs XREADGROUP over the subscription's streams. `pending` re-reads this
  // consumer's own unacknowledged entries (id 0) instead of new ones (">").
  // Returns: nullopt on I/O failure, else whether any entry came back.
  std::optional<bool> read(RedisSubscription& s, redisContext* c, bool pending, bool& need_setup) {
    std::string count = std::to_string(options_.read_count);
    std::string block = std::to_string(options_.block_timeout.count());
    Command cmd{"XREADGROUP", "GROUP", s.group, s.consumer, "COUNT", count};
    if (!pending) cmd.add("BLOCK").add(block);
    cmd.add("STREAMS");
    for (const auto& [key, topic] : s.streams) cmd.add(key);
    for (std::size_t i = 0; i < s.streams.size(); ++i) cmd.add(pending ? "0" : ">");
    {
      std::lock_guard lock(s.conn_mutex);
      if (s.stop.load()) return false;
      s.blocked = !pending;
    }
    auto r = run(c, std::move(cmd));
    {
      std::lock_guard lock(s.conn_mutex);
      s.blocked = false;
    }
    if (auto* io = std::get_if<IoError>(&r)) {
      if (!s.stop.load()) set_error(s, "XREADGROUP: " + io->message);
      return std::nullopt;
    }
    const redisReply* reply = std::get<0>(r).get();
    if (is_error(reply)) {
      set_error(s, fmt::format("XREADGROUP: {}", text(reply)));
      if (text(reply).starts_with("NOGROUP")) need_setup = true;  // stream or group lost: make them again
      pause(s, options_.backoff_initial);  // e.g. LOADING after a restart: do not spin
      return false;
    }
    bool any = false;
    if (!is_array(reply)) return false;  // nil: BLOCK timed out
    for (std::size_t i = 0; i < reply->elements; ++i) {
      const redisReply* stream = reply->element[i];
      if (!is_array(stream) || stream->elements < 2) continue;
      std::string key(text(stream->element[0]));
      any = any || (is_array(stream->element[1]) && stream->element[1]->elements > 0);
      if (!handle_entries(s, c, key, stream->element[1])) return std::nullopt;
    }
    return any;
  }

  // Claims entries that other consumers of the group left pending for longer
  // than claim_min_idle (they died), and handles them.
  bool reclaim(RedisSubscription& s, redisContext* c) {
    const std::string min_idle = std::to_string(options_.claim_min_idle.count());
    std::set<std::string> quiet;  // streams whose group has nothing pending (as of the last stats)
    {
      std::lock_guard lock(s.stats_mutex);
      for (const auto& st : s.stats) {
        if (st.pending == 0 && !st.last_delivered_id.empty()) quiet.insert(st.stream);
      }
    }
    for (const auto& [key, topic] : s.streams) {
      if (quiet.count(key)) continue;
      auto r = run(c, Command{"XPENDING", key, s.group, "-", "+", "100"});
      if (std::holds_alternative<IoError>(r)) return false;
      const redisReply* list = std::get<0>(r).get();
      if (!is_array(list)) continue;
      std::map<std::string, long long> deliveries;
      Command claim{"XCLAIM", key, s.group, s.consumer, min_idle};
      std::vector<std::string> ids;
      for (std::size_t i = 0; i < list->elements; ++i) {
        const redisReply* p = list->element[i];
        if (!is_array(p) || p->elements < 4) continue;
        if (text(p->element[1]) == s.consumer || p->element[2]->integer < options_.claim_min_idle.count()) continue;
        ids.emplace_back(text(p->element[0]));
        deliveries[ids.back()] = p->element[3]->integer;
      }
      if (ids.empty()) continue;
      for (const auto& id : ids) claim.add(id);
      auto claimed = run(c, std::move(claim));
      if (std::holds_alternative<IoError>(claimed)) return false;
      const redisReply* entries = std::get<0>(claimed).get();
      if (is_array(entries)) {
        s.totals.reclaimed.fetch_add(entries->elements);
        totals_.reclaimed.fetch_add(entries->elements);
      }
      if (!handle_entries(s, c, key, entries, &deliveries)) return false;
    }
    return true;
  }

  // Refreshes pending counts and lag from XINFO GROUPS.
  bool refresh_stats(RedisSubscription& s, redisContext* c) {
    std::vector<Command> commands;
    std::vector<std::string> keys;
    for (const auto& [key, topic] : s.streams) {
      commands.push_back(Command{"XINFO", "GROUPS", key});
      keys.push_back(key);
    }
    if (commands.empty()) return true;
    auto r = pipeline(c, commands);
    if (std::holds_alternative<IoError>(r)) return false;
    auto& replies = std::get<0>(r);
    std::lock_guard lock(s.stats_mutex);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto st = std::find_if(s.stats.begin(), s.stats.end(), [&](const StreamStats& x) { return x.stream == keys[i]; });
      if (st == s.stats.end() || !is_array(replies[i].get())) continue;
      for (std::size_t g = 0; g < replies[i]->elements; ++g) {
        const redisReply* info = replies[i]->element[g];
        if (!is_array(info)) continue;
        std::map<std::string_view, const redisReply*> fields;
        for (std::size_t f = 0; f + 1 < info->elements; f += 2) fields[text(info->element[f])] = info->element[f + 1];
        if (!fields.count("name") || text(fields["name"]) != s.group) continue;
        if (fields.count("pending")) st->pending = fields["pending"]->integer;
        if (fields.count("last-delivered-id")) st->last_delivered_id = std::string(text(fields["last-delivered-id"]));
        auto lag = fields.find("lag");
        st->lag = lag != fields.end() && lag->second->type == REDIS_REPLY_INTEGER ? lag->second->integer : -1;
      }
    }
    return true;
  }

  void set_connected(RedisSubscription& s, bool connected) {
    std::lock_guard lock(s.stats_mutex);
    if (connected && !s.connected && s.last_connect_failed) ++s.reconnects;
    s.connected = connected;
    s.last_connect_failed = !connected;
  }

  void worker(RedisSubscription& s) {
    // Not blocked for good here: this thread runs handlers, and threads or
    // processes they start would inherit the mask. pipeline() guards its I/O.
    Context c;
    int failures = 0;
    bool need_setup = false, read_pending = true;
    Clock::time_point next_discovery{}, next_claim = Clock::now(), next_stats{};
    const bool exact = s.pattern != "*" && !s.pattern.ends_with(".*");
    auto drop_connection = [&](const std::string& why) {
      {
        std::lock_guard lock(s.conn_mutex);
        s.active = nullptr;
      }
      c.reset();
      set_connected(s, false);
      if (!s.stop.load()) link_.failure(why);
    };
    while (!s.stop.load()) {
      if (!c) {
        auto fresh = link_.connect(options_.command_timeout + options_.block_timeout);
        if (!fresh) {
          set_error(s, fresh.error().message);
          set_connected(s, false);
          link_.failure(fresh.error().message);
          pause(s, backoff_delay(options_, ++failures));
          continue;
        }
        failures = 0;
        c = std::move(*fresh);
        {
          std::lock_guard lock(s.conn_mutex);
          s.active = c.get();
        }
        link_.success();
        set_connected(s, true);
        need_setup = true;  // Redis may have restarted without our groups
        read_pending = true;
      }
      const auto now = Clock::now();
      if (need_setup || (!exact && now >= next_discovery)) {
        if (auto err = discover(s, c.get(), need_setup ? Discovery::rebuild : Discovery::later)) {
          drop_connection(err->message);
          continue;
        }
        need_setup = false;
        next_discovery = now + options_.discovery_interval;
      }
      if (now >= next_stats) {
        if (!refresh_stats(s, c.get())) {
          drop_connection("XINFO GROUPS failed");
          continue;
        }
        next_stats = now + options_.stats_interval;
      }
      if (now >= next_claim) {
        if (!reclaim(s, c.get())) {
          drop_connection("XPENDING/XCLAIM failed");
          continue;
        }
        next_claim = now + options_.claim_interval;
      }
      if (s.streams.empty()) {  // a pattern with no matching topic yet
        pause(s, options_.discovery_interval);
        continue;
      }
      auto got = read(s, c.get(), read_pending, need_setup);
      if (!got) {
        drop_connection("XREADGROUP failed");
        continue;
      }
      if (read_pending && !*got) read_pending = false;  // own backlog done: read new entries
    }
    {
      std::lock_guard lock(s.conn_mutex);
      s.active = nullptr;
    }
    c.reset();
    cleanup(s);
  }

  // A private group goes with its subscription; a member of a named group
  // leaves it when it holds no pending entries (else others reclaim them).
  void cleanup(RedisSubscription& s) {
    if (s.streams.empty() || !link_.connected()) return;  // down: do not make shutdown wait for it
    auto lease = pool_.acquire();
    if (!lease) return;
    std::vector<Command> commands;
    for (const auto& [key, topic] : s.streams) {
      if (s.group_label.empty()) {
        commands.push_back(Command{"XGROUP", "DESTROY", key, s.group});
      } else {
        commands.push_back(Command{"XPENDING", key, s.group, "-", "+", "1", s.consumer});
      }
    }
    auto r = pipeline(lease->context.get(), commands);
    if (std::holds_alternative<IoError>(r)) return;
    if (!s.group_label.empty()) {
      std::vector<Command> leave;
      std::size_t i = 0;
      for (const auto& [key, topic] : s.streams) {
        const redisReply* p = std::get<0>(r)[i++].get();
        if (is_array(p) && p->elements == 0) leave.push_back(Command{"XGROUP", "DELCONSUMER", key, s.group, s.consumer});
      }
      if (!leave.empty() && std::holds_alternative<IoError>(pipeline(lease->context.get(), leave))) return;
    }
    pool_.release(std::move(*lease));
  }

  // Keeps health() current when nothing else talks to Redis.
  void monitor() {
    detail::block_sigpipe_in_this_thread();
    Context c;
    int failures = 0;
    std::unique_lock lock(monitor_mutex_);
    while (!monitor_stop_) {
      milliseconds wait = options_.stats_interval;
      lock.unlock();
      if (!c) {
        auto fresh = link_.connect(options_.command_timeout);
        if (fresh) {
          c = std::move(*fresh);
          failures = 0;
          link_.success();
        } else {
          link_.failure(fresh.error().message);
          wait = backoff_delay(options_, ++failures);
        }
      } else {
        auto r = run(c.get(), Command{"PING"});
        if (auto* io = std::get_if<IoError>(&r)) {
          c.reset();
          link_.failure("PING: " + io->message);
          wait = backoff_delay(options_, ++failures);
        } else {
          link_.success();
        }
      }
      lock.lock();
      monitor_wake_.wait_for(lock, wait, [&] { return monitor_stop_; });
    }
  }

  RedisBusOptions options_;
  Link link_;
  Pool pool_;
  GroupCommit commits_;
  std::string streams_prefix_, registry_key_, max_len_;

  mutable std::mutex mutex_;  // subs_, orphans_, next_id_
  std::map<std::uint64_t, std::shared_ptr<RedisSubscription>> subs_;
  std::vector<std::pair<std::thread, std::shared_ptr<RedisSubscription>>> orphans_;
  std::uint64_t next_id_ = 1;

  std::mutex registered_mutex_;
  struct TopicHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view t) const noexcept { return std::hash<std::string_view>{}(t); }
  };
  // Topics announced in the registry set.
  std::unordered_set<std::string, TopicHash, std::equal_to<>> registered_;
  std::uint64_t registered_generation_ = 0;

  std::mutex monitor_mutex_;
  std::condition_variable monitor_wake_;
  bool monitor_stop_ = false;
  std::thread monitor_;

  Totals totals_;
  std::atomic<std::uint64_t> published_{0}, publish_errors_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace

Result<std::shared_ptr<EventBus>> make_redis_event_bus(const RedisBusOptions& options) {
  auto url = parse_redis_url(options.url);
  if (!url) return url.error();
  auto positive = [](milliseconds d) { return d.count() > 0; };
  if (options.max_stream_length == 0 || options.max_attempts < 1 || options.read_count == 0 ||
      !positive(options.connect_timeout) || !positive(options.command_timeout) || !positive(options.block_timeout) ||
      !positive(options.discovery_interval) || !positive(options.claim_interval) ||
      options.claim_min_idle.count() < 0 || !positive(options.backoff_initial) ||
      options.backoff_max < options.backoff_initial || !positive(options.stats_interval) ||
      options.retry_delay.count() < 0) {
    return make_error("invalid_configuration",
                      "RedisBusOptions: lengths, counts, attempts, timeouts and intervals must be positive, and "
                      "backoff_max at least backoff_initial");
  }
  auto bus = std::make_shared<RedisEventBus>(options, std::move(*url));
  if (auto probe = bus->probe(); !probe) return probe.error();
  return std::shared_ptr<EventBus>(std::move(bus));
}

Result<std::shared_ptr<EventBus>> make_event_bus_from_url(std::string_view redis_url) {
  std::string url(redis_url);
  if (url.empty()) {
    if (const char* env = std::getenv("REDIS_URL")) url = env;
  }
  if (url.empty()) return make_memory_event_bus();
  RedisBusOptions options;
  options.url = url;
  return make_redis_event_bus(options);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
