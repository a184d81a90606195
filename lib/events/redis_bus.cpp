// The Redis Streams event bus (see include/ordinaut/redis_bus.hpp for the
// layout, delivery and outage policy): the EventBus face, which owns the
// subscriptions and the bus-wide monitor, over its parts:
//   redis_url.cpp          parse_redis_url
//   redis_wire.hpp/.cpp    RESP encoding, pipelined round trips
//   redis_link.hpp/.cpp    connecting, connection state and backoff, the pool
//   redis_publisher.hpp/.cpp  XADD encoding, topic registry, group commit
//   redis_subscription.hpp, redis_subscriber.cpp  the subscription workers:
//                          discovery, groups, delivery, reclaim, figures
//   redis_health.hpp/.cpp  the health JSON
//
// hiredis: only calls and reply types that are the same in 0.14 and 1.x
// (redisConnectWithTimeout, redisSetTimeout, redisEnableKeepAlive,
// redisAppendFormattedCommand, redisGetReply, REDIS_REPLY_* of RESP2).
#include "ordinaut/redis_bus.hpp"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/strings.hpp"
#include "events/redis_health.hpp"
#include "events/redis_link.hpp"
#include "events/redis_publisher.hpp"
#include "events/redis_subscription.hpp"
#include "events/sigpipe.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

namespace {

using namespace detail::redis;

class RedisEventBus final : public EventBus {
 public:
  RedisEventBus(const RedisBusOptions& options, RedisUrl url)
      : options_(options),
        link_(options, std::move(url)),
        pool_(link_),
        publisher_(options_, link_, pool_),
        runner_(options_, link_, pool_, totals_) {
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
    if (auto joined = join(*sub); !joined) {
      if (joined.error().code != "bus_unavailable" || !options_.subscribe_while_unreachable) return joined.error();
      // Recorded: the worker joins the streams once Redis answers; groups
      // start at this moment by this process's clock.
      sub->start_id = fmt::format("{}-0", detail::now_ms() - 1);
      std::lock_guard lock(sub->stats_mutex);
      sub->last_error = joined.error().message;
      sub->unreadable_since_ms = detail::now_ms();
    }
    {
      std::lock_guard lock(mutex_);
      if (stopped_.load()) return make_error("bus_stopped", "the event bus is shut down");
      sub->worker = std::thread([this, s = sub.get()] { runner_.work(*s); });
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
    doc.AddMember("published", publisher_.published(), a);
    doc.AddMember("publish_errors", publisher_.errors(), a);
    doc.AddMember("delivered", totals_.delivered.load(), a);
    doc.AddMember("failed", totals_.failed.load(), a);
    doc.AddMember("retried", totals_.retried.load(), a);
    doc.AddMember("reclaimed", totals_.reclaimed.load(), a);
    doc.AddMember("dropped", totals_.dropped.load(), a);
    doc.AddMember("group_recreated", totals_.group_recreated.load(), a);
    JsonValue rejected(rapidjson::kObjectType);
    rejected.AddMember("invalid_json", totals_.rejected_invalid_json.load(), a);
    rejected.AddMember("no_payload", totals_.rejected_no_payload.load(), a);
    doc.AddMember("rejected", rejected, a);
    // The bus is as bad as its connection or its worst subscription.
    const auto availability = link_.availability();
    const auto now = detail::now_ms();
    Verdict verdict = judge(availability.up                   ? 0
                            : availability.down_since_ms != 0 ? availability.down_since_ms
                                                              : now,
                            availability.reason, options_, now);
    std::lock_guard lock(mutex_);
    for (const auto& [id, s] : subs_) verdict = worse(verdict, judge_subscription(*s, availability, options_, now));
    add_verdict(doc, verdict, a);
    doc.AddMember("up", availability.up, a);
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
    const auto availability = link_.availability();
    const auto now = detail::now_ms();
    for (const auto& s : subs) {
      doc.PushBack(describe_subscription(*s, judge_subscription(*s, availability, options_, now), a), a);
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
  Result<std::vector<std::string>> publish_drafts(std::string_view source, const EventDraft* drafts,
                                                  std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      if (auto v = validate_topic(drafts[i].topic); !v) return v.error();
    }
    if (stopped_.load()) return make_error("bus_stopped", "the event bus is shut down");
    return publisher_.publish(source, drafts, count);
  }

  // Starts the subscription now by Redis' clock (which also stamps the ids),
  // and joins its current streams.
  Result<void> join(RedisSubscription& sub) {
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
    sub.start_id = fmt::format("{}-{}", ms - 1, std::numeric_limits<std::uint64_t>::max());
    if (auto err = runner_.discover(sub, lease->context.get(), SubscriptionRunner::Discovery::initial)) {
      if (err->code == "bus_unavailable") {
        link_.failure(err->message);
        return *err;
      }
      pool_.release(std::move(*lease));
      return *err;
    }
    pool_.release(std::move(*lease));
    std::lock_guard lock(sub.stats_mutex);
    sub.last_read_ms = detail::now_ms();
    return {};
  }

  Error io_failure(std::string_view what, const std::string& message) {
    std::string m = fmt::format("Redis at {}: {} failed: {}", link_.url().redacted(), what, message);
    link_.failure(m);
    return make_error("bus_unavailable", std::move(m));
  }

  void stop(const std::shared_ptr<RedisSubscription>& s) {
    SubscriptionRunner::request_stop(*s);
    if (!s->worker.joinable()) return;
    if (s->worker.get_id() == std::this_thread::get_id()) {
      std::lock_guard lock(mutex_);  // a handler cancelled itself; shutdown() joins it
      orphans_.emplace_back(std::move(s->worker), s);
    } else {
      s->worker.join();
    }
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
        } else {
          link_.failure(fresh.error().message);
          wait = backoff_delay(options_, ++failures);
        }
      }
      if (c) {  // connected only once Redis answers: a stopped server still accepts connections
        link_.probe_started();
        auto r = run(c.get(), Command{"PING"});
        link_.probe_finished();
        if (auto* io = std::get_if<IoError>(&r)) {
          c.reset();
          link_.failure("PING: " + io->message);
          wait = backoff_delay(options_, ++failures);
        } else {
          failures = 0;
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
  Publisher publisher_;
  Totals totals_;
  SubscriptionRunner runner_;

  mutable std::mutex mutex_;  // subs_, orphans_, next_id_
  std::map<std::uint64_t, std::shared_ptr<RedisSubscription>> subs_;
  std::vector<std::pair<std::thread, std::shared_ptr<RedisSubscription>>> orphans_;
  std::uint64_t next_id_ = 1;

  std::mutex monitor_mutex_;
  std::condition_variable monitor_wake_;
  bool monitor_stop_ = false;
  std::thread monitor_;

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
      options.retry_delay.count() < 0 || !positive(options.unhealthy_after)) {
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
  options.subscribe_while_unreachable = true;  // extensions load while Redis is down
  return make_redis_event_bus(options);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
