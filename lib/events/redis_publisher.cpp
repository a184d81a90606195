// Publishing on the Redis bus (see redis_publisher.hpp).
#include "events/redis_publisher.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "core/strings.hpp"
#include "events/sigpipe.hpp"

namespace ordinaut::detail::redis {

// ---- GroupCommit ---------------------------------------------------------------

GroupCommit::Outcome GroupCommit::send(const Wire& wire) {
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

void GroupCommit::run(std::vector<Request*>& batch) {
  auto lease = pool_.acquire();
  if (!lease) {
    for (Request* r : batch) r->outcome.error = lease.error();
    return;
  }
  redisContext* c = lease->context.get();
  std::optional<std::string> io_error;
  SigpipeGuard no_sigpipe;  // a reset connection must not end the process
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
      r->outcome.error = make_error("bus_unavailable",
                                    fmt::format("Redis at {}: publish failed: {}", link_.url().redacted(), *io_error));
    }
  }
  if (io_error) {
    link_.failure("publish: " + *io_error);
    return;  // the connection is dropped with the lease
  }
  pool_.release(std::move(*lease));
}

// ---- Publisher -----------------------------------------------------------------

Publisher::Publisher(const RedisBusOptions& options, Link& link, Pool& pool)
    : link_(link),
      commits_(link, pool),
      streams_prefix_(options.key_prefix + "events:"),
      registry_key_(options.key_prefix + "topics"),
      max_len_(std::to_string(options.max_stream_length)) {}

Result<std::vector<std::string>> Publisher::publish(std::string_view source, const EventDraft* drafts,
                                                    std::size_t count) {
  char time_digits[24];
  const std::string_view time(
      time_digits, std::to_chars(time_digits, time_digits + sizeof time_digits, detail::now_ms()).ptr - time_digits);
  std::vector<std::string> new_topics;
  {
    std::lock_guard lock(registered_mutex_);
    // Redis may have lost the registry (a reconnect, or a FLUSHALL that no
    // connection noticed): announce again after a reconnect and every
    // kReannounce, so that processes started later find the topics.
    const auto now = Clock::now();
    if (registered_generation_ != link_.generation() || now >= reannounce_at_) {
      registered_.clear();
      registered_generation_ = link_.generation();
      reannounce_at_ = now + kReannounce;
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
    wire.command({"XADD", key, "MAXLEN", "~", max_len_, "*", "topic", drafts[i].topic, "source", source, "time", time,
                  "payload", std::string_view(body.GetString(), body.GetSize())});
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
                                    i ? fmt::format(" after {} of {} events were published", i, count) : "",
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

}  // namespace ordinaut::detail::redis
