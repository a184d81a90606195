// The in-memory event bus (make_memory_event_bus).
//
// How an event travels, in the common case of one publisher and one subscriber:
//  1. publish() takes a free EventBox from the bus's BoxPool, copies the payload
//     into it, stamps id, topic, source and time;
//  2. it stores the box's address in each matching queue's ring and moves the
//     ring's tail, under a spin lock that only publishers take;
//  3. the subscription's worker claims a run of slots with one compare-and-swap
//     of the ring's head, calls the handler for each event, drops its holds,
//     and gives the boxes whose last reference went back to the pool as one
//     chain.
// Publisher and worker share no lock per event. What limits the rate on two
// cores is the number of cache lines each event makes travel between them, so
// the layout of EventBox and Queue keeps what each side writes apart, and each
// side prefetches the lines it will need next.
#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "events/event_payload.hpp"
#include "events/memory_queue.hpp"
#include "ordinaut/events.hpp"
#include "core/strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {
namespace {

using namespace detail::memory;

// Most events a worker claims at once (members of a group take turns).
constexpr std::size_t kClaim = 64;
// How many events ahead a worker prefetches the box.
constexpr std::size_t kPrefetchAhead = 4;

struct Member {
  std::uint64_t id = 0;
  std::string subscriber;
  std::string consumer;
  EventHandler handler;
  std::shared_ptr<Queue> queue;
  std::atomic<bool> stop{false};  // written under queue->mutex
  std::thread worker;
};

// "<milliseconds>-", the start of the ids a thread stamps in one millisecond:
// rendered once per millisecond rather than once per event.
struct IdPrefix {
  std::int64_t ms = -1;
  char text[24];
  std::size_t length = 0;
  void render(std::int64_t now_ms) {
    char* end = std::to_chars(text, text + sizeof text - 1, now_ms).ptr;
    *end++ = '-';
    length = static_cast<std::size_t>(end - text);
    ms = now_ms;
  }
};
thread_local IdPrefix tls_id_prefix;
constexpr std::size_t kIdChars = 48;  // "<ms>-<sequence>": at most 20 + 1 + 20 characters

thread_local const void* tls_worker_bus = nullptr;  // the bus whose worker runs here

class MemoryEventBus final : public EventBus {
 public:
  explicit MemoryEventBus(MemoryBusOptions options) : options_(options) {
    options_.queue_capacity = std::max<std::size_t>(options_.queue_capacity, 1);
    options_.max_attempts = std::max(options_.max_attempts, 1);
    // Negative durations mean zero; a worker looks at least every 10 ms.
    options_.poll_interval = std::clamp(options_.poll_interval, std::chrono::nanoseconds(0),
                                        std::chrono::nanoseconds(std::chrono::milliseconds(10)));
    options_.spin_before_sleep = std::max(options_.spin_before_sleep, std::chrono::nanoseconds(0));
  }
  ~MemoryEventBus() override {
    shutdown();
    boxes_->close();
  }

  Result<std::string> publish(std::string_view topic, std::string_view source, const JsonValue& payload) override {
    if (auto v = validate_topic(topic); !v) return v.error();
    if (stopped_.load(std::memory_order_acquire)) return make_error("bus_stopped", "the event bus is shut down");
    const std::size_t payload_bytes = detail::PayloadStorage::copy_size(payload);
    // A kept box has only its inline buffer: larger payloads get a box sized for them.
    EventBox* box = detail::PayloadStorage::fits_inline(payload_bytes) ? boxes_->take() : nullptr;
    if (box != nullptr) {
      box->payload_storage.reset();
    } else {
      box = new EventBox(payload_bytes, boxes_);
    }
    std::string event_id;
    thread_local std::vector<Queue*> matched;
    std::shared_lock lock(mutex_, std::defer_lock);
    try {
      box->payload_storage.copy_from(payload);
      box->reusable = box->payload_storage.reusable();
      Event& event = box->event;
      event.topic = topic;
      event.source = source;
      event.id.reserve(kIdChars);
      event_id.reserve(kIdChars);
      lock.lock();
      matched.clear();
      for (const auto& queue : queues_) {
        if (!queue->closed && topic_matches(queue->pattern, topic)) matched.push_back(queue.get());
      }
      // Nothing below throws: the sequence counts only events that are published.
      event.time_ms = detail::now_ms();
      IdPrefix& prefix = tls_id_prefix;
      if (prefix.ms != event.time_ms) prefix.render(event.time_ms);
      char id[kIdChars];
      std::memcpy(id, prefix.text, prefix.length);
      char* end =
          std::to_chars(id + prefix.length, id + sizeof id, sequence_.fetch_add(1, std::memory_order_relaxed)).ptr;
      event.id.assign(id, end);
      event_id.assign(id, end);
      // From here the box owns itself (the control block lives in the box).
      event.payload = std::shared_ptr<const Json>(
          &box->payload_storage.doc(), [](const Json*) {}, InBoxAllocator<Json>(box));
    } catch (...) {
      box->reusable = box->payload_storage.reusable();
      boxes_->give_back(box);  // nothing refers to it
      throw;
    }
    // One hold per queue, all counted before the first push: once pushed, the
    // box is the workers' (this thread must not touch it again).
    box->holds.store(std::max<int>(static_cast<int>(matched.size()), 1), std::memory_order_relaxed);
    if (matched.empty()) {
      release(box);
      return event_id;
    }
    std::size_t pushed = 0;
    try {
      for (; pushed < matched.size(); ++pushed) {
        Queue* queue = matched[pushed];
        if (EventBox* dropped = queue->push(box)) {
          queue->counters.dropped.fetch_add(1, std::memory_order_relaxed);
          release(dropped);
        }
      }
    } catch (...) {  // a ring could not grow (std::bad_alloc): the queues before it have the event
      for (std::size_t i = 0; i < pushed; ++i) matched[i]->wake();
      release(box, static_cast<int>(matched.size() - pushed));
      throw;
    }
    for (Queue* queue : matched) queue->wake();
    return event_id;
  }

  Result<std::uint64_t> subscribe(std::string_view subscriber, std::string_view pattern, EventHandler handler,
                                  const SubscribeOptions& options) override {
    if (auto v = validate_pattern(pattern); !v) return v.error();
    if (!handler) return make_error("invalid_handler", "event handler is empty");
    auto member = std::make_shared<Member>();
    std::unique_lock lock(mutex_);
    if (stopped_.load()) return make_error("bus_stopped", "the event bus is shut down");
    member->id = next_id_++;
    member->subscriber = subscriber;
    member->consumer = options.consumer.empty() ? fmt::format("{}-{}", subscriber, member->id) : options.consumer;
    member->handler = std::move(handler);
    std::shared_ptr<Queue> queue;
    std::string group_key;
    if (!options.group.empty()) {
      group_key = fmt::format("{}|{}|{}", subscriber, options.group, pattern);
      if (auto it = groups_.find(group_key); it != groups_.end()) queue = it->second;
    }
    if (!queue) {
      queue = std::make_shared<Queue>(std::string(pattern), options.group, options_.queue_capacity);
      queues_.push_back(queue);
      if (!group_key.empty()) groups_.emplace(group_key, queue);
    }
    {
      std::lock_guard ql(queue->mutex);
      ++queue->members;
    }
    member->queue = queue;
    // The worker holds its Member (and through it the queue): a handler that
    // cancels its own subscription, or shuts the bus down, returns into run().
    member->worker = std::thread([this, m = member] { run(*m); });
    members_.emplace(member->id, member);
    return member->id;
  }

  void unsubscribe(std::uint64_t id) override {
    std::shared_ptr<Member> member;
    bool last = false;
    {
      std::unique_lock lock(mutex_);
      auto it = members_.find(id);
      if (it == members_.end()) return;
      member = it->second;
      members_.erase(it);
      std::lock_guard ql(member->queue->mutex);
      last = --member->queue->members == 0;
      if (last) {
        member->queue->closed = true;  // publishers skip it from now on
        std::erase_if(groups_, [&](const auto& g) { return g.second == member->queue; });
      }
    }
    stop_member(member);
    if (last) retire(member->queue);
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
    std::uint64_t delivered = retired_.delivered.load(), failed = retired_.failed.load(),
                  dropped = retired_.dropped.load(), retried = retired_.retried.load(), queued = 0;
    std::size_t subscriptions;
    {
      std::shared_lock lock(mutex_);
      for (const auto* list : {&queues_, &retiring_}) {
        for (const auto& q : *list) {
          delivered += q->counters.delivered.load();
          failed += q->counters.failed.load();
          dropped += q->counters.dropped.load();
          retried += q->counters.retried.load();
          queued += q->size();
        }
      }
      subscriptions = members_.size();
    }
    doc.AddMember("kind", "memory", a);
    doc.AddMember("connected", !stopped_.load(), a);
    doc.AddMember("up", !stopped_.load(), a);
    doc.AddMember("status", "ok", a);  // in process: nothing to lose touch with
    doc.AddMember("published", sequence_.load(), a);
    doc.AddMember("delivered", delivered, a);
    doc.AddMember("failed", failed, a);
    doc.AddMember("retried", retried, a);
    doc.AddMember("dropped", dropped, a);
    doc.AddMember("queued", queued, a);
    doc.AddMember("subscriptions", static_cast<std::uint64_t>(subscriptions), a);
    doc.AddMember("queue_capacity", static_cast<std::uint64_t>(options_.queue_capacity), a);
    return doc;
  }

  Json subscriber_health(std::string_view subscriber) const override {
    Json doc;
    doc.SetArray();
    auto& a = doc.GetAllocator();
    std::shared_lock lock(mutex_);
    for (const auto& [id, m] : members_) {
      if (m->subscriber != subscriber) continue;
      Queue& q = *m->queue;
      const std::uint64_t queued = q.size();
      std::string last_error;
      {
        std::lock_guard ql(q.mutex);
        last_error = q.last_error;
      }
      JsonValue s(rapidjson::kObjectType);
      s.AddMember("id", id, a);
      s.AddMember("pattern", JsonValue(q.pattern.c_str(), a), a);
      s.AddMember("group", JsonValue(q.group.c_str(), a), a);
      s.AddMember("consumer", JsonValue(m->consumer.c_str(), a), a);
      s.AddMember("status", "ok", a);
      // Not yet handled; for a group these are the group's (shared) figures.
      s.AddMember("pending", queued, a);
      s.AddMember("lag", queued, a);
      s.AddMember("delivered", q.counters.delivered.load(), a);
      s.AddMember("failed", q.counters.failed.load(), a);
      s.AddMember("retried", q.counters.retried.load(), a);
      s.AddMember("dropped", q.counters.dropped.load(), a);
      s.AddMember("last_error", last_error.empty() ? JsonValue() : JsonValue(last_error.c_str(), a), a);
      doc.PushBack(s, a);
    }
    return doc;
  }

  void shutdown() override {
    if (stopped_.exchange(true)) return;
    // Let the workers deliver what is queued, unless a handler called us: its
    // own queue cannot drain while it waits here.
    if (tls_worker_bus != this) {
      const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
      std::vector<std::shared_ptr<Queue>> queues;
      {
        std::shared_lock lock(mutex_);
        queues = queues_;
      }
      for (auto& q : queues) q->drain(deadline);
    }
    std::map<std::uint64_t, std::shared_ptr<Member>> members;
    {
      std::unique_lock lock(mutex_);
      members.swap(members_);
      groups_.clear();
      for (auto& q : queues_) {
        q->closed = true;
        std::lock_guard ql(q->mutex);
        q->members = 0;
      }
    }
    for (auto& [id, m] : members) stop_member(m);
    std::vector<std::shared_ptr<Queue>> queues;
    {
      std::shared_lock lock(mutex_);
      queues = queues_;
    }
    for (auto& q : queues) retire(q);
    std::vector<std::pair<std::thread, std::shared_ptr<Member>>> orphans;
    {
      std::lock_guard lock(orphans_mutex_);
      orphans.swap(orphans_);
    }
    for (auto& [thread, member] : orphans) {
      if (thread.get_id() == std::this_thread::get_id()) {
        thread.detach();  // shutdown() called by the handler that cancelled itself
      } else {
        thread.join();
      }
    }
    orphans.clear();
    std::unique_lock lock(mutex_);
    fold_retired();
  }

 private:
  void stop_member(const std::shared_ptr<Member>& m) {
    {
      std::lock_guard ql(m->queue->mutex);
      m->stop.store(true);
    }
    m->queue->ready.notify_all();
    m->queue->stopping.notify_all();
    if (!m->worker.joinable()) return;
    if (m->worker.get_id() == std::this_thread::get_id()) {
      // A handler cancelled its own subscription: it finishes the current
      // event and then exits; shutdown() joins it.
      std::lock_guard lock(orphans_mutex_);
      orphans_.emplace_back(std::move(m->worker), m);
    } else {
      m->worker.join();
    }
  }

  // Forgets a queue with no members and counts what it still held as
  // dropped. Its counters join the bus totals once no worker uses the queue
  // any more: a worker whose handler cancelled its own subscription may still
  // be finishing a batch.
  void retire(const std::shared_ptr<Queue>& q) {
    std::unique_lock lock(mutex_);
    auto it = std::find(queues_.begin(), queues_.end(), q);
    if (it == queues_.end()) return;
    queues_.erase(it);
    q->counters.dropped.fetch_add(q->discard());
    retiring_.push_back(q);
    fold_retired();
  }

  // Under the unique lock: moves the counters of retired queues nobody else
  // holds into retired_.
  void fold_retired() {
    std::erase_if(retiring_, [&](const std::shared_ptr<Queue>& q) {
      if (q.use_count() != 1) return false;
      std::atomic_thread_fence(std::memory_order_acquire);  // after the last holder's release
      retired_.delivered += q->counters.delivered.load();
      retired_.failed += q->counters.failed.load();
      retired_.dropped += q->counters.dropped.load();
      retired_.retried += q->counters.retried.load();
      return true;
    });
  }

  void run(Member& m) {
    tls_worker_bus = this;
    Queue& q = *m.queue;
    BoxPool& boxes = *boxes_;
    std::vector<EventBox*> batch;
    batch.reserve(kClaim);
    while (true) {
      q.begin_batch();
      if (m.stop.load() || q.claim(batch, kClaim) == 0) {
        q.end_batch();
        if (m.stop.load()) return;
        if (!await_events(q, m)) q.sleep(m.stop);
        continue;
      }
      const std::size_t n = batch.size();
      std::size_t done = 0, delivered = 0;
      for (std::size_t i = 0; i < std::min(n, kPrefetchAhead); ++i) prefetch_for_write(batch[i]->hot_line());
      for (; done < n && !m.stop.load(std::memory_order_relaxed); ++done) {
        if (done + kPrefetchAhead < n) {
          prefetch_for_write(batch[done + kPrefetchAhead]->hot_line());
        }
        delivered += deliver(m, batch[done]->event) ? 1 : 0;
      }
      {
        BoxPool::Gather gather(boxes);  // what the releases free goes back as one chain
        for (EventBox* box : batch) release(box);
      }
      q.counters.delivered.fetch_add(delivered, std::memory_order_relaxed);
      if (done < n) q.counters.dropped.fetch_add(n - done, std::memory_order_relaxed);
      q.end_batch();
    }
  }

  // Waits, without sleeping, up to spin_before_sleep for the queue to hold
  // events; false if none came. It looks at the queue every poll_interval
  // only: the tail it reads is a cache line the publisher writes per event,
  // and each look makes the publisher's next write fetch the line back.
  bool await_events(Queue& q, const Member& m) const {
    using std::chrono::steady_clock;
    const auto until = steady_clock::now() + options_.spin_before_sleep;
    while (true) {
      const auto now = steady_clock::now();
      if (now >= until) return false;
      const auto next = std::min(now + options_.poll_interval, until);
      do {
        if (m.stop.load(std::memory_order_relaxed)) return true;
        cpu_relax();
      } while (steady_clock::now() < next);
      if (q.size() > 0) return true;
    }
  }

  // Returns whether the handler succeeded (the caller counts deliveries per batch).
  bool deliver(Member& m, const Event& event) {
    Queue& q = *m.queue;
    auto delay = options_.retry_delay;
    for (int attempt = 1;; ++attempt) {
      std::string error;
      try {
        m.handler(event);
        return true;
      } catch (const std::exception& e) {
        error = e.what();
      } catch (...) {
        error = "handler threw a non-standard exception";
      }
      std::unique_lock ql(q.mutex);
      q.last_error = fmt::format("event {} on {}: {}", event.id, event.topic, error);
      if (m.stop.load() || attempt >= options_.max_attempts) {  // stop first: the bus may be gone then
        q.counters.failed.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      q.counters.retried.fetch_add(1, std::memory_order_relaxed);
      q.stopping.wait_for(ql, delay, [&] { return m.stop.load(); });
      delay *= 2;
    }
  }

  // Read by workers and publishers; written at construction (stopped_: once).
  MemoryBusOptions options_;
  std::shared_ptr<BoxPool> boxes_ = std::make_shared<BoxPool>();
  std::atomic<bool> stopped_{false};
  // Written by every publish: a cache line of its own, which workers never
  // read (a worker reading options_ on the same line would take the line
  // from the publisher at each event).
  alignas(kCacheLine) mutable std::shared_mutex mutex_;
  std::atomic<std::uint64_t> sequence_{0};      // events published so far
  std::vector<std::shared_ptr<Queue>> queues_;  // every queue with members (and closing ones)
  std::vector<std::shared_ptr<Queue>> retiring_;  // retired, but a worker may still count into them
  // The rest changes with subscriptions only.
  alignas(kCacheLine)
      std::map<std::string, std::shared_ptr<Queue>> groups_;  // open group queues by subscriber|group|pattern
  std::map<std::uint64_t, std::shared_ptr<Member>> members_;
  std::uint64_t next_id_ = 1;
  Counters retired_;  // totals of queues that are gone
  std::mutex orphans_mutex_;
  std::vector<std::pair<std::thread, std::shared_ptr<Member>>> orphans_;
};

}  // namespace

std::shared_ptr<EventBus> make_memory_event_bus(MemoryBusOptions options) {
  return std::make_shared<MemoryEventBus>(options);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
