// Connecting, connection state and the publisher pool (see redis_link.hpp).
#include "events/redis_link.hpp"

#include <poll.h>

#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "core/strings.hpp"

namespace ordinaut::detail::redis {

namespace {

std::mt19937_64& rng() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return generator;
}

// A pooled connection whose peer closed it (a restarted Redis) is readable
// while idle; it is dropped instead of failing the next command.
bool looks_alive(redisContext* c) {
  if (c->err) return false;
  pollfd p{c->fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

std::string random_hex(int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += fmt::format("{:02x}", static_cast<unsigned>(rng()() & 0xff));
  return out;
}

milliseconds backoff_delay(const RedisBusOptions& o, int failures) {
  const auto cap = std::min<std::int64_t>(o.backoff_max.count(), o.backoff_initial.count() << std::min(failures, 20));
  std::uniform_int_distribution<std::int64_t> pick(std::min<std::int64_t>(1, cap), std::max<std::int64_t>(cap, 1));
  return milliseconds(pick(rng()));
}

// ---- Link ----------------------------------------------------------------------

Result<Context> Link::connect(milliseconds read_timeout) const {
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
      return make_error("redis_auth_failed", fmt::format("Redis at {} refused the credentials: {}", url_.redacted(),
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

void Link::success() {
  std::lock_guard lock(mutex_);
  if (!connected_) {
    if (failed_before_) ++reconnects_;
    connected_ = true;
  }
  failures_ = 0;
  down_since_ms_ = 0;
  retry_at_ = Clock::time_point{};
}

void Link::failure(const std::string& error) {
  std::lock_guard lock(mutex_);
  connected_ = false;
  failed_before_ = true;
  last_error_ = error;
  last_error_ms_ = detail::now_ms();
  if (down_since_ms_ == 0) down_since_ms_ = last_error_ms_;
  ++failures_;
  ++attempts_;
  retry_at_ = Clock::now() + backoff_delay(options_, failures_);
  generation_.fetch_add(1);
}

std::optional<Error> Link::backoff_error() const {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  if (connected_ || now >= retry_at_) return std::nullopt;
  return make_error("bus_unavailable",
                    fmt::format("Redis at {} is unreachable ({}); next attempt in {} ms", url_.redacted(), last_error_,
                                std::chrono::duration_cast<milliseconds>(retry_at_ - now).count()));
}

void Link::describe(Json& doc) const {
  auto& a = doc.GetAllocator();
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  // A connection to a server that stopped answering is no connection.
  const bool answering = probe_started_ == Clock::time_point{} || now - probe_started_ <= kProbeOverdue;
  doc.AddMember("connected", connected_ && answering, a);
  doc.AddMember("reconnects", reconnects_, a);
  doc.AddMember("reconnect_attempts", attempts_, a);
  doc.AddMember("backoff_ms",
                static_cast<std::int64_t>(connected_ || now >= retry_at_
                                              ? 0
                                              : std::chrono::duration_cast<milliseconds>(retry_at_ - now).count()),
                a);
  doc.AddMember("last_error", last_error_.empty() ? JsonValue() : JsonValue(last_error_.c_str(), a), a);
  doc.AddMember("last_error_time",
                last_error_ms_ == 0 ? JsonValue() : JsonValue(detail::rfc3339(last_error_ms_).c_str(), a), a);
}

bool Link::connected() const {
  std::lock_guard lock(mutex_);
  return connected_;
}

void Link::probe_started() {
  std::lock_guard lock(mutex_);
  probe_started_ = Clock::now();
  probe_started_ms_ = detail::now_ms();
}

void Link::probe_finished() {
  std::lock_guard lock(mutex_);
  probe_started_ = Clock::time_point{};
}

Link::Availability Link::availability() const {
  std::lock_guard lock(mutex_);
  if (!connected_) {
    return {false, down_since_ms_ != 0 ? down_since_ms_ : last_error_ms_,
            last_error_.empty() ? std::string("not connected yet") : last_error_};
  }
  if (probe_started_ != Clock::time_point{} && Clock::now() - probe_started_ > kProbeOverdue) {
    return {false, probe_started_ms_, "Redis does not answer PING"};
  }
  return {};
}

// ---- Pool ----------------------------------------------------------------------

Result<Lease> Pool::acquire() {
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

void Pool::release(Lease lease) {
  std::lock_guard lock(mutex_);
  if (idle_.size() < 64) idle_.push_back(std::move(lease));
}

void Pool::clear() {
  std::lock_guard lock(mutex_);
  idle_.clear();
}

}  // namespace ordinaut::detail::redis
