// Event values, topic patterns, the capability handles, and the in-memory bus.
#include "ordinaut/events.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include <fmt/format.h>

#include "strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

std::string Event::to_json() const {
  return fmt::format(R"({{"id":"{}","topic":"{}","source":"{}","time":"{}","payload":{}}})", json::escape(id),
                     json::escape(topic), json::escape(source), detail::rfc3339(time_ms),
                     payload ? json::dump(*payload) : "null");
}

bool topic_matches(std::string_view pattern, std::string_view topic) noexcept {
  if (pattern == "*") return true;
  if (pattern.size() >= 2 && pattern.ends_with(".*")) {
    std::string_view prefix = pattern.substr(0, pattern.size() - 1);  // keeps the '.'
    return topic.size() > prefix.size() && topic.starts_with(prefix);
  }
  return pattern == topic;
}

Result<void> validate_topic(std::string_view topic) {
  if (topic.empty() || topic.size() > 200) {
    return make_error("invalid_topic", fmt::format("topic \"{}\" must have 1 to 200 characters", topic));
  }
  for (char c : topic) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' || c == '-')) {
      return make_error("invalid_topic",
                        fmt::format("topic \"{}\" may only use A-Z a-z 0-9 _ . : - (found '{}')", topic, c));
    }
  }
  return {};
}

Result<void> validate_pattern(std::string_view pattern) {
  if (pattern == "*") return {};
  if (pattern.ends_with(".*")) {
    auto prefix = validate_topic(pattern.substr(0, pattern.size() - 2));
    if (!prefix) return make_error("invalid_pattern", fmt::format("pattern \"{}\": {}", pattern, prefix.error().message));
    return {};
  }
  if (auto t = validate_topic(pattern); !t) {
    return make_error("invalid_pattern",
                      fmt::format("pattern \"{}\" must be a topic, \"prefix.*\" or \"*\"", pattern));
  }
  return {};
}

void Subscription::cancel() {
  if (auto bus = bus_.lock(); bus && id_ != 0) bus->unsubscribe(id_);
  id_ = 0;
}

Result<std::string> EventPublisher::publish(std::string_view topic, const JsonValue& payload) const {
  return bus_->publish(topic, source_, payload);
}

Result<Subscription> EventSubscriber::subscribe(std::string_view pattern, EventHandler handler,
                                                const SubscribeOptions& options) const {
  auto id = bus_->subscribe(subscriber_, pattern, std::move(handler), options);
  if (!id) return id.error();
  return Subscription(bus_, *id);
}

// ---- In-memory bus -----------------------------------------------------------

namespace {

using EventPtr = std::shared_ptr<const Event>;

// One bounded queue; a plain subscription owns one, a group shares one among
// its members. Each member runs one worker thread.
struct Queue {
  std::string key;      // "sub:<id>" or "group:<name>|<pattern>"
  std::string pattern;
  std::string group;
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<EventPtr> items;
  std::size_t capacity;
  bool closed = false;
  int members = 0;
  std::atomic<std::uint64_t> delivered{0}, failed{0}, dropped{0}, retried{0};
};

struct Member {
  std::uint64_t id;
  std::string subscriber;
  std::string consumer;
  EventHandler handler;
  std::shared_ptr<Queue> queue;
  std::atomic<bool> stop{false};
  std::thread worker;
};

class MemoryEventBus final : public EventBus {
 public:
  explicit MemoryEventBus(MemoryBusOptions options) : options_(options) {}
  ~MemoryEventBus() override { shutdown(); }

  Result<std::string> publish(std::string_view topic, std::string_view source, const JsonValue& payload) override {
    if (auto v = validate_topic(topic); !v) return v.error();
    if (stopped_.load()) return make_error("bus_stopped", "the event bus is shut down");
    auto event = std::make_shared<Event>();
    event->time_ms = detail::now_ms();
    event->id = fmt::format("{}-{}", event->time_ms, sequence_.fetch_add(1, std::memory_order_relaxed));
    event->topic = topic;
    event->source = source;
    event->payload = std::make_shared<const Json>(json::copy(payload));
    published_.fetch_add(1, std::memory_order_relaxed);
    std::shared_lock lock(mutex_);
    for (auto& [key, queue] : queues_) {
      if (!topic_matches(queue->pattern, topic)) continue;
      bool was_empty;
      {
        std::lock_guard ql(queue->mutex);
        if (queue->closed) continue;
        was_empty = queue->items.empty();
        if (queue->items.size() >= queue->capacity) {
          queue->items.pop_front();
          queue->dropped.fetch_add(1, std::memory_order_relaxed);
        }
        queue->items.push_back(event);
      }
      if (was_empty) queue->ready.notify_all();
    }
    return event->id;
  }

  Result<std::uint64_t> subscribe(std::string_view subscriber, std::string_view pattern, EventHandler handler,
                                  const SubscribeOptions& options) override {
    if (auto v = validate_pattern(pattern); !v) return v.error();
    if (!handler) return make_error("invalid_handler", "event handler is empty");
    if (stopped_.load()) return make_error("bus_stopped", "the event bus is shut down");
    auto member = std::make_shared<Member>();
    std::unique_lock lock(mutex_);
    member->id = next_id_++;
    member->subscriber = subscriber;
    member->consumer = options.consumer.empty() ? fmt::format("{}-{}", subscriber, member->id) : options.consumer;
    member->handler = std::move(handler);
    std::string key = options.group.empty() ? fmt::format("sub:{}", member->id)
                                            : fmt::format("group:{}|{}", options.group, pattern);
    auto& queue = queues_[key];
    if (!queue) {
      queue = std::make_shared<Queue>();
      queue->key = key;
      queue->pattern = pattern;
      queue->group = options.group;
      queue->capacity = options_.queue_capacity;
    }
    ++queue->members;
    member->queue = queue;
    member->worker = std::thread([this, m = member.get()] { run(*m); });
    members_.emplace(member->id, member);
    return member->id;
  }

  void unsubscribe(std::uint64_t id) override {
    std::shared_ptr<Member> member;
    {
      std::unique_lock lock(mutex_);
      auto it = members_.find(id);
      if (it == members_.end()) return;
      member = it->second;
      members_.erase(it);
      if (--member->queue->members == 0) queues_.erase(member->queue->key);
    }
    stop_member(*member);
  }

  void unsubscribe_all(std::string_view subscriber) override {
    std::vector<std::uint64_t> ids;
    {
      std::shared_lock lock(mutex_);
      for (auto& [id, m] : members_) {
        if (m->subscriber == subscriber) ids.push_back(id);
      }
    }
    for (auto id : ids) unsubscribe(id);
  }

  Json health() const override {
    Json doc = json::object();
    auto& a = doc.GetAllocator();
    doc.AddMember("kind", "memory", a);
    doc.AddMember("connected", true, a);
    doc.AddMember("published", published_.load(), a);
    std::shared_lock lock(mutex_);
    std::uint64_t dropped = 0, failed = 0, delivered = 0;
    for (auto& [k, q] : queues_) {
      dropped += q->dropped.load();
      failed += q->failed.load();
      delivered += q->delivered.load();
    }
    doc.AddMember("delivered", delivered, a);
    doc.AddMember("failed", failed, a);
    doc.AddMember("dropped", dropped, a);
    doc.AddMember("subscriptions", static_cast<std::uint64_t>(members_.size()), a);
    return doc;
  }

  Json subscriber_health(std::string_view subscriber) const override {
    Json doc;
    doc.SetArray();
    auto& a = doc.GetAllocator();
    std::shared_lock lock(mutex_);
    for (auto& [id, m] : members_) {
      if (m->subscriber != subscriber) continue;
      JsonValue s(rapidjson::kObjectType);
      s.AddMember("id", id, a);
      s.AddMember("pattern", JsonValue(m->queue->pattern.c_str(), a), a);
      s.AddMember("group", JsonValue(m->queue->group.c_str(), a), a);
      s.AddMember("consumer", JsonValue(m->consumer.c_str(), a), a);
      std::size_t pending;
      {
        std::lock_guard ql(m->queue->mutex);
        pending = m->queue->items.size();
      }
      s.AddMember("pending", static_cast<std::uint64_t>(pending), a);
      s.AddMember("delivered", m->queue->delivered.load(), a);
      s.AddMember("failed", m->queue->failed.load(), a);
      s.AddMember("dropped", m->queue->dropped.load(), a);
      doc.PushBack(s, a);
    }
    return doc;
  }

  void shutdown() override {
    if (stopped_.exchange(true)) return;
    std::map<std::uint64_t, std::shared_ptr<Member>> members;
    {
      std::unique_lock lock(mutex_);
      members.swap(members_);
      queues_.clear();
    }
    for (auto& [id, m] : members) stop_member(*m);
  }

 private:
  void stop_member(Member& m) {
    m.stop.store(true);
    {
      std::lock_guard ql(m.queue->mutex);
      if (m.queue->members <= 0) m.queue->closed = true;
    }
    m.queue->ready.notify_all();
    if (m.worker.joinable()) {
      if (m.worker.get_id() == std::this_thread::get_id()) {
        m.worker.detach();  // a handler cancelling its own subscription
      } else {
        m.worker.join();
      }
    }
  }

  void run(Member& m) {
    Queue& q = *m.queue;
    std::deque<EventPtr> batch;
    while (true) {
      {
        std::unique_lock ql(q.mutex);
        q.ready.wait(ql, [&] { return m.stop.load() || q.closed || !q.items.empty(); });
        if (m.stop.load() || q.closed) return;
        // A group's members share the queue: take a slice so others get work too.
        std::size_t take = q.members > 1 ? std::min<std::size_t>(q.items.size(), 64) : q.items.size();
        for (std::size_t i = 0; i < take; ++i) {
          batch.push_back(std::move(q.items.front()));
          q.items.pop_front();
        }
      }
      for (auto& event : batch) {
        if (m.stop.load()) return;
        deliver(m, *event);
      }
      batch.clear();
    }
  }

  void deliver(Member& m, const Event& event) {
    for (int attempt = 1;; ++attempt) {
      try {
        m.handler(event);
        m.queue->delivered.fetch_add(1, std::memory_order_relaxed);
        return;
      } catch (...) {
        if (attempt >= options_.max_attempts || m.stop.load()) {
          m.queue->failed.fetch_add(1, std::memory_order_relaxed);
          return;
        }
        m.queue->retried.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(options_.retry_delay);
      }
    }
  }

  MemoryBusOptions options_;
  mutable std::shared_mutex mutex_;
  std::map<std::string, std::shared_ptr<Queue>> queues_;
  std::map<std::uint64_t, std::shared_ptr<Member>> members_;
  std::uint64_t next_id_ = 1;
  std::atomic<std::uint64_t> sequence_{0};
  std::atomic<std::uint64_t> published_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::shared_ptr<EventBus> make_memory_event_bus(MemoryBusOptions options) {
  return std::make_shared<MemoryEventBus>(options);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
